"""``medfusion export --deidentify`` on a real SQLite file: output, report, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from medfusion.cli.main import app
from medfusion.config import override_settings
from medfusion.synth import write_bundles

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    write_bundles(tmp_path / "synth", 12, 5)
    result = runner.invoke(app, ["import", str(tmp_path / "synth"), "--db", url])
    assert result.exit_code == 0, result.output
    return url


def test_deidentified_export_writes_ndjson_and_report(db: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with override_settings(deid_key=SecretStr("cli-test-key-0123456789")):
        result = runner.invoke(app, ["export", "--deidentify", "--out", str(out), "--k", "2", "--db", db])
    assert result.exit_code == 0, result.output
    assert "k achieved" in result.output and "suppressed" in result.output and "resources/s" in result.output
    report = json.loads((out / "deidentification-report.json").read_text())
    assert report["k_anonymity"]["k_requested"] == 2
    assert report["k_anonymity"]["records"] == 12
    kept = report["k_anonymity"]["kept"]
    patients = (out / "Patient.ndjson").read_text().splitlines() if kept else []
    assert len(patients) == kept
    for line in patients:
        patient = json.loads(line)
        assert "name" not in patient and "telecom" not in patient and len(patient["birthDate"]) == 4


def test_date_shift_and_type_filter(db: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with override_settings(deid_key=SecretStr("cli-test-key-0123456789")):
        result = runner.invoke(
            app,
            [
                "export",
                "--deidentify",
                "--date-shift",
                "--k",
                "1",
                "--type",
                "Patient",
                "--out",
                str(out),
                "--db",
                db,
            ],
        )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["Patient.ndjson", "deidentification-report.json"]
    birth_dates = [
        json.loads(line)["birthDate"] for line in (out / "Patient.ndjson").read_text().splitlines()
    ]
    assert len(birth_dates) == 12 and all(len(b) == 10 for b in birth_dates)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--deidentify", "--k", "0"], "k must be a whole number of at least 1, got 0"),
        (["--deidentify", "--k", "-3"], "got -3"),
        (["--deidentify", "--type", "Bogus"], "'Bogus' is not a FHIR R4 resource type"),
        (["--k", "3"], "--k and --date-shift need --deidentify"),
        (["--deidentify", "--since", "2024-01-01T00:00:00Z"], "--since cannot be combined with --deidentify"),
    ],
)
def test_bad_input_gives_one_line_error_and_writes_nothing(
    db: str, tmp_path: Path, arguments: list[str], message: str
) -> None:
    out = tmp_path / "out"
    with override_settings(deid_key=SecretStr("cli-test-key-0123456789")):
        result = runner.invoke(app, ["export", "--out", str(out), "--db", db, *arguments])
    assert result.exit_code == 1
    assert message in result.output
    assert not out.exists() or not any(out.iterdir())
