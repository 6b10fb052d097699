"""Slot storage helpers of :mod:`medfusion.services.scheduling` (instants, ids, slot bodies, queries)."""

from __future__ import annotations

import bisect
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from medfusion.config import get_settings
from medfusion.errors import (
    BusinessRuleError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    PreconditionFailedError,
)
from medfusion.fhir.repository import FhirTransaction, StoredResource, WriteRequest
from medfusion.fhir.resource import now_utc
from medfusion.fhir.search import parse_search
from medfusion.scheduling import AvailabilityRules, SlotTime, generate_slots, parse_rules

__all__ = [
    "ALL",
    "BOOKED_URL",
    "CAPACITY_URL",
    "HOLD_URL",
    "RULES_URL",
    "SlotFilter",
    "actor_reference",
    "available",
    "booked_count",
    "capacity",
    "check_acting_patient",
    "check_patient_limit",
    "has_booking",
    "hold_of",
    "hold_token",
    "ids_of",
    "instant",
    "occupied",
    "overlaps",
    "parse_instant",
    "patients_of",
    "proposals_bundle",
    "release",
    "released_body",
    "rules_of",
    "slot_body",
    "slot_id",
    "slot_ids",
    "slots_of",
    "take_slots",
    "taken_body",
    "taken_intervals",
    "token",
    "token_digest",
    "without_hold",
]

RULES_URL = "https://medfusion.dev/fhir/StructureDefinition/availability-rules"
HOLD_URL = "https://medfusion.dev/fhir/StructureDefinition/slot-hold"
CAPACITY_URL = "https://medfusion.dev/fhir/StructureDefinition/slot-capacity"
BOOKED_URL = "https://medfusion.dev/fhir/StructureDefinition/slot-booked"
ALL = 1_000_000  # "every match": slot sets are bounded by the horizon, not by paging


def _token_matches(wanted: str, concept: dict[str, Any]) -> bool:
    system, bar, code = wanted.rpartition("|")
    for coding in concept.get("coding", []):
        if coding.get("code") != code:
            continue
        if not bar or (coding.get("system") or "") == system:
            return True
    return False


@dataclass(frozen=True, slots=True)
class SlotFilter:
    """The ``$find`` token filters on a Slot: service type, specialty, visit (appointment) type."""

    service_type: str | None = None
    specialty: str | None = None
    visit_type: str | None = None

    @classmethod
    def of(cls, **tokens: str | None) -> SlotFilter:
        """Build from tokens, rejecting malformed ones (``InvalidRequestError``)."""
        for name, value in tokens.items():
            if value is not None and (not value or not value.rpartition("|")[2]):
                raise InvalidRequestError(
                    f"{name.replace('_', '-')} must be a token 'system|code' or 'code', got {value!r}",
                    expression=[name.replace("_", "-")],
                )
        return cls(**tokens)

    def search_params(self) -> list[tuple[str, str]]:
        """The same filters as FHIR search parameters on Slot."""
        pairs = (
            ("service-type", self.service_type),
            ("specialty", self.specialty),
            ("appointment-type", self.visit_type),
        )
        return [(name, value) for name, value in pairs if value]

    def matches(self, slot: dict[str, Any]) -> bool:
        """Whether a Slot body carries every wanted token."""
        if self.service_type and not any(
            _token_matches(self.service_type, c) for c in slot.get("serviceType", [])
        ):
            return False
        if self.specialty and not any(_token_matches(self.specialty, c) for c in slot.get("specialty", [])):
            return False
        return not self.visit_type or _token_matches(self.visit_type, slot.get("appointmentType", {}))


def instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def slot_id(schedule_id: str, start: datetime) -> str:
    """The deterministic id of a schedule's slot starting at ``start`` (at most 64 characters)."""
    prefix = schedule_id if len(schedule_id) <= 50 else hashlib.sha256(schedule_id.encode()).hexdigest()[:40]
    return f"{prefix}-{start.astimezone(UTC):%Y%m%d%H%M}"


def token(value: str) -> dict[str, Any]:
    system, _, code = value.rpartition("|")
    return {"coding": [{"system": system, "code": code} if system else {"code": code}]}


