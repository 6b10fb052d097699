"""Turning ``resource`` rows into :class:`~medfusion.fhir.repository.StoredResource`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from medfusion.fhir.repository import StoredResource
from medfusion.store.tables import resource

__all__ = ["body_column", "resource_columns", "to_stored"]


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
    ]


def to_stored(row: Any) -> StoredResource:
    """Build a :class:`StoredResource` from a row selected with :func:`resource_columns`."""
    body = row.body
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode()
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
