"""The catalogue and its config files: overrides take effect, mistakes are named."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medfusion.errors import InvalidRequestError
from medfusion.quality import CATALOGUE, CATALOGUE_VERSION, check_table, load_config


def test_catalogue_is_named_and_versioned() -> None:
    assert CATALOGUE_VERSION == "2026.12"
    assert {c.category for c in CATALOGUE.values()} == {"conformance", "completeness", "plausibility"}
    assert all(c.severity in {"error", "warning"} for c in CATALOGUE.values())


def test_toml_override_changes_a_threshold(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, None, None, 4.0], "b": [1, 2, 3, 4]})
    assert [f.column for f in check_table(frame).findings] == ["a"]  # 50 % missing > 20 %
    config = tmp_path / "q.toml"
    config.write_text("[checks.missing_rate]\nthreshold = 0.6\nseverity = 'error'\n")
    loaded = load_config(config)
    assert loaded.checks["missing_rate"].threshold == 0.6
    assert check_table(frame, loaded).findings == ()
    config.write_text("[checks.missing_rate]\nthreshold = 0.4\nseverity = 'error'\n")
    report = check_table(frame, load_config(config))
    assert not report.passed and report.errors[0].check == "missing_rate"


def test_json_config_maps_columns_ranges_and_required(tmp_path: Path) -> None:
    config = tmp_path / "q.json"
    config.write_text(
        json.dumps(
            {
                "columns": {"gluc": {"variable": "glucose", "unit": "mmol/L"}, "hr": False},
                "ranges": {"age": {"high": 18}},
                "required_columns": ["id"],
                "checks": {"duplicate_rows": {"enabled": False}},
            }
        )
    )
    loaded = load_config(config)
    frame = pd.DataFrame({"gluc": [5.5, 400.0], "age": [10, 30], "hr": [900, 80]})
    found = {(f.check, f.column) for f in check_table(frame, loaded).findings}
    assert found == {("plausible_range", "gluc"), ("plausible_range", "age"), ("required_columns", "id")}
    assert "duplicate_rows" not in {c.name for c in check_table(frame, loaded).checks}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[checks.nope]\nthreshold = 1\n", "unknown check 'nope'"),
        ("[checks.missing_rate]\nthreshold = 2\n", "must be in \\[0, 1\\]"),
        ("[checks.missing_rate]\nseverity = 'fatal'\n", "'error' or 'warning'"),
        ("[checks.missing_rate]\nlimit = 1\n", "may set only"),
        ("colums = 1\n", "unknown keys"),
        ("[columns]\nx = 'pulse'\n", "unknown variable 'pulse'"),
        ("[ranges.ph]\nlow = 9\n", "low 9.0 is above high 8.0"),
        ("this is = not toml [", "cannot be parsed"),
    ],
)
def test_bad_configs_are_named(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "q.toml"
    config.write_text(text)
    with pytest.raises(InvalidRequestError, match=message):
        load_config(config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
