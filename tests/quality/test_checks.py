"""Each check flags a crafted bad table and passes a good one; planted errors are found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfusion.ml import read_table
from medfusion.quality import QualityConfig, check_table

GOOD = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d"],
        "age": [34, 71, 0, 120],
        "temp": [36.6, 38.2, 35.0, 41.0],
        "hr": [72, 130, 45, 180],
        "ph": [7.40, 7.12, 7.55, 6.9],
        "spo2": [98, 91, 100, 85],
        "sbp": [120, 85, 180, 240],
        "glucose_mmol": [5.5, 12.0, 3.1, 30.0],
        "score": [1.5, 2.5, 0.0, 3.0],
    }
)


def _found(frame: pd.DataFrame, config: QualityConfig | None = None) -> set[tuple[str, str | None]]:
    return {(f.check, f.column) for f in check_table(frame, config).findings}


def test_a_good_table_passes_every_check() -> None:
    report = check_table(GOOD, QualityConfig(required_columns=("id", "age")))
    assert report.passed and report.findings == ()
    assert {c.name for c in report.checks} == {
        "required_columns", "value_type", "missing_rate", "sentinel", "plausible_range", "duplicate_rows"
    }  # fmt: skip


def test_required_columns() -> None:
    report = check_table(GOOD.drop(columns="age"), QualityConfig(required_columns=("id", "AGE")))
    assert [(f.check, f.column, f.severity) for f in report.findings] == [
        ("required_columns", "AGE", "error")
    ]
    assert not report.passed


def test_value_type_flags_text_in_a_numeric_column() -> None:
    bad = pd.concat([GOOD] * 5, ignore_index=True).astype({"score": object, "hr": object})
    bad.loc[2, "score"] = "n.d."  # 1 in 20: a typo in a numeric column
    bad.loc[1, "hr"] = "fast"  # a mapped variable is numeric whatever the share
    report = check_table(bad)
    findings = {f.column: f for f in report.findings if f.check == "value_type"}
    assert set(findings) == {"score", "hr"}
    assert findings["hr"].rows == (1,) and findings["hr"].values == ("fast",)
    assert not report.passed
    assert _found(GOOD.astype({"score": object})) == set()
    # A real text column (the ids) is not a numeric column with typos.
    assert ("value_type", "id") not in _found(bad)


def test_missing_rate_against_the_threshold() -> None:
    bad = GOOD.copy()
    bad.loc[[0, 1], "temp"] = np.nan  # 50 %
    bad.loc[3, "hr"] = np.nan  # 25 % > 20 %
    finding = {f.column: f for f in check_table(bad).findings}
    assert set(finding) == {"temp", "hr"} and finding["temp"].severity == "warning"
    assert finding["temp"].rows == (0, 1)
    assert check_table(bad).passed  # warnings do not fail a run


def test_sentinels_are_told_apart_from_implausible_values() -> None:
    bad = GOOD.copy()
    bad.loc[0, "hr"] = -1
    bad.loc[1, "score"] = -1  # unmapped column whose other values are all >= 0
    found = _found(bad)
    assert found == {("sentinel", "hr"), ("sentinel", "score")}
    signed = pd.DataFrame({"delta": [-3.0, -1.0, 2.0, 4.0]})  # -1 is a real value here
    assert _found(signed) == set()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("temp", 370.0),
        ("temp", 98.6),
        ("hr", 0),
        ("hr", 400),
        ("ph", 74.0),
        ("spo2", 101),
        ("sbp", 30),
        ("age", 130),
        ("glucose_mmol", 250.0),
    ],
)
def test_plausible_range_per_variable(column: str, value: float) -> None:
    bad = GOOD.copy()
    bad.loc[2, column] = value
    report = check_table(bad)
    assert [(f.check, f.column, f.rows) for f in report.findings] == [("plausible_range", column, (2,))]
    assert not report.passed


def test_units_decide_the_range() -> None:
    fahrenheit = pd.DataFrame({"temp_f": [98.6, 101.3, 97.0]})
    assert _found(fahrenheit) == set()
    assert _found(fahrenheit.rename(columns={"temp_f": "temp"})) == {("plausible_range", "temp")}
    glucose = pd.DataFrame({"glucose": [90.0, 250.0, 5.5]})  # 5.5 mg/dL: a mmol/L value in a mg/dL column
    assert _found(glucose) == {("plausible_range", "glucose")}


def test_duplicate_rows() -> None:
    bad = pd.concat([GOOD, GOOD.iloc[[1]]], ignore_index=True)
    [finding] = check_table(bad).findings
    assert (finding.check, finding.column, finding.rows) == ("duplicate_rows", None, (4,))


CLEVELAND = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg"]
CLEVELAND += ["thalach", "exang", "oldpeak", "slope", "ca", "thal", "num"]


def _real_table(data_dir: Path) -> pd.DataFrame:
    path = data_dir / "tabular" / "processed.cleveland.data"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return pd.read_csv(path, header=None, names=CLEVELAND, na_values="?")


def test_planted_errors_in_a_real_table_are_found(data_dir: Path, tmp_path: Path) -> None:
    table = _real_table(data_dir)
    assert check_table(table).passed
    rng = np.random.default_rng(6)
    # Several kinds: too high, too low, negative, unit slips, 'missing' codes and text.
    kinds: dict[str, list[object]] = {
        "age": [150, 212, -4, -1, "sixty"],
        "trestbps": [450, 12, 1400, -1, "high"],
        "chol": [5000, 6.2, 11, -1],
        "thalach": [450, 5, 1500, -1, "?!"],
    }
    rows = rng.choice(len(table), 50, replace=False)
    cells = [(int(r), str(c)) for r, c in zip(rows, rng.choice(list(kinds), 50), strict=True)]
    copy = table.astype(object)
    for row, column in cells:
        copy.loc[row, column] = kinds[column][int(rng.integers(len(kinds[column])))]
    path = tmp_path / "planted.csv"
    copy.to_csv(path, index=False)

    report = check_table(read_table(path))
    flagged = {(row, f.column) for f in report.findings if f.column is not None for row in f.rows}
    planted = set(cells)
    assert len(planted & flagged) >= 48
    assert len(flagged - planted) <= 5
    assert {f.check for f in report.findings} >= {"plausible_range", "sentinel", "value_type"}
