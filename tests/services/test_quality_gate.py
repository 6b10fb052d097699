"""``train --quality``: ``strict`` refuses implausible data, writes nothing; ``warn`` trains and records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medfusion.cli.main import app
from medfusion.config import override_settings
from medfusion.errors import DataError, InvalidRequestError
from medfusion.services.quality import quality_gate
from medfusion.services.training import train_model

runner = CliRunner()


def _table(tmp_path: Path, *, bad: bool) -> Path:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"age": rng.integers(20, 90, 120), "hr": rng.normal(80, 12, 120)})
    frame["target"] = ((frame["hr"] - 80) / 12 + rng.logistic(size=120) > 0).astype(int)
    if bad:
        frame.loc[[7, 40], "age"] = 230  # implausible: an error-severity finding
    path = tmp_path / ("bad.csv" if bad else "good.csv")
    frame.to_csv(path, index=False)
    return path


def test_strict_refuses_and_writes_nothing(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    with pytest.raises(DataError, match=r"plausible_range on age: 2 \(rows 7, 40\)"):
        train_model(
            model="logistic", data=_table(tmp_path, bad=True), quality="strict", registry_dir=registry
        )
    assert not registry.exists() or not any(registry.rglob("*"))
    good = train_model(
        model="logistic",
        data=_table(tmp_path, bad=False),
        quality="strict",
        n_bootstrap=20,
        registry_dir=registry,
    )
    assert good.quality_findings == []


def test_warn_trains_and_records_findings_without_values(tmp_path: Path) -> None:
    registry = tmp_path / "models"
    result = train_model(
        model="logistic",
        data=_table(tmp_path, bad=True),
        quality="warn",
        n_bootstrap=20,
        registry_dir=registry,
    )
    assert result.record is not None
    [finding] = result.quality_findings
    assert (finding["check"], finding["column"], finding["count"]) == ("plausible_range", "age", 2)
    assert finding["examples"] == [{"row": 7}, {"row": 40}]  # no cell values in the registry
    metadata = json.loads((result.record.path / "metadata.json").read_text())
    assert metadata["quality"]["mode"] == "warn"
    card = (result.record.path / "model_card.md").read_text()
    assert "## Data quality" in card and "plausible_range" in card


def test_gate_modes() -> None:
    frame = pd.DataFrame({"age": [30, 200]})
    assert quality_gate(frame, mode="off") is None
    report = quality_gate(frame, mode="warn")
    assert report is not None and not report.passed
    with pytest.raises(InvalidRequestError, match="--quality must be one of off, warn, strict"):
        quality_gate(frame, mode="loud")


def test_cli_strict_exit_code_and_warn_message(tmp_path: Path) -> None:
    data = _table(tmp_path, bad=True)
    with override_settings(models_dir=tmp_path / "models"):
        refused = runner.invoke(app, ["train", "logistic", "--data", str(data), "--quality", "strict"])
        assert refused.exit_code == 1
        assert "quality gate (strict)" in refused.output and "Traceback" not in refused.output
        assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*"))
        warned = runner.invoke(app, ["train", "logistic", "--data", str(data), "--json"])
        assert warned.exit_code == 0, warned.output
        assert "quality error: plausible_range on age: 2" in warned.stderr
        assert json.loads(warned.stdout.strip().splitlines()[-1])["model"] == "logistic"
