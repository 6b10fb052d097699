"""``medfusion reminders``: run the reminder loop alone, and list what the outbox holds."""

from __future__ import annotations

import signal
import threading

import typer
from rich.console import Console
from rich.table import Table

from medfusion.config import get_settings

__all__ = ["list_outbox", "reminders_app", "run"]

reminders_app = typer.Typer(help="Appointment reminders and notifications.", no_args_is_help=True)


def run(
    once: bool = typer.Option(
        False, "--once", help="One tick (no-shows, waitlist, reminders, sending), then exit."
    ),
    interval: float | None = typer.Option(
        None, "--interval", min=0.01, help="Seconds between ticks (default: settings)."
    ),
    db: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
) -> None:
    """Run the reminder loop until interrupted (Ctrl-C or SIGTERM finish the message in hand)."""
    from medfusion.services.database import open_repository
    from medfusion.services.notifiers import notifier_from_settings
    from medfusion.services.reminders import run_loop

    repo = open_repository(db or get_settings().database_url)
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    console = Console()
    notifier = notifier_from_settings()
    console.print(f"reminder loop on {type(notifier).__name__}" + (" (once)" if once else ""))
    try:
        reports = run_loop(repo, notifier, stop=stop, interval=interval, once=once)
    finally:
        repo.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    totals: dict[str, int] = {}
    for report in reports:
        for key, value in report.to_json().items():
            totals[key] = totals.get(key, 0) + value
    table = Table(title=f"{len(reports)} tick(s)")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in totals.items():
        table.add_row(key, f"{value:,}")
    console.print(table)


def list_outbox(
    status: str | None = typer.Option(None, "--status", help="pending, sending, sent, failed or skipped."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    db: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
) -> None:
    """List outbox messages, newest first (``--status failed``: the sends that need a person)."""
    from medfusion.services.database import open_repository
    from medfusion.services.notifications import list_notifications

    repo = open_repository(db or get_settings().database_url)
    try:
        rows = list_notifications(repo, status=status, limit=limit)
    finally:
        repo.close()
    table = Table(title=f"outbox ({status or 'all'}): {len(rows)}")
    for column in ("id", "kind", "recipient", "status", "attempts", "created", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]), row["kind"], row["recipient"], row["status"], str(row["attempts"]),
            row["createdAt"], row["lastError"] or "",
        )  # fmt: skip
    Console().print(table)
