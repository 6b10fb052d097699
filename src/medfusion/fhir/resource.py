"""Small pure helpers on resource dicts: stamping ``id``/``meta`` and comparing content."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

__all__ = [
    "format_instant",
    "join_parts",
    "now_utc",
    "same_content",
    "split_for_stamp",
    "stamp",
    "stamp_parts",
]


def now_utc() -> datetime:
    """The current instant, truncated to milliseconds (what ``meta.lastUpdated`` shows)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@lru_cache(maxsize=256)  # a write stamps every resource of a batch with one instant
def format_instant(value: datetime) -> str:
    """Render a FHIR ``instant`` with milliseconds and a ``Z`` zone."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp(resource: dict[str, Any], *, id: str, version: int, last_updated: datetime) -> bytes:
    """Serialise ``resource`` with its server-assigned ``id`` and ``meta`` filled in.

    The input dict is not modified; key order is kept after ``resourceType``, ``id`` and ``meta``.
    """
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = format_instant(last_updated)
    out: dict[str, Any] = {"resourceType": resource["resourceType"], "id": id, "meta": meta}
    for key, value in resource.items():
        if key not in out:
            out[key] = value
    return orjson.dumps(out)


def split_for_stamp(resource: dict[str, Any]) -> tuple[dict[str, Any] | None, bytes]:
    """``resource``'s ``meta`` and the JSON of everything but ``resourceType``, ``id`` and
    ``meta``: what :func:`stamp_parts` needs to give :func:`stamp`'s bytes without the dict."""
    rest = {k: v for k, v in resource.items() if k not in _STAMPED}
    meta = resource.get("meta")
    return (dict(meta) if meta else None), orjson.dumps(rest)


_STAMPED = ("resourceType", "id", "meta")


def stamp_parts(
    resource_type: str,
    id: str,
    meta: dict[str, Any] | None,
    rest: bytes,
    *,
    version: int,
    last_updated: datetime,
) -> bytes:
    """:func:`stamp`'s output (byte for byte) from :func:`split_for_stamp`'s parts.

    The importer's workers serialise each resource once; the writer only splices in the
    version and instant it alone knows.
    """
    stamped = dict(meta) if meta else {}
    stamped["versionId"] = str(version)
    stamped["lastUpdated"] = format_instant(last_updated)
    return join_parts(resource_type, id, stamped, rest)


def join_parts(resource_type: str, id: str, meta: dict[str, Any] | None, rest: bytes) -> bytes:
    """The JSON of a resource from :func:`split_for_stamp`'s parts and an id (``meta`` left
    out when empty): ``resourceType``, ``id`` and ``meta`` first, then ``rest``'s members."""
    head = b'{"resourceType":%b,"id":%b' % (orjson.dumps(resource_type), orjson.dumps(id))
    if meta:
        head += b',"meta":%b' % orjson.dumps(meta)
    return head + (b"," + rest[1:] if len(rest) > 2 else b"}")


def _without_server_meta(resource: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k not in ("meta", "id")}
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    return out


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two resources differ at most in ``id`` and the server's ``meta`` fields."""
    return _without_server_meta(a) == _without_server_meta(b)
