"""Availability rules: the value objects and their validation from JSON.

The JSON shape (what ``PUT /api/schedules/{id}/availability`` accepts)::

    {
      "timezone": "Europe/Berlin",
      "slotMinutes": 20,
      "bufferMinutes": 5,
      "horizonDays": 90,
      "serviceTypes": ["http://terminology.hl7.org/CodeSystem/service-type|124", "57"],
      "specialties": ["http://snomed.info/sct|394814009"],
      "visitType": "http://terminology.hl7.org/CodeSystem/v2-0276|ROUTINE",
      "maxPerSlot": 1,
      "weekly": {"monday": [{"start": "08:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]},
      "exceptions": [
        {"date": "2026-12-24", "hours": [{"start": "08:00", "end": "12:00"}], "reason": "Christmas Eve"},
        {"date": "2026-12-25", "closed": true, "reason": "Christmas"}
      ],
      "holidays": ["2027-01-01"]
    }

Every error names the element at fault, the constraint and the value received.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from medfusion.errors import InvalidRequestError

__all__ = ["WEEKDAYS", "AvailabilityRules", "DayException", "TimeRange", "parse_rules"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")
_TOKEN = re.compile(r"^[^|\s]*\|?[^|\s]+$")
_KEYS = {
    "timezone", "slotMinutes", "bufferMinutes", "horizonDays", "serviceTypes", "weekly",
    "exceptions", "holidays", "specialties", "visitType", "maxPerSlot",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Opening hours on one local day, ``start`` inclusive to ``end`` exclusive.

    ``end`` is given in minutes after local midnight so that 24:00 (1440) can close a day.
    """

    start_minute: int
    end_minute: int

    @property
    def start(self) -> time:
        """The local opening time."""
        return time(self.start_minute // 60, self.start_minute % 60)

    def to_json(self) -> dict[str, str]:
        """``{"start": "HH:MM", "end": "HH:MM"}``."""
        return {"start": _clock(self.start_minute), "end": _clock(self.end_minute)}


@dataclass(frozen=True, slots=True)
class DayException:
    """Hours replacing the weekly ones on one local date; no hours means closed."""

    day: date
    hours: tuple[TimeRange, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AvailabilityRules:
    """When a schedule is open and how its time is cut into slots.

    Attributes
    ----------
    timezone
        IANA zone the hours are read in (``Europe/Berlin``).
    slot_minutes
        Length of one slot.
    buffer_minutes
        Gap left after each slot before the next starts.
    weekly
        Hours per weekday, Monday = 0.
    exceptions
        Dates whose hours replace the weekly ones (closed days, changed hours, holidays).
    service_types
        FHIR tokens (``system|code`` or ``code``) every slot offers.
    horizon_days
        How many days ahead slots are produced.
    specialties
        FHIR tokens of the specialties every slot belongs to (``$find`` ``specialty``).
    visit_type
        FHIR token of the slots' appointment type (``$find`` ``visit-type``), or None.
    max_per_slot
        Bookings one slot takes before it is full; 1 (the default) means no overbooking.
    """

    timezone: str
    slot_minutes: int
    buffer_minutes: int = 0
    weekly: Mapping[int, tuple[TimeRange, ...]] = field(default_factory=dict)
    exceptions: Mapping[date, DayException] = field(default_factory=dict)
    service_types: tuple[str, ...] = ()
    horizon_days: int = 90
    specialties: tuple[str, ...] = ()
    visit_type: str | None = None
    max_per_slot: int = 1

    @property
    def zone(self) -> ZoneInfo:
        """The :class:`~zoneinfo.ZoneInfo` of :attr:`timezone`."""
        return ZoneInfo(self.timezone)

    def hours_on(self, day: date) -> tuple[TimeRange, ...]:
        """The opening hours of a local date, exceptions first."""
        exception = self.exceptions.get(day)
        if exception is not None:
            return exception.hours
        return self.weekly.get(day.weekday(), ())

    def to_json(self) -> dict[str, Any]:
        """The JSON form :func:`parse_rules` reads (round-trips exactly)."""
        return {
            "timezone": self.timezone,
            "slotMinutes": self.slot_minutes,
            "bufferMinutes": self.buffer_minutes,
            "horizonDays": self.horizon_days,
            "serviceTypes": list(self.service_types),
            "specialties": list(self.specialties),
            "visitType": self.visit_type,
            "maxPerSlot": self.max_per_slot,
            "weekly": {
                WEEKDAYS[d]: [r.to_json() for r in ranges] for d, ranges in sorted(self.weekly.items())
            },
            "exceptions": [
                {"date": e.day.isoformat(), "hours": [r.to_json() for r in e.hours], "reason": e.reason}
                for _, e in sorted(self.exceptions.items())
            ],
        }


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _bad(where: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"availability rules: {where} {message}", expression=[where])


def _int(raw: Mapping[str, Any], key: str, default: int | None, low: int, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(key, f"must be an integer from {low} to {high}, got {value!r}")
    return value


def _minute(value: Any, where: str) -> int:
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        raise _bad(where, f"must be a local time HH:MM, got {value!r}")
    minute = int(match.group(1)) * 60 + int(match.group(2))
    if minute > 24 * 60:
        raise _bad(where, f"must be at most 24:00, got {value!r}")
    return minute


def _ranges(value: Any, where: str) -> tuple[TimeRange, ...]:
    if not isinstance(value, list):
        raise _bad(where, f"must be a list of {{start, end}} objects, got {type(value).__name__}")
    ranges: list[TimeRange] = []
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(item, dict) or set(item) != {"start", "end"}:
            raise _bad(here, f"must be an object with exactly 'start' and 'end', got {item!r}")
        start, end = _minute(item["start"], f"{here}.start"), _minute(item["end"], f"{here}.end")
        if start >= end:
            raise _bad(here, f"must end after it starts, got {item['start']}-{item['end']}")
        ranges.append(TimeRange(start, end))
    ranges.sort(key=lambda r: r.start_minute)
    for before, after in itertools.pairwise(ranges):
        if after.start_minute < before.end_minute:
            first = f"{_clock(before.start_minute)}-{_clock(before.end_minute)}"
            second = f"{_clock(after.start_minute)}-{_clock(after.end_minute)}"
            raise _bad(where, f"has overlapping hours {first} and {second}")
    return tuple(ranges)


def _date(value: Any, where: str) -> date:
    try:
        if not isinstance(value, str):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise _bad(where, f"must be a date YYYY-MM-DD, got {value!r}") from None


def parse_rules(raw: Any) -> AvailabilityRules:
    """Validate availability rules given as JSON and build :class:`AvailabilityRules`.

    Raises
    ------
    InvalidRequestError
        Naming the element at fault, what it must be and what was received.
    """
    if not isinstance(raw, dict):
        raise _bad("rules", f"must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _bad(unknown[0], f"is not a known rule; expected one of {sorted(_KEYS)}")
    zone = raw.get("timezone")
    try:
        if not isinstance(zone, str) or not zone:
            raise ValueError
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise _bad("timezone", f"must be an IANA time zone such as 'Europe/Berlin', got {zone!r}") from None
    slot = _int(raw, "slotMinutes", None, 1, 24 * 60)
    buffer = _int(raw, "bufferMinutes", 0, 0, 24 * 60)
    horizon = _int(raw, "horizonDays", 90, 1, 731)
    weekly_raw = raw.get("weekly", {})
    if not isinstance(weekly_raw, dict):
        raise _bad("weekly", "must be an object keyed by weekday name")
    weekly: dict[int, tuple[TimeRange, ...]] = {}
    for name, value in weekly_raw.items():
        if name not in WEEKDAYS:
            raise _bad(f"weekly.{name}", f"is not a weekday; expected one of {list(WEEKDAYS)}")
        weekly[WEEKDAYS.index(name)] = _ranges(value, f"weekly.{name}")
    exceptions: dict[date, DayException] = {}
    holidays = raw.get("holidays", [])
    if not isinstance(holidays, list):
        raise _bad("holidays", "must be a list of dates")
    for i, value in enumerate(holidays):
        day = _date(value, f"holidays[{i}]")
        exceptions[day] = DayException(day, (), "holiday")
    exceptions_raw = raw.get("exceptions", [])
    if not isinstance(exceptions_raw, list):
        raise _bad("exceptions", "must be a list of {date, hours | closed, reason} objects")
    for i, item in enumerate(exceptions_raw):
        here = f"exceptions[{i}]"
        if not isinstance(item, dict) or not set(item) <= {"date", "hours", "closed", "reason"}:
            raise _bad(here, f"must be an object with date, hours or closed, and reason; got {item!r}")
        day = _date(item.get("date"), f"{here}.date")
        if day in exceptions:
            raise _bad(f"{here}.date", f"repeats the date {day.isoformat()}")
        closed = item.get("closed", False)
        if not isinstance(closed, bool) or (closed and item.get("hours")):
            raise _bad(here, "must give either 'closed': true or 'hours', not both")
        hours = () if closed else _ranges(item.get("hours", []), f"{here}.hours")
        reason = item.get("reason", "")
        if not isinstance(reason, str):
            raise _bad(f"{here}.reason", f"must be text, got {reason!r}")
        exceptions[day] = DayException(day, hours, reason)
    services = raw.get("serviceTypes", [])
    if not isinstance(services, list) or not all(isinstance(s, str) and _TOKEN.match(s) for s in services):
        raise _bad("serviceTypes", f"must be a list of tokens 'system|code' or 'code', got {services!r}")
    specialties = raw.get("specialties", [])
    if not isinstance(specialties, list) or not all(
        isinstance(s, str) and _TOKEN.match(s) for s in specialties
    ):
        raise _bad("specialties", f"must be a list of tokens 'system|code' or 'code', got {specialties!r}")
    visit_type = raw.get("visitType")
    if visit_type is not None and not (isinstance(visit_type, str) and _TOKEN.match(visit_type)):
        raise _bad("visitType", f"must be a token 'system|code' or 'code', got {visit_type!r}")
    return AvailabilityRules(
        timezone=zone,
        slot_minutes=slot,
        buffer_minutes=buffer,
        weekly=weekly,
        exceptions=exceptions,
        service_types=tuple(dict.fromkeys(services)),
        horizon_days=horizon,
        specialties=tuple(dict.fromkeys(specialties)),
        visit_type=visit_type,
        max_per_slot=_int(raw, "maxPerSlot", 1, 1, 1000),
    )
