"""FHIR R4 REST routes under ``/fhir``. Each one parses, calls one service, renders."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from medfusion.api.errors import FHIR_JSON
from medfusion.api.http import base_url, read_body, repo_of, resource_response
from medfusion.services import bundles, records, search
from medfusion.services.capability import capability_statement
from medfusion.services.parsing import parse_json, parse_query

__all__ = ["read", "router", "search_get"]

router = APIRouter()


def _written(outcome: records.WriteOutcome, request: Request) -> Response:
    """201 with Location for a creation, 200 otherwise; ``Prefer: return=minimal`` honoured."""
    return resource_response(
        outcome.stored,
        201 if outcome.created else 200,
        base=base_url(request),
        prefer=request.headers.get("prefer"),
    )


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
    stored = records.read(repo_of(request), resource_type=resource_type, id=id)
    return resource_response(stored)


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    return _bundle(capability_statement(base_url(request)))


@router.post("")
@router.post("/")
async def batch_or_transaction(request: Request) -> Response:
    bundle = parse_json(await read_body(request))
    report = bundles.process_bundle(repo_of(request), bundle=bundle)
    return _bundle(report.to_bundle(base_url(request)))


@router.get("/_history")
async def system_history(request: Request) -> Response:
    params = list(request.query_params.multi_items())
    return _bundle(
        search.history(repo_of(request), resource_type=None, id=None, params=params, base=base_url(request))
    )


@router.get("/{resource_type}")
async def search_type(resource_type: str, request: Request) -> Response:
    return _search(resource_type, request, list(request.query_params.multi_items()))


async def search_get(request: Request) -> Response:
    """``GET [type]?...`` as a plain Starlette route, like :func:`read`.

    It sits in front of the router, so it also receives ``/metadata`` and ``/_history``.
    """
    resource_type = request.path_params["resource_type"]
    if resource_type == "metadata":
        return await metadata(request)
    if resource_type == "_history":
        return await system_history(request)
    return _search(resource_type, request, list(request.query_params.multi_items()))


@router.post("/{resource_type}/_search")
async def search_post(resource_type: str, request: Request) -> Response:
    form = (await request.body()).decode("utf-8", errors="replace")
    return _search(resource_type, request, list(request.query_params.multi_items()) + parse_query(form))


def _search(resource_type: str, request: Request, params: list[tuple[str, str]]) -> Response:
    body = search.search(
        repo_of(request),
        resource_type=resource_type,
        params=params,
        base=base_url(request),
        strict=_strict(request),
    )
    return _bundle(body)


@router.post("/{resource_type}")
async def create(resource_type: str, request: Request) -> Response:
    body = await read_body(request)
    outcome = records.create(
        repo_of(request),
        resource_type=resource_type,
        body=body,
        if_none_exist=request.headers.get("if-none-exist"),
    )
    return _written(outcome, request)


@router.put("/{resource_type}")
async def conditional_update(resource_type: str, request: Request) -> Response:
    body = await read_body(request)
    query = list(request.query_params.multi_items())
    outcome = records.conditional_update(
        repo_of(request), resource_type=resource_type, query=query, body=body
    )
    return _written(outcome, request)


async def type_history(resource_type: str, request: Request) -> Response:
    params = list(request.query_params.multi_items())
    return _bundle(
        search.history(
            repo_of(request), resource_type=resource_type, id=None, params=params, base=base_url(request)
        )
    )


@router.put("/{resource_type}/{id}")
async def update(resource_type: str, id: str, request: Request) -> Response:
    body = await read_body(request)
    outcome = records.update(
        repo_of(request),
        resource_type=resource_type,
        id=id,
        body=body,
        if_match=request.headers.get("if-match"),
    )
    return _written(outcome, request)


@router.patch("/{resource_type}/{id}")
async def patch(resource_type: str, id: str, request: Request) -> Response:
    body = await read_body(request)
    outcome = records.patch(
        repo_of(request),
        resource_type=resource_type,
        id=id,
        body=body,
        if_match=request.headers.get("if-match"),
    )
    return resource_response(outcome.stored, base=base_url(request))


@router.delete("/{resource_type}/{id}")
async def delete(resource_type: str, id: str, request: Request) -> Response:
    records.delete(repo_of(request), resource_type=resource_type, id=id)
    return Response(status_code=204)


@router.get("/{resource_type}/{id}/_history")
async def instance_history(resource_type: str, id: str, request: Request) -> Response:
    params = list(request.query_params.multi_items())
    return _bundle(
        search.history(
            repo_of(request), resource_type=resource_type, id=id, params=params, base=base_url(request)
        )
    )


@router.get("/{resource_type}/{id}/_history/{version}")
async def vread(resource_type: str, id: str, version: str, request: Request) -> Response:
    stored = records.vread(repo_of(request), resource_type=resource_type, id=id, version=version)
    return resource_response(stored)


@router.get("/Patient/{id}/$everything")
async def everything(id: str, request: Request) -> Response:
    return _bundle(search.everything(repo_of(request), id=id, base=base_url(request)))
