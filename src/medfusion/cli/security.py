"""``medfusion user``, ``medfusion client`` and ``medfusion audit`` commands."""

from __future__ import annotations

import sys
from contextlib import closing

import typer
from rich.console import Console
from rich.table import Table

from medfusion.config import get_settings
from medfusion.errors import InvalidRequestError

__all__ = [
    "audit_app",
    "audit_verify",
    "client_add",
    "client_app",
    "user_add",
    "user_app",
    "user_disable",
    "user_list",
]

user_app = typer.Typer(help="Users of the API (admin, clinician, analyst, patient).", no_args_is_help=True)
client_app = typer.Typer(help="Backend clients (OAuth2 client credentials).", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

_DB = typer.Option(None, "--db", help="Database URL (default: settings).")


def _url(db: str | None) -> str:
    return db or get_settings().database_url


def user_add(
    name: str = typer.Argument(..., help="User name."),
    role: str = typer.Option(..., "--role", help="admin, clinician, analyst or patient."),
    patient: str | None = typer.Option(None, "--patient", help="The Patient id of a patient user."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    db: str | None = _DB,
) -> None:
    """Add a user; the password is read from standard input, never from the command line."""
    from medfusion.services.database import open_repository, open_security
    from medfusion.services.security import add_user

    if not password_stdin:
        raise InvalidRequestError("pass --password-stdin and send the password on standard input")
    password = sys.stdin.readline().rstrip("\r\n")
    url = _url(db)
    repo = open_repository(url) if role == "patient" else None
    user = add_user(
        open_security(url), name=name, role=role, password=password, patient_id=patient, repo=repo
    )
    console.print(f"user [bold]{user.name}[/bold] added with role {user.role}")


def user_list(db: str | None = _DB) -> None:
    """List users (never their password hashes)."""
    from medfusion.services.database import open_security
    from medfusion.services.security import list_users

    table = Table(title="users")
    for column in ("name", "role", "patient", "status", "created"):
        table.add_column(column)
    with closing(open_security(_url(db))) as store:
        users = list_users(store)
    for user in users:
        status = "disabled" if user.disabled else "active"
        table.add_row(user.name, user.role, user.patient_id or "", status, f"{user.created:%Y-%m-%d %H:%M}")
    console.print(table)


def user_disable(name: str = typer.Argument(..., help="User name."), db: str | None = _DB) -> None:
    """Disable a user: their tokens stop working at once."""
    from medfusion.services.database import open_security
    from medfusion.services.security import disable_user

    with closing(open_security(_url(db))) as store:
        disable_user(store, name=name)
    console.print(f"user [bold]{name}[/bold] disabled")


def client_add(
    name: str = typer.Argument(..., help="Client id."),
    scope: str = typer.Option(..., "--scope", help="Space-separated system/ scopes, e.g. 'system/*.rs'."),
    db: str | None = _DB,
) -> None:
    """Register a backend client and print its secret once."""
    from medfusion.services.database import open_security
    from medfusion.services.security import add_client

    with closing(open_security(_url(db))) as store:
        secret = add_client(store, name=name, scope=scope)
    console.print(f"client [bold]{name}[/bold] added; its secret (shown once):")
    print(secret)


def audit_verify(db: str | None = _DB) -> None:
    """Check the audit chain and its keyed checkpoint; exit 1 naming the first bad row."""
    from medfusion.services.audit import verify_trail
    from medfusion.services.database import open_security
    from medfusion.services.security import audit_key

    with closing(open_security(_url(db))) as store:
        report = verify_trail(store, key=audit_key(), checkpoint=get_settings().audit_checkpoint_file)
    if report.ok:
        console.print(f"audit trail intact: {report.rows:,} rows verified")
        return
    where = f" (first bad row: {report.bad_row})" if report.bad_row is not None else ""
    err_console.print(f"[red]audit trail broken:[/red] {report.problem}{where}", highlight=False)
    raise typer.Exit(1)
