"""``medfusion quality check``: run the data-quality catalogue over a table or the store.

Thin: parse the options, call :func:`medfusion.services.quality.check_file` (``--data``)
or :func:`~medfusion.services.quality.check_store` (no ``--data``), render a rich summary.
``--json`` prints one JSON object as the last line of stdout. The exit code is 1 when an
error-severity check fails (and 1 for bad input, with a one-line message).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medfusion.config import get_settings

__all__ = ["check", "quality_app"]

console = Console()
err_console = Console(stderr=True)
quality_app = typer.Typer(help="Data-quality checks.", no_args_is_help=True)


def check(
    data: Path | None = typer.Option(
        None, "--data", help="Table to check (CSV or Parquet); without it the record store is checked."
    ),
    db: str | None = typer.Option(None, "--db", help="Database URL of the store (default: settings)."),
    config: Path | None = typer.Option(None, "--config", help="TOML or JSON file overriding the catalogue."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for quality.json / quality.html (default .medfusion/quality/<time>/)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Check a table or the record store: conformance, completeness and plausibility.

    Exits 1 when an error-level check fails.
    """
    if data is None:
        _check_store(db=db, config=config, out=out, as_json=as_json)
        return
    from medfusion.services.quality import check_file

    run = check_file(data=data, config=config, out=out)
    report = run.report
    table = Table(title=f"data quality of {data.name} (catalogue {report.catalogue_version})")
    for name in ("check", "severity", "column", "count", "message"):
        table.add_column(name, justify="right" if name == "count" else "left")
    for finding in report.findings:
        colour = "red" if finding.severity == "error" else "yellow"
        table.add_row(
            finding.check,
            f"[{colour}]{finding.severity}[/{colour}]",
            finding.column or "-",
            f"{finding.count:,}",
            finding.message,
        )
    if not report.findings:
        table.add_row("all checks", "-", "-", "0", "no findings")
    console.print(table)
    verdict = "[green]passed[/green]" if report.passed else "[red]failed[/red]"
    console.print(f"{report.rows:,} rows: {verdict}; reports in {run.out}", highlight=False)
    if as_json:
        # Plain print: rich would wrap or colour the line a machine reads.
        print(json.dumps(report.to_dict(), separators=(",", ":"), allow_nan=False))
    if not report.passed:
        raise typer.Exit(1)


def _check_store(*, db: str | None, config: Path | None, out: Path | None, as_json: bool) -> None:
    from medfusion.services.database import open_repository
    from medfusion.services.quality import check_store

    repo = open_repository(db or get_settings().database_url)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=not sys.stderr.isatty(),
        ) as progress:
            task = progress.add_task("checking resources", total=None)
            run = check_store(
                repo,
                config=config,
                out=out,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    finally:
        repo.close()
    report = run.report
    table = Table(title=f"data quality of the record store (catalogue {report.catalogue_version})")
    for name in ("check", "category", "severity", "failed", "checked"):
        table.add_column(name, justify="right" if name in ("failed", "checked") else "left")
    for result in report.checks:
        colour = "green" if result.passed else "red" if result.severity == "error" else "yellow"
        table.add_row(
            result.name,
            result.category,
            f"[{colour}]{result.severity}[/{colour}]",
            f"{result.failed:,}",
            f"{result.checked:,}",
        )
    console.print(table)
    for finding in report.findings[:10]:
        console.print(
            f"  {finding.check} {finding.row} {finding.column or ''}: {finding.message}",
            highlight=False,
            soft_wrap=True,
        )
    if len(report.findings) > 10:
        console.print(
            f"  ... {len(report.findings) - 10:,} more findings in {run.json_path}", highlight=False
        )
    verdict = "[green]passed[/green]" if report.passed else "[red]failed[/red]"
    console.print(f"{report.resources:,} resources: {verdict}; reports in {run.out}", highlight=False)
    if as_json:
        print(json.dumps(report.to_dict(), separators=(",", ":"), allow_nan=False, default=str))
    if not report.passed:
        raise typer.Exit(1)
