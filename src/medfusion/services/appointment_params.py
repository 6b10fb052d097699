"""Inputs of the appointment operations, read from a FHIR Parameters resource or plain JSON.

``$find`` takes ``start``, ``end``, ``practitioner``, ``location``, ``service-type``,
``specialty``, ``visit-type`` and ``_count``; ``$book`` an Appointment (bare, or as the
``appt-resource`` parameter); ``$cancel`` a ``reason``; ``$reschedule`` the new ``slot`` reference(s).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from medfusion.errors import InvalidRequestError

__all__ = [
    "FindRequest",
    "WaitlistRequest",
    "appointment_from_body",
    "parse_find_request",
    "parse_waitlist_request",
    "reason_from_body",
    "slots_from_body",
]

_FIND_NAMES = {
    "start", "end", "practitioner", "location", "service-type", "specialty", "visit-type", "_count",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FindRequest:
    """The parsed ``$find`` parameters (keyword arguments of ``scheduling.find``)."""

    start: datetime
    end: datetime
    practitioner: str | None = None
    location: str | None = None
    service_type: str | None = None
    specialty: str | None = None
    visit_type: str | None = None
    count: int = 100


def _scalar(part: dict[str, Any]) -> Any:
    """The value of one Parameters part, whatever its ``value[x]`` type."""
    for key, value in part.items():
        if not key.startswith("value"):
            continue
        if key == "valueReference":
            return value.get("reference")
        if key == "valueCoding":
            return f"{value['system']}|{value['code']}" if value.get("system") else value.get("code")
        if key == "valueCodeableConcept":
            codings = value.get("coding") or [{}]
            return _scalar({"valueCoding": codings[0]})
        return value
    raise InvalidRequestError(
        f"parameter {part.get('name')!r} has no value",
        code="required",
        expression=[f"Parameters.parameter.where(name='{part.get('name')}')"],
    )


def _flatten(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidRequestError("the body must be a JSON object or a Parameters resource")
    if payload.get("resourceType") != "Parameters":
        return {k: v for k, v in payload.items() if k != "resourceType"}
    out: dict[str, Any] = {}
    for part in payload.get("parameter", []):
        name = part.get("name")
        if "resource" in part:
            out[name] = part["resource"]
        else:
            out[name] = _scalar(part)
    return out


def _when(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a FHIR dateTime, got {value!r}", expression=[name])
    bad = InvalidRequestError(f"{name} must be a FHIR dateTime, got {value!r}", expression=[name])
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad from None
    if parsed.tzinfo is None:
        raise InvalidRequestError(f"{name} must carry a time zone, got {value!r}", expression=[name])
    return parsed


def parse_find_request(payload: Any) -> FindRequest:
    """Read ``$find`` parameters from a Parameters resource or a JSON object."""
    values = _flatten(payload)
    for name in values:
        if name not in _FIND_NAMES:
            raise InvalidRequestError(
                f"unknown $find parameter {name!r}; expected {sorted(_FIND_NAMES)}", expression=[name]
            )
    for name in ("start", "end"):
        if name not in values:
            raise InvalidRequestError(f"$find needs {name!r}", code="required", expression=[name])
    count = values.get("_count", 100)
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise InvalidRequestError(
            f"_count must be an integer from 1 to 1000, got {count!r}", expression=["_count"]
        )
    text = {k: values.get(k) for k in ("practitioner", "location", "service-type", "specialty", "visit-type")}
    for name, value in text.items():
        if value is not None and not isinstance(value, str):
            raise InvalidRequestError(f"{name} must be text, got {value!r}", expression=[name])
    return FindRequest(
        start=_when(values["start"], "start"),
        end=_when(values["end"], "end"),
        practitioner=text["practitioner"],
        location=text["location"],
        service_type=text["service-type"],
        specialty=text["specialty"],
        visit_type=text["visit-type"],
        count=count,
    )


def appointment_from_body(payload: Any) -> dict[str, Any]:
    """The Appointment to book: the body itself, or its ``appt-resource`` parameter."""
    if isinstance(payload, dict) and payload.get("resourceType") == "Parameters":
        resource = _flatten(payload).get("appt-resource")
        if not isinstance(resource, dict):
            raise InvalidRequestError(
                "$book needs an Appointment in the 'appt-resource' parameter",
                code="required",
                expression=["appt-resource"],
            )
        return resource
    if not isinstance(payload, dict):
        raise InvalidRequestError("the body must be an Appointment resource")
    return payload


def reason_from_body(payload: Any) -> str:
    """The cancellation reason: ``{"reason": "..."}`` or a Parameters ``reason`` part."""
    reason = _flatten(payload).get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidRequestError(
            "a cancellation needs a non-empty 'reason'", code="required", expression=["reason"]
        )
    return reason


def slots_from_body(payload: Any) -> list[str]:
    """The new Slot references of ``$reschedule``.

    Accepted: a Parameters resource with one ``slot`` part (``valueReference``) per Slot,
    an Appointment (or any JSON object) whose ``slot`` lists the new Slots, or
    ``{"slot": ["Slot/a", ...]}``.
    """
    if not isinstance(payload, dict):
        raise InvalidRequestError("the body must be a JSON object or a Parameters resource")
    if payload.get("resourceType") == "Parameters":
        # Repeated ``slot`` parts, so not ``_flatten`` (which keeps one value per name).
        items: list[Any] = [
            _scalar(part) for part in payload.get("parameter", []) if part.get("name") == "slot"
        ]
    else:
        listed = payload.get("slot", [])
        items = listed if isinstance(listed, list) else [listed]
    refs = [i.get("reference") if isinstance(i, dict) else i for i in items]
    if not refs or not all(isinstance(r, str) for r in refs):
        raise InvalidRequestError(
            "$reschedule needs the new Slot reference(s) in 'slot'", code="required", expression=["slot"]
        )
    return [r for r in refs if isinstance(r, str)]


@dataclass(frozen=True, slots=True)
class WaitlistRequest:
    """The parsed body of ``POST /api/waitlist`` (keyword arguments of ``waitlist.request``)."""

    patient: str
    start: datetime
    end: datetime
    practitioner: str | None = None
    service_type: str | None = None


_WAITLIST_NAMES = {"patient", "practitioner", "service-type", "start", "end"}


def parse_waitlist_request(payload: Any) -> WaitlistRequest:
    """Read a waitlist request: ``{"patient", "practitioner" | "service-type", "start", "end"}``."""
    values = _flatten(payload)
    for name in values:
        if name not in _WAITLIST_NAMES:
            raise InvalidRequestError(
                f"unknown waitlist field {name!r}; expected {sorted(_WAITLIST_NAMES)}", expression=[name]
            )
    for name in ("patient", "start", "end"):
        if name not in values:
            raise InvalidRequestError(
                f"a waitlist request needs {name!r}", code="required", expression=[name]
            )
    for name in ("patient", "practitioner", "service-type"):
        value = values.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidRequestError(f"{name} must be non-empty text, got {value!r}", expression=[name])
    return WaitlistRequest(
        patient=values["patient"],
        start=_when(values["start"], "start"),
        end=_when(values["end"], "end"),
        practitioner=values.get("practitioner"),
        service_type=values.get("service-type"),
    )
