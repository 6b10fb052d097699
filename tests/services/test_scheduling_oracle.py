"""``$find`` against a brute-force oracle on random availability rules (property-based).

The oracle knows nothing of the generator: it walks every UTC minute around the window,
reads its wall-clock time in the zone, and finds each stretch's opening (the first minute
whose wall time reaches the opening time) and closing (the last minute whose wall time
has not passed the closing time) by scanning.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfusion.fhir.memory import InMemoryRepository
from medfusion.services import records, scheduling

# (zone, window start): the Saturday before each DST change the zones make in 2026, and
# ordinary days (random pairings of these would rarely meet a change).
CASES = [
    ("Europe/Berlin", datetime(2026, 3, 28, tzinfo=UTC)),
    ("Europe/Berlin", datetime(2026, 10, 24, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 3, 7, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 10, 31, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, tzinfo=UTC)),  # a 30-minute change
    ("Asia/Kolkata", datetime(2026, 6, 10, tzinfo=UTC)),
    ("UTC", datetime(2026, 6, 10, tzinfo=UTC)),
]
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MINUTE = timedelta(minutes=1)


@st.composite
def day_hours(draw: st.DrawFn) -> list[dict[str, str]]:
    # Half-hour cuts, often between 01:00 and 03:30 where the DST changes happen.
    cut = st.one_of(st.integers(0, 48), st.integers(3, 6), st.integers(3, 6))
    cuts = sorted(draw(st.sets(cut, max_size=4)))
    hours = []
    for a, b in zip(cuts[::2], cuts[1::2], strict=False):
        hours.append(
            {"start": f"{a * 30 // 60:02d}:{a * 30 % 60:02d}", "end": f"{b * 30 // 60:02d}:{b * 30 % 60:02d}"}
        )
    return hours


@st.composite
def rules_and_window(draw: st.DrawFn) -> tuple[dict[str, Any], datetime]:
    zone, start = draw(st.sampled_from(CASES))
    rules: dict[str, Any] = {
        "timezone": zone,
        "slotMinutes": draw(st.sampled_from([10, 15, 20, 30, 45, 60, 90])),
        "bufferMinutes": draw(st.sampled_from([0, 0, 5, 10, 15])),
        "horizonDays": 3,
        # Sunday always: every window covers a Sunday, the day the sampled changes fall on.
        "weekly": {d: draw(day_hours()) for d in sorted(draw(st.sets(st.sampled_from(DAYS))) | {"sunday"})},
    }
    first = (start + timedelta(days=1)).date()
    special = draw(st.sets(st.integers(0, 2), max_size=2))
    rules["exceptions"] = [
        {"date": (first + timedelta(days=k)).isoformat(), "hours": draw(day_hours())} for k in sorted(special)
    ]
    return rules, start


def oracle(rules: dict[str, Any], start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    zone = ZoneInfo(rules["timezone"])
    base = start - timedelta(days=3)
    minutes = []
    t = base
    while t < end + timedelta(days=3):
        minutes.append((t, t.astimezone(zone).replace(tzinfo=None)))
        t += MINUTE

    def near(wall: datetime) -> list[tuple[datetime, datetime]]:
        # Every zone is within 15 hours of UTC, so only those minutes can show this wall time.
        middle = int((wall.replace(tzinfo=UTC) - base) / MINUTE)
        return minutes[max(middle - 900, 0) : middle + 900]

    length = timedelta(minutes=rules["slotMinutes"])
    step = length + timedelta(minutes=rules["bufferMinutes"])
    special = {e["date"]: e["hours"] for e in rules["exceptions"]}
    out = []
    day = start.date() - timedelta(days=1)
    while day <= end.date() + timedelta(days=1):
        hours = special.get(day.isoformat(), rules["weekly"].get(DAYS[day.weekday()], []))
        for h in hours:
            wall_open = _wall(day, h["start"])
            wall_close = _wall(day, h["end"])
            opening = next(t for t, wall in near(wall_open) if wall >= wall_open)
            last_t, last_wall = max((t, wall) for t, wall in near(wall_close) if wall <= wall_close)
            closing = last_t if last_wall == wall_close else last_t + MINUTE
            s = opening
            while s + length <= closing:
                if start <= s < end:
                    out.append((s, s + length))
                s += step
        day += timedelta(days=1)
    # Stretches that meet in real time (around a fall-back) must not offer an instant twice.
    kept: list[tuple[datetime, datetime]] = []
    for slot in sorted(out):
        if not kept or slot[0] >= kept[-1][1]:
            kept.append(slot)
    return kept


def _wall(day: date, clock: str) -> datetime:
    h, m = map(int, clock.split(":"))
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=h, minutes=m)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules_and_window())
def test_find_matches_the_oracle(case: tuple[dict[str, Any], datetime]) -> None:
    _check_against_oracle(case)


def test_fall_back_hours_that_meet_offer_no_instant_twice() -> None:
    # Found by Hypothesis: 00:00-02:00 and 02:30-03:00 on Berlin's fall-back Sunday overlap
    # in real time (02:30 first passes before the second 02:00).
    rules = {
        "timezone": "Europe/Berlin", "slotMinutes": 10, "bufferMinutes": 0, "horizonDays": 3,
        "weekly": {"sunday": [{"start": "00:00", "end": "02:00"}, {"start": "02:30", "end": "03:00"}]},
        "exceptions": [],
    }  # fmt: skip
    _check_against_oracle((rules, datetime(2026, 10, 24, tzinfo=UTC)))


def _check_against_oracle(case: tuple[dict[str, Any], datetime]) -> None:
    rules, start = case
    repo = InMemoryRepository()
    for resource in (
        {"resourceType": "Practitioner", "id": "p"},
        {"resourceType": "Schedule", "id": "s", "actor": [{"reference": "Practitioner/p"}]},
    ):
        records.update(
            repo, resource_type=resource["resourceType"], id=resource["id"], body=orjson.dumps(resource)
        )
    scheduling.set_availability(repo, schedule_id="s", rules=rules, now=start)
    window_start, window_end = start + timedelta(hours=20), start + timedelta(days=3)
    bundle = scheduling.find(repo, start=window_start, end=window_end, practitioner="p", count=1000)
    found = [(_instant(e["resource"]["start"]), _instant(e["resource"]["end"])) for e in bundle["entry"]]
    assert found == oracle(rules, window_start, window_end)
