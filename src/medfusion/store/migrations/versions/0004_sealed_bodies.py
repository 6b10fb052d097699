"""Encryption at rest: a ``sealed`` column for AES-256-GCM bodies.

A sealed version keeps ``body`` NULL and its ciphertext in ``sealed``; rows written
without encryption keep their plain ``body`` (JSONB on PostgreSQL) until
``medfusion keys rotate`` seals them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resource") as batch:
        batch.add_column(sa.Column("sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("resource") as batch:
        batch.drop_column("sealed")
