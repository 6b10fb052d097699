"""Cutting opening hours into slots, correctly across daylight-saving changes.

Hours are read on the local wall clock of the schedule's zone, so a clinic that opens at
08:00 opens at 08:00 local time on both sides of a change. Inside one stretch of hours
slots are laid out in elapsed (UTC) time, so a stretch that spans a change yields exactly
as many slots as there are real minutes, none at a wall time that does not exist and no
instant twice:

- a wall time skipped by spring-forward means the moment of the change (a stretch opening
  at 02:30 on that night opens at 03:00);
- a repeated wall time opens a stretch at its first occurrence and closes one at its last,
  so hours that cover the repeated hour cover both of its passes;
- where two stretches then overlap in real time, a slot overlapping an earlier one is
  left out, so no instant is offered twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from medfusion.scheduling._rules import AvailabilityRules

__all__ = ["SlotTime", "generate_slots", "local_to_utc"]


@dataclass(frozen=True, slots=True, order=True)
class SlotTime:
    """One slot: UTC instants, ``start`` inclusive, ``end`` exclusive."""

    start: datetime
    end: datetime


def _exists(naive: datetime, zone: ZoneInfo) -> bool:
    aware = naive.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive


def _change_instant(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant in ``(low, high]`` where the zone's offset changes (to the second)."""
    offset = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def local_to_utc(day: date, minute: int, zone: ZoneInfo, *, last: bool = False) -> datetime:
    """The UTC instant of a local wall time (``minute`` after midnight, 1440 = next midnight).

    Parameters
    ----------
    last
        For a repeated wall time take its last occurrence instead of its first.
    """
    naive = datetime.combine(day, time()) + timedelta(minutes=minute)
    if not _exists(naive, zone):
        # Skipped by spring-forward: fold=1 reads it with the offset after the change, an
        # instant before the change; fold=0 with the offset before, an instant after it.
        early = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
        late = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
        return _change_instant(early, late, zone)
    return naive.replace(tzinfo=zone, fold=1 if last else 0).astimezone(UTC)


def _day_slots(rules: AvailabilityRules, day: date, zone: ZoneInfo) -> Iterator[SlotTime]:
    length = timedelta(minutes=rules.slot_minutes)
    step = length + timedelta(minutes=rules.buffer_minutes)
    for hours in rules.hours_on(day):
        cursor = local_to_utc(day, hours.start_minute, zone)
        close = local_to_utc(day, hours.end_minute, zone, last=True)
        while cursor + length <= close:
            yield SlotTime(cursor, cursor + length)
            cursor += step


def generate_slots(rules: AvailabilityRules, *, start: datetime, end: datetime) -> list[SlotTime]:
    """All slots the rules open whose start lies in ``[start, end)``, soonest first.

    Parameters
    ----------
    rules
        The schedule's availability.
    start, end
        Timezone-aware instants bounding the slot starts.

    Returns
    -------
    list[SlotTime]
        Distinct, non-overlapping slots in UTC.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware instants")
    zone = rules.zone
    # One local day either side: hours of the previous local day can reach past midnight
    # UTC, and the local date of ``start`` may differ from its UTC date.
    day = start.astimezone(zone).date() - timedelta(days=1)
    last_day = end.astimezone(zone).date() + timedelta(days=1)
    out: list[SlotTime] = []
    while day <= last_day:
        out.extend(s for s in _day_slots(rules, day, zone) if start <= s.start < end)
        day += timedelta(days=1)
    # Two stretches of one day can meet in real time when the clock falls back (hours to
    # 02:00 and from 02:30 overlap during the repeated hour): keep the earlier slot.
    kept: list[SlotTime] = []
    for slot in sorted(out):
        if not kept or slot.start >= kept[-1].end:
            kept.append(slot)
    return kept
