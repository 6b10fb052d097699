"""Appointments: availability, ``$find``, ``$hold``, ``$book``, ``$reschedule`` and cancellation.

Availability rules are stored on the Schedule itself, as the JSON text of the extension
:data:`RULES_URL`, so they version with it and travel with exports. Setting them
regenerates the Schedule's free Slots for the horizon (ids ``<schedule>-<UTC start>``)
and never touches a Slot that is not ``free``; a new slot that would overlap one is left
out, so a booked visit keeps its time when the slot length changes.

No double booking: ``book`` reads each Slot, checks it is free and writes it ``busy``
with ``expected_version`` set to the version it read, in the same transaction as the
Appointment. SQLite serialises writers (``BEGIN IMMEDIATE``), so a later booker reads the
Slot busy; on PostgreSQL the versioned write's ``UPDATE ... WHERE current`` re-checks the
row under its lock, so the loser of a race gets ``PreconditionFailedError``. Both become
:class:`~medfusion.errors.ConflictError` (409).

A hold (``$hold``) marks Slots ``busy-tentative`` with an expiry and the SHA-256 of a
token that only the holder gets; until the expiry only an Appointment carrying the token
books them, after it they count as free everywhere. Booking also enforces
``settings.max_future_appointments`` per patient (422).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from medfusion.config import get_settings
from medfusion.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PreconditionFailedError,
)
from medfusion.fhir.repository import FhirRepository, FhirTransaction, StoredResource, WriteRequest
from medfusion.fhir.resource import now_utc
from medfusion.fhir.search import parse_search
from medfusion.scheduling import AvailabilityRules, generate_slots, parse_rules
from medfusion.services._holds import hold
from medfusion.services._reschedule import reschedule
from medfusion.services._slot_store import (
    HOLD_URL,
    RULES_URL,
    SlotFilter,
    actor_reference,
    available,
    check_acting_patient,
    check_patient_limit,
    has_booking,
    hold_token,
    ids_of,
    instant,
    occupied,
    overlaps,
    parse_instant,
    patients_of,
    proposals_bundle,
    release,
    rules_of,
    slot_body,
    slot_id,
    slot_ids,
    slots_of,
    taken_body,
    taken_intervals,
    token,
    without_hold,
)
from medfusion.services.notifications import enqueue_in
from medfusion.services.parsing import parse_resource
from medfusion.services.records import new_id
from medfusion.store.repository import SqlTransaction
from medfusion.store.slot_sql import current_many, slots_by_start

__all__ = [
    "HOLD_URL",
    "RULES_URL",
    "AvailabilityReport",
    "availability",
    "book",
    "cancel",
    "find",
    "hold",
    "reschedule",
    "rules_of",
    "set_availability",
    "slot_id",
]

_BOOKABLE = {None, "proposed", "pending", "booked"}
_FINAL = {"arrived", "checked-in", "fulfilled", "noshow", "entered-in-error"}


@dataclass(frozen=True, slots=True)
class AvailabilityReport:
    """What ``set_availability`` changed among the Schedule's slots from now on."""

    schedule: str
    created: int
    unchanged: int
    removed: int
    kept: int
    horizon_start: datetime
    horizon_end: datetime

    def to_json(self) -> dict[str, Any]:
        """A JSON summary for the API and CLI."""
        return {
            "schedule": self.schedule,
            "created": self.created,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "keptNotFree": self.kept,
            "horizon": {"start": instant(self.horizon_start), "end": instant(self.horizon_end)},
        }


def set_availability(
    repo: FhirRepository, *, schedule_id: str, rules: Any, now: datetime | None = None
) -> AvailabilityReport:
    """Store a Schedule's availability rules and regenerate its free Slots.

    Parameters
    ----------
    repo
        The record store.
    schedule_id
        Id of an existing Schedule.
    rules
        Rules as JSON (see :mod:`medfusion.scheduling`) or :class:`AvailabilityRules`.
    now
        Start of the horizon (default: the current instant).

    Raises
    ------
    InvalidRequestError
        The rules are invalid (the message names the element).
    NotFoundError
        The Schedule does not exist.
    ConflictError
        A booking changed one of its slots at the same moment (try again).
    """
    parsed = rules if isinstance(rules, AvailabilityRules) else parse_rules(rules)
    start = now or now_utc()
    end = start + timedelta(days=parsed.horizon_days)
    try:
        with repo.begin() as tx:
            return _regenerate(tx, schedule_id, parsed, start, end)
    except PreconditionFailedError:
        raise ConflictError("a slot of the schedule changed concurrently; try again") from None


