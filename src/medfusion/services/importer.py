"""Importing FHIR Bundles and NDJSON files into the store.

A transaction Bundle stays atomic; a bad file or entry is reported with its file and
entry index and the rest goes on (``strict`` stops at the first error). Ids carried by
the files (``urn:uuid`` fullUrls, resource ids) are kept and unchanged content adds no
version, so importing the same files twice creates no duplicates.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfusion.config import get_settings
from medfusion.errors import BundleEntryError, InvalidRequestError, MedfusionError
from medfusion.fhir.references import is_valid_id
from medfusion.fhir.repository import FhirRepository, WriteRequest
from medfusion.services._import_tx import Committer
from medfusion.services._prevalidate import GC_THRESHOLDS, Checked, Prevalidator, valid_resource
from medfusion.services.bundles import BundleReport, PreparedBundle, process_bundle, process_prepared
from medfusion.services.parsing import parse_json
from medfusion.services.records import new_id

__all__ = ["ImportProblem", "ImportReport", "find_files", "import_paths"]

_SUFFIXES = (".json", ".ndjson")
_NDJSON_BATCH = 1000
_COMMIT_EVERY = 20_000


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """A file or entry that was not imported, and why (never with patient data)."""

    file: str
    entry: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.entry is None else f"{self.file} entry {self.entry}"
        return f"{where}: {self.message}"


@dataclass(slots=True)
class ImportReport:
    """What an import did: resources written per type, files read, problems, time."""

    counts: Counter[str] = field(default_factory=Counter)
    files: int = 0
    problems: list[ImportProblem] = field(default_factory=list)
    seconds: float = 0.0
    tagged: list[ImportProblem] = field(default_factory=list)  # written with a quality tag (--quality warn)

    @property
    def resources(self) -> int:
        """Resources written (or found unchanged) in total."""
        return sum(self.counts.values())

    @property
    def rate(self) -> float:
        """Resources per second."""
        return self.resources / self.seconds if self.seconds > 0 else 0.0


def find_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into the ``.json`` / ``.ndjson`` files under them, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _SUFFIXES))
        elif path.exists():
            found.append(path)
        else:
            raise InvalidRequestError(f"{path} does not exist")
    return found


def import_paths(
    repo: FhirRepository,
    *,
    paths: Sequence[Path],
    strict: bool = False,
    progress: Callable[[Path], None] | None = None,
    quality: str = "off",
    quality_config: Path | None = None,
) -> ImportReport:
    """Import every file under ``paths``.

    Parameters
    ----------
    repo
        The store.
    paths
        Files or folders of Bundle JSON, single-resource JSON and NDJSON.
    strict
        Stop at the first problem (raising it) instead of reporting and going on; what was
        imported before it stays.
    progress
        Called after each file.
    quality, quality_config
        ``off`` (default, fastest), ``warn`` (tag resources failing error-severity quality
        checks) or ``strict`` (reject them as problems); see
        :class:`medfusion.services.quality.ImportGate`.
    """
    report = ImportReport()
    started = time.perf_counter()
    gate = None
    if quality != "off":
        from medfusion.services.quality import make_import_gate  # pandas etc. only when asked

        gate = make_import_gate(quality, quality_config)
    committer = Committer(repo, gate, optimistic=not strict, commit_every=_COMMIT_EVERY)

    def run(path: Path, valid: Checked) -> None:
        _import_file(repo, committer, path, valid, report, strict)

    try:
        with _few_collections(), Prevalidator(find_files(paths), get_settings().import_workers) as files:
            for path, valid in files:
                committer.run_file(path, valid, report, run)
                report.files += 1
                if progress is not None:
                    progress(path)
        committer.commit()
    except BaseException:
        committer.abort()
        raise
    if gate is not None:
        report.tagged = [ImportProblem(n.file, n.entry, n.reason) for n in gate.tagged]
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def _few_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while importing.

    An import allocates millions of short-lived containers (parsed resources, index rows)
    that free themselves by reference counting; at the default thresholds the collector
    still walks the young ones every 700 allocations, about a tenth of the writer's time.
    """
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _import_file(
    repo: FhirRepository, committer: Committer, path: Path, valid: Checked, report: ImportReport, strict: bool
) -> None:
    """One file; a problem is reported (or raised when ``strict``) and the import goes on."""
    try:
        if path.suffix == ".ndjson":
            _import_ndjson(committer, path, bool(valid), report, strict)
        else:
            _import_json(repo, committer, path, valid, report, strict)
    except MedfusionError as error:
        if strict:
            committer.commit()
            raise
        entry = error.index if isinstance(error, BundleEntryError) else None
        report.problems.append(ImportProblem(path.name, entry, error.message))
    except OSError as error:
        if strict:
            committer.commit()
            raise InvalidRequestError(f"{path.name}: cannot be read ({error.strerror})") from None
        report.problems.append(ImportProblem(path.name, None, f"cannot be read ({error.strerror})"))


