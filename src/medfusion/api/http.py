"""Request and response helpers shared by the API's routers."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from medfusion.api.errors import FHIR_JSON
from medfusion.config import get_settings
from medfusion.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedError
from medfusion.fhir.repository import FhirRepository, StoredResource

__all__ = [
    "StoredResponse",
    "acting_patient",
    "base_url",
    "http_date",
    "read_body",
    "repo_of",
    "resource_response",
]

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json-patch+json")
_FHIR_JSON = FHIR_JSON.encode()


def repo_of(request: Request) -> FhirRepository:
    """The store the application serves."""
    repo: FhirRepository = request.app.state.repo
    return repo


def acting_patient(request: Request) -> str | None:
    """``Patient/id`` when the caller is a patient acting for themself, else None (staff).

    The seam for authentication: whatever authenticates a patient sets
    ``request.state.acting_patient``; until then every caller counts as staff.
    """
    value = getattr(request.state, "acting_patient", None)
    return value if isinstance(value, str) else None


def base_url(request: Request) -> str:
    """The FHIR base URL: ``settings.base_url``, else the request's own origin + ``/fhir``."""
    configured = get_settings().base_url
    return configured.rstrip("/") if configured else f"{str(request.base_url).rstrip('/')}/fhir"


async def read_body(request: Request) -> bytes:
    """The request body, checked for a JSON content type, the size cap and emptiness."""
    content_type = request.headers.get("content-type", "application/fhir+json").split(";")[0].strip()
    if content_type and content_type not in _JSON_TYPES:
        raise UnsupportedError(
            f"content type '{content_type[:64]}' is not supported; send application/fhir+json"
        )
    limit = get_settings().max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the body exceeds the {limit}-byte limit")
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLargeError(f"the body exceeds the {limit}-byte limit")
    if not body:
        raise InvalidRequestError("the request has no body", code="required")
    return body


class StoredResponse(Response):
    """A stored resource's bytes with ``ETag`` and ``Last-Modified``, headers built directly.

    The read-by-id hot path: Starlette's generic header handling (lower-casing, encoding,
    scanning for content headers) costs more than the store lookup it follows.
    """

    def __init__(
        self, stored: StoredResource, status: int = 200, extra: list[tuple[bytes, bytes]] | None = None
    ):
        self.status_code = status
        self.background = None
        self.body = stored.body
        self.raw_headers = [
            (b"etag", stored.etag.encode()),
            (b"last-modified", http_date(stored).encode()),
            (b"content-length", str(len(stored.body)).encode()),
            (b"content-type", _FHIR_JSON),
            *(extra or ()),
        ]


def resource_response(
    stored: StoredResource, status: int = 200, *, base: str | None = None, prefer: str | None = None
) -> Response:
    """A resource's stored bytes with ``ETag``, ``Last-Modified`` and, given ``base``, ``Location``."""
    if base is None and prefer is None:
        return StoredResponse(stored, status)
    headers = {"ETag": stored.etag, "Last-Modified": http_date(stored)}
    if base is not None:
        headers["Location"] = f"{base}/{stored.resource_type}/{stored.id}/_history/{stored.version}"
    if prefer and "return=minimal" in prefer:
        return Response(status_code=status, headers=headers)
    return Response(stored.body, status_code=status, media_type=FHIR_JSON, headers=headers)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(stored: StoredResource) -> str:
    """``Last-Modified`` in the HTTP date format (fixed English names, whatever the locale)."""
    t = stored.last_updated
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT"
    )