def _regenerate(
    tx: FhirTransaction, schedule_id: str, parsed: AvailabilityRules, start: datetime, end: datetime
) -> AvailabilityReport:
    """Inside ``tx``: store the rules on the Schedule and bring its future Slots in line."""
    wanted = generate_slots(parsed, start=start, end=end)
    schedule = tx.read("Schedule", schedule_id)
    body = schedule.json()
    extensions = [e for e in body.get("extension", []) if e.get("url") != RULES_URL]
    text = orjson.dumps(parsed.to_json()).decode()
    body["extension"] = [*extensions, {"url": RULES_URL, "valueString": text}]
    body["planningHorizon"] = {"start": instant(start), "end": instant(end)}
    if parsed.service_types:
        body["serviceType"] = [token(t) for t in parsed.service_types]
    tx.write(
        "Schedule",
        schedule_id,
        parse_resource(body, expected_type="Schedule"),
        expected_version=schedule.version,
    )
    existing = {s.id: (s, s.json()) for s in slots_of(tx, schedule_id, start)}
    # Expired holds count as free: they are rewritten or removed like free slots.
    taken = taken_intervals([b for _, b in existing.values()], now_utc())
    requests: list[WriteRequest] = []
    for slot in wanted:
        if overlaps(slot, taken):
            continue
        body = slot_body(schedule_id, parsed, slot)
        found = existing.get(body["id"])
        # The version read is the precondition: a booking that commits first makes this
        # write fail instead of turning a busy slot free again.
        requests.append(WriteRequest("Slot", body["id"], body, 0 if found is None else found[0].version))
    written = tx.write_many(requests, skip_unchanged=True) if requests else []
    keep = {r.id for r in requests}
    removed = 0
    for id, (_, found_body) in existing.items():
        if id not in keep and not occupied(found_body, now_utc()):
            tx.delete("Slot", id)
            removed += 1
    unchanged = sum(1 for w, r in zip(written, requests, strict=True) if w.version == r.expected_version)
    return AvailabilityReport(
        schedule=f"Schedule/{schedule_id}",
        created=sum(1 for r in requests if r.expected_version == 0),
        unchanged=unchanged,
        removed=removed,
        kept=len(taken),
        horizon_start=start,
        horizon_end=end,
    )


def availability(repo: FhirRepository, *, schedule_id: str) -> dict[str, Any]:
    """The availability rules stored on a Schedule, as JSON; ``NotFoundError`` when it has none."""
    with repo.begin_read() as tx:
        rules = rules_of(tx.read("Schedule", schedule_id).json())
    if rules is None:
        raise NotFoundError(f"Schedule/{schedule_id} has no availability rules")
    return rules.to_json()


