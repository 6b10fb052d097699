"""Sending through the outbox: enqueue with the change, deliver once, retry with back-off.

:func:`enqueue_in` adds a message inside the caller's transaction, so a booking and the
notice about it commit together (on the SQL store; the in-memory twin has no outbox).
:func:`deliver_due` hands due messages to a :class:`~medfusion.services.notifiers.Notifier`
one at a time (see :mod:`medfusion.store.outbox` for why that never sends twice), records
each sent patient message as a FHIR Communication in the same transaction that marks it
sent, retries failures after ``outbox_backoff_seconds * 2**(attempt - 1)`` and marks a
message ``failed`` after ``outbox_max_attempts`` tries or a permanent error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from medfusion.config import get_settings
from medfusion.errors import InvalidRequestError
from medfusion.fhir.repository import FhirRepository, FhirTransaction
from medfusion.fhir.resource import now_utc
from medfusion.services.notifiers import Message, Notifier, NotifierError
from medfusion.services.records import new_id
from medfusion.store import outbox
from medfusion.store.repository import SqlRepository, SqlTransaction

__all__ = [
    "DeliveryReport",
    "deliver_due",
    "email_of",
    "enqueue_in",
    "list_notifications",
]

_STATUSES = {"pending", "sending", "sent", "failed", "skipped"}
_PATIENT_KINDS = {"reminder", "waitlist-offer"}


@dataclass(slots=True)
class DeliveryReport:
    """What one :func:`deliver_due` pass did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: int = 0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON summary."""
        return {
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "skipped": self.skipped,
            "interrupted": self.interrupted,
        }


def enqueue_in(
    tx: FhirTransaction,
    *,
    key: str,
    kind: str,
    recipient: str,
    subject: str,
    body: str,
    appointment_id: str | None = None,
    patient: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Add a message to the outbox inside ``tx`` (ignored when ``key`` is already there).

    It is due from ``now`` (default: the current instant). Returns False on the in-memory
    store, which keeps no outbox.
    """
    if not isinstance(tx, SqlTransaction):
        return False
    return outbox.enqueue(
        tx.conn,
        key=key,
        kind=kind,
        recipient=recipient,
        subject=subject,
        body=body,
        now=now or now_utc(),
        appointment_id=appointment_id,
        patient=patient,
        protection=tx.protection,
    )


def email_of(tx: FhirTransaction, reference: str) -> str:
    """The first email address of a Patient/Practitioner, else the reference itself.

    A reference is not an address: the SMTP notifier then fails the message permanently
    (listed as failed) instead of it being dropped.
    """
    kind, _, id = reference.partition("/")
    found = tx.read_current(kind, id) if kind and id else None
    if found is None or found.deleted:
        return reference
    for telecom in found.json().get("telecom", []):
        if telecom.get("system") == "email" and telecom.get("value"):
            return str(telecom["value"])
    return reference


def _still_due(tx: FhirTransaction, row: outbox.OutboxRow) -> str | None:
    """Why a reminder no longer applies (cancelled, moved), or None when it does."""
    if row.kind != "reminder" or row.appointment_id is None:
        return None
    found = tx.read_current("Appointment", row.appointment_id)
    if found is None or found.deleted:
        return "the appointment no longer exists"
    body = found.json()
    if body.get("status") != "booked":
        return f"the appointment is {body.get('status')}"
    if f"|{body.get('start')}|" not in row.dedupe_key:
        return "the appointment was moved"
    return None


def _communication(row: outbox.OutboxRow, at: datetime) -> dict[str, Any]:
    communication: dict[str, Any] = {
        "resourceType": "Communication",
        "status": "completed",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/communication-category",
                                  "code": "reminder" if row.kind == "reminder" else "notification"}]}],
        "sent": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "payload": [{"contentString": f"{row.subject}\n\n{row.body}"}],
        "identifier": [{"system": "https://medfusion.dev/fhir/outbox", "value": str(row.id)}],
    }  # fmt: skip
    if row.patient:
        communication["subject"] = {"reference": row.patient}
        communication["recipient"] = [{"reference": row.patient}]
    if row.appointment_id:
        communication["about"] = [{"reference": f"Appointment/{row.appointment_id}"}]
    return communication


def deliver_due(
    repo: SqlRepository,
    notifier: Notifier,
    *,
    now: datetime | None = None,
    limit: int = 1000,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send due outbox messages one at a time, until none is due, ``limit`` or ``stop``.

    Parameters
    ----------
    repo
        The SQL store holding the outbox.
    notifier
        Where messages go.
    now
        The instant deciding what is due (default: the current one, re-read per message).
    limit
        At most this many messages in this pass.
    stop
        Checked between messages: a loop that is told to stop finishes the message in hand.
    """
    settings = get_settings()
    lease = timedelta(seconds=settings.outbox_lease_seconds)
    report = DeliveryReport()
    with repo.begin() as tx:
        report.interrupted = outbox.recover_interrupted(tx.conn, now or now_utc())
    while report.sent + report.retried + report.failed + report.skipped < limit:
        if stop is not None and stop.is_set():
            break
        at = now or now_utc()
        with repo.begin() as tx:
            row = outbox.claim_next(tx.conn, at, lease, tx.protection)
            reason = None if row is None else _still_due(tx, row)
            if row is not None and reason is not None:
                outbox.mark_skipped(tx.conn, row.id, reason=reason)
                report.skipped += 1
                continue
        if row is None:
            break
        try:
            notifier.send(Message(row.recipient, row.subject, row.body))
        except NotifierError as error:
            with repo.begin() as tx:
                if error.permanent or row.attempts >= settings.outbox_max_attempts:
                    outbox.mark_failed(tx.conn, row.id, error=str(error))
                    report.failed += 1
                else:
                    wait = settings.outbox_backoff_seconds * 2 ** (row.attempts - 1)
                    outbox.retry_later(tx.conn, row.id, error=str(error), at=at + timedelta(seconds=wait))
                    report.retried += 1
            report.errors.append(str(error))
            continue
        with repo.begin() as tx:
            communication_id = None
            if row.kind in _PATIENT_KINDS:
                communication_id = new_id()
                tx.write("Communication", communication_id, _communication(row, at), expected_version=0)
            outbox.mark_sent(tx.conn, row.id, at=at, communication_id=communication_id)
        report.sent += 1
    return report


def list_notifications(
    repo: FhirRepository, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Outbox messages, newest first (``status="failed"``: the ones that need a person)."""
    if status is not None and status not in _STATUSES:
        raise InvalidRequestError(
            f"status must be one of {sorted(_STATUSES)}, got {status!r}", expression=["status"]
        )
    if not 1 <= limit <= 1000:
        raise InvalidRequestError(f"limit must be from 1 to 1000, got {limit}", expression=["limit"])
    if not isinstance(repo, SqlRepository):
        return []
    with repo.begin_read() as tx:
        rows = outbox.list_rows(tx.conn, status=status, limit=limit, protection=tx.protection)
        return [row.to_json() for row in rows]
