"""Initial schema: versioned resources and typed search index tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_body = sa.LargeBinary().with_variant(postgresql.JSONB(), "postgresql")
_rid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _index_table(name: str, columns: list[sa.Column[object]], lookup: list[str]) -> None:
    op.create_table(
        name,
        sa.Column("rid", _rid, sa.ForeignKey("resource.rid"), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        *columns,
    )
    op.create_index(f"ix_{name}_rid", name, ["rid"])
    op.create_index(f"ix_{name}_lookup", name, ["res_type", "param", *lookup, "rid"])


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("rid", _rid, primary_key=True, autoincrement=True),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("current", sa.Boolean, nullable=False),
        sa.Column("body", _body, nullable=True),
        sa.UniqueConstraint("res_type", "res_id", "version", name="uq_resource_version"),
    )
    op.create_index(
        "ix_resource_current",
        "resource",
        ["res_type", "res_id"],
        unique=True,
        sqlite_where=sa.text("current"),
        postgresql_where=sa.text("current"),
    )
    op.create_index("ix_resource_type_updated", "resource", ["res_type", "last_updated"])
    op.create_index("ix_resource_updated", "resource", ["last_updated"])
    _index_table(
        "idx_string",
        [
            sa.Column("value", sa.String(256), nullable=False),
            sa.Column("exact", sa.String(256), nullable=False),
        ],
        ["value"],
    )
    _index_table(
        "idx_token",
        [
            sa.Column("system", sa.String(256), nullable=True),
            sa.Column("code", sa.String(256), nullable=True),
        ],
        ["code", "system"],
    )
    _index_table(
        "idx_date",
        [sa.Column("low", sa.Float, nullable=False), sa.Column("high", sa.Float, nullable=False)],
        ["low", "high"],
    )
    _index_table(
        "idx_quantity",
        [
            sa.Column("value", sa.Float, nullable=False),
            sa.Column("system", sa.String(256), nullable=True),
            sa.Column("code", sa.String(256), nullable=True),
        ],
        ["value"],
    )
    _index_table(
        "idx_reference",
        [
            sa.Column("target_type", sa.String(64), nullable=True),
            sa.Column("target_id", sa.String(256), nullable=False),
        ],
        ["target_id", "target_type"],
    )
    op.create_index("ix_idx_reference_target", "idx_reference", ["target_id", "target_type"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_idx_string_prefix",
            "idx_string",
            ["res_type", "param", "value"],
            postgresql_ops={"value": "text_pattern_ops"},
        )


def downgrade() -> None:
    for name in (
        "idx_reference",
        "idx_quantity",
        "idx_date",
        "idx_token",
        "idx_string",
        "resource",
    ):
        op.drop_table(name)