def find(
    repo: FhirRepository,
    *,
    start: datetime,
    end: datetime,
    practitioner: str | None = None,
    location: str | None = None,
    service_type: str | None = None,
    specialty: str | None = None,
    visit_type: str | None = None,
    count: int = 100,
) -> dict[str, Any]:
    """Free slots starting in ``[start, end)`` as a Bundle of proposed Appointments, soonest first.

    Parameters
    ----------
    start, end
        Timezone-aware bounds on the slot start.
    practitioner, location
        ``Practitioner/id`` / ``Location/id`` (or a bare id) that the Schedule's actor must be.
    service_type, specialty, visit_type
        Tokens (``system|code`` or ``code``) the Slot must carry in ``serviceType``,
        ``specialty`` and ``appointmentType``.
    count
        At most this many proposals.

    Notes
    -----
    With a practitioner or location the search is driven by their few Schedules. Without,
    on the SQL store, Slots are read in start order a page at a time and filtered here
    (:func:`medfusion.store.slot_sql.slots_by_start`), which stops as soon as ``count``
    proposals are found instead of visiting every free Slot.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequestError("start and end must carry a time zone", expression=["start", "end"])
    if end <= start:
        raise InvalidRequestError("end must be after start", expression=["end"])
    if count < 1:
        raise InvalidRequestError(f"count must be at least 1, got {count}", expression=["count"])
    wanted = SlotFilter.of(service_type=service_type, specialty=specialty, visit_type=visit_type)
    with repo.begin_read() as tx:
        schedules: list[str] | None = None
        if practitioner or location:
            actor_params = [("actor", actor_reference(practitioner, "Practitioner"))] if practitioner else []
            if location:
                actor_params.append(("actor", actor_reference(location, "Location")))
            schedules = ids_of(tx, "Schedule", actor_params)
            if not schedules:
                return proposals_bundle([], {})
        now = now_utc()
        if schedules is None and isinstance(tx, SqlTransaction):
            slots = _find_by_start(tx, start, end, wanted, now, count)
        else:
            slots = _find_by_search(tx, start, end, schedules, wanted, now, count)
        refs = sorted({s["schedule"]["reference"].split("/", 1)[1] for s in slots})
        schedules_by_id = {}
        if isinstance(tx, SqlTransaction):
            schedules_by_id = {s.id: s.json() for s in current_many(tx, "Schedule", refs)}
        for ref in refs:
            found = None if ref in schedules_by_id else tx.read_current("Schedule", ref)
            if found is not None and not found.deleted:
                schedules_by_id[ref] = found.json()
    return proposals_bundle(slots, schedules_by_id)


def _find_by_search(
    tx: FhirTransaction,
    start: datetime,
    end: datetime,
    schedules: list[str] | None,
    wanted: SlotFilter,
    now: datetime,
    count: int,
) -> list[dict[str, Any]]:
    """``$find`` through the generic search (schedule-driven, and the in-memory store)."""
    # Held slots are searched too: a hold that has expired leaves its slot available.
    params = [
        ("status", "free,busy-tentative"),
        ("start", f"ge{instant(start)}"),
        ("start", f"lt{instant(end)}"),
        *wanted.search_params(),
    ]
    if schedules is not None:
        params.append(("schedule", ",".join(f"Schedule/{s}" for s in schedules)))
    offset = 0
    slots: list[dict[str, Any]] = []
    while len(slots) < count:
        page = [("_sort", "start,_id"), ("_count", str(count)), ("_offset", str(offset))]
        query = parse_search("Slot", [*params, *page], strict=True, default_count=count, max_count=count)
        matches = tx.search(query).matches
        slots += [b for b in (m.json() for m in matches) if available(b, now)]
        if len(matches) < count:
            break
        offset += count
    return slots[:count]


def _find_by_start(
    tx: SqlTransaction, start: datetime, end: datetime, wanted: SlotFilter, now: datetime, count: int
) -> list[dict[str, Any]]:
    """``$find`` over every schedule: Slots in start order, filtered here, until ``count`` are found."""
    # Large pages: many schedules share each start time, and every tie must be read.
    page = max(4 * count, 256)
    offset = 0
    found: list[dict[str, Any]] = []
    while True:
        rows = slots_by_start(tx, start=start, end=end, limit=page, offset=offset)
        for row in rows:
            body = row.json()
            if available(body, now) and wanted.matches(body):
                found.append(body)
        offset += len(rows)
        if len(rows) < page:
            break
        # Enough, unless slots sharing the last wanted start may still follow (ties go by id).
        if len(found) >= count and parse_instant(rows[-1].json()["start"]) > parse_instant(
            found[count - 1]["start"]
        ):
            break
    found.sort(key=lambda b: (parse_instant(b["start"]), b["id"]))
    return found[:count]


def book(
    repo: FhirRepository, *, appointment: dict[str, Any] | bytes, acting_patient: str | None = None
) -> StoredResource:
    """Book an Appointment on its Slots: the Slots turn ``busy`` and the Appointment is created together.

    Parameters
    ----------
    acting_patient
        ``Patient/id`` when a patient books for themself (the seam for authentication:
        the caller passes the authenticated patient); None for staff, who may book for
        anyone.

    Raises
    ------
    ForbiddenError
        ``acting_patient`` is given and the Appointment's patient is someone else (403).
    ConflictError
        A Slot is not free, or another booking took it first.
    BusinessRuleError
        A patient of the Appointment already holds ``settings.max_future_appointments``
        future appointments (422).
    InvalidRequestError
        The Appointment is invalid, references no Slot, an unknown Slot, or times that
        differ from its Slots'.
    """
    resource = parse_resource(appointment, expected_type="Appointment")
    check_acting_patient(resource, acting_patient)
    if resource.get("status") not in _BOOKABLE:
        raise InvalidRequestError(
            f"cannot book an Appointment with status {resource['status']!r}",
            expression=["Appointment.status"],
        )
    ids = slot_ids(resource)
    token = hold_token(resource)
    try:
        with repo.begin() as tx:
            now = now_utc()
            slots: list[tuple[StoredResource, dict[str, Any]]] = []
            # Sorted ids: two bookings of overlapping slot sets lock rows in the same order.
            for id in ids:
                found = tx.read_current("Slot", id)
                if found is None or found.deleted:
                    raise InvalidRequestError(
                        f"Slot/{id} does not exist", code="not-found", expression=["Appointment.slot"]
                    )
                body = found.json()
                if not available(body, now, token):
                    raise ConflictError(f"Slot/{id} is already taken", expression=["Appointment.slot"])
                slots.append((found, body))
            start = min(b["start"] for _, b in slots)
            end = max(b["end"] for _, b in slots)
            for key, value in (("start", start), ("end", end)):
                given = resource.get(key)
                if given is not None and parse_instant(given) != parse_instant(value):
                    raise InvalidRequestError(
                        f"Appointment.{key} differs from its slots' {key} {value}",
                        expression=[f"Appointment.{key}"],
                    )
            check_patient_limit(tx, resource)
            resource = {**without_hold(resource), "status": "booked", "start": start, "end": end}
            resource.pop("id", None)
            # One batch: the Slots' versioned writes and the new Appointment share statements.
            writes = [
                WriteRequest("Slot", found.id, taken_body(body), found.version) for found, body in slots
            ]
            writes.append(WriteRequest("Appointment", new_id(), resource, 0))
            stored = tx.write_many(writes)[-1]
            if acting_patient is not None:
                _tell_staff(tx, "booked", stored.id, resource)
            return stored
    except PreconditionFailedError:
        raise ConflictError(
            "the slot was taken by a concurrent booking", expression=["Appointment.slot"]
        ) from None


def _tell_staff(tx: FhirTransaction, what: str, appointment_id: str, body: dict[str, Any]) -> None:
    """Queue a notice to the front desk, in the booking's own transaction (portal bookings)."""
    patients = ", ".join(sorted(patients_of(body))) or "a patient"
    enqueue_in(
        tx,
        key=f"staff-{what}|{appointment_id}",
        kind=f"staff-{what}",
        recipient=get_settings().staff_email,
        subject=f"{patients} {what} an appointment themself",
        body=f"{patients} {what} Appointment/{appointment_id} from {body.get('start')} to {body.get('end')}"
        + (f"; reason: {body['cancelationReason']['text']}" if what == "cancelled" else ""),
        appointment_id=appointment_id,
    )


