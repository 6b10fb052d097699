"""``medfusion schedule set-availability``: a real database file, exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

from medfusion.cli.main import app
from medfusion.services import records
from medfusion.services.database import open_repository

runner = CliRunner()
RULES = {
    "timezone": "Europe/Berlin",
    "slotMinutes": 30,
    "weekly": {"monday": [{"start": "09:00", "end": "10:00"}]},
}


def test_set_availability(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    repo = open_repository(url)
    schedule = {"resourceType": "Schedule", "id": "s1", "actor": [{"reference": "Practitioner/p"}]}
    records.update(repo, resource_type="Schedule", id="s1", body=orjson.dumps(schedule))
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    result = runner.invoke(app, ["schedule", "set-availability", "s1", "--rules", str(rules), "--db", url])
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    assert repo.counts()["Slot"] >= 2 * 12  # two Monday slots a week for about 13 weeks
    repo.close()

    result = runner.invoke(app, ["schedule", "set-availability", "nope", "--rules", str(rules), "--db", url])
    assert result.exit_code == 1 and "Schedule/nope is not known" in result.output
    rules.write_text(json.dumps({**RULES, "slotMinutes": 0}))
    result = runner.invoke(app, ["schedule", "set-availability", "s1", "--rules", str(rules), "--db", url])
    assert result.exit_code == 1 and "slotMinutes" in result.output
