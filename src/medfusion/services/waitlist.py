"""The waitlist: patients waiting for a practitioner or service; freed slots are offered in turn.

``POST /api/waitlist`` adds an entry (a patient, a practitioner or a service type, a date
range). :func:`process` (run after every cancellation and change of hours, and on every
tick of the reminder loop) walks the line in order:

- an ``offered`` entry whose slot was booked by its patient becomes ``booked``; one whose
  hold ran out unused becomes ``expired``, so the slot is free for the next in line;
- each ``waiting`` entry whose range has a free matching slot is offered the soonest: the
  slot is held for it (``$hold``, ``settings.waitlist_offer_minutes``) and the patient is
  sent the offer through the outbox. The held Appointment, token included, is readable at
  ``GET /api/waitlist/{id}``; booking it with ``$book`` takes the slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medfusion.config import get_settings
from medfusion.errors import ConflictError, InvalidRequestError, NotFoundError
from medfusion.fhir.repository import FhirRepository
from medfusion.fhir.resource import now_utc
from medfusion.fhir.search import parse_search
from medfusion.services import scheduling
from medfusion.services._slot_store import (
    HOLD_URL,
    SlotFilter,
    actor_reference,
    hold_of,
    instant,
    parse_instant,
    token_digest,
    without_hold,
)
from medfusion.services.notifications import email_of, enqueue_in
from medfusion.store import waitlist_sql
from medfusion.store.repository import SqlRepository
from medfusion.store.waitlist_sql import WaitlistRow

__all__ = ["ProcessReport", "cancel_entry", "get_entry", "list_entries", "process", "request"]

_STATUSES = ("waiting", "offered", "booked", "expired", "cancelled")


@dataclass(slots=True)
class ProcessReport:
    """What one :func:`process` pass changed (entry ids)."""

    offered: list[int] = field(default_factory=list)
    booked: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)


def _sql(repo: FhirRepository) -> SqlRepository:
    if not isinstance(repo, SqlRepository):
        raise InvalidRequestError("the waitlist needs the SQL store")
    return repo


def _held_appointment(repo: FhirRepository, row: WaitlistRow) -> dict[str, Any] | None:
    """The Appointment the patient books to take the offer (with the hold token)."""
    if row.status != "offered" or row.offered_slot is None:
        return None
    with repo.begin_read() as tx:
        slot = tx.read_current("Slot", row.offered_slot)
        if slot is None or slot.deleted:
            return None
        body = slot.json()
        schedule = tx.read_current("Schedule", body["schedule"]["reference"].split("/", 1)[1])
    actors = [] if schedule is None or schedule.deleted else schedule.json().get("actor", [])
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": "pending",
        "start": body["start"],
        "end": body["end"],
        "slot": [{"reference": f"Slot/{row.offered_slot}"}],
        "participant": [
            *({"actor": a, "required": "required", "status": "needs-action"} for a in actors),
            {"actor": {"reference": row.patient}, "required": "required", "status": "accepted"},
        ],
        "extension": [
            {"url": HOLD_URL, "valueString": row.offer_token},
            {"url": f"{HOLD_URL}-expires", "valueInstant": instant(row.offer_expires or now_utc())},
        ],
    }
    if "serviceType" in body:
        appointment["serviceType"] = body["serviceType"]
    return appointment


def _json(repo: FhirRepository, row: WaitlistRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "patient": row.patient,
        "practitioner": row.practitioner,
        "serviceType": row.service_type,
        "start": instant(row.start),
        "end": instant(row.end),
        "status": row.status,
        "offers": row.offers,
        "created": instant(row.created_at),
        "updated": instant(row.updated_at),
    }
    if row.status == "offered":
        out["offer"] = {
            "slot": f"Slot/{row.offered_slot}",
            "expires": instant(row.offer_expires or now_utc()),
            "appointment": _held_appointment(repo, row),
        }
    return out


def request(
    repo: FhirRepository,
    *,
    patient: str,
    start: datetime,
    end: datetime,
    practitioner: str | None = None,
    service_type: str | None = None,
) -> dict[str, Any]:
    """Put a patient on the waitlist for a practitioner or a service type in ``[start, end)``.

    The line is processed at once, so a slot that is free already is offered straight away.

    Raises
    ------
    InvalidRequestError
        No practitioner and no service type, a range that ends before it starts or lacks
        a time zone, or a patient reference that is not ``Patient/id``.
    NotFoundError
        The patient or practitioner does not exist.
    """
    sql = _sql(repo)
    patient_ref = actor_reference(patient, "Patient") if isinstance(patient, str) and patient else ""
    if not patient_ref or patient_ref.count("/") != 1:
        raise InvalidRequestError("patient must be a reference Patient/<id>", expression=["patient"])
    if not practitioner and not service_type:
        raise InvalidRequestError(
            "a waitlist request names a practitioner or a service-type", code="required",
            expression=["practitioner", "service-type"],
        )  # fmt: skip
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequestError("start and end must carry a time zone", expression=["start", "end"])
    if end <= start:
        raise InvalidRequestError("end must be after start", expression=["end"])
    practitioner_ref = actor_reference(practitioner, "Practitioner") if practitioner else None
    if service_type is not None:
        SlotFilter.of(service_type=service_type)
    with sql.begin() as tx:
        for ref in filter(None, (patient_ref, practitioner_ref)):
            kind, _, id = ref.partition("/")
            found = tx.read_current(kind, id)
            if found is None or found.deleted:
                raise NotFoundError(f"{ref} is not known")
        row = waitlist_sql.add_entry(
            tx.conn,
            patient=patient_ref,
            practitioner=practitioner_ref,
            service_type=service_type,
            start=start,
            end=end,
            now=now_utc(),
        )
    process(repo)
    return get_entry(repo, entry_id=row.id)


def get_entry(repo: FhirRepository, *, entry_id: int) -> dict[str, Any]:
    """One entry as JSON, with the offer (held Appointment and token) while one is open."""
    with _sql(repo).begin_read() as tx:
        row = waitlist_sql.get_entry(tx.conn, entry_id)
    if row is None:
        raise NotFoundError(f"waitlist entry {entry_id} is not known")
    return _json(repo, row)


def list_entries(
    repo: FhirRepository, *, status: str | None = None, patient: str | None = None
) -> list[dict[str, Any]]:
    """Entries in line order, optionally of one status or one patient."""
    if status is not None and status not in _STATUSES:
        raise InvalidRequestError(
            f"status must be one of {list(_STATUSES)}, got {status!r}", expression=["status"]
        )
    with _sql(repo).begin_read() as tx:
        rows = waitlist_sql.list_entries(
            tx.conn,
            statuses=(status,) if status else (),
            patient=actor_reference(patient, "Patient") if patient else None,
        )
    return [_json(repo, row) for row in rows]


def _release_offer(repo: SqlRepository, row: WaitlistRow) -> None:
    """Free the slot an open offer holds (only if the hold is still this offer's)."""
    if row.offered_slot is None or row.offer_token is None:
        return
    with repo.begin() as tx:
        found = tx.read_current("Slot", row.offered_slot)
        if found is None or found.deleted:
            return
        slot = found.json()
        hold = hold_of(slot)
        if (
            slot.get("status") == "busy-tentative"
            and hold is not None
            and hold[1] == token_digest(row.offer_token)
        ):
            tx.write(
                "Slot", found.id, {**without_hold(slot), "status": "free"}, expected_version=found.version
            )


def cancel_entry(repo: FhirRepository, *, entry_id: int) -> dict[str, Any]:
    """Take an entry off the waitlist; an open offer's slot is released for the next in line."""
    sql = _sql(repo)
    now = now_utc()
    with sql.begin() as tx:
        row = waitlist_sql.get_entry(tx.conn, entry_id)
        if row is None:
            raise NotFoundError(f"waitlist entry {entry_id} is not known")
        if row.status in ("booked", "expired", "cancelled"):
            if row.status == "cancelled":
                return _json(repo, row)
            raise ConflictError(f"a waitlist entry that is {row.status} cannot be cancelled")
        if not waitlist_sql.move_entry(tx.conn, entry_id, expected=row.status, now=now, status="cancelled"):
            raise ConflictError("the waitlist entry changed concurrently; try again")
    if row.status == "offered":
        _release_offer(sql, row)
        process(repo)
    return get_entry(repo, entry_id=entry_id)


def _booked_by(repo: FhirRepository, row: WaitlistRow) -> bool:
    params = [
        ("slot", f"Slot/{row.offered_slot}"),
        ("patient", row.patient),
        ("status", "booked,arrived,checked-in,fulfilled"),
        ("_summary", "count"),
    ]
    with repo.begin_read() as tx:
        query = parse_search("Appointment", params, strict=True, default_count=1, max_count=1)
        return tx.search(query).total > 0


def _settle_offer(repo: SqlRepository, row: WaitlistRow, now: datetime, report: ProcessReport) -> None:
    if _booked_by(repo, row):
        with repo.begin() as tx:
            if waitlist_sql.move_entry(tx.conn, row.id, expected="offered", now=now, status="booked"):
                report.booked.append(row.id)
        return
    if row.offer_expires is not None and row.offer_expires > now:
        return  # still open
    with repo.begin() as tx:
        if waitlist_sql.move_entry(tx.conn, row.id, expected="offered", now=now, status="expired"):
            report.expired.append(row.id)


def _offer(repo: SqlRepository, row: WaitlistRow, now: datetime, report: ProcessReport) -> None:
    if row.end <= now:
        with repo.begin() as tx:
            if waitlist_sql.move_entry(tx.conn, row.id, expected="waiting", now=now, status="expired"):
                report.expired.append(row.id)
        return
    found = scheduling.find(
        repo,
        start=max(row.start, now),
        end=row.end,
        practitioner=row.practitioner,
        service_type=row.service_type,
        count=5,
    )
    minutes = get_settings().waitlist_offer_minutes
    for entry in found["entry"]:
        proposal = entry["resource"]
        proposal["participant"].append({"actor": {"reference": row.patient}, "status": "accepted"})
        try:
            held = scheduling.hold(repo, appointment=proposal, minutes=minutes)
        except ConflictError:
            continue  # taken since the search: try the next
        token = next(e["valueString"] for e in held["extension"] if e["url"] == HOLD_URL)
        expires = parse_instant(
            next(e["valueInstant"] for e in held["extension"] if e["url"] == f"{HOLD_URL}-expires")
        )
        slot = proposal["slot"][0]["reference"].split("/", 1)[1]
        with repo.begin() as tx:
            moved = waitlist_sql.move_entry(
                tx.conn, row.id, expected="waiting", now=now, status="offered",
                offered_slot=slot, offer_token=token, offer_expires=expires, offers=row.offers + 1,
            )  # fmt: skip
            if moved:
                enqueue_in(
                    tx,
                    key=f"waitlist-offer|{row.id}|{slot}|{row.offers + 1}",  # no token: keys are listed
                    kind="waitlist-offer",
                    recipient=email_of(tx, row.patient),
                    subject="An appointment is free for you",
                    body=(
                        f"A slot from {proposal['start']} to {proposal['end']} is held for you until "
                        f"{instant(expires)}. Book it with waitlist entry {row.id} "
                        f"(GET /api/waitlist/{row.id} shows the appointment to book)."
                    ),
                    patient=row.patient,
                )
        if moved:
            report.offered.append(row.id)
        else:
            _release_offer(repo, WaitlistRow(**{**_fields(row), "offered_slot": slot, "offer_token": token}))
        return


def _fields(row: WaitlistRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in WaitlistRow.__dataclass_fields__}


def process(repo: FhirRepository, *, now: datetime | None = None) -> ProcessReport:
    """Settle open offers and offer free matching slots to waiting patients, in line order.

    Parameters
    ----------
    now
        The instant offers are judged at (default: the current one).
    """
    report = ProcessReport()
    if not isinstance(repo, SqlRepository):
        return report
    now = now or now_utc()
    with repo.begin_read() as tx:
        rows = waitlist_sql.list_entries(tx.conn, statuses=("offered",))
    for row in rows:
        _settle_offer(repo, row, now, report)
    with repo.begin_read() as tx:
        rows = waitlist_sql.list_entries(tx.conn, statuses=("waiting",))
    for row in rows:
        _offer(repo, row, now, report)
    return report
