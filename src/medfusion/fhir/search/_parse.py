"""Parsing search query parameters into a :class:`SearchQuery`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from medfusion.errors import InvalidRequestError, UnknownSearchParameterError, UnsupportedError
from medfusion.fhir.references import split_reference
from medfusion.fhir.search._extract import clip, epoch, normalize, parse_date
from medfusion.fhir.search._params import SPECIAL_PARAMS, param_defs
from medfusion.fhir.search._query import (
    Criterion,
    DateMatch,
    Include,
    QuantityMatch,
    ReferenceMatch,
    SearchQuery,
    SortKey,
    StringMatch,
    TokenMatch,
    Value,
)

__all__ = ["parse_search"]

PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})
_SORTABLE = frozenset({"string", "token", "date", "quantity", "number"})
# Result parameters accepted and ignored (the API layer handles formats).
_IGNORED = frozenset({"_total", "_format", "_pretty", "_contained", "_containedType"})
_SUMMARY = frozenset({"true", "false", "text", "data", "count"})
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]+$")
_MICRO = timedelta(microseconds=1)


def _bad(name: str, value: str, what: str) -> InvalidRequestError:
    shown = value if len(value) <= 40 else value[:40] + "..."
    return InvalidRequestError(f"search parameter {name}: {what} ({shown!r})")


def _split(value: str, separator: str) -> list[str]:
    """Split on unescaped ``separator``; ``\\`` escapes ``,``, ``|``, ``$`` and itself."""
    if "\\" not in value:
        return value.split(separator)  # the usual case, at C speed
    parts: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            if following in (",", "|", "$", "\\") and following != separator:
                current.append("\\" + following)  # keep for a later split on another char
            else:
                current.append(following)
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return re.sub(r"\\([,|$\\])", r"\1", value)


def _prefix(name: str, value: str) -> tuple[str, str]:
    if value[:2].isalpha():
        if value[:2] not in PREFIXES:
            raise _bad(name, value, "unknown prefix")
        return value[:2], value[2:]
    return "eq", value


def _date(name: str, raw: str) -> DateMatch:
    prefix, text = _prefix(name, raw)
    parsed = parse_date(text)
    if parsed is None:
        raise _bad(name, raw, "not a valid date")
    start, end = parsed
    if prefix == "ap":
        # 10 % of the gap between now and the value, on each side (R4 recommendation).
        now = datetime.now(UTC)
        gap = abs(now - start) / 10
        start, end = _clamp(start, -gap), _clamp(end, gap)
    return DateMatch(prefix, epoch(start), epoch(end - _MICRO), start, end)


def _clamp(value: datetime, delta: timedelta) -> datetime:
    try:
        return value + delta
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC) if delta > timedelta(0) else datetime.min.replace(tzinfo=UTC)


def _number(name: str, raw: str, text: str) -> tuple[Decimal, float, float]:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise _bad(name, raw, "not a valid number") from None
    if not number.is_finite():
        raise _bad(name, raw, "not a valid number")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite numbers have an int exponent
    half = Decimal(5).scaleb(exponent - 1)  # half a unit of the last digit given
    return number, float(number - half), float(number + half)


def _quantity(name: str, raw: str) -> QuantityMatch:
    parts = _split(raw, "|")
    if len(parts) not in (1, 3):
        raise _bad(name, raw, "expected number or number|system|code")
    prefix, text = _prefix(name, parts[0])
    number, low, high = _number(name, raw, text)
    if prefix == "ap":
        spread = abs(number) / 10
        low, high = float(number - spread), float(number + spread)
    system, code = (None, None) if len(parts) == 1 else (_unescape(parts[1]), _unescape(parts[2]))
    return QuantityMatch(
        prefix=prefix,
        number=float(number),
        low=low,
        high=high,
        system=clip(system) if system else None,
        code=clip(code) if code else None,
        any_system=not system,
    )


def _token(name: str, raw: str) -> TokenMatch:
    parts = _split(raw, "|")
    if len(parts) == 1:
        return TokenMatch(None, clip(_unescape(parts[0])), any_system=True)
    if len(parts) != 2:
        raise _bad(name, raw, "expected code, system|code, |code or system|")
    system, code = _unescape(parts[0]), _unescape(parts[1])
    if not system and not code:
        raise _bad(name, raw, "empty token")
    return TokenMatch(clip(system) if system else None, clip(code) if code else None, any_system=False)


def _reference(name: str, raw: str, type_modifier: str | None) -> ReferenceMatch:
    text = _unescape(raw)
    split = split_reference(text)
    if split is not None:
        if type_modifier is not None and split[0] != type_modifier:
            raise _bad(name, raw, "reference type differs from the modifier")
        return ReferenceMatch(split[0], clip(split[1]))
    if "/" in text or not text:
        raise _bad(name, raw, "expected id, Type/id or an absolute URL")
    return ReferenceMatch(type_modifier, clip(text))


def _criterion(name: str, ptype: str, modifier: str | None, raw: str) -> Criterion | None:
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise _bad(name, raw, ":missing takes true or false")
        return Criterion(name, ptype, missing=raw == "true")
    type_modifier: str | None = None
    allowed = {"string": {"exact", "contains"}, "token": {"not"}}.get(ptype, set())
    if modifier is not None and modifier not in allowed:
        if ptype == "reference" and _TYPE_NAME.match(modifier):
            type_modifier = modifier
        else:
            raise UnsupportedError(f"search parameter {name} does not support :{modifier}")
    values: list[Value] = []
    for part in _split(raw, ","):
        if not part:
            continue
        if ptype == "string":
            text = _unescape(part)
            mode = modifier or "prefix"
            values.append(StringMatch(clip(text if mode == "exact" else normalize(text)), mode))
        elif ptype == "token":
            values.append(_token(name, part))
        elif ptype == "date":
            values.append(_date(name, part))
        elif ptype in ("quantity", "number"):
            values.append(_quantity(name, part))
        elif ptype == "reference":
            values.append(_reference(name, part, type_modifier))
    if not values:
        return None
    return Criterion(name, ptype, tuple(values), negate=modifier == "not")


def _int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, raw, "expected a whole number") from None
    if value < 0:
        raise _bad(name, raw, "must not be negative")
    return value


def _sort(resource_type: str, raw: str) -> tuple[SortKey, ...]:
    types = {**SPECIAL_PARAMS, **{n: p.type for n, p in param_defs(resource_type).items()}}
    keys: list[SortKey] = []
    for item in raw.split(","):
        descending = item.startswith("-")
        name = item[1:] if descending else item
        ptype = types.get(name)
        if ptype is None or (name not in SPECIAL_PARAMS and ptype not in _SORTABLE):
            raise _bad("_sort", raw, f"cannot sort by {name!r}")
        keys.append(SortKey(name, ptype, descending))
    return tuple(keys)


def _include(resource_type: str, raw: str, *, reverse: bool) -> Include:
    name = "_revinclude" if reverse else "_include"
    if raw == "*":
        return Include("*" if reverse else resource_type, "*")
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not _TYPE_NAME.match(parts[0]):
        raise _bad(name, raw, "expected Type:param[:target]")
    source, param = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if target is not None and not _TYPE_NAME.match(target):
        raise _bad(name, raw, "the target must be a resource type")
    definition = param_defs(source).get(param)
    if param != "*" and (definition is None or definition.type != "reference"):
        raise _bad(name, raw, "not a reference parameter of that type")
    return Include(source, param, target)


def parse_search(
    resource_type: str,
    params: Sequence[tuple[str, str]],
    *,
    strict: bool,
    default_count: int,
    max_count: int,
) -> SearchQuery:
    """Parse and validate search parameters.

    Parameters
    ----------
    resource_type
        The (valid) type searched.
    params
        Query parameters in request order; repeats of a parameter are AND-ed, commas
        inside one value OR-ed.
    strict
        Raise for unknown parameters instead of ignoring them.
    default_count, max_count
        ``_count`` when absent, and its cap.

    Returns
    -------
    SearchQuery
        The parsed query.

    Raises
    ------
    UnknownSearchParameterError
        For an unknown parameter when ``strict``.
    InvalidRequestError
        For a malformed value, an unsupported modifier, or a bad result parameter.
    """
    defs = param_defs(resource_type)
    criteria: list[Criterion] = []
    canonical: list[tuple[str, str]] = []
    result_params: list[tuple[str, str]] = []
    count = min(default_count, max_count)
    offset = 0
    summary_count = False
    elements: tuple[str, ...] | None = None
    sort: tuple[SortKey, ...] = ()
    include: list[Include] = []
    revinclude: list[Include] = []
    for key, raw in params:
        name, _, modifier = key.partition(":")
        if name == "_count":
            count = min(_int(name, raw), max_count)
        elif name == "_offset":
            offset = _int(name, raw)
        elif name == "_sort":
            if raw:
                sort = _sort(resource_type, raw)
                result_params = [p for p in result_params if p[0] != "_sort"]
                result_params.append((key, raw))
        elif name in ("_include", "_revinclude"):
            if modifier not in ("", "iterate"):
                raise _bad(name, key, "unsupported modifier")
            target = revinclude if name == "_revinclude" else include
            target.append(_include(resource_type, raw, reverse=name == "_revinclude"))
            result_params.append((key, raw))
        elif name == "_summary":
            if raw not in _SUMMARY:
                raise _bad(name, raw, "expected true, false, text, data or count")
            summary_count = raw == "count"
            result_params.append((key, raw))
        elif name == "_elements":
            elements = tuple(e.strip() for e in raw.split(",") if e.strip())
            result_params.append((key, raw))
        elif name in _IGNORED:
            continue
        elif name in SPECIAL_PARAMS or name in defs:
            ptype = SPECIAL_PARAMS.get(name) or defs[name].type
            if name == "_id" and modifier not in ("", "missing"):
                raise UnsupportedError(f"search parameter _id does not support :{modifier}")
            found = _criterion(name, ptype, modifier or None, raw)
            if found is not None:
                criteria.append(found)
                canonical.append((key, raw))
        elif strict:
            raise UnknownSearchParameterError(f"{resource_type} has no search parameter {name!r}")
    return SearchQuery(
        resource_type=resource_type,
        count=count,
        offset=offset,
        summary_count=summary_count,
        elements=elements,
        criteria=tuple(criteria),
        sort=sort,
        include=tuple(include),
        revinclude=tuple(revinclude),
        params=(*canonical, *result_params),
    )
