"""The repository protocol every store implements, and the stored-resource record.

A repository hands out transactions (:meth:`FhirRepository.begin`). Everything done
through one :class:`FhirTransaction` commits together or not at all, which is what
FHIR ``transaction`` Bundles and conditional interactions need. The SQL store
(:mod:`medfusion.store`) and the in-memory twin (:mod:`medfusion.fhir.memory`) both
implement it and pass the same contract tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from medfusion.errors import GoneError, NotFoundError
from medfusion.fhir.resource import stamp, stamp_parts

if TYPE_CHECKING:
    from medfusion.fhir.search import IndexEntries, SearchQuery, SearchResult

__all__ = [
    "FhirRepository",
    "FhirTransaction",
    "HistoryPage",
    "PreparedWrite",
    "StoredResource",
    "WriteRequest",
    "require_live",
]


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One version of one resource as stored.

    Attributes
    ----------
    resource_type, id, version
        Identity; ``version`` counts from 1.
    last_updated
        Timezone-aware UTC instant the version was written.
    deleted
        True for the tombstone version a delete writes (``body`` is then empty).
    body
        The JSON bytes served to clients, ``meta.versionId`` and ``meta.lastUpdated``
        already filled in.
    """

    resource_type: str
    id: str
    version: int
    last_updated: datetime
    deleted: bool
    body: bytes

    def json(self) -> dict[str, Any]:
        """Parse :attr:`body` into a dict."""
        value: dict[str, Any] = orjson.loads(self.body)
        return value

    @property
    def etag(self) -> str:
        """The weak ETag of this version, ``W/"n"``."""
        return f'W/"{self.version}"'

    @property
    def reference(self) -> str:
        """``Type/id`` of this resource."""
        return f"{self.resource_type}/{self.id}"


def require_live(found: StoredResource | None, resource_type: str, id: str) -> StoredResource:
    """``found`` if it is a live version; ``NotFoundError`` if None, ``GoneError`` if deleted."""
    if found is None:
        raise NotFoundError(f"{resource_type}/{id} is not known")
    if found.deleted:
        raise GoneError(f"{resource_type}/{id} has been deleted")
    return found


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One resource version to write.

    ``expected_version`` None skips the version check; 0 requires that the resource
    does not exist yet (or is deleted).
    """

    resource_type: str
    id: str
    resource: dict[str, Any]
    expected_version: int | None = None

    def stamped(self, version: int, last_updated: datetime) -> bytes:
        """The bytes to store as ``version`` (:func:`medfusion.fhir.resource.stamp`)."""
        return stamp(self.resource, id=self.id, version=version, last_updated=last_updated)

    def index_entries(self) -> IndexEntries:
        """The search index rows of the resource."""
        from medfusion.fhir.search import extract_index  # fhir.search imports this module

        return extract_index(self.resource_type, self.resource)


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """A :class:`WriteRequest` whose serialisation and search index rows are done already.

    The importer's worker processes prepare these; the store only splices in the version
    and instant (see :func:`medfusion.fhir.resource.stamp_parts`). ``rest`` is the JSON of
    the resource without ``resourceType``, ``id`` and ``meta``, references final; ``index``
    is :func:`medfusion.fhir.search.extract_index` of the same resource.
    """

    resource_type: str
    id: str
    meta: dict[str, Any] | None
    rest: bytes
    index: IndexEntries
    expected_version: int | None = None

    @property
    def resource(self) -> dict[str, Any]:
        """The resource as a dict (parsed on demand: the fast path never needs it)."""
        head: dict[str, Any] = {"resourceType": self.resource_type}
        if self.meta:
            head["meta"] = self.meta
        value: dict[str, Any] = {**head, **orjson.loads(self.rest)}
        return value

    def stamped(self, version: int, last_updated: datetime) -> bytes:
        """The bytes to store as ``version``, spliced from the prepared parts."""
        return stamp_parts(
            self.resource_type, self.id, self.meta, self.rest, version=version, last_updated=last_updated
        )

    def index_entries(self) -> IndexEntries:
        """The search index rows, extracted by the worker."""
        return self.index


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of versions, newest first, and the total count across pages."""

    entries: Sequence[StoredResource]
    total: int


class FhirTransaction(Protocol):
    """Operations that run inside one atomic unit of work."""

    def read(self, resource_type: str, id: str) -> StoredResource:
        """Current version; ``NotFoundError`` if absent, ``GoneError`` if deleted."""
        ...

    def read_current(self, resource_type: str, id: str) -> StoredResource | None:
        """Current version including a tombstone, or None if never written."""
        ...

    def vread(self, resource_type: str, id: str, version: int) -> StoredResource:
        """One version; ``NotFoundError`` if that version does not exist."""
        ...

    def write(
        self, resource_type: str, id: str, resource: dict[str, Any], *, expected_version: int | None
    ) -> StoredResource:
        """Write a new version (create when ``expected_version`` is 0).

        The repository fills ``id`` and ``meta`` in the stored body, writes the search
        index rows for it, and raises ``PreconditionFailedError`` if the current version
        is not ``expected_version`` (None skips the check).
        """
        ...

    def write_many(
        self, requests: Sequence[WriteRequest | PreparedWrite], *, skip_unchanged: bool = False
    ) -> list[StoredResource]:
        """Write many versions at once (the ingest path), in request order.

        With ``skip_unchanged`` a resource equal to its current live version (apart from
        ``meta``) is not written again and its current version is returned.
        """
        ...

    def delete(self, resource_type: str, id: str) -> StoredResource | None:
        """Write a tombstone version; None if there was nothing live to delete."""
        ...

    def history(
        self,
        resource_type: str | None,
        id: str | None,
        *,
        since: datetime | None,
        count: int,
        offset: int,
    ) -> HistoryPage:
        """Versions at system, type or instance level, newest first."""
        ...

    def search(self, query: SearchQuery) -> SearchResult:
        """Run a parsed search; see :mod:`medfusion.fhir.search`."""
        ...

    def savepoint(self) -> AbstractContextManager[FhirTransaction]:
        """A nested unit: an exception inside undoes only its own writes, then propagates."""
        ...


class FhirRepository(Protocol):
    """A FHIR resource store."""

    def begin(self) -> AbstractContextManager[FhirTransaction]:
        """Open a transaction; it commits on normal exit and rolls back on error."""
        ...

    def begin_read(self) -> AbstractContextManager[FhirTransaction]:
        """Open a transaction for reads only (it takes no write lock)."""
        ...

    def read(self, resource_type: str, id: str) -> StoredResource:
        """Read the current version in a short transaction of its own (the hot path)."""
        ...

    def search(self, query: SearchQuery) -> SearchResult:
        """Run a search in a short read transaction of its own (the other hot path)."""
        ...

    def counts(self) -> dict[str, int]:
        """Number of live resources per type."""
        ...

    def iter_current(
        self, resource_types: Sequence[str] | None = None, since: datetime | None = None
    ) -> Iterator[StoredResource]:
        """Stream every live current resource (for export), ordered by type then id."""
        ...