def slot_body(schedule_id: str, rules: AvailabilityRules, slot: SlotTime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Slot",
        "id": slot_id(schedule_id, slot.start),
        "schedule": {"reference": f"Schedule/{schedule_id}"},
        "status": "free",
        "start": instant(slot.start),
        "end": instant(slot.end),
    }
    if rules.service_types:
        body["serviceType"] = [token(t) for t in rules.service_types]
    if rules.specialties:
        body["specialty"] = [token(t) for t in rules.specialties]
    if rules.visit_type:
        body["appointmentType"] = token(rules.visit_type)
    if rules.max_per_slot > 1:
        body["extension"] = [{"url": CAPACITY_URL, "valueInteger": rules.max_per_slot}]
    return body


def _integer(slot: dict[str, Any], url: str, default: int) -> int:
    for extension in slot.get("extension", []):
        if extension.get("url") == url and isinstance(extension.get("valueInteger"), int):
            return int(extension["valueInteger"])
    return default


def capacity(slot: dict[str, Any]) -> int:
    """Bookings the Slot takes before it is full (1 unless its schedule allows overbooking)."""
    return _integer(slot, CAPACITY_URL, 1)


def booked_count(slot: dict[str, Any]) -> int:
    """Bookings an overbookable Slot already carries (0 for a single-booking Slot)."""
    return _integer(slot, BOOKED_URL, 0) if capacity(slot) > 1 else 0


def has_booking(slot: dict[str, Any]) -> bool:
    """Whether at least one Appointment holds the Slot."""
    return slot.get("status") == "busy" or booked_count(slot) > 0


def occupied(slot: dict[str, Any], now: datetime) -> bool:
    """Whether regeneration must keep the Slot: nobody may take it now, or it carries a booking."""
    return not available(slot, now) or booked_count(slot) > 0


def _with_count(body: dict[str, Any], count: int) -> dict[str, Any]:
    kept = [e for e in body.get("extension", []) if e.get("url") != BOOKED_URL]
    if count:
        kept.append({"url": BOOKED_URL, "valueInteger": count})
    out = {**body, "extension": kept}
    if not kept:
        del out["extension"]
    return out


def taken_body(slot: dict[str, Any]) -> dict[str, Any]:
    """The Slot after one more booking: ``busy`` once full, else still ``free`` with its count."""
    body = without_hold(slot)
    limit = capacity(body)
    if limit == 1:
        return {**body, "status": "busy"}
    count = booked_count(body) + 1
    return {**_with_count(body, count), "status": "busy" if count >= limit else "free"}


def released_body(slot: dict[str, Any]) -> dict[str, Any]:
    """The Slot after one booking on it is cancelled or moved away: ``free`` with one fewer."""
    count = max(0, booked_count(slot) - 1)
    body = _with_count(slot, count)
    return {**body, "status": "free"} if body.get("status") == "busy" else body


def rules_of(schedule: dict[str, Any]) -> AvailabilityRules | None:
    """The availability rules stored on a Schedule body, or None when it has none."""
    for extension in schedule.get("extension", []):
        if extension.get("url") == RULES_URL:
            return parse_rules(orjson.loads(extension["valueString"]))
    return None


def slots_of(
    tx: FhirTransaction, schedule_id: str, since: datetime, until: datetime | None = None
) -> list[StoredResource]:
    params = [("schedule", f"Schedule/{schedule_id}"), ("start", f"ge{instant(since)}")]
    if until is not None:
        params.append(("start", f"lt{instant(until)}"))
    query = parse_search(
        "Slot", [*params, ("_count", str(ALL))], strict=True, default_count=ALL, max_count=ALL
    )
    return list(tx.search(query).matches)


def taken_intervals(bodies: list[dict[str, Any]], now: datetime) -> list[tuple[datetime, datetime]]:
    """Sorted intervals of the slots nobody may take now (they block new slots)."""
    return sorted((parse_instant(b["start"]), parse_instant(b["end"])) for b in bodies if occupied(b, now))


def hold_of(slot: dict[str, Any]) -> tuple[datetime, str] | None:
    """``(expiry, token digest)`` of a Slot's hold, or None when it carries none."""
    for extension in slot.get("extension", []):
        if extension.get("url") == HOLD_URL:
            parts = {e["url"]: e for e in extension.get("extension", [])}
            return parse_instant(parts["expires"]["valueInstant"]), parts["tokenSha256"]["valueString"]
    return None


