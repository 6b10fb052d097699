"""FHIR R4 REST routes under ``/fhir``. Each one parses, calls one service, renders."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from medfusion.api.errors import FHIR_JSON
from medfusion.config import get_settings
from medfusion.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedError
from medfusion.fhir.repository import FhirRepository, StoredResource
from medfusion.services import bundles, records, search
from medfusion.services.capability import capability_statement
from medfusion.services.parsing import parse_json, parse_query

__all__ = ["read", "router"]

router = APIRouter()

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json-patch+json")


def _repo(request: Request) -> FhirRepository:
    repo: FhirRepository = request.app.state.repo
    return repo


def _base(request: Request) -> str:
    configured = get_settings().base_url
    return configured.rstrip("/") if configured else f"{str(request.base_url).rstrip('/')}/fhir"


async def _body(request: Request) -> bytes:
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


def _resource_response(
    stored: StoredResource, status: int = 200, *, base: str | None = None, prefer: str | None = None
) -> Response:
    headers = {"ETag": stored.etag, "Last-Modified": _http_date(stored)}
    if base is not None:
        headers["Location"] = f"{base}/{stored.resource_type}/{stored.id}/_history/{stored.version}"
    if prefer and "return=minimal" in prefer:
        return Response(status_code=status, headers=headers)
    return Response(stored.body, status_code=status, media_type=FHIR_JSON, headers=headers)


def _written(outcome: records.WriteOutcome, request: Request) -> Response:
    """201 with Location for a creation, 200 otherwise; ``Prefer: return=minimal`` honoured."""
    return _resource_response(
        outcome.stored,
        201 if outcome.created else 200,
        base=_base(request),
        prefer=request.headers.get("prefer"),
    )


def _http_date(stored: StoredResource) -> str:
    return stored.last_updated.strftime("%a, %d %b %Y %H:%M:%S GMT")


def _strict(request: Request) -> bool:
    return "handling=strict" in request.headers.get("prefer", "").replace(" ", "")


def _bundle(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=FHIR_JSON)


# Read by id is the hottest route; ``create_app`` also mounts it as a plain Starlette route
# in front of the router, so it takes the bare request. ``_history`` shares its shape.
@router.get("/{resource_type}/{id}")
async def read(request: Request) -> Response:
    resource_type = request.path_params["resource_type"]
    id = request.path_params["id"]
    if id == "_history":
        return await type_history(resource_type, request)
    stored = records.read(_repo(request), resource_type=resource_type, id=id)
    return _resource_response(stored)


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    return _bundle(capability_statement(_base(request)))


@router.post("")
@router.post("/")
async def batch_or_transaction(request: Request) -> Response:
    bundle = parse_json(await _body(request))
    report = bundles.process_bundle(_repo(request), bundle=bundle)
    return _bundle(report.to_bundle(_base(request)))


@router.get("/_history")
async def system_history(request: Request) -> Response:
    params = list(request.query_params.multi_items())
    return _bundle(
        search.history(_repo(request), resource_type=None, id=None, params=params, base=_base(request))
    )


@router.get("/{resource_type}")
async def search_type(resource_type: str, request: Request) -> Response:
    return _search(resource_type, request, list(request.query_params.multi_items()))


@router.post("/{resource_type}/_search")
async def search_post(resource_type: str, request: Request) -> Response:
    form = (await request.body()).decode("utf-8", errors="replace")
    return _search(resource_type, request, list(request.query_params.multi_items()) + parse_query(form))


def _search(resource_type: str, request: Request, params: list[tuple[str, str]]) -> Response:
    body = search.search(
        _repo(request),
        resource_type=resource_type,
        params=params,
        base=_base(request),
        strict=_strict(request),
    )
    return _bundle(body)


@router.post("/{resource_type}")
async def create(resource_type: str, request: Request) -> Response:
    body = await _body(request)
    outcome = records.create(
        _repo(request),
        resource_type=resource_type,
        body=body,
        if_none_exist=request.headers.get("if-none-exist"),
    )
    return _written(outcome, request)


@router.put("/{resource_type}")
async def conditional_update(resource_type: str, request: Request) -> Response:
    body = await _body(request)
    query = list(request.query_params.multi_items())
    outcome = records.conditional_update(_repo(request), resource_type=resource_type, query=query, body=body)
    return _written(outcome, request)


async def type_history(resource_type: str, request: Request) -> Response:
    params = list(request.query_params.multi_items())
    return _bundle(
        search.history(
            _repo(request), resource_type=resource_type, id=None, params=params, base=_base(request)
        )
    )


@router.put("/{resource_type}/{id}")
async def update(resource_type: str, id: str, request: Request) -> Response:
    body = await _body(request)
    outcome = records.update(
        _repo(request),
        resource_type=resource_type,
        id=id,
        body=body,
        if_match=request.headers.get("if-match"),
    )
    return _written(outcome, request)


@router.patch("/{resource_type}/{id}")
async def patch(resource_type: str, id: str, request: Request) -> Response:
    body = await _body(request)
    outcome = records.patch(
        _repo(request),
        resource_type=resource_type,
        id=id,
        body=body,
        if_match=request.headers.get("if-match"),
    )
    return _resource_response(outcome.stored, base=_base(request))


@router.delete("/{resource_type}/{id}")
async def delete(resource_type: str, id: str, request: Request) -> Response:
    records.delete(_repo(request), resource_type=resource_type, id=id)
    return Response(status_code=204)


@router.get("/{resource_type}/{id}/_history")
async def instance_history(resource_type: str, id: str, request: Request) -> Response:
    params = list(request.query_params.multi_items())
    return _bundle(
        search.history(_repo(request), resource_type=resource_type, id=id, params=params, base=_base(request))
    )


@router.get("/{resource_type}/{id}/_history/{version}")
async def vread(resource_type: str, id: str, version: str, request: Request) -> Response:
    stored = records.vread(_repo(request), resource_type=resource_type, id=id, version=version)
    return _resource_response(stored)


@router.get("/Patient/{id}/$everything")
async def everything(id: str, request: Request) -> Response:
    return _bundle(search.everything(_repo(request), id=id, base=_base(request)))
