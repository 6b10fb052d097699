"""Turning ``resource`` rows into :class:`~medfusion.fhir.repository.StoredResource`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from medfusion.fhir.repository import StoredResource
from medfusion.fhir.search import IndexEntries
from medfusion.store.protection import Protection
from medfusion.store.tables import resource

__all__ = [
    "body_column",
    "parse_updated",
    "resource_columns",
    "stored_body",
    "to_stored",
    "token_rows",
]


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


def parse_updated(value: datetime | str) -> datetime:
    """``last_updated`` as an aware UTC datetime from a driver row (SQLite keeps text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def to_stored(row: Sequence[Any], protection: Protection) -> StoredResource:
    """A :class:`StoredResource` from a row of :func:`resource_columns` (a SQLAlchemy row,
    or a DBAPI tuple in the same order: res_type, res_id, version, last_updated, deleted,
    body, sealed)."""
    body = stored_body(protection, row[0], row[1], row[2], row[5], row[6])
    return StoredResource(row[0], row[1], row[2], parse_updated(row[3]), bool(row[4]), body)


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
