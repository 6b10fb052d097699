"""``medfusion``: serve, import, export, synth, demo and database commands.

Commands are thin: they parse arguments, call one service and render with rich. Any
:class:`~medfusion.errors.MedfusionError` becomes a one-line message and exit code 1.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from medfusion.cli._progress import err_console, progress_bar
from medfusion.config import get_settings, override_settings
from medfusion.errors import InvalidRequestError, MedfusionError

__all__ = ["app"]

app = typer.Typer(help="medfusion: FHIR records and clinical AI in one place.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(help="Encryption keys of the record store.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

console = Console()
F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Turn medfusion errors into a one-line message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MedfusionError as error:
            err_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _database(db: str | None) -> str:
    return db or get_settings().database_url


@db_app.command("upgrade")
@friendly
def db_upgrade(
    db: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
) -> None:
    """Apply the schema migrations."""
    from medfusion.services.database import upgrade_database

    revision = upgrade_database(_database(db))
    console.print(f"database at revision [bold]{revision}[/bold]")


@keys_app.command("rotate")
@friendly
def keys_rotate(
    db: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
    retire: bool = typer.Option(False, "--retire", help="Drop the old keys once no row needs them."),
) -> None:
    """New data key; re-seal every stored body under it while reads go on."""
    from medfusion.services.keys import rotate_keys

    with progress_bar() as progress:
        task = progress.add_task("re-sealing", total=None)
        report = rotate_keys(
            _database(db),
            retire=retire,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(
        f"active key [bold]{report.active_key}[/bold]: {report.resealed:,} bodies re-sealed, "
        f"{report.sealed_plain:,} plain bodies sealed ({report.reindexed:,} re-indexed), "
        f"{report.retired} old keys retired, {report.seconds:.1f} s"
    )


@app.command()
@friendly
def serve(
    host: str = typer.Option(None, "--host", help="Interface to bind (default 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port (default 8000)."),
    db: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
    workers: int = typer.Option(None, "--workers", min=1, help="Server processes (default 1)."),
) -> None:
    """Serve the FHIR API (migrating the database first)."""
    settings = get_settings()
    _serve(host or settings.host, port or settings.port, _database(db), workers or settings.workers)


def _serve(host: str, port: int, url: str, workers: int = 1) -> None:
    import uvicorn

    from medfusion.api import create_app
    from medfusion.services.database import open_repository, upgrade_database

    with override_settings(database_url=url):
        base = f"http://{host}:{port}"
        console.print(f"medfusion serving at [bold]{base}[/bold]")
        console.print(f"  FHIR API            {base}/fhir")
        console.print(f"  CapabilityStatement {base}/fhir/metadata")
        console.print(f"  Patients            {base}/fhir/Patient")
        console.print(f"  API docs            {base}/docs")
        console.print(f"  Health              {base}/health")
        if workers > 1:
            upgrade_database(url)  # once, before the workers start
            # Worker processes build their own app from the settings they read at start.
            os.environ["MEDFUSION_DATABASE_URL"] = url
            uvicorn.run(
                "medfusion.api.asgi:create",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="warning",
                access_log=False,
            )
            return
        application = create_app(open_repository(url), reminders=get_settings().reminders_in_serve)
        uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


@app.command("import")
@friendly
def import_(
    paths: list[Path] = typer.Argument(..., help="Bundle JSON / NDJSON files or folders."),
    db: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first error."),
    quality: str = typer.Option(
        "off", "--quality", help="Quality gate: off, warn (tag failing resources) or strict (reject them)."
    ),
    quality_config: Path | None = typer.Option(
        None, "--quality-config", help="TOML or JSON file overriding the quality catalogue."
    ),
) -> None:
    """Import FHIR Bundles and NDJSON into the store."""
    from medfusion.services.database import open_repository
    from medfusion.services.importer import find_files, import_paths

    repo = open_repository(_database(db))
    files = find_files(paths)
    with progress_bar() as progress:
        task = progress.add_task("importing", total=len(files))
        report = import_paths(
            repo,
            paths=files,
            strict=strict,
            progress=lambda _p: progress.advance(task),
            quality=quality,
            quality_config=quality_config,
        )
    for note in report.tagged:
        err_console.print(f"[yellow]tagged[/yellow] {note}", highlight=False, soft_wrap=True)
    for problem in report.problems:
        err_console.print(f"[yellow]skipped[/yellow] {problem}", highlight=False, soft_wrap=True)
    table = Table(title="import summary")
    table.add_column("resource type")
    table.add_column("resources", justify="right")
    for resource_type, count in sorted(report.counts.items()):
        table.add_row(resource_type, f"{count:,}")
    table.add_section()
    table.add_row("total", f"{report.resources:,}")
    table.add_row("files", f"{report.files:,}")
    table.add_row("seconds", f"{report.seconds:.2f}")
    table.add_row("resources/s", f"{report.rate:,.0f}")
    table.add_row("problems", f"{len(report.problems):,}")
    if quality != "off":
        table.add_row("quality-tagged", f"{len(report.tagged):,}")
    console.print(table)
    if report.problems:
        raise typer.Exit(2)


@app.command()
@friendly
def export(
    out: Path = typer.Option(..., "--out", help="Folder for the NDJSON files."),
    types: list[str] = typer.Option(None, "--type", help="Resource type to export (repeatable)."),
    since: str | None = typer.Option(None, "--since", help="Only resources changed since this instant."),
    db: str | None = typer.Option(None, "--db", help="Database URL (default: settings)."),
    deidentify: bool = typer.Option(
        False, "--deidentify", help="HIPAA Safe Harbor de-identification with a k-anonymity report."
    ),
    k: int | None = typer.Option(None, "--k", help="With --deidentify: smallest class kept (default 5)."),
    date_shift: bool = typer.Option(
        False, "--date-shift", help="With --deidentify: shift dates per patient instead of keeping the year."
    ),
) -> None:
    """Export current resources as Bulk Data NDJSON, one file per type (audited)."""
    from medfusion.services.audit import audit_command

    url = _database(db)
    interaction = "export-deidentified" if deidentify else "export"
    try:
        _export(out, types or None, since, url, deidentify, k, date_shift)
    except BaseException as error:
        # Refused and failed exports are audited too; if even that fails (the database is
        # unreachable), the export's own error is the one to report.
        with contextlib.suppress(Exception):
            status = 400 if isinstance(error, MedfusionError) else 500
            audit_command(url, interaction=interaction, entities=types or ["*"], status=status)
        raise
    audit_command(url, interaction=interaction, entities=types or ["*"], status=200)


def _export(
    out: Path, types: list[str] | None, since: str | None, url: str, deidentify: bool, k: int | None,
    date_shift: bool,
) -> None:  # fmt: skip
    from medfusion.services.database import open_repository
    from medfusion.services.exporter import export_ndjson, parse_since

    if deidentify:
        if since is not None:
            raise InvalidRequestError("--since cannot be combined with --deidentify")
        _export_deidentified(out, types, 5 if k is None else k, date_shift, url)
        return
    if k is not None or date_shift:
        raise InvalidRequestError("--k and --date-shift need --deidentify")
    when = parse_since(since)
    report = export_ndjson(open_repository(url), out=out, types=types, since=when)
    table = Table(title=f"exported to {out}")
    table.add_column("file")
    table.add_column("resources", justify="right")
    for path in report.files:
        table.add_row(path.name, f"{report.counts[path.stem]:,}")
    console.print(table)


def _export_deidentified(out: Path, types: list[str] | None, k: int, date_shift: bool, url: str) -> None:
    from medfusion.services.database import open_repository
    from medfusion.services.deidentify import check_k, export_deidentified, load_deid_key

    check_k(k)
    key = load_deid_key()
    with progress_bar() as progress:
        task = progress.add_task("de-identifying", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = export_deidentified(
            open_repository(url), out=out, key=key, k=k, date_shift=date_shift, types=types, progress=advance
        )
    table = Table(title=f"de-identified export to {out}")
    table.add_column("file")
    table.add_column("resources", justify="right")
    for path in report.files:
        table.add_row(path.name, f"{report.counts[path.stem]:,}" if path.suffix == ".ndjson" else "")
    table.add_section()
    table.add_row("resources written", f"{report.resources:,}")
    table.add_row("resources suppressed", f"{report.dropped:,}")
    table.add_row("resources/s", f"{report.rate:,.0f}")
    console.print(table)
    kanon = report.k_anonymity
    classes = Table(title=f"k-anonymity over age band, gender, ZIP3 (k requested {kanon.k_requested})")
    classes.add_column("age band")
    classes.add_column("gender")
    classes.add_column("ZIP3")
    classes.add_column("patients", justify="right")
    for (band, gender, area), count in sorted(kanon.classes.items()):
        classes.add_row(band, gender, area, str(count))
    console.print(classes)
    console.print(
        f"k achieved [bold]{kanon.k_achieved}[/bold]; patients kept {kanon.records - kanon.suppressed:,} "
        f"of {kanon.records:,}, suppressed {kanon.suppressed:,}"
    )


def _register_synth() -> None:
    from medfusion.cli.synth import synth

    app.command("synth")(synth)


def _register_ml() -> None:
    from medfusion.cli import ml

    app.command("train")(friendly(ml.train))
    app.command("predict")(friendly(ml.predict))
    app.command("evaluate")(friendly(ml.evaluate))
    app.command("explain")(friendly(ml.explain))
    ml.models_app.command("list")(friendly(ml.models_list))
    ml.models_app.command("show")(friendly(ml.models_show))
    app.add_typer(ml.models_app, name="models")


def _register_quality() -> None:
    from medfusion.cli.quality import check, quality_app

    quality_app.command("check")(friendly(check))
    app.add_typer(quality_app, name="quality")


def _register_security() -> None:
    from medfusion.cli import security

    security.user_app.command("add")(friendly(security.user_add))
    security.user_app.command("list")(friendly(security.user_list))
    security.user_app.command("disable")(friendly(security.user_disable))
    security.client_app.command("add")(friendly(security.client_add))
    security.audit_app.command("verify")(friendly(security.audit_verify))
    app.add_typer(security.user_app, name="user")
    app.add_typer(security.client_app, name="client")
    app.add_typer(security.audit_app, name="audit")


def _register_schedule() -> None:
    from medfusion.cli.schedule import schedule_app, set_availability

    schedule_app.command("set-availability")(friendly(set_availability))
    app.add_typer(schedule_app, name="schedule")


def _register_reminders() -> None:
    from medfusion.cli.reminders import list_outbox, reminders_app, run

    reminders_app.command("run")(friendly(run))
    reminders_app.command("list")(friendly(list_outbox))
    app.add_typer(reminders_app, name="reminders")


@app.command()
@friendly
def demo(
    patients: int = typer.Option(300, "--patients", help="Synthetic patients to generate."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Serve when loaded."),
) -> None:
    """Fresh demo database with synthetic (and Synthea) patients, then serve."""
    from medfusion.services.demo import build_demo

    with progress_bar() as progress:
        task = progress.add_task("loading demo data", total=None)
        url, report = build_demo(
            patients=patients,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(
        f"demo database ready: {report.resources:,} resources from {report.files} files "
        f"in {report.seconds:.1f} s ({report.rate:,.0f}/s)"
    )
    if get_settings().auth_enabled:
        from medfusion.services.demo import demo_admin

        name, password = demo_admin(url)
        console.print(
            f"admin user [bold]{name}[/bold], one-time password [bold]{password}[/bold] "
            "(shown once; get a token with POST /auth/token, grant_type=password)",
            highlight=False,
        )
    if serve_after:
        _serve(host, port, url)


_register_synth()
_register_ml()
_register_quality()
_register_schedule()
_register_reminders()
_register_security()


if __name__ == "__main__":
    app()
