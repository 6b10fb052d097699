"""Slot generation: weekly hours, buffers, exceptions, and daylight-saving changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from medfusion.scheduling import AvailabilityRules, generate_slots, local_to_utc, parse_rules


def _rules(zone: str, hours: list[tuple[str, str]], minutes: int = 30, **extra: object) -> AvailabilityRules:
    week = {
        d: [{"start": s, "end": e} for s, e in hours]
        for d in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    }
    return parse_rules({"timezone": zone, "slotMinutes": minutes, "weekly": week, **extra})


def _local_day(rules: AvailabilityRules, day: date) -> list[tuple[str, str]]:
    zone = rules.zone
    start = datetime.combine(day, datetime.min.time(), tzinfo=zone).astimezone(UTC)
    slots = generate_slots(rules, start=start - timedelta(hours=1), end=start + timedelta(hours=26))
    return [
        (s.start.astimezone(zone).strftime("%H:%M%z"), s.end.astimezone(zone).strftime("%H:%M%z"))
        for s in slots
        if s.start.astimezone(zone).date() == day
    ]


# Spring-forward and fall-back Sundays of 2026 in both zones.
DST_DAYS = [
    ("Europe/Berlin", date(2026, 3, 29)),
    ("Europe/Berlin", date(2026, 10, 25)),
    ("America/New_York", date(2026, 3, 8)),
    ("America/New_York", date(2026, 11, 1)),
]


@pytest.mark.parametrize(("zone", "day"), DST_DAYS)
def test_office_hours_keep_their_local_times_on_dst_days(zone: str, day: date) -> None:
    rules = _rules(zone, [("08:00", "12:00")], minutes=60)
    before, on, after = (_local_day(rules, day + timedelta(days=k)) for k in (-1, 0, 1))
    for slots in (before, on, after):
        assert [s[0][:5] for s in slots] == ["08:00", "09:00", "10:00", "11:00"]
    # The UTC offset really changed, so fixed-offset arithmetic would have shifted an hour.
    assert before[0][0][5:] != after[0][0][5:]


def test_berlin_spring_forward_skips_no_real_time_and_invents_none() -> None:
    rules = _rules("Europe/Berlin", [("01:00", "04:00")])
    assert _local_day(rules, date(2026, 3, 29)) == [
        ("01:00+0100", "01:30+0100"),
        ("01:30+0100", "03:00+0200"),  # 02:00-03:00 does not exist: 30 real minutes
        ("03:00+0200", "03:30+0200"),
        ("03:30+0200", "04:00+0200"),
    ]


def test_berlin_fall_back_covers_both_passes_of_the_repeated_hour() -> None:
    rules = _rules("Europe/Berlin", [("01:00", "04:00")])
    slots = _local_day(rules, date(2026, 10, 25))
    assert slots == [
        ("01:00+0200", "01:30+0200"),
        ("01:30+0200", "02:00+0200"),
        ("02:00+0200", "02:30+0200"),
        ("02:30+0200", "02:00+0100"),
        ("02:00+0100", "02:30+0100"),
        ("02:30+0100", "03:00+0100"),
        ("03:00+0100", "03:30+0100"),
        ("03:30+0100", "04:00+0100"),
    ]


@pytest.mark.parametrize(("zone", "day"), DST_DAYS)
def test_no_missing_or_doubled_slots_across_dst(zone: str, day: date) -> None:
    rules = _rules(zone, [("00:00", "24:00")], minutes=15)
    tz = ZoneInfo(zone)
    start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    slots = generate_slots(rules, start=start, end=end)
    starts = [s.start for s in slots]
    assert len(set(starts)) == len(starts)
    real_minutes = (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 60
    assert len(slots) == real_minutes / 15  # 23 h or 25 h of 15-minute slots
    assert all(b.start == a.end for a, b in itertools.pairwise(slots))


def test_hours_opening_inside_the_spring_gap_open_at_the_change() -> None:
    zone = ZoneInfo("America/New_York")
    assert local_to_utc(date(2026, 3, 8), 2 * 60 + 30, zone) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    # An ambiguous wall time opens at its first pass and closes at its last.
    first = local_to_utc(date(2026, 11, 1), 90, zone)
    last = local_to_utc(date(2026, 11, 1), 90, zone, last=True)
    assert last - first == timedelta(hours=1)


def test_buffer_lunch_break_and_exceptions() -> None:
    rules = parse_rules(
        {
            "timezone": "Europe/Berlin",
            "slotMinutes": 20,
            "bufferMinutes": 10,
            "weekly": {"monday": [{"start": "08:00", "end": "09:30"}, {"start": "13:00", "end": "13:50"}]},
            "exceptions": [
                {"date": "2026-06-08", "hours": [{"start": "10:00", "end": "10:20"}], "reason": "training"},
                {"date": "2026-06-15", "closed": True},
            ],
            "holidays": ["2026-06-22"],
        }
    )
    assert [s[0][:5] for s in _local_day(rules, date(2026, 6, 1))] == [
        "08:00",
        "08:30",
        "09:00",
        "13:00",
        "13:30",
    ]
    assert _local_day(rules, date(2026, 6, 8)) == [("10:00+0200", "10:20+0200")]
    assert _local_day(rules, date(2026, 6, 15)) == []
    assert _local_day(rules, date(2026, 6, 22)) == []
    assert _local_day(rules, date(2026, 6, 2)) == []  # no Tuesday hours


def test_generate_needs_aware_bounds() -> None:
    rules = _rules("UTC", [("08:00", "09:00")])
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_slots(rules, start=datetime(2026, 1, 1), end=datetime(2026, 1, 2))
