"""Scheduling: the notification outbox and the appointment waitlist.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_rid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", _rid, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(256), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("appointment_id", sa.String(64), nullable=True),
        sa.Column("patient", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _instant, nullable=False),
        sa.Column("claimed_until", _instant, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", _instant, nullable=False),
        sa.Column("sent_at", _instant, nullable=True),
        sa.Column("communication_id", sa.String(64), nullable=True),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "waitlist",
        sa.Column("id", _rid, primary_key=True, autoincrement=True),
        sa.Column("patient", sa.String(128), nullable=False),
        sa.Column("practitioner", sa.String(128), nullable=True),
        sa.Column("service_type", sa.String(256), nullable=True),
        sa.Column("start", _instant, nullable=False),
        sa.Column("end", _instant, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("offered_slot", sa.String(64), nullable=True),
        sa.Column("offer_token", sa.String(64), nullable=True),
        sa.Column("offer_expires", _instant, nullable=True),
        sa.Column("offers", sa.Integer, nullable=False),
        sa.Column("created_at", _instant, nullable=False),
        sa.Column("updated_at", _instant, nullable=False),
    )
    op.create_index("ix_waitlist_status", "waitlist", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_waitlist_status", table_name="waitlist")
    op.drop_table("waitlist")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
