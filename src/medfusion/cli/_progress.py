"""The one progress bar of the command line (rich, on stderr)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["err_console", "progress_bar"]

err_console = Console(stderr=True)


def progress_bar() -> Progress:
    """A progress bar on stderr (transient when stderr is not a terminal)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=not sys.stderr.isatty(),
    )
