"""The in-memory twin of the SQL search: same matching, ordering and includes.

Row-level predicates (:func:`date_matches`, ...) are written once here and mirrored
clause by clause in :mod:`medfusion.store.search_sql`; the shared scenario tests keep
the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from medfusion.fhir.repository import StoredResource
from medfusion.fhir.search._extract import IndexEntries, extract_index
from medfusion.fhir.search._params import param_defs
from medfusion.fhir.search._query import (
    Criterion,
    DateMatch,
    Include,
    QuantityMatch,
    ReferenceMatch,
    SearchQuery,
    SearchResult,
    SortKey,
    StringMatch,
    TokenMatch,
)

__all__ = ["date_matches", "quantity_matches", "search_in_memory"]


def date_matches(match: DateMatch, low: float, high: float) -> bool:
    """R4 date prefix semantics of a target range ``[low, high]`` against ``match``."""
    p_lo, p_hi = match.low, match.high
    within = low >= p_lo and high <= p_hi
    prefix = match.prefix
    if prefix == "eq":
        return within
    if prefix == "ne":
        return not within
    if prefix == "gt":
        return high > p_hi
    if prefix == "lt":
        return low < p_lo
    if prefix == "ge":
        return high > p_hi or within
    if prefix == "le":
        return low < p_lo or within
    if prefix == "sa":
        return low > p_hi
    if prefix == "eb":
        return high < p_lo
    return low <= p_hi and high >= p_lo  # ap: the (widened) ranges overlap


def instant_matches(match: DateMatch, when: datetime) -> bool:
    """Date prefix semantics for an instant column (``_lastUpdated``)."""
    within = match.start <= when < match.end
    prefix = match.prefix
    if prefix in ("eq", "ap"):
        return within
    if prefix == "ne":
        return not within
    if prefix in ("gt", "sa"):
        return when >= match.end
    if prefix in ("lt", "eb"):
        return when < match.start
    if prefix == "ge":
        return when >= match.start
    return when < match.end  # le


def quantity_matches(match: QuantityMatch, value: float, system: str | None, code: str | None) -> bool:
    """Number prefix semantics plus the unit check of a quantity row."""
    if match.code is not None and code != match.code:
        return False
    if not match.any_system and system != match.system:
        return False
    prefix, number = match.prefix, match.number
    if prefix in ("eq", "ap"):
        return match.low <= value < match.high if prefix == "eq" else match.low <= value <= match.high
    if prefix == "ne":
        return not match.low <= value < match.high
    if prefix in ("gt", "sa"):
        return value > number
    if prefix in ("lt", "eb"):
        return value < number
    if prefix == "ge":
        return value >= number
    return value <= number  # le


def _string_matches(match: StringMatch, normalized: str, exact: str) -> bool:
    if match.mode == "exact":
        return exact == match.text
    if match.mode == "contains":
        return match.text in normalized
    return normalized.startswith(match.text)


def _token_matches(match: TokenMatch, system: str | None, code: str | None) -> bool:
    if match.code is not None and code != match.code:
        return False
    return match.any_system or system == match.system


def _reference_matches(match: ReferenceMatch, target_type: str | None, target_id: str) -> bool:
    return target_id == match.target_id and (match.target_type is None or target_type == match.target_type)


def _rows(entries: IndexEntries, ptype: str, name: str) -> list[tuple[Any, ...]]:
    table: list[Any]
    if ptype == "string":
        table = entries.strings
    elif ptype in ("token", "uri"):
        table = entries.tokens
    elif ptype == "date":
        table = entries.dates
    elif ptype in ("quantity", "number"):
        table = entries.quantities
    else:
        table = entries.references
    return [row[1:] for row in table if row[0] == name]


def _row_test(criterion: Criterion) -> Callable[[tuple[Any, ...]], bool]:
    kind = criterion.type
    values = criterion.values

    def test(row: tuple[Any, ...]) -> bool:
        for value in values:
            if kind == "string" and isinstance(value, StringMatch):
                hit = _string_matches(value, row[0], row[1])
            elif isinstance(value, TokenMatch):
                hit = _token_matches(value, row[0], row[1])
            elif isinstance(value, DateMatch):
                hit = date_matches(value, row[0], row[1])
            elif isinstance(value, QuantityMatch):
                hit = quantity_matches(value, row[0], row[1], row[2])
            elif isinstance(value, ReferenceMatch):
                hit = _reference_matches(value, row[0], row[1])
            else:
                hit = False
            if hit:
                return True
        return False

    return test


def _matches(criterion: Criterion, stored: StoredResource, entries: IndexEntries) -> bool:
    if criterion.name == "_id":
        if criterion.missing is not None:
            return not criterion.missing
        return any(isinstance(v, TokenMatch) and v.code == stored.id for v in criterion.values)
    if criterion.name == "_lastUpdated":
        if criterion.missing is not None:
            return not criterion.missing
        return any(
            isinstance(v, DateMatch) and instant_matches(v, stored.last_updated) for v in criterion.values
        )
    rows = _rows(entries, criterion.type, criterion.name)
    if criterion.missing is not None:
        return not rows if criterion.missing else bool(rows)
    test = _row_test(criterion)
    found = any(test(row) for row in rows)
    return not found if criterion.negate else found


def _sort_value(key: SortKey, stored: StoredResource, entries: IndexEntries) -> Any:
    """The value a resource sorts by for ``key``: min ascending, max descending."""
    if key.name == "_id":
        return stored.id
    if key.name == "_lastUpdated":
        return stored.last_updated
    rows = _rows(entries, key.type, key.name)
    if key.type == "date":
        candidates = [row[1] if key.descending else row[0] for row in rows]
    elif key.type == "token":
        candidates = [row[1] for row in rows if row[1] is not None]
    else:  # string (normalized) and quantity (value)
        candidates = [row[0] for row in rows]
    if not candidates:
        return None
    return max(candidates) if key.descending else min(candidates)


def _ordered(
    items: list[tuple[StoredResource, IndexEntries]], sort: tuple[SortKey, ...]
) -> list[tuple[StoredResource, IndexEntries]]:
    items = sorted(items, key=lambda item: item[0].id)
    # Stable sorts from the last key to the first; resources without a value go last.
    for key in reversed(sort):
        keyed = [(_sort_value(key, s, e), (s, e)) for s, e in items]
        present = [k for k in keyed if k[0] is not None]
        present.sort(key=lambda k: k[0], reverse=key.descending)
        items = [item for _, item in present] + [item for value, item in keyed if value is None]
    return items


def _included(
    current: Mapping[tuple[str, str], StoredResource],
    query: SearchQuery,
    page: list[tuple[StoredResource, IndexEntries]],
) -> list[StoredResource]:
    found: dict[tuple[str, str], StoredResource] = {}
    for directive in query.include:
        if directive.source_type != query.resource_type:
            continue
        for _stored, entries in page:
            for param, target_type, target_id in entries.references:
                if target_type is None or not _include_param(directive, param):
                    continue
                if directive.target_type is not None and target_type != directive.target_type:
                    continue
                target = current.get((target_type, target_id))
                if target is not None and not target.deleted:
                    found[(target_type, target_id)] = target
    if query.revinclude:
        ids = {s.id for s, _ in page}
        for (rtype, rid), stored in current.items():
            if stored.deleted:
                continue
            directives = [d for d in query.revinclude if d.source_type in ("*", rtype)]
            if not directives or not param_defs(rtype):
                continue
            for param, target_type, target_id in extract_index(rtype, stored.json()).references:
                if (
                    target_type == query.resource_type
                    and target_id in ids
                    and any(_include_param(d, param) for d in directives)
                ):
                    found[(rtype, rid)] = stored
                    break
    for stored, _ in page:
        found.pop((stored.resource_type, stored.id), None)
    return [found[key] for key in sorted(found)]


def _include_param(directive: Include, param: str) -> bool:
    return directive.param in ("*", param)


def search_in_memory(current: Mapping[tuple[str, str], StoredResource], query: SearchQuery) -> SearchResult:
    """Run a search over resources held in memory.

    Parameters
    ----------
    current
        The current live version of every resource, keyed by ``(type, id)``.
    query
        The parsed search.

    Returns
    -------
    SearchResult
        The same page, total and includes the SQL store gives for the same data.
    """
    candidates = [
        (stored, extract_index(rtype, stored.json()))
        for (rtype, _), stored in current.items()
        if rtype == query.resource_type and not stored.deleted
    ]
    matched = [
        (stored, entries)
        for stored, entries in candidates
        if all(_matches(c, stored, entries) for c in query.criteria)
    ]
    if query.summary_count:
        return SearchResult(matches=[], total=len(matched), included=[])
    ordered = _ordered(matched, query.sort)
    page = ordered[query.offset : query.offset + query.count]
    return SearchResult(
        matches=[stored for stored, _ in page],
        total=len(matched),
        included=_included(current, query, page),
    )
