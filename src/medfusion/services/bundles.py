"""``batch`` and ``transaction`` Bundles.

A transaction runs in one database transaction: ids are assigned first, ``urn:uuid``
and conditional references (``Practitioner?identifier=system|value``) are resolved
across the whole Bundle, then entries are processed in the FHIR order DELETE, POST,
PUT/PATCH, GET. Any failing entry aborts the lot and the error names the entry. A batch
runs each entry in a transaction of its own and reports each outcome.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from medfusion.config import get_settings
from medfusion.errors import (
    BundleEntryError,
    InvalidRequestError,
    MedfusionError,
    MultipleMatchesError,
    PreconditionFailedError,
)
from medfusion.fhir.outcome import outcome_for_error, status_for
from medfusion.fhir.references import is_valid_id, rewrite_references
from medfusion.fhir.repository import (
    FhirRepository,
    FhirTransaction,
    PreparedWrite,
    StoredResource,
    WriteRequest,
)
from medfusion.fhir.resource import format_instant, join_parts, now_utc, split_for_stamp
from medfusion.fhir.search import (
    IndexEntries,
    SearchQuery,
    extract_index_deferred,
    parse_search,
    reference_rows,
    search_in_memory,
)
from medfusion.services import records
from medfusion.services._slot_store import take_slots
from medfusion.services.parsing import check_type, parse_query, parse_resource

__all__ = [
    "BundleReport",
    "EntryResult",
    "PreparedBundle",
    "PreparedEntry",
    "entries_valid",
    "prepare_bundle",
    "process_bundle",
    "process_prepared",
]

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass(slots=True)
class _Entry:
    index: int
    method: str
    url: str
    full_url: str | None
    resource: dict[str, Any] | None
    if_none_exist: str | None
    if_match: str | None
    resource_type: str = ""
    id: str | None = None
    query: list[tuple[str, str]] | None = None
    prepared: PreparedEntry | None = None


class PreparedEntry(NamedTuple):
    """A ``POST`` entry of a transaction Bundle as an import worker leaves it.

    A named tuple: it crosses from the worker by pickle, where a slotted dataclass takes
    several times longer to rebuild.

    Attributes
    ----------
    position
        The entry's index in the Bundle.
    full_url, if_none_exist, resource_type
        From the entry and its request.
    candidate
        The id the importer keeps (from a ``urn:uuid`` fullUrl or the resource), if any.
    meta, rest
        :func:`medfusion.fhir.resource.split_for_stamp` of the resource as sent.
    rows, references
        :func:`medfusion.fhir.search.extract_index_deferred` of the resource as sent: the
        string, token, date and quantity rows, and the ``(param, reference)`` pairs.
    rewrites
        The reference strings the Bundle may resolve (``urn:uuid``, conditional, another
        entry's fullUrl), in document order.
    """

    position: int
    full_url: str | None
    if_none_exist: str | None
    resource_type: str
    candidate: str | None
    meta: dict[str, Any] | None
    rest: bytes
    rows: tuple[list[Any], list[Any], list[Any], list[Any]]
    references: list[tuple[str, str]]
    rewrites: tuple[str, ...]


class PreparedBundle(NamedTuple):
    """A valid transaction Bundle of ``POST`` entries, prepared by an import worker."""

    entries: list[PreparedEntry]


class _NeedsResourcesError(Exception):
    """A prepared Bundle must be searched with its references rewritten (the writer then
    takes the Bundle itself)."""


@dataclass(frozen=True, slots=True)
class EntryResult:
    """Outcome of one entry: HTTP-like status, and the stored version if any."""

    status: str
    stored: StoredResource | None = None
    outcome: dict[str, Any] | None = None
    body: bytes | None = None


@dataclass(slots=True)
class BundleReport:
    """The response Bundle and per-entry results (the importer counts from these)."""

    kind: str
    results: list[EntryResult] = field(default_factory=list)

    def to_bundle(self, base: str) -> bytes:
        """Render the ``batch-response`` / ``transaction-response`` Bundle."""
        entries = []
        for result in self.results:
            response: dict[str, Any] = {"status": result.status}
            entry: dict[str, Any] = {}
            if result.stored is not None:
                stored = result.stored
                response["location"] = f"{stored.resource_type}/{stored.id}/_history/{stored.version}"
                response["etag"] = stored.etag
                response["lastModified"] = format_instant(stored.last_updated)
                entry["fullUrl"] = f"{base}/{stored.resource_type}/{stored.id}"
            if result.body is not None:
                entry["resource"] = orjson.Fragment(result.body)
            if result.outcome is not None:
                response["outcome"] = result.outcome
            entry["response"] = response
            entries.append(entry)
        return orjson.dumps({"resourceType": "Bundle", "type": f"{self.kind}-response", "entry": entries})


def _parse_entries(bundle: dict[str, Any], *, validate: bool) -> list[_Entry | BundleEntryError]:
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise InvalidRequestError("Bundle.entry must be an array", expression=["Bundle.entry"])
    out: list[_Entry | BundleEntryError] = []
    for index, item in enumerate(raw):
        try:
            out.append(_parse_entry(index, item, validate))
        except MedfusionError as error:
            out.append(error if isinstance(error, BundleEntryError) else BundleEntryError(index, error))
    return out


def entries_valid(bundle: dict[str, Any]) -> bool:
    """Whether every entry of a ``batch`` / ``transaction`` Bundle is well formed and its
    resource valid: the checks :func:`process_bundle` skips when told ``prevalidated``."""
    try:
        return not any(isinstance(e, BundleEntryError) for e in _parse_entries(bundle, validate=True))
    except MedfusionError:
        return False


def prepare_bundle(bundle: dict[str, Any]) -> PreparedBundle | None:
    """The work of importing a valid transaction Bundle that needs no store, done ahead.

    Runs in an import worker on a Bundle :func:`entries_valid` accepted. Each resource is
    serialised and its search index rows extracted as sent; the writer then only resolves
    ids and references and splices them in (:func:`process_prepared`). None for a Bundle
    this does not cover (a batch, an entry other than ``POST Type``), which the writer
    imports the ordinary way.
    """
    if bundle.get("type") != "transaction" or not isinstance(bundle.get("entry"), list):
        return None
    items: list[dict[str, Any]] = bundle["entry"]
    full_urls = {url for item in items if isinstance(url := item.get("fullUrl"), str)}
    entries = []
    for index, item in enumerate(items):
        request = item["request"]
        url = str(request["url"]).lstrip("/")
        resource = item.get("resource")
        if str(request.get("method", "")).upper() != "POST" or not isinstance(resource, dict):
            return None
        if "/" in url or "?" in url or resource.get("resourceType") != url:
            return None
        meta, rest = split_for_stamp(resource)
        if meta is not None and b'"reference"' in orjson.dumps(meta):
            return None  # references are rewritten in ``rest`` only
        extracted, references = extract_index_deferred(url, resource)
        rows = (extracted.strings, extracted.tokens, extracted.dates, extracted.quantities)
        full_url = item.get("fullUrl")
        entries.append(
            PreparedEntry(
                position=index,
                full_url=full_url,
                if_none_exist=request.get("ifNoneExist"),
                resource_type=url,
                candidate=_kept_id(full_url, resource),
                meta=meta,
                rest=rest,
                rows=rows,
                references=references,
                rewrites=_rewritable(rest, full_urls),
            )
        )
    return PreparedBundle(entries)


def _kept_id(full_url: str | None, resource: dict[str, Any] | None) -> str | None:
    """The id an imported ``POST`` keeps: a ``urn:uuid`` fullUrl's, else the resource's own."""
    candidate = None
    if full_url and full_url.startswith("urn:uuid:"):
        candidate = full_url[len("urn:uuid:") :]
    elif resource and isinstance(resource.get("id"), str):
        candidate = resource["id"]
    return candidate if candidate and is_valid_id(candidate) else None


def _rewritable(rest: bytes, full_urls: set[str]) -> tuple[str, ...]:
    """The reference strings in ``rest`` that the Bundle may resolve, in document order.

    A scan of the serialised JSON: there a ``"reference":"…"`` member is exactly a
    ``reference`` key holding a string (a quote inside a string is escaped), the very
    places :func:`rewrite_references` visits, at a small part of the cost of a walk.
    """
    found: dict[str, None] = {}
    for match in _REFERENCE.finditer(rest):
        raw = match.group(1)
        reference: str = orjson.loads(b'"%b"' % raw) if b"\\" in raw else raw.decode()
        if reference in full_urls or _resolvable(reference):
            found[reference] = None
    return tuple(found)


_REFERENCE = re.compile(rb'"reference":"((?:[^"\\]|\\.)*)"')


def _resolvable(reference: str) -> bool:
    return reference.startswith("urn:uuid:") or ("?" in reference and not reference.startswith("#"))


def _parse_entry(index: int, item: Any, validate: bool) -> _Entry:
    if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
        raise InvalidRequestError("each entry needs a request", expression=["Bundle.entry.request"])
    request = item["request"]
    method = str(request.get("method", "")).upper()
    url = request.get("url")
    if method not in _ORDER or not isinstance(url, str) or not url:
        raise InvalidRequestError(
            "entry.request needs a method and a url", expression=["Bundle.entry.request"]
        )
    entry = _Entry(
        index=index,
        method=method,
        url=url.lstrip("/"),
        full_url=item.get("fullUrl"),
        resource=item.get("resource"),
        if_none_exist=request.get("ifNoneExist"),
        if_match=request.get("ifMatch"),
    )
    path, _, query = entry.url.partition("?")
    parts = path.split("/")
    entry.resource_type = parts[0]
    check_type(entry.resource_type)
    if query:
        entry.query = parse_query(query)
    if len(parts) >= 2 and parts[1]:
        entry.id = parts[1]
    if method in ("POST", "PUT"):
        if entry.resource is None:
            raise InvalidRequestError(
                f"a {method} entry needs a resource", expression=["Bundle.entry.resource"]
            )
        if validate:
            entry.resource = parse_resource(entry.resource, expected_type=entry.resource_type)
        elif (
            not isinstance(entry.resource, dict) or entry.resource.get("resourceType") != entry.resource_type
        ):
            raise InvalidRequestError("the entry's resourceType does not match its request url")
    return entry


def process_bundle(
    repo: FhirRepository,
    *,
    bundle: dict[str, Any],
    keep_ids: bool = False,
    tx: FhirTransaction | None = None,
    prevalidated: bool = False,
    resolved: dict[str, str] | None = None,
    guard: records.Guard | None = None,
) -> BundleReport:
    """Process a ``batch`` or ``transaction`` Bundle.

    Parameters
    ----------
    repo
        The store.
    bundle
        The parsed Bundle.
    keep_ids
        Importer mode: a POST whose ``fullUrl`` is ``urn:uuid:X`` (or whose resource has an
        id) keeps that id, and writing identical content again adds no version, so
        re-importing the same files creates no duplicates.
    tx
        Run inside this open transaction, each unit (the whole transaction Bundle, or each
        batch entry) under a savepoint, so a failure undoes only that unit. The importer
        uses this to commit many Bundles at once.
    prevalidated
        The entries' resources were already validated (by the importer's workers).
    resolved
        A cache of conditional references and ``ifNoneExist`` criteria already resolved
        to ``Type/id``, shared across Bundles by the importer (whose Synthea-style files
        repeat the same practitioners). Entries are added only when a unit succeeds.
    guard
        Called with every resource a conditional entry (``ifNoneExist``, ``PUT
        Type?criteria``) matched, before it is used; it may raise (an authorization check),
        which fails that entry like any other error.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidRequestError("the body must be a Bundle", expression=["Bundle"])
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise InvalidRequestError("Bundle.type must be 'batch' or 'transaction'", expression=["Bundle.type"])
    entries = _parse_entries(bundle, validate=not prevalidated)
    scope: Callable[[], AbstractContextManager[FhirTransaction]] = (
        tx.savepoint if tx is not None else repo.begin
    )
    if kind == "transaction":
        for entry in entries:
            if isinstance(entry, BundleEntryError):
                raise entry
        with scope() as unit:
            runner = _Transaction(
                unit, [e for e in entries if isinstance(e, _Entry)], keep_ids, resolved, guard
            )
            results = runner.run()
        if resolved is not None:
            resolved.update(runner.learned)
        return BundleReport("transaction", results)
    report = BundleReport("batch")
    for entry in entries:
        if isinstance(entry, BundleEntryError):
            report.results.append(_failure(entry.cause))
            continue
        try:
            with scope() as unit:
                report.results.extend(_Transaction(unit, [entry], keep_ids, guard=guard).run())
        except BundleEntryError as error:
            report.results.append(_failure(error.cause))
    return report


