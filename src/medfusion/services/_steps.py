"""Step counting for long service calls that report progress."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Steps"]


class Steps:
    """Counts the steps of a long call and reports each as ``progress(name, done, total)``.

    Parameters
    ----------
    progress
        The caller's callback, or None to count silently.
    total
        How many steps the call expects (the bar's length).
    """

    def __init__(self, progress: Callable[[str, int, int], None] | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0

    def __call__(self, name: str, count: int = 1) -> None:
        """Record ``count`` finished steps, the last one named ``name``."""
        self.done += count
        if self.progress is not None:
            self.progress(name, self.done, self.total)
