"""Validation of import files in worker processes, ahead of the process that writes.

Writing must stay in one process (one SQLite writer, one transaction), but checking each
resource against the R4 structure is pure and about a fifth of the importer's time. Worker
processes run the very checks the writer would, file by file, a few files ahead; a file
they pass is then imported without checking again. A file they do not pass (or cannot
read) is imported the ordinary way, so its problems are found and reported exactly as
before.
"""

from __future__ import annotations

import gc
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from types import TracebackType
from typing import Any

from medfusion.errors import InvalidRequestError, MedfusionError
from medfusion.services.bundles import PreparedBundle, entries_valid, prepare_bundle
from medfusion.services.parsing import check_type, parse_json, parse_resource

__all__ = ["GC_THRESHOLDS", "Checked", "Prevalidator", "file_valid", "files_valid", "valid_resource"]

Checked = bool | PreparedBundle
"""What the workers found of a file: invalid (False), valid (True), or a valid transaction
Bundle already prepared for writing (:func:`medfusion.services.bundles.prepare_bundle`)."""

# Starting a worker (a fresh interpreter importing the validator) costs about a second,
# so small imports validate inline.
_MIN_FILES = 8
_MIN_BYTES = 8 * 2**20
_CHUNK = 8  # files per worker task
# An import's writer and workers collect cycles seldom (see ``importer._few_collections``).
GC_THRESHOLDS = (50_000, 20, 50)


def valid_resource(raw: Any) -> dict[str, Any]:
    """A standalone resource (NDJSON line, collection entry, single file), validated.

    Raises
    ------
    MedfusionError
        The item is not a JSON object, names an unknown type or breaks the R4 structure.
    """
    if not isinstance(raw, dict):
        raise InvalidRequestError("the entry is not a JSON object")
    resource_type = str(raw.get("resourceType", ""))
    check_type(resource_type)
    return parse_resource(raw, expected_type=resource_type)


def file_valid(path: str) -> Checked:
    """Whether every resource in the file passes the checks the importer would run.

    False for anything the importer would report as a problem: unreadable or malformed
    files, invalid entries. A valid transaction Bundle comes back prepared for writing
    where :func:`~medfusion.services.bundles.prepare_bundle` covers it. (Runs in a worker
    process.)
    """
    try:
        if path.endswith(".ndjson"):
            with open(path, "rb") as handle:
                for line in handle:
                    if line.strip():
                        valid_resource(parse_json(line))
            return True
        with open(path, "rb") as handle:
            document = parse_json(handle.read())
        if not isinstance(document, dict):
            return False
        if document.get("resourceType") == "Bundle":
            kind = document.get("type")
            if kind in ("transaction", "batch"):
                return entries_valid(document) and (prepare_bundle(document) or True)
            if kind != "collection":
                return False
            entries = document.get("entry", [])
            if not isinstance(entries, list):
                return False
            for entry in entries:
                if isinstance(entry, dict):
                    valid_resource(entry.get("resource"))
            return True
        valid_resource(document)
        return True
    except (MedfusionError, OSError, RecursionError):
        return False


def _start_worker() -> None:
    """A worker parses and drops thousands of resources a second: collect cycles seldom
    (as the writer does while importing)."""
    gc.set_threshold(*GC_THRESHOLDS)


def _worker_count(setting: int) -> int:
    return max(0, (os.cpu_count() or 1) - 1) if setting < 0 else setting


class Prevalidator:
    """``for path, checked in Prevalidator(files, workers)``: each file in order, with what
    the workers found (:data:`Checked`; always False when no workers run).

    Use as a context manager so the worker processes end with the import.
    """

    def __init__(self, files: Sequence[Path], workers: int) -> None:
        self.files = list(files)
        count = _worker_count(workers)
        if count and (len(self.files) < _MIN_FILES or _total_bytes(self.files) < _MIN_BYTES):
            count = 0
        self.workers = count
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Prevalidator:
        if self.workers:
            # spawn: the importing process may hold threads and open database handles.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=get_context("spawn"), initializer=_start_worker
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __iter__(self) -> Iterator[tuple[Path, Checked]]:
        pool = self._pool
        if pool is None:
            yield from ((path, False) for path in self.files)
            return
        # Files go to the workers a chunk at a time: one submission per file cost the
        # writing process a wake-up of the pool's manager thread each (several per cent of
        # an import of small Bundles).
        chunks = [self.files[i : i + _CHUNK] for i in range(0, len(self.files), _CHUNK)]
        ahead: deque[tuple[list[Path], Future[list[Checked]] | None]] = deque()
        pending = iter(chunks)
        window = 2 * self.workers  # enough to keep the workers busy, little memory held
        for chunk in pending:
            ahead.append((chunk, _submit(pool, chunk)))
            if len(ahead) >= window:
                break
        while ahead:
            chunk, future = ahead.popleft()
            following = next(pending, None)
            if following is not None:
                ahead.append((following, _submit(pool, following)))
            yield from zip(chunk, _outcome(future, len(chunk)), strict=True)


def files_valid(paths: list[str]) -> list[Checked]:
    """:func:`file_valid` of each path (one task for a worker)."""
    return [file_valid(path) for path in paths]


def _submit(pool: ProcessPoolExecutor, chunk: list[Path]) -> Future[list[Checked]] | None:
    try:
        return pool.submit(files_valid, [str(path) for path in chunk])
    except BrokenProcessPool:  # the rest is checked inline
        return None


def _outcome(future: Future[list[Checked]] | None, size: int) -> list[Checked]:
    if future is None:
        return [False] * size
    try:
        return future.result()
    except Exception:  # a crashed worker: the files are simply checked inline
        return [False] * size


def _total_bytes(files: Sequence[Path]) -> int:
    total = 0
    for path in files:
        try:
            total += path.stat().st_size
        except OSError:
            continue
        if total >= _MIN_BYTES:
            break
    return total
