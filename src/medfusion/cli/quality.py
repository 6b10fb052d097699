"""``medfusion quality check``: run the data-quality catalogue over a file, a folder or the store.

Thin: parse the options, call :func:`medfusion.services.quality.check_data` (``--data``: a
table, an image file or folder, a series file or folder) or
:func:`~medfusion.services.quality.check_store` (no ``--data``), render a rich summary.
``--json`` prints one JSON object as the last line of stdout. The exit code is 1 when an
error-severity check fails (and 1 for bad input, with a one-line message).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from medfusion.cli._progress import progress_bar
from medfusion.config import get_settings

if TYPE_CHECKING:
    from medfusion.quality import CheckResult, RecordFinding
    from medfusion.services.quality import ItemRun

__all__ = ["check", "quality_app"]

console = Console()
quality_app = typer.Typer(help="Data-quality checks.", no_args_is_help=True)


def check(
    data: Path | None = typer.Option(
        None,
        "--data",
        help="File or folder to check: a table (.csv, .parquet), images (.npz, .npy, .png or a folder), "
        "series (a UCR .tsv, a folder or .tar.gz of stay files); without it the record store is checked.",
    ),
    db: str | None = typer.Option(None, "--db", help="Database URL of the store (default: settings)."),
    config: Path | None = typer.Option(None, "--config", help="TOML or JSON file overriding the catalogue."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for quality.json / quality.html (default .medfusion/quality/<time>/)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Check a table, images, series or the record store: conformance, completeness and plausibility.

    Exits 1 when an error-level check fails.
    """
    if data is None:
        _check_store(db=db, config=config, out=out, as_json=as_json)
        return
    from medfusion.services.quality import QualityRun, check_data

    with progress_bar() as progress:
        task = progress.add_task(f"reading {data.name}", total=None)
        run = check_data(
            data=data,
            config=config,
            out=out,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if not isinstance(run, QualityRun):
        _show_items(run, as_json=as_json)
        return
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
        print(json.dumps(report.issue_json(), separators=(",", ":"), allow_nan=False))
    if not report.passed:
        raise typer.Exit(1)


def _check_store(*, db: str | None, config: Path | None, out: Path | None, as_json: bool) -> None:
    from medfusion.services.database import open_repository
    from medfusion.services.quality import check_store

    repo = open_repository(db or get_settings().database_url)
    try:
        with progress_bar() as progress:
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
    _show_records(
        f"data quality of the record store (catalogue {report.catalogue_version})",
        report.checks,
        report.findings,
        run.json_path,
    )
    verdict = "[green]passed[/green]" if report.passed else "[red]failed[/red]"
    console.print(f"{report.resources:,} resources: {verdict}; reports in {run.out}", highlight=False)
    if as_json:
        print(json.dumps(report.to_dict(), separators=(",", ":"), allow_nan=False, default=str))
    if not report.passed:
        raise typer.Exit(1)


_KINDS = {"images": "images", "ucr": "UCR series", "stays": "ICU stays"}


def _show_items(run: ItemRun, *, as_json: bool) -> None:
    report = run.report
    _show_records(
        f"data quality of {run.data.name}: {_KINDS.get(run.kind, run.kind)} "
        f"(catalogue {report.catalogue_version})",
        report.checks,
        report.findings,
        run.json_path,
    )
    for split, counts in report.summary.get("labels", {}).items():
        shown = ", ".join(f"{name}: {count:,}" for name, count in counts.items())
        console.print(f"  classes in {split or 'the file'}: {shown}", highlight=False)
    verdict = "[green]passed[/green]" if report.passed else "[red]failed[/red]"
    noun = {"images": "images", "stays": "stays"}.get(run.kind, "series")
    console.print(f"{report.items:,} {noun}: {verdict}; reports in {run.out}", highlight=False)
    if as_json:
        print(json.dumps(report.to_dict(), separators=(",", ":"), allow_nan=False, default=str))
    if not report.passed:
        raise typer.Exit(1)


def _show_records(
    title: str, checks: tuple[CheckResult, ...], findings: tuple[RecordFinding, ...], json_path: Path
) -> None:
    table = Table(title=title)
    for name in ("check", "category", "severity", "failed", "checked"):
        table.add_column(name, justify="right" if name in ("failed", "checked") else "left")
    for result in checks:
        colour = "green" if result.passed else "red" if result.severity == "error" else "yellow"
        table.add_row(
            result.name,
            result.category,
            f"[{colour}]{result.severity}[/{colour}]",
            f"{result.failed:,}",
            f"{result.checked:,}",
        )
    console.print(table)
    for finding in findings[:10]:
        console.print(
            f"  {finding.check} {finding.row} {finding.column or ''}: {finding.message}",
            highlight=False,
            soft_wrap=True,
        )
    if len(findings) > 10:
        console.print(f"  ... {len(findings) - 10:,} more findings in {json_path}", highlight=False)
