"""The waitlist table: entries in order of arrival, moved between states with a guard.

Every state change is an ``UPDATE ... WHERE status = <expected>``, so two processes that
both try to offer (or expire) the same entry cannot both succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from medfusion.store.tables import waitlist

__all__ = ["WaitlistRow", "add_entry", "get_entry", "list_entries", "move_entry"]


@dataclass(frozen=True, slots=True)
class WaitlistRow:
    """One waitlist entry (``id`` is also its place in line)."""

    id: int
    patient: str
    practitioner: str | None
    service_type: str | None
    start: datetime
    end: datetime
    status: str
    offered_slot: str | None
    offer_token: str | None
    offer_expires: datetime | None
    offers: int
    created_at: datetime
    updated_at: datetime


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _row(row: Any) -> WaitlistRow:
    values = dict(row._mapping)
    for key in ("start", "end", "offer_expires", "created_at", "updated_at"):
        values[key] = _utc(values[key])
    return WaitlistRow(**values)


def add_entry(
    conn: sa.Connection,
    *,
    patient: str,
    practitioner: str | None,
    service_type: str | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> WaitlistRow:
    """Append a ``waiting`` entry at the end of the line."""
    result = conn.execute(
        sa.insert(waitlist).values(
            patient=patient,
            practitioner=practitioner,
            service_type=service_type,
            start=start.astimezone(UTC),
            end=end.astimezone(UTC),
            status="waiting",
            offers=0,
            created_at=now,
            updated_at=now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    found = get_entry(conn, int(key[0]))
    assert found is not None
    return found


def get_entry(conn: sa.Connection, id: int) -> WaitlistRow | None:
    """One entry, or None."""
    row = conn.execute(sa.select(waitlist).where(waitlist.c.id == id)).first()
    return None if row is None else _row(row)


def list_entries(
    conn: sa.Connection, *, statuses: tuple[str, ...] = (), patient: str | None = None
) -> list[WaitlistRow]:
    """Entries in line order, optionally of some statuses or one patient."""
    statement = sa.select(waitlist).order_by(waitlist.c.id)
    if statuses:
        statement = statement.where(waitlist.c.status.in_(statuses))
    if patient is not None:
        statement = statement.where(waitlist.c.patient == patient)
    return [_row(row) for row in conn.execute(statement)]


def move_entry(conn: sa.Connection, id: int, *, expected: str, now: datetime, **values: Any) -> bool:
    """Set ``values`` on an entry that is still ``expected``; False when it no longer is."""
    result = conn.execute(
        sa.update(waitlist)
        .where(waitlist.c.id == id, waitlist.c.status == expected)
        .values(updated_at=now, **values)
    )
    return result.rowcount == 1
