"""The ``synth`` command, registered on a throwaway Typer app."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from medfusion.cli.synth import synth


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("synth")(synth)
    # A second command keeps Typer from collapsing the app into the bare command.
    app.command("noop")(lambda: None)
    return app


def test_synth_writes_files_and_prints_summary(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    result = CliRunner().invoke(_app(), ["synth", "--patients", "5", "--seed", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.json"))) == 5
    assert "Patient" in result.output
    assert "Observation" in result.output
    assert "5 files written" in result.output


def test_zero_patients_fails_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    result = CliRunner().invoke(_app(), ["synth", "--patients", "0", "--out", str(out)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "patients must be between 1 and" in lines[0]
    assert not out.exists()
