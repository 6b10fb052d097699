"""Bundle assembly that splices stored JSON bytes in without re-parsing them."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus

import orjson

from medfusion.fhir.repository import StoredResource
from medfusion.fhir.resource import format_instant, now_utc

__all__ = ["bundle_links", "history_bundle", "restrict_elements", "searchset_bundle"]

_MANDATORY = {"resourceType", "id", "meta"}


def restrict_elements(stored: StoredResource, elements: Sequence[str]) -> bytes:
    """The body with only the requested top-level elements, tagged SUBSETTED."""
    resource = stored.json()
    keep = set(elements) | _MANDATORY
    out: dict[str, Any] = {k: v for k, v in resource.items() if k in keep}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [
        *meta.get("tag", []),
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
            "code": "SUBSETTED",
        },
    ]
    out["meta"] = meta
    return orjson.dumps(out)


def bundle_links(url: str, params: list[tuple[str, str]] | None = None) -> str:
    """``url`` with ``params`` encoded as its query string (as ``urlencode`` does)."""
    if not params:
        return url
    return f"{url}?" + "&".join(f"{_quoted(k)}={_quoted(v)}" for k, v in params)


@lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    # Search links repeat the same names, codes and counts; quoting is the costly part.
    return quote_plus(text)


def _entry(base: str, stored: StoredResource, body: bytes, mode: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "fullUrl": f"{base}/{stored.resource_type}/{stored.id}",
        "resource": orjson.Fragment(body),
    }
    if mode is not None:
        entry["search"] = {"mode": mode}
    return entry


def searchset_bundle(
    base: str,
    *,
    matches: Sequence[StoredResource],
    included: Sequence[StoredResource],
    total: int,
    links: dict[str, str],
    elements: Sequence[str] | None = None,
) -> bytes:
    """A ``searchset`` Bundle: matches then included resources, with paging links."""

    def body(stored: StoredResource) -> bytes:
        return restrict_elements(stored, elements) if elements else stored.body

    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "meta": {"lastUpdated": format_instant(now_utc())},
        "total": total,
        "link": [{"relation": rel, "url": url} for rel, url in links.items()],
        "entry": [_entry(base, s, body(s), "match") for s in matches]
        + [_entry(base, s, body(s), "include") for s in included],
    }
    if not bundle["entry"]:
        del bundle["entry"]
    return orjson.dumps(bundle)


def history_bundle(
    base: str, *, entries: Sequence[StoredResource], total: int, links: dict[str, str]
) -> bytes:
    """A ``history`` Bundle, newest version first, deletions as request-only entries."""
    items: list[dict[str, Any]] = []
    for stored in entries:
        url = f"{stored.resource_type}/{stored.id}"
        item: dict[str, Any] = {"fullUrl": f"{base}/{url}"}
        if stored.deleted:
            item["request"] = {"method": "DELETE", "url": url}
            item["response"] = {
                "status": "204",
                "lastModified": format_instant(stored.last_updated),
                "etag": stored.etag,
            }
        else:
            item["resource"] = orjson.Fragment(stored.body)
            item["request"] = {"method": "POST" if stored.version == 1 else "PUT", "url": url}
            item["response"] = {
                "status": "201" if stored.version == 1 else "200",
                "lastModified": format_instant(stored.last_updated),
                "etag": stored.etag,
            }
        items.append(item)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
        "total": total,
        "link": [{"relation": rel, "url": url} for rel, url in links.items()],
    }
    if items:
        bundle["entry"] = items
    return orjson.dumps(bundle)
