"""Index extraction: turning a resource into typed index rows.

The SQL store writes these rows; the in-memory twin evaluates searches on them, so
both see exactly the same values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from medfusion.fhir.references import split_reference
from medfusion.fhir.search._params import param_defs

__all__ = [
    "MAX_LEN",
    "OPEN_HIGH",
    "OPEN_LOW",
    "IndexEntries",
    "clip",
    "extract_index",
    "extract_index_deferred",
    "normalize",
    "parse_date",
    "reference_rows",
]

MAX_LEN = 255
# Open ends of a Period: finite so that both databases compare them as plain floats.
OPEN_LOW = -1e12
OPEN_HIGH = 1e12
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True, slots=True)
class IndexEntries:
    """Search index rows of one resource.

    Attributes
    ----------
    strings
        ``(param, normalized, exact)``; normalized is lower-case without accents.
    tokens
        ``(param, system, code)``.
    dates
        ``(param, low, high)``: inclusive epoch-second bounds of the value's range.
    quantities
        ``(param, value, system, code-or-unit)``.
    references
        ``(param, target_type, target_id)``.
    """

    strings: list[tuple[str, str, str]]
    tokens: list[tuple[str, str | None, str | None]]
    dates: list[tuple[str, float, float]]
    quantities: list[tuple[str, float, str | None, str | None]]
    references: list[tuple[str, str | None, str]]


def clip(value: str) -> str:
    """Truncate to the length the index columns hold."""
    return value[:MAX_LEN]


def normalize(value: str) -> str:
    """Lower-case ``value`` and strip accents (the form string searches compare)."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def parse_date(text: str) -> tuple[datetime, datetime] | None:
    """The implicit range of a FHIR date, dateTime or instant.

    Returns
    -------
    tuple[datetime, datetime] | None
        UTC start (inclusive) and end (exclusive), or None when ``text`` is not a
        date. A value without a zone counts as UTC.
    """
    match = _DATE.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        if month is None:
            start = datetime(int(year), 1, 1, tzinfo=UTC)
            end = _safe(lambda: start.replace(year=start.year + 1))
        elif day is None:
            start = datetime(int(year), int(month), 1, tzinfo=UTC)
            end = _safe(
                lambda: (
                    start.replace(year=start.year + 1, month=1)
                    if start.month == 12
                    else start.replace(month=start.month + 1)
                )
            )
        elif hour is None:
            start = datetime(int(year), int(month), int(day), tzinfo=UTC)
            end = _safe(lambda: start + timedelta(days=1))
        else:
            start = datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC
            )
            if second is None:
                width = timedelta(minutes=1)
            elif fraction is None:
                width = timedelta(seconds=1)
            else:
                digits = fraction[:6]
                start += timedelta(microseconds=int(digits.ljust(6, "0")))
                width = timedelta(microseconds=10 ** (6 - len(digits)))
            if zone and zone != "Z":
                sign = 1 if zone[0] == "+" else -1
                start -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            end = _safe(lambda: start + width)
    except (ValueError, OverflowError):
        return None
    return start, end


def _safe(compute: Any) -> datetime:
    try:
        value: datetime = compute()
    except (ValueError, OverflowError):
        return datetime.max.replace(tzinfo=UTC)
    return value


