"""The notification outbox on SQL: enqueue once, claim one row at a time, finish or fail.

A row is written in the same transaction as the change it announces (or by the reminder
planner, keyed so a second plan of the same reminder is ignored). Senders claim a row by
moving it ``pending -> sending`` with a conditional ``UPDATE``: of two loops only one
sees its update take effect, so a message is handed to the notifier once. A row left in
``sending`` past its lease belonged to a sender that stopped mid-send; whether the
message left is unknown, so it is marked ``failed`` for a person to look at rather than
sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from medfusion.store.protection import Protection
from medfusion.store.tables import outbox

_PLAIN = Protection(None)

__all__ = [
    "OutboxRow",
    "claim_next",
    "enqueue",
    "list_rows",
    "mark_failed",
    "mark_sent",
    "mark_skipped",
    "recover_interrupted",
    "retry_later",
]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One message of the outbox."""

    id: int
    dedupe_key: str
    kind: str
    recipient: str
    subject: str
    body: str
    appointment_id: str | None
    patient: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    communication_id: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON view for the API and CLI."""

        def at(value: datetime | None) -> str | None:
            return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")

        return {
            "id": self.id,
            "key": self.dedupe_key,
            "kind": self.kind,
            "recipient": self.recipient,
            "subject": self.subject,
            "appointment": f"Appointment/{self.appointment_id}" if self.appointment_id else None,
            "status": self.status,
            "attempts": self.attempts,
            "nextAttemptAt": at(self.next_attempt_at),
            "lastError": self.last_error,
            "createdAt": at(self.created_at),
            "sentAt": at(self.sent_at),
            "communication": f"Communication/{self.communication_id}" if self.communication_id else None,
        }


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_SEALED = ("recipient", "subject", "body")  # contact details and message text are PHI


def _row(row: Any, protection: Protection) -> OutboxRow:
    values = dict(row._mapping)
    values.pop("claimed_until", None)
    for key in _SEALED:
        values[key] = protection.open_text(f"outbox/{values['dedupe_key']}/{key}", values[key])
    for key in ("next_attempt_at", "created_at", "sent_at"):
        values[key] = _utc(values[key])
    return OutboxRow(**values)


def enqueue(
    conn: sa.Connection,
    *,
    key: str,
    kind: str,
    recipient: str,
    subject: str,
    body: str,
    now: datetime,
    appointment_id: str | None = None,
    patient: str | None = None,
    protection: Protection | None = None,
) -> bool:
    """Add a message unless one with ``key`` exists; True when it was added.

    With ``protection`` on, recipient, subject and body are stored sealed.
    """
    seal = (protection or _PLAIN).seal_text
    values = {
        "dedupe_key": key,
        "kind": kind,
        "recipient": seal(f"outbox/{key}/recipient", recipient),
        "subject": seal(f"outbox/{key}/subject", subject),
        "body": seal(f"outbox/{key}/body", body),
        "appointment_id": appointment_id,
        "patient": patient,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(outbox)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(outbox.c.id)  # a row back only when it was inserted (rowcount varies by driver)
    )
    return conn.execute(statement).first() is not None


def recover_interrupted(conn: sa.Connection, now: datetime) -> int:
    """Mark ``failed`` the rows whose sender stopped mid-send (lease over); how many."""
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.status == "sending", outbox.c.claimed_until < now)
        .values(
            status="failed",
            claimed_until=None,
            last_error="the sender stopped while sending; not retried so it is never sent twice",
        )
    )
    return result.rowcount


def claim_next(
    conn: sa.Connection, now: datetime, lease: timedelta, protection: Protection | None = None
) -> OutboxRow | None:
    """Move the oldest due ``pending`` row to ``sending`` and return it; None when none is due."""
    for _ in range(10):  # another sender may claim the row between the read and the update
        candidate = conn.execute(
            sa.select(outbox.c.id)
            .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(1)
        ).scalar()
        if candidate is None:
            return None
        claimed = conn.execute(
            sa.update(outbox)
            .where(outbox.c.id == candidate, outbox.c.status == "pending")
            .values(status="sending", claimed_until=now + lease, attempts=outbox.c.attempts + 1)
        )
        if claimed.rowcount == 1:
            row = conn.execute(sa.select(outbox).where(outbox.c.id == candidate)).one()
            return _row(row, protection or _PLAIN)
    return None


def _finish(conn: sa.Connection, id: int, **values: Any) -> None:
    conn.execute(
        sa.update(outbox)
        .where(outbox.c.id == id, outbox.c.status == "sending")
        .values(claimed_until=None, **values)
    )


def mark_sent(conn: sa.Connection, id: int, *, at: datetime, communication_id: str | None) -> None:
    """The message left: ``sent``, with the Communication that records it."""
    _finish(conn, id, status="sent", sent_at=at, communication_id=communication_id, last_error=None)


def mark_skipped(conn: sa.Connection, id: int, *, reason: str) -> None:
    """Not sent because it no longer applies (the appointment was cancelled or moved)."""
    _finish(conn, id, status="skipped", last_error=reason)


def mark_failed(conn: sa.Connection, id: int, *, error: str) -> None:
    """Given up: ``failed`` with the last error, listed for a person to act on."""
    _finish(conn, id, status="failed", last_error=error)


def retry_later(conn: sa.Connection, id: int, *, error: str, at: datetime) -> None:
    """Back to ``pending``, due again at ``at``."""
    _finish(conn, id, status="pending", last_error=error, next_attempt_at=at)


def list_rows(
    conn: sa.Connection, *, status: str | None = None, limit: int = 100, protection: Protection | None = None
) -> list[OutboxRow]:
    """Outbox rows, newest first, optionally of one status."""
    statement = sa.select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if status is not None:
        statement = statement.where(outbox.c.status == status)
    return [_row(row, protection or _PLAIN) for row in conn.execute(statement)]
