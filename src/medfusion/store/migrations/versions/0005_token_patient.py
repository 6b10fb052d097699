"""Patient compartment on token index rows, for patient-scoped code searches.

``idx_token.patient`` holds the Patient a resource references through its ``patient``
search parameter (one row per patient; NULL when none), and the lookup index gains it
after ``system``. Existing rows are filled from ``idx_reference``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PATIENT_REFS = (
    "FROM idx_reference r WHERE r.rid = {t}.rid AND r.param = 'patient'"
    " AND (r.target_type IS NULL OR r.target_type = 'Patient')"
)


def upgrade() -> None:
    op.drop_index("ix_idx_token_lookup", table_name="idx_token")
    with op.batch_alter_table("idx_token") as batch:
        batch.add_column(sa.Column("patient", sa.String(256), nullable=True))
    op.execute(
        f"UPDATE idx_token SET patient = (SELECT MIN(r.target_id) {_PATIENT_REFS.format(t='idx_token')})"
    )
    # A resource that references several patients gets a row per patient.
    op.execute(
        "INSERT INTO idx_token (rid, res_type, param, system, code, patient)"
        " SELECT t.rid, t.res_type, t.param, t.system, t.code, r.target_id"
        " FROM idx_token t JOIN idx_reference r ON r.rid = t.rid AND r.param = 'patient'"
        " AND (r.target_type IS NULL OR r.target_type = 'Patient') WHERE r.target_id <> t.patient"
    )
    op.create_index(
        "ix_idx_token_lookup", "idx_token", ["res_type", "param", "code", "system", "patient", "rid"]
    )


def downgrade() -> None:
    # Rows duplicated per patient stay: harmless for semi-join searches.
    op.drop_index("ix_idx_token_lookup", table_name="idx_token")
    with op.batch_alter_table("idx_token") as batch:
        batch.drop_column("patient")
    op.create_index("ix_idx_token_lookup", "idx_token", ["res_type", "param", "code", "system", "rid"])
