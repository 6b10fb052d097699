"""The importer's write transaction: many files per commit, undone file by file.

A file must be undone alone when it fails (the rest of the import goes on), which a
savepoint per file gives. On SQLite a savepoint is not free: every page a file touches
is first copied to the statement journal, about a third more write work on ingest. So
Bundle files run *optimistically*: with no savepoint, in a group that commits every
``commit_every`` resources. Should any unit of work fail (a transaction Bundle, a batch
entry), the group is rolled back and its files are run again, each under its own
savepoint as before; the import then goes on optimistically. The result is the same as
with savepoints throughout; only a group holding a failing file is written twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from medfusion.fhir.repository import FhirRepository, FhirTransaction

if TYPE_CHECKING:
    from medfusion.services._prevalidate import Checked
    from medfusion.services.importer import ImportReport
    from medfusion.services.quality import ImportGate

__all__ = ["Committer"]


class _Unguarded:
    """A transaction whose savepoints cost nothing and only record that they failed;
    everything else is the wrapped transaction's own."""

    def __init__(self, tx: FhirTransaction) -> None:
        self.tx = tx
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tx, name)

    @contextmanager
    def savepoint(self) -> Iterator[FhirTransaction]:
        try:
            yield cast(FhirTransaction, self)
        except BaseException:
            self.failed = True  # what it wrote stays until the group is rolled back
            raise


@dataclass(slots=True)
class _Mark:
    """What the import had reported when the current group began."""

    counts: Counter[str]
    problems: int
    tagged: int
    resolved: dict[str, str]


class Committer:
    """One open write transaction shared by many files, committed every ``commit_every``
    resources: one fsync per group instead of one per Bundle.

    Parameters
    ----------
    repo
        The store.
    gate
        The ``--quality`` check, if on (it rides along here to keep signatures short).
    optimistic
        Run Bundle files without savepoints (see the module docstring); ``False`` gives
        every file its own savepoint (``--strict`` imports, which stop at a failure).
    commit_every
        Resources per commit.
    """

    def __init__(
        self,
        repo: FhirRepository,
        gate: ImportGate | None = None,
        *,
        optimistic: bool = True,
        commit_every: int = 20_000,
    ) -> None:
        self.repo = repo
        self.gate = gate
        self.optimistic = optimistic
        self.commit_every = commit_every
        self.resolved: dict[str, str] = {}  # conditional references seen, shared by files
        self.pending = 0
        self.replays = 0  # groups rolled back and run again (for tests and the curious)
        self._scope: AbstractContextManager[FhirTransaction] | None = None
        self._tx: FhirTransaction | None = None
        self._unguarded: _Unguarded | None = None
        self._group: list[tuple[Path, Checked]] = []
        self._mark: _Mark | None = None

    def tx(self) -> FhirTransaction:
        """The open transaction (opened on first use); unguarded inside an optimistic file."""
        if self._tx is None:
            self._scope = self.repo.begin()
            self._tx = self._scope.__enter__()
        if self._unguarded is not None:
            return cast(FhirTransaction, self._unguarded)  # the same methods, by delegation
        return self._tx

    def wrote(self, count: int) -> None:
        """Count written resources; outside an optimistic file, commit when enough are pending."""
        self.pending += count
        if self._unguarded is None and self.pending >= self.commit_every:
            self.commit()

    def run_file(
        self,
        path: Path,
        valid: Checked,
        report: ImportReport,
        run: Callable[[Path, Checked], None],
    ) -> None:
        """Run ``run(path, valid)`` for one file, optimistically when it is a Bundle file.

        ``report``'s counts and problems are put back to where they were at the start of
        the group when the group is run again.
        """
        if not self.optimistic or path.suffix == ".ndjson":
            # NDJSON files may commit part-way (they can be any size): their batches keep
            # a savepoint each, and the optimistic group before them is committed first.
            self.commit()
            run(path, valid)
            return
        if self._mark is None:
            self._mark = _Mark(
                Counter(report.counts),
                len(report.problems),
                len(self.gate.tagged) if self.gate is not None else 0,
                dict(self.resolved),
            )
        self._group.append((path, valid))
        unguarded = self._unguarded = _Unguarded(self.tx())
        try:
            run(path, valid)
        finally:
            self._unguarded = None
        if unguarded.failed:
            self._replay(report, run)
        elif self.pending >= self.commit_every:
            self.commit()

    def _replay(self, report: ImportReport, run: Callable[[Path, Checked], None]) -> None:
        """Roll the group back and run its files again, each under its own savepoint."""
        group, mark = self._group, self._mark
        assert mark is not None
        self.abort()
        report.counts.clear()
        report.counts.update(mark.counts)
        del report.problems[mark.problems :]
        if self.gate is not None:
            del self.gate.tagged[mark.tagged :]
        self.resolved.update(mark.resolved)
        self.replays += 1
        for path, valid in group:
            run(path, valid)
        self.commit()

    def commit(self) -> None:
        """Commit what is pending (if anything is open)."""
        self._group, self._mark, self.pending = [], None, 0
        if self._scope is not None:
            scope, self._scope, self._tx = self._scope, None, None
            scope.__exit__(None, None, None)

    def abort(self) -> None:
        """Roll back what is not committed (and forget the references it resolved)."""
        self.resolved.clear()
        self._group, self._mark, self.pending = [], None, 0
        if self._scope is not None:
            scope, self._scope, self._tx = self._scope, None, None
            error = RuntimeError("import aborted")
            scope.__exit__(type(error), error, None)
