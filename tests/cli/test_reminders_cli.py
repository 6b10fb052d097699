"""``medfusion reminders run --once`` and ``reminders list``: a real database file and SMTP server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from medfusion.cli.main import app
from medfusion.config import override_settings
from medfusion.services.database import open_repository
from tests.services.smtp_server import free_port, smtp_server
from tests.services.test_reminders import _book, _clinic

runner = CliRunner()


def test_run_once_sends_due_reminders_and_list_shows_failures(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    repo = open_repository(url)
    _clinic(repo, 2)
    _book(repo, "p0", timedelta(hours=1))
    repo.close()
    with smtp_server() as (received, port), override_settings(notifier="smtp", smtp_port=port):
        result = runner.invoke(app, ["reminders", "run", "--once", "--db", url])
        assert result.exit_code == 0, result.output
        assert [r for r, _, _ in received.snapshot()] == ["p0@example.org"]
    assert "sent" in result.output
    repo = open_repository(url)
    _book(repo, "p1", timedelta(hours=1, minutes=30))
    repo.close()
    with override_settings(notifier="smtp", smtp_port=free_port(), outbox_max_attempts=1):
        assert runner.invoke(app, ["reminders", "run", "--once", "--db", url]).exit_code == 0
    listed = runner.invoke(
        app, ["reminders", "list", "--status", "failed", "--db", url], env={"COLUMNS": "250"}
    )
    assert listed.exit_code == 0 and "p1@example.org" in listed.output and "failed" in listed.output
    bad = runner.invoke(app, ["reminders", "list", "--status", "lost", "--db", url])
    assert bad.exit_code == 1 and "status must be one of" in bad.output