def process_prepared(
    prepared: PreparedBundle, *, tx: FhirTransaction, resolved: dict[str, str] | None = None
) -> BundleReport | None:
    """Import a transaction Bundle from :func:`prepare_bundle`'s output, in ``tx``.

    The same result as :func:`process_bundle` with ``keep_ids`` on the Bundle itself.
    None when a conditional reference searches the Bundle's own resources by a reference
    parameter: the caller then imports the Bundle with :func:`process_bundle`.
    """
    entries = [
        _Entry(
            index=e.position,
            method="POST",
            url=e.resource_type,
            full_url=e.full_url,
            resource=None,
            if_none_exist=e.if_none_exist,
            if_match=None,
            resource_type=e.resource_type,
            prepared=e,
        )
        for e in prepared.entries
    ]
    with tx.savepoint() as unit:
        runner = _Transaction(unit, entries, True, resolved)
        try:
            results = runner.run()
        except _NeedsResourcesError:  # raised before anything is written
            return None
    if resolved is not None:
        resolved.update(runner.learned)
    return BundleReport("transaction", results)


def _failure(error: MedfusionError) -> EntryResult:
    return EntryResult(status=str(status_for(error)), outcome=outcome_for_error(error))


def _as_sent(entry: _Entry, id: str) -> bytes:
    """The entry's resource with ``id`` set, as JSON (from the worker's bytes if prepared)."""
    if entry.prepared is None:
        return orjson.dumps({**(entry.resource or {}), "id": id})
    return join_parts(entry.resource_type, id, entry.prepared.meta, entry.prepared.rest)


