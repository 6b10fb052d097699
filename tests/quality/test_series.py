"""Series checks: each flags a crafted bad stay or series and passes a good one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medfusion.quality import RegularSeries, Stay, check_regular, check_stays, load_config

DESCRIPTORS = frozenset({"Age", "Gender", "Height", "ICUType", "Weight"})
Observations = list[tuple[float, str, float]]


def _stay(seed: int) -> Observations:
    """A plausible 48-hour stay: descriptors at 00:00, hourly HR / Temp / MAP, labs every 8 h."""
    rng = np.random.default_rng(seed)
    rows: Observations = [
        (0.0, "Age", 60.0 + seed % 20),
        (0.0, "Gender", float(seed % 2)),
        (0.0, "Height", 170.0),
    ]
    for hour in range(48):
        rows.append((hour + 0.25, "HR", float(rng.integers(60, 110))))
        rows.append((hour + 0.25, "MAP", float(rng.integers(60, 95))))
        rows.append((hour + 0.5, "Temp", round(float(rng.uniform(36.0, 38.5)), 1)))
        if hour % 8 == 0:
            rows.append((hour + 0.75, "pH", round(float(rng.uniform(7.30, 7.45)), 2)))
            rows.append((hour + 0.75, "GCS", 15.0))
    return rows


def _stays() -> list[Stay]:
    return [Stay(f"s{k}", _stay(k)) for k in range(30)]


def _edit(stay_id: str, change: Callable[[Observations], Observations]) -> Callable[[list[Stay]], list[Stay]]:
    def plant(stays: list[Stay]) -> list[Stay]:
        return [Stay(s.id, change(list(s.observations))) if s.id == stay_id else s for s in stays]

    return plant


def _set(index: int, value: float) -> Callable[[Observations], Observations]:
    def change(rows: Observations) -> Observations:
        hours, name, _ = rows[index]
        rows[index] = (hours, name, value)
        return rows

    return change


def _where(rows: Observations, name: str, nth: int = 0) -> int:
    return [i for i, r in enumerate(rows) if r[1] == name][nth]


def test_clean_stays_pass_every_check() -> None:
    report = check_stays(_stays(), descriptors=DESCRIPTORS)
    assert report.passed and report.findings == (), report.findings[:3]
    assert {c.name for c in report.checks} == {
        "series_format", "series_empty", "series_gap", "series_sentinel", "series_range",
        "series_timestamps", "series_duplicate_times", "series_constant", "series_length",
    }  # fmt: skip
    assert all(c.checked > 0 for c in report.checks)
    assert report.summary["stays"] == 30


ROWS = _stay(3)
CASES: list[tuple[str, Callable[[list[Stay]], list[Stay]], str, str | None]] = [
    ("malformed file", lambda st: [Stay("s3", (), "bad header"), *st[:3], *st[4:]], "series_format", None),
    ("only descriptors", _edit("s3", lambda r: r[:3]), "series_empty", None),
    ("missing height as -1", _edit("s3", _set(2, -1.0)), "series_sentinel", "Height"),
    ("gender -1", _edit("s3", _set(1, -1.0)), "series_sentinel", "Gender"),
    ("pH 734", _edit("s3", _set(_where(ROWS, "pH"), 734.0)), "series_range", "pH"),
    ("temperature 0", _edit("s3", _set(_where(ROWS, "Temp", 5), 0.0)), "series_range", "Temp"),
    ("HR 0", _edit("s3", _set(_where(ROWS, "HR", 7), 0.0)), "series_range", "HR"),
    (
        "time goes backwards",
        _edit("s3", lambda r: [*r[:20], (1.0, "HR", 80.0), *r[20:]]),
        "series_timestamps",
        "HR",
    ),
    ("negative time", _edit("s3", lambda r: [*r, (-2.0, "HR", 80.0)]), "series_timestamps", "HR"),
    (
        "same time twice",
        _edit("s3", lambda r: [*r, (r[_where(r, "MAP", 4)][0], "MAP", 120.0)]),
        "series_duplicate_times",
        "MAP",
    ),
    (
        "a 20-hour hole",
        _edit("s3", lambda r: [x for x in r if not 10 <= x[0] < 30]),
        "series_gap",
        None,
    ),
    (
        "flat heart rate",
        _edit("s3", lambda r: [(h, n, 72.0 if n == "HR" and h < 30 else v) for h, n, v in r]),
        "series_constant",
        "HR",
    ),
    ("a 1-hour stay", _edit("s3", lambda r: [x for x in r if x[0] < 1]), "series_length", None),
]


@pytest.mark.parametrize(("what", "plant", "check", "column"), CASES, ids=[c[0] for c in CASES])
def test_each_stay_check_flags_a_planted_defect(
    what: str, plant: Callable[[list[Stay]], list[Stay]], check: str, column: str | None
) -> None:
    report = check_stays(plant(_stays()), descriptors=DESCRIPTORS)
    hits = [(f.row, f.column) for f in report.findings if f.check == check]
    assert hits == [("s3", column)], (what, report.findings[:5])
    assert not any(c.passed for c in report.checks if c.name == check)


def test_fahrenheit_variable_from_the_config_is_converted(tmp_path: Path) -> None:
    extra = [(5.0, "TempF", 98.6), (6.0, "TempF", 120.0)]
    stays = _edit("s3", lambda r: sorted([*r, *extra], key=lambda x: x[0]))(_stays())
    config = tmp_path / "q.toml"
    config.write_text("[columns]\nTempF = { variable = 'temperature', unit = '[degF]' }\n")
    report = check_stays(stays, load_config(config), descriptors=DESCRIPTORS)
    assert [(f.check, f.value) for f in report.findings] == [("series_range", 120.0)]


def test_series_limits_are_overridable(tmp_path: Path) -> None:
    stays = _edit("s3", lambda r: [x for x in r if not 10 <= x[0] < 16])(
        _stays()
    )  # 09:30 to 16:15, a 6.75-hour hole
    assert check_stays(stays, descriptors=DESCRIPTORS).findings == ()
    config = tmp_path / "q.toml"
    config.write_text("[series]\nmax_gap_hours = 4\n")
    report = check_stays(stays, load_config(config), descriptors=DESCRIPTORS)
    assert [(f.check, f.row, f.value) for f in report.findings] == [("series_gap", "s3", 6.75)]


# -- regular series (UCR style) -------------------------------------------------------------


def _waves(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, 96)
    return np.sin(t[None, :] * rng.uniform(1, 3, size=(n, 1))) + rng.normal(0, 0.1, size=(n, 96))


def _parts() -> list[RegularSeries]:
    return [
        RegularSeries(
            "train", _waves(30, 0), np.zeros((30, 96), bool), [str(k % 2 * 2 - 1) for k in range(30)]
        ),
        RegularSeries(
            "test", _waves(20, 1), np.zeros((20, 96), bool), [str(k % 2 * 2 - 1) for k in range(20)]
        ),
    ]


def test_clean_regular_series_pass() -> None:
    report = check_regular(_parts())
    assert report.passed and report.findings == ()
    assert "series_range" not in {c.name for c in report.checks}  # no units, no times
    assert report.summary["labels"] == {"train": {"-1": 15, "1": 15}, "test": {"-1": 10, "1": 10}}


def _regular(
    change: Callable[[np.ndarray, np.ndarray, list[object]], None], split: int = 0
) -> list[RegularSeries]:
    parts = _parts()
    part = parts[split]
    labels = list(part.labels or [])
    change(part.values, part.bad, labels)
    parts[split] = RegularSeries(part.split, part.values, part.bad, labels)
    return parts


def _text_cell(values: np.ndarray, bad: np.ndarray, labels: list[object]) -> None:
    values[4, 10] = np.nan
    bad[4, 10] = True


def _empty(values: np.ndarray, bad: np.ndarray, labels: list[object]) -> None:
    values[4] = np.nan


def _hole(values: np.ndarray, bad: np.ndarray, labels: list[object]) -> None:
    values[4, 30:35] = np.nan


def _flat(values: np.ndarray, bad: np.ndarray, labels: list[object]) -> None:
    values[4, 40:65] = 0.5


def _short(values: np.ndarray, bad: np.ndarray, labels: list[object]) -> None:
    values[4, 60:] = np.nan


def _unlabelled(values: np.ndarray, bad: np.ndarray, labels: list[object]) -> None:
    labels[4] = None


def _copy(values: np.ndarray, bad: np.ndarray, labels: list[object]) -> None:
    values[4] = values[0]


REGULAR = [
    ("text cell", _text_cell, "series_format"),
    ("no values", _empty, "series_empty"),
    ("NaN run inside", _hole, "series_gap"),
    ("flat line", _flat, "series_constant"),
    ("shorter series", _short, "series_length"),
    ("no label", _unlabelled, "label_missing"),
    ("repeated series", _copy, "duplicate_items"),
]


@pytest.mark.parametrize(("what", "change", "check"), REGULAR, ids=[c[0] for c in REGULAR])
def test_each_regular_check_flags_a_planted_defect(
    what: str, change: Callable[[np.ndarray, np.ndarray, list[object]], None], check: str
) -> None:
    report = check_regular(_regular(change))
    hits = [f.row for f in report.findings if f.check == check]
    assert hits == ["train/4"], (what, report.findings[:4])


def test_a_train_series_in_test_is_leakage() -> None:
    parts = _parts()
    parts[1].values[7] = parts[0].values[3]
    report = check_regular(parts)
    assert [(f.check, f.row, f.value) for f in report.findings] == [("split_leakage", "test/7", "train/3")]
    assert not report.passed


def test_a_lone_file_has_integer_rows() -> None:
    part = _parts()[0]
    part.values[2, 50:] = np.nan
    report = check_regular([RegularSeries("", part.values, part.bad, part.labels)])
    assert [(f.check, f.row, f.value) for f in report.findings] == [("series_length", 2, 50)]
