"""``medfusion quality check``: run the data-quality catalogue over a table.

Thin: parse the options, call :func:`medfusion.services.quality.check_file`, render a rich
summary. ``--json`` prints one JSON object as the last line of stdout. The exit code is 1
when an error-severity check fails (and 1 for bad input, with a one-line message).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["check", "quality_app"]

console = Console()
quality_app = typer.Typer(help="Data-quality checks.", no_args_is_help=True)


def check(
    data: Path = typer.Option(..., "--data", help="Table to check (CSV or Parquet)."),
    config: Path | None = typer.Option(None, "--config", help="TOML or JSON file overriding the catalogue."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for quality.json / quality.html (default .medfusion/quality/<time>/)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Check a table: conformance, completeness and plausibility; exit 1 when an error-level check fails."""
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
