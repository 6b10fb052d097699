"""Series checks: irregular clinical stays (PhysioNet 2012 style) and regular series (UCR).

The checks take series already parsed (the service reads the files through the sequence
readers of :mod:`medfusion.ml`): a stay is its observations ``(hours, variable, value)``
in file order, or the reason it could not be read; a regular series file is a matrix with
one series per row. Variables are matched to the catalogue by name, as table columns are
(``HR``, ``Temp``, ``pH``, ...), so ranges, units and sentinels come from one place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medfusion.quality._checks import impossible_code
from medfusion.quality._config import QualityConfig
from medfusion.quality._items import (
    ItemReport,
    LabelledItem,
    Tally,
    check_labels_and_splits,
    digest,
    robust_z,
)
from medfusion.quality._units import conversion

__all__ = ["RegularSeries", "Stay", "check_regular", "check_stays"]

# Variables that rightly stay the same for hours (charted once, carried forward).
_STEADY = frozenset({"age", "weight", "height", "bmi"})


@dataclass(frozen=True)
class Stay:
    """One stay's observations ``(hours since admission, variable, value)`` in file order.

    ``problem`` says why the stay's file could not be read (then ``observations`` is empty).
    """

    id: str
    observations: Sequence[tuple[float, str, float]]
    problem: str | None = None


@dataclass(frozen=True)
class RegularSeries:
    """Regularly sampled series, one per row, as read from one file (one split).

    Parameters
    ----------
    split
        ``train`` / ``test`` (or ``""`` for a lone file).
    values
        ``(n, length)`` float; ``NaN`` for empty cells and cells that are not numbers.
    bad
        ``(n, length)`` bool, True where a cell is text that is not a number.
    labels
        One label per row (``None`` where empty), or ``None`` for an unlabelled file.
    """

    split: str
    values: np.ndarray
    bad: np.ndarray
    labels: Sequence[object] | None


def _clock(hours: float) -> str:
    minutes = round(hours * 60)
    sign = "-" if minutes < 0 else ""
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# -- irregular stays ------------------------------------------------------------------------


def _frame(stays: Sequence[Stay], descriptors: Collection[str]) -> pd.DataFrame:
    ids, hours, names, values, order = [], [], [], [], []
    for stay in stays:
        for position, (time, name, value) in enumerate(stay.observations):
            ids.append(stay.id)
            hours.append(time)
            names.append(name)
            values.append(value)
            order.append(position)
    frame = pd.DataFrame(
        {
            "id": pd.Series(ids, dtype=object),
            "order": np.asarray(order, dtype=np.int64),
            "hours": np.asarray(hours, dtype=np.float64),
            "variable": pd.Series(names, dtype=object),
            "value": np.asarray(values, dtype=np.float64),
        }
    )
    frame["descriptor"] = frame["variable"].isin(list(descriptors)) & (frame["hours"] == 0)
    return frame


def _observations(frame: pd.DataFrame) -> Iterator[tuple[str, float, str, float]]:
    """``(stay, hours, variable, value)`` of each row, as Python values."""
    columns = (frame[c].tolist() for c in ("id", "hours", "variable", "value"))
    yield from zip(*columns, strict=True)


def _sentinels_and_ranges(tally: Tally, frame: pd.DataFrame) -> None:
    config = tally.config
    for name, group in frame.groupby("variable", sort=True):
        spec = config.spec(str(name))
        values = group["value"]
        flagged = pd.Series(False, index=group.index)
        for code in config.sentinels:
            hit = values == code
            if hit.any() and impossible_code(config, spec, code, values[~hit]):
                flagged |= hit
        if tally.enabled("series_sentinel"):
            tally.checked("series_sentinel", len(group))
            for stay, hours, _, value in _observations(group[flagged]):
                tally.fail(
                    "series_sentinel",
                    stay,
                    str(name),
                    value,
                    f"'missing' code {value:g} recorded as a value at {_clock(hours)}",
                )
        if spec is None or not tally.enabled("series_range"):
            continue
        variable = config.variables[spec.variable]
        scale, offset = conversion(spec.unit, variable.unit, spec.variable)
        canonical = values * scale + offset
        usable = ~flagged
        out = usable & ((canonical < variable.low) | (canonical > variable.high))
        tally.checked("series_range", int(usable.sum()))
        bounds = f"{variable.low:g}-{variable.high:g} {variable.unit}"
        for stay, hours, _, value in _observations(group[out]):
            tally.fail(
                "series_range",
                stay,
                str(name),
                value,
                f"{spec.variable} {value:g} outside {bounds} at {_clock(hours)}",
            )


def _timestamps(tally: Tally, frame: pd.DataFrame) -> None:
    previous = frame.groupby("id", sort=False)["hours"].shift()
    backwards = previous.notna() & (frame["hours"] < previous)
    negative = frame["hours"] < 0
    tally.checked("series_timestamps", len(frame))
    flagged = backwards | negative
    for (stay, hours, name, _), earlier in zip(
        _observations(frame[flagged]), previous[flagged].tolist(), strict=True
    ):
        why = "negative time" if hours < 0 else f"after {_clock(earlier)} in the file: time goes backwards"
        tally.fail("series_timestamps", stay, name, _clock(hours), f"{_clock(hours)}: {why}")


def _duplicate_times(tally: Tally, frame: pd.DataFrame) -> None:
    keys = ["id", "variable", "hours"]
    repeated = frame[frame.duplicated(keys, keep=False)]
    distinct = len(frame) - int(frame.duplicated(keys).sum())
    tally.checked("series_duplicate_times", distinct)
    for (stay, name, hours), group in repeated.groupby(keys, sort=False):
        found = group["value"].tolist()
        assert isinstance(hours, float)
        kind = "the same value" if len(set(found)) == 1 else "conflicting values"
        tally.fail(
            "series_duplicate_times",
            str(stay),
            str(name),
            found,
            f"recorded {len(found)} times at {_clock(hours)} ({kind})",
        )


def _gaps(tally: Tally, frame: pd.DataFrame, readable: list[str]) -> set[str]:
    """Flag long stretches without observations; return the stays with observations."""
    limit = tally.config.series.max_gap_hours
    series = frame[~frame["descriptor"]]
    observed = set(series["id"])
    for stay, group in series.groupby("id", sort=False):
        tally.checked("series_gap")
        times = np.unique(np.concatenate([[0.0], group["hours"].to_numpy()]))
        gaps = np.diff(times)
        if gaps.size and gaps.max() > limit:
            at = int(gaps.argmax())
            tally.fail(
                "series_gap",
                str(stay),
                None,
                round(float(gaps[at]), 2),
                f"no observation for {gaps[at]:.1f} h ({_clock(times[at])} to {_clock(times[at + 1])})",
            )
    for stay in readable:
        tally.checked("series_empty")
        if stay not in observed:
            tally.fail("series_empty", stay, None, 0, "no observations after admission")
    return observed


def _constant_runs(tally: Tally, frame: pd.DataFrame) -> None:
    config = tally.config
    mapped = {
        name
        for name in frame["variable"].unique()
        if (spec := config.spec(str(name))) is not None and spec.variable not in _STEADY
    }
    series = frame[~frame["descriptor"] & frame["variable"].isin(list(mapped))]
    series = series.sort_values(["id", "variable", "hours", "order"], kind="stable")
    tally.checked("series_constant", int(series.groupby(["id", "variable"]).ngroups) if len(series) else 0)
    if series.empty:
        return
    key = series["id"].astype(str) + "\x00" + series["variable"].astype(str)
    starts = (key != key.shift()) | (series["value"] != series["value"].shift())
    run = starts.cumsum()
    lengths = run.map(run.value_counts())
    long = series[starts & (lengths >= config.series.constant_run)]
    ends = series.groupby(run)["hours"].max()
    for (stay, hours, name, value), length, end in zip(
        _observations(long), lengths[long.index].tolist(), ends[run[long.index]].tolist(), strict=True
    ):
        tally.fail(
            "series_constant",
            stay,
            name,
            value,
            f"{value:g} recorded {length} times in a row ({_clock(hours)} to {_clock(end)}): a flat line",
        )


def _lengths(tally: Tally, counts: dict[int | str, int], what: str, *, log: bool) -> None:
    if not counts:
        return
    names = list(counts)
    sizes = np.array([counts[n] for n in names], dtype=np.float64)
    median = float(np.median(sizes))
    limit = tally.config.series.length_z
    if log:
        # Stays vary in length by nature; a floor on the spread (about 15 % in count) keeps
        # a set of near-equal stays from flagging every small difference.
        logs = np.log1p(sizes)
        centre = np.median(logs)
        scores = (logs - centre) / max(1.4826 * float(np.median(np.abs(logs - centre))), 0.15)
        spread = True
    else:
        # Regular series of one file usually share a length; any other length stands out.
        scores = robust_z(sizes)
        spread = bool(np.median(np.abs(sizes - median)) > 0)
    for name, size, z in zip(names, sizes, scores, strict=True):
        tally.checked("series_length")
        outlier = abs(z) > limit if spread else size != median
        if outlier:
            tally.fail(
                "series_length", name, None, int(size), f"{int(size)} {what}; the median is {median:g}"
            )


def check_stays(
    stays: Sequence[Stay], config: QualityConfig | None = None, *, descriptors: Collection[str] = ()
) -> ItemReport:
    """Run the series checks over irregular stays (PhysioNet 2012 style).

    Parameters
    ----------
    stays
        Every stay, parsed, in order.
    config
        The configured catalogue (variables, ranges, sentinels, ``series`` limits).
    descriptors
        Variables recorded once at admission (time 0) rather than as a series
        (PhysioNet's Age, Gender, Height, ICUType, Weight); they count for ranges and
        sentinels, not for gaps, lengths or flat lines.

    Returns
    -------
    ItemReport
        ``row`` of a finding is the stay id, ``column`` the variable.
    """
    config = config or QualityConfig()
    tally = Tally(config, ("series",))
    readable = []
    for stay in stays:
        tally.checked("series_format")
        if stay.problem is not None:
            tally.fail("series_format", stay.id, None, None, stay.problem)
        else:
            readable.append(stay.id)
    frame = _frame(stays, descriptors)
    _sentinels_and_ranges(tally, frame)
    _timestamps(tally, frame)
    _duplicate_times(tally, frame)
    observed = _gaps(tally, frame, readable)
    if tally.enabled("series_constant"):
        _constant_runs(tally, frame)
    per_stay = Counter(frame.loc[~frame["descriptor"], "id"])
    lengths: dict[int | str, int] = {s: per_stay[s] for s in readable if s in observed}
    _lengths(tally, lengths, "observations", log=True)
    summary = {
        "stays": len(stays),
        "observations": len(frame),
        "variables": int(frame["variable"].nunique()),
        "stays_with_observations": len(observed),
    }
    return tally.report("series", len(stays), summary)


# -- regular series ------------------------------------------------------------------------


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, length)`` of each run of True in a 1-D mask."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _regular_row(tally: Tally, row: int | str, values: np.ndarray, bad: np.ndarray) -> int | None:
    """Checks of one regular series; returns its observed length (``None`` when empty)."""
    for check in ("series_format", "series_empty"):
        tally.checked(check)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        count = int(bad.sum())
        tally.fail(
            "series_format", row, "value", count, f"{count} cell(s) are not numbers (first at t={first})"
        )
    observed = ~np.isnan(values)
    if not observed.any():
        if not bad.any():
            tally.fail("series_empty", row, None, 0, "no values")
        return None
    last = int(np.flatnonzero(observed)[-1])
    first_seen = int(np.flatnonzero(observed)[0])
    tally.checked("series_gap")
    inside = ~observed[first_seen : last + 1] & ~bad[first_seen : last + 1]
    if inside.any():
        start, length = max(_runs(inside), key=lambda r: r[1])
        tally.fail(
            "series_gap",
            row,
            "value",
            int(inside.sum()),
            f"{int(inside.sum())} missing sample(s) inside the series (longest run: {length} from "
            f"t={start + first_seen})",
        )
    tally.checked("series_constant")
    same = np.zeros(len(values), dtype=bool)
    same[1:] = (values[1:] == values[:-1]) & observed[1:] & observed[:-1]
    runs = _runs(same)
    if runs:
        start, length = max(runs, key=lambda r: r[1])
        if length + 1 >= tally.config.series.constant_run:
            tally.fail(
                "series_constant",
                row,
                "value",
                float(values[start]),
                f"flat line: {values[start]:g} for {length + 1} samples from t={start - 1}",
            )
    return last + 1


def check_regular(parts: Sequence[RegularSeries], config: QualityConfig | None = None) -> ItemReport:
    """Run the series, label and split checks over regularly sampled series (UCR style).

    Parameters
    ----------
    parts
        One entry per file (split); rows are ``split/index`` when there are several, else
        the 0-based row.
    config
        The configured catalogue (``series`` limits, ``labels``).

    Returns
    -------
    ItemReport
        ``row`` of a finding is the series row, ``column`` ``"value"`` or ``"label"``.
    """
    config = config or QualityConfig()
    tally = Tally(config, ("series", "labels"))
    lengths: dict[int | str, int] = {}
    items: list[LabelledItem] = []
    for part in parts:
        for index in range(len(part.values)):
            row: int | str = f"{part.split}/{index}" if len(parts) > 1 else index
            length = _regular_row(tally, row, part.values[index], part.bad[index])
            if length is not None:
                lengths[row] = length
            label = None if part.labels is None else part.labels[index]
            key = digest(part.values[index]) if length is not None and not part.bad[index].any() else None
            items.append(LabelledItem(part.split, row, label, key))
    _lengths(tally, lengths, "observed samples", log=False)
    labelled = any(p.labels is not None for p in parts)
    counts = check_labels_and_splits(tally, items, labelled=labelled, numeric_labels=False)
    width = max((p.values.shape[1] for p in parts), default=0)
    summary = {
        "splits": {p.split or "all": len(p.values) for p in parts},
        "length": width,
        "labels": counts,
    }
    # Regular series carry no times and no units: the checks of irregular stays do not apply.
    irregular_only = ("series_sentinel", "series_range", "series_timestamps", "series_duplicate_times")
    return tally.report("series", len(items), summary, skip=irregular_only)
