"""``medfusion schedule``: set a Schedule's availability from a JSON rules file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from medfusion.config import get_settings
from medfusion.errors import InvalidRequestError
from medfusion.services.parsing import parse_json

__all__ = ["schedule_app", "set_availability"]

schedule_app = typer.Typer(help="Appointment schedules.", no_args_is_help=True)


def set_availability(
    schedule_id: str = typer.Argument(..., help="Id of an existing Schedule."),
    rules: Path = typer.Option(..., "--rules", help="JSON file of availability rules."),
    db: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
) -> None:
    """Store a Schedule's availability rules and regenerate its free Slots for the horizon."""
    from medfusion.services.database import open_repository
    from medfusion.services.scheduling import set_availability as set_rules

    try:
        text = rules.read_bytes()
    except OSError as error:
        raise InvalidRequestError(f"cannot read the rules file {rules}: {error.strerror}") from None
    repo = open_repository(db or get_settings().database_url)
    try:
        report = set_rules(repo, schedule_id=schedule_id, rules=parse_json(text)).to_json()
    finally:
        repo.close()
    table = Table(title=f"availability of {report['schedule']}")
    table.add_column("slots")
    table.add_column("count", justify="right")
    for key in ("created", "unchanged", "removed", "keptNotFree"):
        table.add_row(key, f"{report[key]:,}")
    Console().print(table)
    Console().print(f"horizon {report['horizon']['start']} to {report['horizon']['end']}")
