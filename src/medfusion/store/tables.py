"""Table definitions of the record store.

``resource`` keeps every version of every resource; exactly one row per resource has
``current`` set. The ``idx_*`` tables hold search index rows for current, live versions
only: they are rewritten in the same transaction as the version they describe, so a
rolled-back write leaves no index trace. Dates in ``idx_date`` are epoch seconds (UTC),
``low`` and ``high`` being the inclusive bounds of the value's implicit range.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "INDEX_TABLES",
    "audit_log",
    "auth_client",
    "auth_refresh",
    "auth_revoked",
    "auth_user",
    "idx_date",
    "idx_quantity",
    "idx_reference",
    "idx_string",
    "idx_token",
    "metadata",
    "outbox",
    "resource",
    "waitlist",
]

metadata = sa.MetaData()

# Bytes on SQLite; JSONB on PostgreSQL so the documents can be queried in place.
JsonBody = sa.LargeBinary().with_variant(postgresql.JSONB(), "postgresql")
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

resource = sa.Table(
    "resource",
    metadata,
    sa.Column("rid", RowId, primary_key=True, autoincrement=True),
    sa.Column("res_type", sa.String(64), nullable=False),
    sa.Column("res_id", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("current", sa.Boolean, nullable=False, default=True),
    sa.Column("body", JsonBody, nullable=True),
    # AES-256-GCM ciphertext of the body when encryption at rest is on (``body`` is NULL).
    sa.Column("sealed", sa.LargeBinary, nullable=True),
    sa.UniqueConstraint("res_type", "res_id", "version", name="uq_resource_version"),
    sa.Index(
        "ix_resource_current",
        "res_type",
        "res_id",
        unique=True,
        sqlite_where=sa.text("current"),
        postgresql_where=sa.text("current"),
    ),
    sa.Index("ix_resource_type_updated", "res_type", "last_updated"),
    sa.Index("ix_resource_updated", "last_updated"),
)


def _index_table(name: str, *columns: sa.Column[object], lookup: tuple[str, ...]) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("rid", RowId, sa.ForeignKey("resource.rid"), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        *columns,
        sa.Index(f"ix_{name}_rid", "rid"),
        sa.Index(f"ix_{name}_lookup", "res_type", "param", *lookup, "rid"),
    )


idx_string = _index_table(
    "idx_string",
    sa.Column("value", sa.String(256), nullable=False),  # lower-cased, accents removed
    sa.Column("exact", sa.String(256), nullable=False),
    lookup=("value",),
)
idx_token = _index_table(
    "idx_token",
    sa.Column("system", sa.String(256), nullable=True),
    sa.Column("code", sa.String(256), nullable=True),
    # The patient compartment the resource belongs to (one row per patient it references
    # through its ``patient`` parameter; NULL when none): ``patient=X&code=Y`` becomes one
    # range of the lookup index instead of a probe per resource of the patient.
    sa.Column("patient", sa.String(256), nullable=True),
    lookup=("code", "system", "patient"),
)
idx_date = _index_table(
    "idx_date",
    sa.Column("low", sa.Float, nullable=False),
    sa.Column("high", sa.Float, nullable=False),
    lookup=("low", "high"),
)
idx_quantity = _index_table(
    "idx_quantity",
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("system", sa.String(256), nullable=True),
    sa.Column("code", sa.String(256), nullable=True),
    lookup=("value",),
)
idx_reference = _index_table(
    "idx_reference",
    sa.Column("target_type", sa.String(64), nullable=True),
    sa.Column("target_id", sa.String(256), nullable=False),
    lookup=("target_id", "target_type"),
)
sa.Index("ix_idx_reference_target", idx_reference.c.target_id, idx_reference.c.target_type)
# PostgreSQL needs text_pattern_ops for ``LIKE 'abc%'`` to use an index under a non-C
# collation; SQLite's lookup index already serves prefix ranges.
sa.Index(
    "ix_idx_string_prefix",
    idx_string.c.res_type,
    idx_string.c.param,
    idx_string.c.value,
    postgresql_ops={"value": "text_pattern_ops"},
).ddl_if(dialect="postgresql")

INDEX_TABLES: dict[str, sa.Table] = {
    "string": idx_string,
    "token": idx_token,
    "date": idx_date,
    "quantity": idx_quantity,
    "reference": idx_reference,
}

# -- scheduling: notifications waiting to be sent, and the waitlist -------------------
Instant = sa.DateTime(timezone=True)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", RowId, primary_key=True, autoincrement=True),
    # What the message is about, once: a second enqueue of the same key is ignored.
    sa.Column("dedupe_key", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("recipient", sa.String(256), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("appointment_id", sa.String(64), nullable=True),
    sa.Column("patient", sa.String(128), nullable=True),
    # pending -> sending -> sent | failed (| skipped when the appointment changed)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", Instant, nullable=False),
    sa.Column("claimed_until", Instant, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", Instant, nullable=False),
    sa.Column("sent_at", Instant, nullable=True),
    sa.Column("communication_id", sa.String(64), nullable=True),
    sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
)

waitlist = sa.Table(
    "waitlist",
    metadata,
    sa.Column("id", RowId, primary_key=True, autoincrement=True),  # also the place in line
    sa.Column("patient", sa.String(128), nullable=False),
    sa.Column("practitioner", sa.String(128), nullable=True),
    sa.Column("service_type", sa.String(256), nullable=True),
    sa.Column("start", Instant, nullable=False),
    sa.Column("end", Instant, nullable=False),
    # waiting -> offered -> booked | waiting (offer lapsed, next in line) ; cancelled
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("offered_slot", sa.String(64), nullable=True),
    sa.Column("offer_token", sa.String(64), nullable=True),
    sa.Column("offer_expires", Instant, nullable=True),
    sa.Column("offers", sa.Integer, nullable=False),
    sa.Column("created_at", Instant, nullable=False),
    sa.Column("updated_at", Instant, nullable=False),
    sa.Index("ix_waitlist_status", "status", "id"),
)

# -- security (migration 0003) ---------------------------------------------------------
# Users and backend clients; passwords and client secrets only as argon2 hashes.
auth_user = sa.Table(
    "auth_user",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("patient_id", sa.String(64), nullable=True),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)
auth_client = sa.Table(
    "auth_client",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("secret_hash", sa.String(256), nullable=False),
    sa.Column("scope", sa.String(2048), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)
# Refresh tokens by SHA-256 of their value; a used one is marked, and presenting a used one
# again revokes its whole family (rotation with reuse detection).
auth_refresh = sa.Table(
    "auth_refresh",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("family", sa.String(64), nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(2048), nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("used", sa.Boolean, nullable=False),
    sa.Index("ix_auth_refresh_family", "family"),
)
# Revoked access tokens by ``jti`` until they would have expired anyway.
auth_revoked = sa.Table(
    "auth_revoked",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("expires", sa.Float, nullable=False),
)
# The audit trail: one AuditEvent per row, chained by a keyed hash over the previous
# row's hash and this row's content. ``seq`` is assigned by the writer under a lock, so
# gaps mean deleted rows.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
    sa.Column("action", sa.String(1), nullable=False),
    sa.Column("outcome", sa.String(2), nullable=False),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("entity", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_log_event", "event_id", unique=True),
    sa.Index("ix_audit_log_recorded", "recorded"),
)