def cancel(
    repo: FhirRepository, *, appointment_id: str, reason: str, acting_patient: str | None = None
) -> StoredResource:
    """Cancel an Appointment (status ``cancelled`` with the reason) and free its Slots, atomically.

    A Slot that the Schedule's current rules no longer produce is replaced by the rule slots
    it blocked rather than freed.
    Cancelling a cancelled Appointment changes nothing. ``acting_patient`` (``Patient/id``)
    is the patient cancelling their own visit; None for staff.

    Raises
    ------
    ForbiddenError
        ``acting_patient`` is not the Appointment's patient.
    ConflictError
        The Appointment has already taken place or changed concurrently.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidRequestError("a cancellation needs a reason", code="required", expression=["reason"])
    try:
        with repo.begin() as tx:
            current = tx.read("Appointment", appointment_id)
            body = current.json()
            check_acting_patient(body, acting_patient)
            if body.get("status") == "cancelled":
                return current
            if body.get("status") in _FINAL:
                raise ConflictError(
                    f"an Appointment that is {body['status']} cannot be cancelled",
                    expression=["Appointment.status"],
                )
            body["status"] = "cancelled"
            body["cancelationReason"] = {"text": reason.strip()}
            stored = tx.write("Appointment", appointment_id, body, expected_version=current.version)
            if acting_patient is not None:
                _tell_staff(tx, "cancelled", appointment_id, body)
            for ref in body.get("slot", []):
                kind, _, id = ref.get("reference", "").partition("/")
                found = tx.read_current("Slot", id) if kind == "Slot" else None
                if found is None or found.deleted:
                    continue
                slot = found.json()
                if not has_booking(slot):
                    continue
                release(tx, found, slot)
            return stored
    except PreconditionFailedError:
        raise ConflictError("the appointment or its slot changed concurrently; try again") from None