def _import_json(
    repo: FhirRepository, committer: Committer, path: Path, valid: Checked, report: ImportReport, strict: bool
) -> None:
    if isinstance(valid, PreparedBundle) and committer.gate is None:
        prepared = process_prepared(valid, tx=committer.tx(), resolved=committer.resolved)
        if prepared is not None:
            _count(committer, path, prepared, list(range(len(prepared.results))), report, strict)
            return
    valid = bool(valid)
    document = parse_json(path.read_bytes())
    if not isinstance(document, dict):
        raise InvalidRequestError("the file does not hold a JSON object")
    if document.get("resourceType") == "Bundle" and document.get("type") in ("transaction", "batch"):
        kept = list(range(len(document.get("entry") or [])))
        if committer.gate is not None:
            for index, reason in committer.gate.screen_bundle(document, file=path.name):
                _rejected(report, ImportProblem(path.name, index, reason), strict)
                kept.remove(index)
        result = process_bundle(
            repo,
            bundle=document,
            keep_ids=True,
            tx=committer.tx(),
            prevalidated=valid,
            resolved=committer.resolved,
        )
        _count(committer, path, result, kept, report, strict)
        return
    if document.get("resourceType") == "Bundle" and document.get("type") != "collection":
        raise InvalidRequestError("only transaction, batch and collection Bundles can be imported")
    if document.get("resourceType") == "Bundle":
        resources = [e.get("resource") for e in document.get("entry", []) if isinstance(e, dict)]
    else:
        resources = [document]
    _write_resources(committer, path, enumerate(resources), valid, report, strict)


def _count(
    committer: Committer,
    path: Path,
    result: BundleReport,
    kept: list[int],
    report: ImportReport,
    strict: bool,
) -> None:
    """Report a Bundle's outcome: each stored entry counted, each failed one a problem."""
    committer.wrote(len(result.results))
    for index, entry in enumerate(result.results):
        if entry.stored is not None:
            report.counts[entry.stored.resource_type] += 1
        elif entry.outcome is not None:
            problem = ImportProblem(path.name, kept[index], _diagnostics(entry.outcome))
            if strict:
                raise InvalidRequestError(str(problem))
            report.problems.append(problem)


def _import_ndjson(committer: Committer, path: Path, valid: bool, report: ImportReport, strict: bool) -> None:
    batch: list[tuple[int, Any]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                batch.append((number, parse_json(line)))
            except MedfusionError as error:
                if strict:
                    raise BundleEntryError(number, error) from None
                report.problems.append(ImportProblem(path.name, number, error.message))
            if len(batch) >= _NDJSON_BATCH:
                _write_resources(committer, path, batch, valid, report, strict)
                batch = []
    if batch:
        _write_resources(committer, path, batch, valid, report, strict)


def _write_resources(
    committer: Committer,
    path: Path,
    items: Iterable[tuple[int, Any]],
    valid: bool,
    report: ImportReport,
    strict: bool,
) -> None:
    requests: list[WriteRequest] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in items:
        try:
            # ``valid``: a worker already ran these very checks on the whole file.
            resource = raw if valid else valid_resource(raw)
            resource_type = str(resource["resourceType"])
        except MedfusionError as error:
            if strict:
                raise BundleEntryError(index, error) from None
            report.problems.append(ImportProblem(path.name, index, error.message))
            continue
        if committer.gate is not None:
            reason = committer.gate.screen(resource, file=path.name, entry=index)
            if reason is not None:
                _rejected(report, ImportProblem(path.name, index, reason), strict)
                continue
        id = resource.get("id")
        if not isinstance(id, str) or not is_valid_id(id):
            id = new_id()
        if (resource_type, id) in seen:
            continue  # a later line repeating an id in the same batch: keep the first
        seen.add((resource_type, id))
        requests.append(WriteRequest(resource_type, id, resource))
    if not requests:
        return
    with committer.tx().savepoint() as tx:
        written = tx.write_many(requests, skip_unchanged=True)
    for stored in written:
        report.counts[stored.resource_type] += 1
    committer.wrote(len(written))


def _rejected(report: ImportReport, problem: ImportProblem, strict: bool) -> None:
    """An entry the quality gate rejected: a problem like any other (never dropped silently)."""
    if strict:
        raise InvalidRequestError(str(problem))
    report.problems.append(problem)


def _diagnostics(outcome: dict[str, Any]) -> str:
    issues = outcome.get("issue") or [{}]
    return str(issues[0].get("diagnostics", "failed"))
