"""Checks for FHIR primitive values, matching fhir_core's pydantic types exactly.

Each check takes a JSON value that is neither ``None`` nor a list and returns ``None`` when
fhir.resources would accept it, or a short rule (never the value) when it would reject it.
Where pydantic's lax mode would coerce a value of an unusual JSON type (a string for a
boolean, a number for a date, ...), the check raises :class:`Unsure` and the caller hands
the whole resource to the reference validator, so those rare inputs still get the
reference's decision without this module re-implementing every coercion.

Patterns mirror ``fhir_core.types``. pydantic-core runs most of them with the Rust regex
engine, whose ``\\s`` is the Unicode ``White_Space`` set (narrower than Python's: it lacks
``\\x1c``-``\\x1f``) and whose ``$`` only matches at the very end, so they are rewritten
here with an explicit class and ``fullmatch``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import date
from math import isfinite

from fhir_core.types import Date, DateTime, Decimal, Instant, Time

__all__ = ["CHECKS", "Check", "Unsure"]


class Unsure(Exception):  # noqa: N818 - a signal, not an error
    """The value needs pydantic's lax coercion rules: ask the reference validator."""


_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# fhir_core String: pattern ``[ \r\n\t\S]+`` searched, i.e. one char that is not "other"
# whitespace (vertical tab, form feed, NBSP, ...).
_STRING_OK = re.compile("[^\x0b\x0c\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_CODE = re.compile(f"[^{_WS}]+(?:[{_WS}][^{_WS}]+)*")
_ID = re.compile(r"[A-Za-z0-9\-.]+")
_ID_MAX = 255
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
# fhir_core compiles these with Python's ``re`` and calls ``fullmatch`` itself.
_DATE = Date.pattern
_DATETIME = DateTime.pattern
_INSTANT = Instant.pattern
_TIME = Time.pattern
_DECIMAL = Decimal.pattern
_INT32 = (-2147483648, 2147483647)

Check = Callable[[object], "str | None"]


def _not_string(value: object) -> str | None:
    # pydantic's lax str accepts no number or bool; other Python types are not JSON
    if isinstance(value, int | float | dict):
        return "must be a string"
    raise Unsure


def _string(value: object) -> str | None:
    if type(value) is str:
        return None if _STRING_OK.search(value) else "must not be empty or whitespace"
    return _not_string(value)


def _any_string(value: object) -> str | None:
    # uri, canonical, url, markdown, xhtml: fhir_core's patterns match every string
    return None if type(value) is str else _not_string(value)


def _code(value: object) -> str | None:
    if type(value) is str:
        return None if _CODE.fullmatch(value) else "must be a code (no surrounding whitespace)"
    return _not_string(value)


def _id(value: object) -> str | None:
    if type(value) is str:
        if 0 < len(value) <= _ID_MAX and _ID.fullmatch(value):
            return None
        return "must be an id ([A-Za-z0-9-.], 1-255 characters)"
    return _not_string(value)


def _oid(value: object) -> str | None:
    if type(value) is str:
        return None if _OID.fullmatch(value) else "must be an oid (urn:oid:...)"
    return _not_string(value)


def _uuid(value: object) -> str | None:
    # pydantic's UUID4 parsing has its own accepted spellings; rare enough to delegate
    raise Unsure


def _base64(value: object) -> str | None:
    if type(value) is str:
        # pydantic's Base64Bytes: the str is UTF-8 encoded, then base64.b64decode (lenient
        # about stray characters, strict about padding)
        try:
            base64.b64decode(value.encode("utf-8"))
        except (binascii.Error, ValueError):
            return "must be base64 encoded"
        return None
    return _not_string(value)


def _boolean(value: object) -> str | None:
    if value is True or value is False:
        return None
    if isinstance(value, dict):
        return "must be a boolean"
    raise Unsure  # lax bool accepts 0/1 and "true"/"yes"/... strings


def _int_check(low: int, high: int) -> Check:
    def check(value: object) -> str | None:
        if type(value) is int:
            return None if low <= value <= high else f"must be an integer in {low}..{high}"
        if isinstance(value, dict):
            return "must be an integer"
        raise Unsure  # lax int accepts bools, integral floats and numeric strings

    return check


def _decimal(value: object) -> str | None:
    # fhir_core matches str(value) against the spec regex before any conversion
    if type(value) is int:
        return None
    if type(value) is float:
        return None if isfinite(value) else "must be a finite decimal"
    if type(value) is str:
        return None if _DECIMAL.fullmatch(value) else "must be a decimal"
    if isinstance(value, bool | dict):
        return "must be a decimal"
    raise Unsure


def _valid_day(text: str) -> bool:
    try:
        date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def _date(value: object) -> str | None:
    if type(value) is str:
        if not _DATE.fullmatch(value):
            return "must be a date (YYYY, YYYY-MM or YYYY-MM-DD)"
        if len(value) == 10 and not _valid_day(value):
            return "must be a valid calendar date"
        return None
    if isinstance(value, dict):
        return "must be a date"
    raise Unsure  # pydantic accepts Unix timestamps at midnight


def _datetime(value: object) -> str | None:
    if type(value) is str:
        if not _DATETIME.fullmatch(value):
            return "must be a dateTime (time needs seconds and a zone)"
        if len(value) >= 10 and not _valid_day(value):
            return "must be a valid calendar date"
        return None
    if isinstance(value, dict):
        return "must be a dateTime"
    raise Unsure


def _instant(value: object) -> str | None:
    if type(value) is str:
        if not _INSTANT.fullmatch(value):
            return "must be an instant (date, time to the second and zone)"
        return None if _valid_day(value) else "must be a valid calendar date"
    if isinstance(value, dict):
        return "must be an instant"
    raise Unsure


def _time(value: object) -> str | None:
    if type(value) is str:
        # the regex already bounds hours/minutes/seconds; the leap second 60 is allowed
        return None if _TIME.fullmatch(value) else "must be a time (hh:mm:ss)"
    if isinstance(value, dict):
        return "must be a time"
    raise Unsure


CHECKS: dict[str, Check] = {
    "string": _string,
    "markdown": _any_string,
    "uri": _any_string,
    "canonical": _any_string,
    "url": _any_string,
    "xhtml": _any_string,
    "code": _code,
    "id": _id,
    "oid": _oid,
    "uuid": _uuid,
    "base64Binary": _base64,
    "boolean": _boolean,
    "integer": _int_check(*_INT32),
    "unsignedInt": _int_check(0, _INT32[1]),
    "positiveInt": _int_check(1, _INT32[1]),
    "integer64": _int_check(-9223372036854775807, 9223372036854775807),
    "decimal": _decimal,
    "date": _date,
    "dateTime": _datetime,
    "instant": _instant,
    "time": _time,
}
"""The check for every FHIR primitive name used in the structure table."""
