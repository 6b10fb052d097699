"""Validation of availability rules: every error names the element, the constraint and the value."""

from __future__ import annotations

from typing import Any

import pytest

from medfusion.errors import InvalidRequestError
from medfusion.scheduling import parse_rules

GOOD: dict[str, Any] = {
    "timezone": "America/New_York",
    "slotMinutes": 15,
    "bufferMinutes": 5,
    "horizonDays": 30,
    "serviceTypes": ["http://terminology.hl7.org/CodeSystem/service-type|124", "57"],
    "weekly": {"monday": [{"start": "13:00", "end": "17:00"}, {"start": "08:00", "end": "12:00"}]},
    "exceptions": [{"date": "2026-12-24", "hours": [{"start": "08:00", "end": "12:00"}], "reason": "eve"}],
    "holidays": ["2026-12-25"],
}


def test_round_trip() -> None:
    rules = parse_rules(GOOD)
    assert parse_rules(rules.to_json()) == rules
    assert rules.weekly[0][0].start.hour == 8  # sorted


@pytest.mark.parametrize(
    ("change", "where", "text"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "IANA time zone"),
        ({"slotMinutes": 0}, "slotMinutes", "from 1 to 1440"),
        ({"slotMinutes": "20"}, "slotMinutes", "integer"),
        ({"bufferMinutes": -5}, "bufferMinutes", "from 0"),
        ({"weekly": {"funday": []}}, "weekly.funday", "not a weekday"),
        ({"weekly": {"monday": [{"start": "9:00", "end": "10:00"}]}}, "weekly.monday[0].start", "HH:MM"),
        ({"weekly": {"monday": [{"start": "10:00", "end": "09:00"}]}}, "weekly.monday[0]", "end after"),
        (
            {"weekly": {"monday": [{"start": "08:00", "end": "10:00"}, {"start": "09:00", "end": "11:00"}]}},
            "weekly.monday",
            "overlapping",
        ),
        ({"exceptions": [{"date": "2026-02-30", "closed": True}]}, "exceptions[0].date", "YYYY-MM-DD"),
        ({"holidays": ["2026-12-24"]}, "exceptions[0].date", "repeats"),
        ({"serviceTypes": ["a|b|c"]}, "serviceTypes", "tokens"),
        ({"colour": "blue"}, "colour", "not a known rule"),
    ],
)
def test_errors_name_the_element(change: dict[str, Any], where: str, text: str) -> None:
    with pytest.raises(InvalidRequestError, match=text) as caught:
        parse_rules({**GOOD, **change})
    assert caught.value.expression == [where]


def test_rules_must_be_an_object_with_a_slot_length() -> None:
    with pytest.raises(InvalidRequestError, match="JSON object"):
        parse_rules([])
    with pytest.raises(InvalidRequestError, match="slotMinutes"):
        parse_rules({"timezone": "UTC"})
