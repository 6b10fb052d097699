"""``medfusion synth``: write a synthetic cohort as FHIR transaction Bundles."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medfusion.errors import InvalidRequestError
from medfusion.synth import check_arguments, write_bundles

__all__ = ["synth"]


def synth(
    patients: int = typer.Option(100, "--patients", help="Number of patients to generate."),
    seed: int = typer.Option(42, "--seed", help="Seed; the same seed writes the same bytes."),
    out: Path = typer.Option(..., "--out", help="Folder to write <patient-id>.json files to."),
) -> None:
    """Generate synthetic patients as FHIR R4 transaction Bundles, one file per patient."""
    try:
        # Check first so a bad argument prints one line and leaves no folder or bar behind.
        check_arguments(out, patients, seed)
    except InvalidRequestError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=2) from None

    console = Console()
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("Generating patients", total=patients)
        summary = write_bundles(out, patients, seed, progress=lambda done: bar.update(task, completed=done))

    table = Table(title=f"Synthetic cohort (seed {seed})")
    table.add_column("Resource type")
    table.add_column("Resources", justify="right")
    for kind, count in summary.resources.items():
        table.add_row(kind, f"{count:,}")
    table.add_section()
    table.add_row("Total", f"{summary.total_resources:,}")
    console.print(table)
    rate = summary.files / summary.seconds if summary.seconds > 0 else float("inf")
    console.print(
        f"{summary.files:,} files written to {summary.out} in {summary.seconds:.1f} s "
        f"({rate:,.0f} patients/s)"
    )