def epoch(value: datetime) -> float:
    """Epoch seconds of an aware datetime, exact to the microsecond."""
    return ((value - EPOCH) // _MICRO) / 1e6


@lru_cache(maxsize=65536)
def date_bounds(text: str) -> tuple[float, float] | None:
    """Inclusive ``(low, high)`` epoch seconds of a date string, or None.

    Cached: one visit stamps the same instant on many resources, and ingest is hot.
    """
    parsed = parse_date(text)
    if parsed is None:
        return None
    return epoch(parsed[0]), epoch(parsed[1] - _MICRO)


# -- paths -----------------------------------------------------------------------------
_Step = tuple[str, tuple[str, str] | None]


@cache
def _compile(path: str) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    for part in path.split("."):
        if "[" in part:
            name, _, rest = part.partition("[")
            key, _, wanted = rest.rstrip("]").partition("=")
            steps.append((name, (key, wanted)))
        else:
            steps.append((part, None))
    return tuple(steps)


# -- per-type value readers ----------------------------------------------------------------
# HumanName and Address parts; the two share only ``text``, so one list serves both.
_TEXT_PARTS = (
    "family", "given", "prefix", "suffix", "text",
    "line", "city", "district", "state", "postalCode", "country",
)  # fmt: skip


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for part in _TEXT_PARTS:
            item = value.get(part)
            for text in item if isinstance(item, list) else [item]:
                if isinstance(text, str):
                    yield text


def _tokens(value: Any) -> Iterator[tuple[str | None, str | None]]:
    if isinstance(value, bool):
        yield None, "true" if value else "false"
    elif isinstance(value, str):
        yield None, value
    elif isinstance(value, Mapping):
        if isinstance(value.get("coding"), list):  # CodeableConcept
            for coding in value["coding"]:
                yield from _tokens(coding)
        elif isinstance(value.get("value"), str):  # Identifier, ContactPoint
            yield _opt(value.get("system")), value["value"]
        elif isinstance(value.get("code"), str):  # Coding
            yield _opt(value.get("system")), value["code"]


def _opt(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dates(value: Any) -> Iterator[tuple[float, float]]:
    if isinstance(value, str):
        bounds = date_bounds(value)
        if bounds is not None:
            yield bounds
    elif isinstance(value, Mapping):
        if "start" in value or "end" in value:  # Period
            start = date_bounds(value["start"]) if isinstance(value.get("start"), str) else None
            end = date_bounds(value["end"]) if isinstance(value.get("end"), str) else None
            if start is not None or end is not None:
                yield (start[0] if start else OPEN_LOW), (end[1] if end else OPEN_HIGH)
        else:  # Timing
            for event in value.get("event") or []:
                yield from _dates(event)
            repeat = value.get("repeat")
            if isinstance(repeat, Mapping) and isinstance(repeat.get("boundsPeriod"), Mapping):
                yield from _dates(repeat["boundsPeriod"])


def _quantities(value: Any) -> Iterator[tuple[float, str | None, str | None]]:
    if not isinstance(value, Mapping):
        return
    number = value.get("value")
    if isinstance(number, bool) or not isinstance(number, int | float):
        return
    code, unit = _opt(value.get("code")), _opt(value.get("unit"))
    yield float(number), _opt(value.get("system")), code if code is not None else unit
    # A second row lets ``n||unit`` match the human unit when a coded unit differs.
    if code is not None and unit is not None and unit != code:
        yield float(number), None, unit


def _raw_reference(value: Any) -> str | None:
    if isinstance(value, Mapping):
        reference = value.get("reference")
        if isinstance(reference, str):
            return reference
    return None


def _reference_row(reference: str, targets: frozenset[str] | None) -> tuple[str, str] | None:
    if reference.startswith(("#", "urn:")):  # contained, or unresolved urn:uuid
        return None
    split = split_reference(reference)
    if split is not None and (targets is None or split[0] in targets):
        return split[0], clip(split[1])
    return None


def _deceased(resource: Mapping[str, Any]) -> str:
    # R4: Patient.deceased.exists() and Patient.deceased != false
    flag = resource.get("deceasedBoolean")
    if isinstance(flag, bool):
        return "true" if flag else "false"
    return "true" if resource.get("deceasedDateTime") else "false"


def extract_index(resource_type: str, resource: Mapping[str, Any]) -> IndexEntries:
    """Compute the search index rows of a resource.

    Parameters
    ----------
    resource_type
        The resource's type; types without registered parameters give no rows.
    resource
        The resource as a JSON-like mapping.

    Returns
    -------
    IndexEntries
        Deduplicated rows per index table; strings are truncated to 255 characters.
    """
    entries, references = extract_index_deferred(resource_type, resource)
    entries.references.extend(reference_rows(resource_type, references))
    return entries


def extract_index_deferred(
    resource_type: str, resource: Mapping[str, Any]
) -> tuple[IndexEntries, list[tuple[str, str]]]:
    """:func:`extract_index` with the reference rows left as ``(param, reference string)``.

    For a resource whose references are not final yet (a Bundle entry before its
    ``urn:uuid`` and conditional references are resolved): the importer's workers extract
    the rest, and :func:`reference_rows` finishes the job once the targets are known.
    The returned ``IndexEntries.references`` is empty.
    """
    strings: dict[tuple[str, str, str], None] = {}
    tokens: dict[tuple[str, str | None, str | None], None] = {}
    dates: dict[tuple[str, float, float], None] = {}
    quantities: dict[tuple[str, float, str | None, str | None], None] = {}
    references: dict[tuple[str, str], None] = {}
    for name, kind, paths, _targets in _plan(resource_type):
        if kind == "deceased":
            tokens[(name, None, _deceased(resource))] = None
            continue
        for steps in paths:
            head, where = steps[0]
            node = resource.get(head)
            if node is None:
                continue  # the common case: most parameters' elements are absent
            if len(steps) == 1 and where is None:
                values: Any = node if isinstance(node, list) else (node,)
            else:
                values = _walk_steps(resource, steps)
            for value in values:
                if kind == "string":
                    for text in _strings(value):
                        strings[(name, clip(normalize(text)), clip(text))] = None
                elif kind == "token":
                    for system, code in _tokens(value):
                        tokens[(name, _clip_opt(system), _clip_opt(code))] = None
                elif kind == "date":
                    for low, high in _dates(value):
                        dates[(name, low, high)] = None
                elif kind == "quantity":
                    for number, system, code in _quantities(value):
                        quantities[(name, number, _clip_opt(system), _clip_opt(code))] = None
                elif kind == "reference":
                    reference = _raw_reference(value)
                    if reference is not None:
                        references[(name, reference)] = None
    entries = IndexEntries(
        strings=list(strings),
        tokens=list(tokens),
        dates=list(dates),
        quantities=list(quantities),
        references=[],
    )
    return entries, list(references)


def reference_rows(
    resource_type: str,
    references: list[tuple[str, str]],
    final: Mapping[str, str] | None = None,
) -> list[tuple[str, str | None, str]]:
    """The reference index rows of :func:`extract_index_deferred`'s ``(param, reference)``
    pairs, each reference first replaced by ``final[reference]`` where it has one."""
    targets = _targets(resource_type)
    rows: dict[tuple[str, str | None, str], None] = {}
    for name, reference in references:
        if final is not None:
            reference = final.get(reference, reference)
        row = _reference_row(reference, targets[name])
        if row is not None:
            rows[(name, row[0], row[1])] = None
    return list(rows)


@cache
def _targets(resource_type: str) -> dict[str, frozenset[str] | None]:
    return {name: targets for name, kind, _paths, targets in _plan(resource_type) if kind == "reference"}


_Plan = tuple[tuple[str, str, tuple[tuple[_Step, ...], ...], frozenset[str] | None], ...]


@cache
def _plan(resource_type: str) -> _Plan:
    """Per type, each parameter's name, value kind, compiled paths and reference targets."""
    kinds = {"uri": "token", "number": "quantity"}
    plan = []
    for name, param in param_defs(resource_type).items():
        kind = "deceased" if (resource_type, name) == ("Patient", "deceased") else param.type
        plan.append(
            (name, kinds.get(kind, kind), tuple(_compile(path) for path in param.paths), param.targets)
        )
    return tuple(plan)


def _walk_steps(resource: Mapping[str, Any], steps: tuple[_Step, ...]) -> list[Any]:
    values: list[Any] = [resource]
    for name, where in steps:
        found: list[Any] = []
        for node in values:
            if not isinstance(node, Mapping):
                continue
            child = node.get(name)
            if child is None:
                continue
            for item in child if isinstance(child, list) else (child,):
                if where is not None and not (isinstance(item, Mapping) and item.get(where[0]) == where[1]):
                    continue
                found.append(item)
        values = found
    return values


def _clip_opt(value: str | None) -> str | None:
    return None if value is None else clip(value)
