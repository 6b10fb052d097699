"""The in-memory twin of the SQL repository, for fast tests and embedding.

It keeps every version in dicts and gives the same answers as
:class:`medfusion.store.repository.SqlRepository`: the shared contract tests in
``tests/store`` run against both. A transaction works on a copy of the state and swaps
it in on commit, so an error inside ``begin()`` leaves nothing behind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from medfusion.errors import ConflictError, GoneError, NotFoundError, PreconditionFailedError
from medfusion.fhir.repository import (
    HistoryPage,
    PreparedWrite,
    StoredResource,
    WriteRequest,
    require_live,
)
from medfusion.fhir.resource import now_utc, same_content, stamp
from medfusion.fhir.search import SearchQuery, SearchResult, search_in_memory

__all__ = ["InMemoryRepository", "InMemoryTransaction"]

_Key = tuple[str, str]


class InMemoryTransaction:
    """Operations on a private copy of the repository state."""

    def __init__(self, versions: dict[_Key, list[StoredResource]]) -> None:
        self.versions = versions

    def read_current(self, resource_type: str, id: str) -> StoredResource | None:
        history = self.versions.get((resource_type, id))
        return history[-1] if history else None

    def read(self, resource_type: str, id: str) -> StoredResource:
        return require_live(self.read_current(resource_type, id), resource_type, id)

    def vread(self, resource_type: str, id: str, version: int) -> StoredResource:
        history = self.versions.get((resource_type, id), [])
        if not 1 <= version <= len(history):
            raise NotFoundError(f"{resource_type}/{id} has no version {version}")
        found = history[version - 1]
        if found.deleted:
            raise GoneError(f"{resource_type}/{id} version {version} is a deletion")
        return found

    def write(
        self, resource_type: str, id: str, resource: dict[str, Any], *, expected_version: int | None
    ) -> StoredResource:
        key = (resource_type, id)
        current = self.read_current(resource_type, id)
        live_version = 0 if current is None or current.deleted else current.version
        if expected_version is not None and expected_version != live_version:
            raise PreconditionFailedError(
                f"{resource_type}/{id} is at version {live_version}, not {expected_version}"
            )
        version = 1 if current is None else current.version + 1
        when = now_utc()
        body = stamp(resource, id=id, version=version, last_updated=when)
        stored = StoredResource(resource_type, id, version, when, False, body)
        self.versions[key] = [*self.versions.get(key, []), stored]
        return stored

    def write_many(
        self, requests: Sequence[WriteRequest | PreparedWrite], *, skip_unchanged: bool = False
    ) -> list[StoredResource]:
        keys = [(r.resource_type, r.id) for r in requests]
        if len(set(keys)) != len(keys):
            raise ConflictError("the same resource is written twice in one transaction")
        out = []
        for request in requests:
            current = self.read_current(request.resource_type, request.id)
            if (
                skip_unchanged
                and current is not None
                and not current.deleted
                and same_content(current.json(), request.resource)
            ):
                out.append(current)
                continue
            out.append(
                self.write(
                    request.resource_type,
                    request.id,
                    request.resource,
                    expected_version=request.expected_version,
                )
            )
        return out

    def delete(self, resource_type: str, id: str) -> StoredResource | None:
        current = self.read_current(resource_type, id)
        if current is None or current.deleted:
            return None
        stored = StoredResource(resource_type, id, current.version + 1, now_utc(), True, b"")
        self.versions[(resource_type, id)] = [*self.versions[(resource_type, id)], stored]
        return stored

    def history(
        self,
        resource_type: str | None,
        id: str | None,
        *,
        since: datetime | None,
        count: int,
        offset: int,
    ) -> HistoryPage:
        selected = [
            (position, version)
            for position, ((rtype, rid), history) in enumerate(self.versions.items())
            if (resource_type is None or rtype == resource_type) and (id is None or rid == id)
            for version in history
            if since is None or version.last_updated >= since
        ]
        selected.sort(key=lambda item: (item[1].last_updated, item[0], item[1].version), reverse=True)
        entries = [version for _, version in selected[offset : offset + count]]
        return HistoryPage(entries=entries, total=len(selected))

    @contextmanager
    def savepoint(self) -> Iterator[InMemoryTransaction]:
        snapshot = dict(self.versions)
        try:
            yield self
        except BaseException:
            self.versions.clear()
            self.versions.update(snapshot)
            raise

    def search(self, query: SearchQuery) -> SearchResult:
        live = {key: h[-1] for key, h in self.versions.items() if h and not h[-1].deleted}
        return search_in_memory(live, query)


class InMemoryRepository:
    """A :class:`~medfusion.fhir.repository.FhirRepository` held in process memory."""

    def __init__(self) -> None:
        self._versions: dict[_Key, list[StoredResource]] = {}
        self._lock = threading.RLock()

    @contextmanager
    def begin(self) -> Iterator[InMemoryTransaction]:
        """Run a transaction on a copy; commit swaps it in, an exception discards it."""
        with self._lock:
            tx = InMemoryTransaction(dict(self._versions))
            yield tx
            self._versions = tx.versions

    begin_read = begin

    def read(self, resource_type: str, id: str) -> StoredResource:
        return InMemoryTransaction(self._versions).read(resource_type, id)

    def search(self, query: SearchQuery) -> SearchResult:
        return InMemoryTransaction(self._versions).search(query)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (resource_type, _), history in sorted(self._versions.items()):
            if not history[-1].deleted:
                out[resource_type] = out.get(resource_type, 0) + 1
        return out

    def iter_current(
        self, resource_types: Sequence[str] | None = None, since: datetime | None = None
    ) -> Iterator[StoredResource]:
        for (resource_type, _), history in sorted(self._versions.items()):
            current = history[-1]
            if current.deleted or (resource_types and resource_type not in resource_types):
                continue
            if since is None or current.last_updated >= since:
                yield current