def hold_token(appointment: dict[str, Any]) -> str | None:
    """The hold token an Appointment carries (from ``$hold``), or None."""
    for extension in appointment.get("extension", []):
        if extension.get("url") == HOLD_URL:
            value = extension.get("valueString")
            return value if isinstance(value, str) else None
    return None


def without_hold(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the hold extensions (token, expiry) removed."""
    kept = [e for e in body.get("extension", []) if not str(e.get("url", "")).startswith(HOLD_URL)]
    out = {**body, "extension": kept}
    if not out["extension"]:
        del out["extension"]
    return out


def available(slot: dict[str, Any], now: datetime, token: str | None = None) -> bool:
    """Whether a Slot can be held or booked now: free, or held with an expired hold or by ``token``."""
    status = slot.get("status")
    if status == "free":
        return True
    hold = hold_of(slot) if status == "busy-tentative" else None
    if hold is None:
        return False
    expires, owner = hold
    return expires <= now or (token is not None and token_digest(token) == owner)


def token_digest(token: str) -> str:
    """What a Slot stores of a hold token: anyone may read Slots, so never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def patients_of(appointment: dict[str, Any]) -> set[str]:
    """The ``Patient/id`` references among an Appointment's participants."""
    return {
        p["actor"]["reference"]
        for p in appointment.get("participant", [])
        if p.get("actor", {}).get("reference", "").startswith("Patient/")
    }


def check_acting_patient(appointment: dict[str, Any], acting_patient: str | None) -> None:
    """403 unless ``acting_patient`` is None (staff) or the Appointment's only patient.

    The seam for authentication: whoever authenticates the caller passes the patient
    they are; this rule then stops a patient from booking or cancelling for another.
    """
    if acting_patient is None:
        return
    acting = actor_reference(acting_patient, "Patient")
    patients = patients_of(appointment)
    if patients != {acting}:
        named = ", ".join(sorted(patients)) or "no patient"
        raise ForbiddenError(
            f"a patient may book only for themself: {acting} acted for {named}",
            expression=["Appointment.participant.actor"],
        )


def check_patient_limit(tx: FhirTransaction, appointment: dict[str, Any]) -> None:
    """422 when a patient of the Appointment already holds the allowed number of future visits.

    Counted inside the booking transaction: exact on SQLite, whose writers are serialised;
    on PostgreSQL two simultaneous bookings by one patient can both pass the count.
    """
    limit = get_settings().max_future_appointments
    for patient in sorted(patients_of(appointment)):
        params = [
            ("patient", patient),
            ("status", "booked,arrived,checked-in"),
            ("date", f"ge{instant(now_utc())}"),
        ]
        query = parse_search(
            "Appointment", [*params, ("_summary", "count")], strict=True, default_count=1, max_count=1
        )
        if tx.search(query).total >= limit:
            raise BusinessRuleError(
                f"the patient already has {limit} future appointments, the most allowed",
                expression=["Appointment.participant.actor"],
            )


def overlaps(slot: SlotTime, taken: list[tuple[datetime, datetime]]) -> bool:
    # ``taken`` is sorted and non-overlapping, so only the neighbour before ``slot.end`` can overlap.
    i = bisect.bisect_left(taken, (slot.end,))
    return i > 0 and taken[i - 1][1] > slot.start


def ids_of(tx: FhirTransaction, resource_type: str, params: list[tuple[str, str]]) -> list[str]:
    query = parse_search(
        resource_type, [*params, ("_count", str(ALL))], strict=True, default_count=ALL, max_count=ALL
    )
    return [m.id for m in tx.search(query).matches]


def actor_reference(value: str, resource_type: str) -> str:
    return value if value.startswith(f"{resource_type}/") else f"{resource_type}/{value}"


def proposals_bundle(slots: list[dict[str, Any]], schedules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    entries = []
    for slot in slots:
        schedule = schedules.get(slot["schedule"]["reference"].split("/", 1)[1], {})
        proposal: dict[str, Any] = {
            "resourceType": "Appointment",
            "status": "proposed",
            "start": slot["start"],
            "end": slot["end"],
            "slot": [{"reference": f"Slot/{slot['id']}"}],
            "participant": [
                {"actor": actor, "required": "required", "status": "needs-action"}
                for actor in schedule.get("actor", [])
            ],
        }
        if "serviceType" in slot:
            proposal["serviceType"] = slot["serviceType"]
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'Slot/' + slot['id'])}",
                "resource": proposal,
                "search": {"mode": "match"},
            }
        )
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


