"""Turning ``resource`` rows into :class:`~medfusion.fhir.repository.StoredResource`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from medfusion.fhir.repository import StoredResource
from medfusion.fhir.search import IndexEntries
from medfusion.store.protection import Protection
from medfusion.store.tables import resource

__all__ = ["body_column", "resource_columns", "stored_body", "to_stored", "token_rows"]


def body_column(dialect_name: str) -> sa.ColumnElement[Any]:
    """The body as raw JSON text/bytes: PostgreSQL casts JSONB to text, so no parsing."""
    if dialect_name == "postgresql":
        return sa.cast(resource.c.body, sa.Text).label("body")
    return resource.c.body.label("body")


def resource_columns(dialect_name: str) -> list[sa.ColumnElement[Any]]:
    """Columns to select so that :func:`to_stored` can build a record."""
    return [
        resource.c.res_type,
        resource.c.res_id,
        resource.c.version,
        resource.c.last_updated,
        resource.c.deleted,
        body_column(dialect_name),
        resource.c.sealed,
    ]


def stored_body(
    protection: Protection, resource_type: str, id: str, version: int, body: Any, sealed: Any
) -> bytes:
    """The JSON bytes of a row: the opened ``sealed`` column, else the plain ``body``."""
    if sealed is not None:
        return protection.open(resource_type, id, version, bytes(sealed))
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else bytes(body)


def to_stored(row: Any, protection: Protection) -> StoredResource:
    """Build a :class:`StoredResource` from a row selected with :func:`resource_columns`."""
    body = stored_body(protection, row.res_type, row.res_id, row.version, row.body, row.sealed)
    updated: datetime = row.last_updated
    if updated.tzinfo is None:  # SQLite drops the zone; everything is stored in UTC
        updated = updated.replace(tzinfo=UTC)
    return StoredResource(
        resource_type=row.res_type,
        id=row.res_id,
        version=row.version,
        last_updated=updated,
        deleted=bool(row.deleted),
        body=bytes(body),
    )


def token_rows(entries: IndexEntries) -> list[tuple[str, str | None, str | None, str | None]]:
    """``idx_token`` rows ``(param, system, code, patient)`` of one resource.

    ``patient`` is each Patient the resource references through its ``patient`` search
    parameter (a row per token and patient), or None. Complete by construction, so a
    search may narrow ``patient=X&code=Y`` to the rows whose ``patient`` is X.
    """
    found = {
        target_id
        for param, target_type, target_id in entries.references
        if param == "patient" and target_type in (None, "Patient")
    }
    patients: list[str | None] = [*sorted(found)] or [None]
    return [(param, system, code, patient) for param, system, code in entries.tokens for patient in patients]