class _Transaction:
    """Resolution and processing of a list of entries inside one transaction."""

    def __init__(
        self,
        tx: FhirTransaction,
        entries: list[_Entry],
        keep_ids: bool,
        resolved: dict[str, str] | None = None,
        guard: records.Guard | None = None,
    ) -> None:
        self.tx = tx
        self.check_match = guard
        self.entries = entries
        self.keep_ids = keep_ids
        self.known = resolved or {}
        self.learned: dict[str, str] = {}
        self.mapping: dict[str, str] = {}  # fullUrl or conditional reference -> Type/id
        self.results: dict[int, EntryResult] = {}
        self._bundle_view: dict[tuple[str, str], StoredResource] | None = None

    def run(self) -> list[EntryResult]:
        for entry in self.entries:
            self._guard(entry, self._assign_id)
        for entry in self.entries:
            if entry.resource is not None or entry.prepared is not None:
                self._guard(entry, self._rewrite)
        ordered = sorted(self.entries, key=lambda e: (_ORDER[e.method], e.index))
        creates = [e for e in ordered if e.method == "POST" and e.index not in self.results]
        for entry in ordered:
            if entry.method == "DELETE":
                self._guard(entry, self._delete)
        self._create_all(creates)
        for entry in ordered:
            if entry.method in ("PUT", "PATCH", "GET", "HEAD"):
                self._guard(entry, self._other)
        return [self.results[e.index] for e in sorted(self.entries, key=lambda e: e.index)]

    def _guard(self, entry: _Entry, step: Any) -> None:
        try:
            step(entry)
        except BundleEntryError:
            raise
        except MedfusionError as error:
            raise BundleEntryError(entry.index, error) from None

    # -- resolution --------------------------------------------------------------
    def _assign_id(self, entry: _Entry) -> None:
        if entry.method == "POST":
            assert entry.resource is not None or entry.prepared is not None
            key = f"{entry.resource_type}?{entry.if_none_exist}"
            if entry.if_none_exist:
                matches = self._known_match(key) or records.find_matches_in(
                    self.tx, entry.resource_type, parse_query(entry.if_none_exist)
                )
                if len(matches) > 1:
                    raise MultipleMatchesError("ifNoneExist criteria match more than one resource")
                if matches:
                    if self.check_match is not None:
                        self.check_match(matches[0])
                    entry.id = matches[0].id
                    self.results[entry.index] = EntryResult("200 OK", matches[0])
            if entry.id is None:
                entry.id = self._new_id(entry)
            if entry.if_none_exist:
                self.learned[key] = f"{entry.resource_type}/{entry.id}"
        elif entry.method == "PUT" and entry.id is None:
            if entry.query is None:
                raise InvalidRequestError("a PUT entry needs Type/id or Type?criteria")
            matches = records.find_matches_in(self.tx, entry.resource_type, entry.query)
            if len(matches) > 1:
                raise MultipleMatchesError("conditional update criteria match more than one resource")
            if matches and self.check_match is not None:
                self.check_match(matches[0])
            assert entry.resource is not None
            entry.id = matches[0].id if matches else entry.resource.get("id") or records.new_id()
            entry.resource = {**entry.resource, "id": entry.id}
        if entry.full_url and entry.id:
            self.mapping[entry.full_url] = f"{entry.resource_type}/{entry.id}"

    def _new_id(self, entry: _Entry) -> str:
        if self.keep_ids:
            candidate = (
                entry.prepared.candidate
                if entry.prepared is not None
                else _kept_id(entry.full_url, entry.resource)
            )
            if candidate:
                return candidate
        return records.new_id()

    def _rewrite(self, entry: _Entry) -> None:
        if entry.prepared is not None:  # resolve now, rewrite the bytes when writing
            for reference in entry.prepared.rewrites:
                self._replacement(reference)
            return
        rewrite_references(entry.resource, self._replacement)

    def _replacement(self, reference: str) -> str | None:
        """What ``reference`` becomes in this Bundle (None: it stays)."""
        if reference in self.mapping:
            return self.mapping[reference]
        if reference.startswith("urn:uuid:"):
            raise InvalidRequestError("a urn:uuid reference points at no entry of the Bundle")
        if "?" in reference and not reference.startswith("#"):
            return self._resolve_conditional(reference)
        return None

    def _known_match(self, key: str) -> list[StoredResource]:
        """The resource a cached criteria string resolved to, if it is still there."""
        target = self.known.get(key)
        if target is None:
            return []
        resource_type, _, id = target.partition("/")
        current = self.tx.read_current(resource_type, id)
        return [current] if current is not None and not current.deleted else []

    def _resolve_conditional(self, reference: str) -> str:
        if reference in self.known and self._known_match(reference):
            self.mapping[reference] = self.known[reference]
            return self.known[reference]
        target_type, _, query = reference.partition("?")
        check_type(target_type)
        params = parse_query(query)
        found = {(s.resource_type, s.id) for s in records.find_matches_in(self.tx, target_type, params)}
        settings = get_settings()
        search = parse_search(
            target_type, params, strict=True, default_count=2, max_count=settings.max_page_size
        )
        in_bundle = search_in_memory(self._view(search), search)
        found |= {(s.resource_type, s.id) for s in in_bundle.matches}
        if len(found) != 1:
            problem = "no resource" if not found else "more than one resource"
            raise PreconditionFailedError(f"the conditional reference to {target_type} matches {problem}")
        resource_type, id = found.pop()
        self.mapping[reference] = self.learned[reference] = f"{resource_type}/{id}"
        return self.mapping[reference]

    def _view(self, search: SearchQuery) -> dict[tuple[str, str], StoredResource]:
        """The Bundle's own resources as if stored, for conditional references to them."""
        prepared = any(e.prepared is not None for e in self.entries)
        if prepared and any(c.type == "reference" for c in search.criteria):
            # The entries met so far are searched with their references rewritten, which
            # a prepared Bundle does not have: the writer takes the Bundle itself.
            raise _NeedsResourcesError
        if self._bundle_view is None:
            now = now_utc()
            self._bundle_view = {
                (e.resource_type, e.id): StoredResource(
                    e.resource_type, e.id, 1, now, False, _as_sent(e, e.id)
                )
                for e in self.entries
                if (e.resource is not None or e.prepared is not None)
                and e.id is not None
                and e.method in ("POST", "PUT")
            }
        return self._bundle_view

    # -- processing ----------------------------------------------------------------
    def _delete(self, entry: _Entry) -> None:
        if entry.id is None:
            raise InvalidRequestError("a DELETE entry needs Type/id")
        self.tx.delete(entry.resource_type, entry.id)
        self.results[entry.index] = EntryResult("204 No Content")

    def _create_all(self, creates: list[_Entry]) -> None:
        requests = [
            self._prepared_write(e, e.prepared)
            if e.prepared is not None
            else WriteRequest(
                e.resource_type,
                e.id or "",
                e.resource or {},
                expected_version=None if self.keep_ids else 0,
            )
            for e in creates
        ]
        try:
            stored = self.tx.write_many(requests, skip_unchanged=self.keep_ids)
        except MedfusionError as error:
            index = creates[0].index if len(creates) == 1 else None
            if index is None:
                raise InvalidRequestError(
                    f"creating the Bundle's resources failed: {error.message}"
                ) from None
            raise BundleEntryError(index, error) from None
        for entry, version in zip(creates, stored, strict=True):
            self.results[entry.index] = EntryResult("201 Created", version)
            # A booked Appointment posted through the API takes its Slots like ``$book``;
            # the importer (``keep_ids``) stores records as they are, Slots or not.
            if not self.keep_ids and entry.resource_type == "Appointment":
                self._guard(entry, lambda e: take_slots(self.tx, e.resource or {}))

    def _prepared_write(self, entry: _Entry, prepared: PreparedEntry) -> PreparedWrite:
        """The entry's resource with this Bundle's references spliced into its bytes and rows.

        A ``"reference":"X"`` member in JSON text is exactly a ``reference`` key holding
        ``X`` (inside a string the quotes would be escaped), the very places
        :func:`rewrite_references` changes.
        """
        rest = prepared.rest
        for reference in prepared.rewrites:
            target = self.mapping.get(reference)
            if target is not None and target != reference:
                rest = rest.replace(
                    b'"reference":' + orjson.dumps(reference), b'"reference":' + orjson.dumps(target)
                )
        strings, tokens, dates, quantities = prepared.rows
        references = reference_rows(entry.resource_type, prepared.references, self.mapping)
        return PreparedWrite(
            entry.resource_type,
            entry.id or "",
            prepared.meta,
            rest,
            IndexEntries(strings, tokens, dates, quantities, references),
            expected_version=None,
        )

    def _other(self, entry: _Entry) -> None:
        if entry.method == "PUT":
            assert entry.resource is not None and entry.id is not None
            outcome = records.update_in(
                self.tx,
                entry.resource_type,
                entry.id,
                entry.resource,
                if_match=records.parse_if_match(entry.if_match),
            )
            status = "201 Created" if outcome.created else "200 OK"
            self.results[entry.index] = EntryResult(status, outcome.stored)
        elif entry.method == "PATCH":
            raise InvalidRequestError("PATCH entries in Bundles are not supported; use PUT")
        else:
            if entry.id is None:
                raise InvalidRequestError("GET entries in Bundles must read Type/id")
            stored = self.tx.read(entry.resource_type, entry.id)
            self.results[entry.index] = EntryResult("200 OK", stored, body=stored.body)