def slot_ids(appointment: dict[str, Any]) -> list[str]:
    ids = []
    for i, ref in enumerate(appointment.get("slot", [])):
        reference = ref.get("reference", "")
        kind, _, id = reference.partition("/")
        if kind != "Slot" or not id or "/" in id:
            raise InvalidRequestError(
                "a slot must be referenced as Slot/<id>", expression=[f"Appointment.slot[{i}]"]
            )
        ids.append(id)
    if not ids:
        raise InvalidRequestError(
            "the Appointment must reference the Slot(s) to book",
            expression=["Appointment.slot"],
            code="required",
        )
    return sorted(set(ids))


def release(tx: FhirTransaction, found: StoredResource, slot: dict[str, Any]) -> None:
    """Free a cancelled Slot, or, when the current rules no longer produce it, replace it by theirs.

    After a change of slot length the old booked slot is removed, and the rule slots it
    blocked are created, except where they would overlap another slot that is not free.
    """
    if booked_count(slot) > 1:
        # Other bookings remain on the overbooked Slot: it stays, one place freer.
        tx.write("Slot", found.id, released_body(slot), expected_version=found.version)
        return
    slot = released_body(slot)
    schedule_id = slot["schedule"]["reference"].split("/", 1)[1]
    schedule = tx.read_current("Schedule", schedule_id)
    rules = rules_of(schedule.json()) if schedule is not None and not schedule.deleted else None
    start, end = parse_instant(slot["start"]), parse_instant(slot["end"])
    if rules is None:
        tx.write("Slot", found.id, {**slot, "status": "free"}, expected_version=found.version)
        return
    day = timedelta(days=1)
    around = generate_slots(rules, start=start - day, end=end + day)
    wanted = [s for s in around if s.start < end and s.end > start]
    if SlotTime(start, end) in wanted:
        tx.write("Slot", found.id, {**slot, "status": "free"}, expected_version=found.version)
        return
    tx.delete("Slot", found.id)
    nearby = [s for s in slots_of(tx, schedule_id, start - day, end + day) if s.id != found.id]
    bodies = {s.id: s.json() for s in nearby}
    taken = taken_intervals(list(bodies.values()), now_utc())
    for candidate in wanted:
        body = slot_body(schedule_id, rules, candidate)
        if candidate.start >= now_utc() and body["id"] not in bodies and not overlaps(candidate, taken):
            tx.write("Slot", body["id"], body, expected_version=0)


def take_slots(tx: FhirTransaction, appointment: dict[str, Any]) -> None:
    """Inside ``tx``: write a just-created ``booked`` Appointment's Slots ``busy``, or fail.

    Other statuses, and Appointments without Slots, take nothing.

    The hook for transaction Bundles, whose creates are written together first (so a Slot
    created in the same Bundle is found here). Same compare-and-set as ``book``.

    Raises
    ------
    ConflictError
        A Slot is not free, or a concurrent booking took it.
    InvalidRequestError
        A Slot reference is malformed or names no Slot.
    """
    if appointment.get("status") != "booked" or not appointment.get("slot"):
        return
    now, writes = now_utc(), []
    for id in slot_ids(appointment):
        found = tx.read_current("Slot", id)
        if found is None or found.deleted:
            raise InvalidRequestError(
                f"Slot/{id} does not exist", code="not-found", expression=["Appointment.slot"]
            )
        body = found.json()
        if not available(body, now, hold_token(appointment)):
            raise ConflictError(f"Slot/{id} is already taken", expression=["Appointment.slot"])
        writes.append(WriteRequest("Slot", id, taken_body(body), found.version))
    try:
        tx.write_many(writes)
    except PreconditionFailedError:
        raise ConflictError(
            "the slot was taken by a concurrent booking", expression=["Appointment.slot"]
        ) from None
