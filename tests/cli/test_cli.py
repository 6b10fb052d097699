"""The command line: real database files, real exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medfusion.cli.main import app
from medfusion.services.database import open_repository

runner = CliRunner()


def test_db_upgrade_import_export(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = runner.invoke(app, ["db", "upgrade", "--db", url])
    assert result.exit_code == 0, result.output
    assert "revision" in result.output

    source = tmp_path / "in"
    source.mkdir()
    lines = [{"resourceType": "Patient", "id": f"p{i}", "gender": "female"} for i in range(4)]
    (source / "patients.ndjson").write_text("\n".join(json.dumps(line) for line in lines))
    result = runner.invoke(app, ["import", str(source), "--db", url])
    assert result.exit_code == 0, result.output
    assert "Patient" in result.output and "resources/s" in result.output
    assert open_repository(url).counts() == {"Patient": 4}

    out = tmp_path / "out"
    result = runner.invoke(app, ["export", "--out", str(out), "--type", "Patient", "--db", url])
    assert result.exit_code == 0, result.output
    assert len((out / "Patient.ndjson").read_text().splitlines()) == 4


def test_import_reports_problems_and_strict_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    (tmp_path / "bad.json").write_text("{oops")
    result = runner.invoke(app, ["import", str(tmp_path / "bad.json"), "--db", url])
    assert result.exit_code == 2
    assert "bad.json" in result.output
    result = runner.invoke(app, ["import", str(tmp_path / "bad.json"), "--db", url, "--strict"])
    assert result.exit_code == 1
    assert "error:" in result.output


def test_bad_arguments_give_one_line_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = runner.invoke(app, ["import", str(tmp_path / "missing.json"), "--db", url])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["export", "--out", str(tmp_path / "o"), "--since", "yesterday", "--db", url])
    assert result.exit_code == 1
    assert "--since" in result.output
    result = runner.invoke(app, ["export", "--out", str(tmp_path / "o"), "--type", "Nope", "--db", url])
    assert result.exit_code == 1
    assert not (tmp_path / "o" / "Nope.ndjson").exists()
