"""FHIR R4 REST routes under ``/fhir``. Each one authorizes, parses, calls one service, renders.

Every route calls :func:`~medfusion.api.security.allow` before touching the store, then
applies the object-level checks of :mod:`medfusion.services.authz` (a patient's
compartment, restricted labels) to what it returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Request
from fastapi.responses import Response

from medfusion.api.errors import FHIR_JSON
from medfusion.api.http import base_url, read_body, repo_of, resource_response
from medfusion.api.security import allow, audit_of, note_bundle_entities, principal_of
from medfusion.config import get_settings
from medfusion.errors import BundleEntryError, ForbiddenError, GoneError, InvalidRequestError, NotFoundError
from medfusion.services import authz, bundles, records, search
from medfusion.services.audit import AuditTrail
from medfusion.services.capability import capability_statement
from medfusion.services.parsing import parse_json, parse_query
from medfusion.services.security import Principal

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


def _trail(request: Request) -> AuditTrail | None:
    trail: AuditTrail | None = getattr(request.app.state, "trail", None)
    return trail


def _filtered(request: Request, principal: Principal, body: bytes) -> Response:
    body = authz.filter_bundle(principal, body)
    note_bundle_entities(request, body)
    return _bundle(body)


def _check_existing(request: Request, principal: Principal, resource_type: str, id: str) -> None:
    """Before a write by id: the caller must be allowed to see what is there now."""
    if principal.unrestricted:
        return
    with repo_of(request).begin_read() as tx:
        found = tx.read_current(resource_type, id)
    if found is not None and not found.deleted:
        authz.check_visible(principal, found.body)


def _check_body(principal: Principal, body: bytes) -> None:
    """A patient may write only resources in their own compartment."""
    if principal.role == "patient" and not principal.unrestricted:
        resource = parse_json(body)
        if not isinstance(resource, dict) or not authz.owned_by(resource, principal.patient_id or ""):
            raise ForbiddenError("a patient may write their own records only")


@contextmanager
def _uniform_404(principal: Principal) -> Iterator[None]:
    """For a patient, absent, deleted and someone else's records all answer the same 404.

    Otherwise a 410 for a deleted record, or a message naming the id, would tell them
    apart from another patient's record (which answers 404 without naming it).
    """
    try:
        yield
    except (NotFoundError, GoneError):
        if principal.role != "patient" or principal.unrestricted:
            raise
        raise NotFoundError(authz.NOT_KNOWN) from None


# Read by id is the hottest route; ``create_app`` also mounts it as a plain Starlette route
# in front of the router, so it takes the bare request. ``_history`` shares its shape.
@router.get("/{resource_type}/{id}")
async def read(request: Request) -> Response:
    resource_type = request.path_params["resource_type"]
    id = request.path_params["id"]
    if id == "_history":
        return await type_history(resource_type, request)
    principal = allow(request, "read", resource_type, id)
    if resource_type == "AuditEvent" and (trail := _trail(request)) is not None:
        found = trail.read(id)
        if found is None:
            raise NotFoundError(f"AuditEvent/{id} is not known")
        return resource_response(found)
    try:  # ``_uniform_404`` spelled out: this is the hottest route
        stored = records.read(repo_of(request), resource_type=resource_type, id=id)
    except (NotFoundError, GoneError):
        with _uniform_404(principal):
            raise
    authz.check_visible(principal, stored.body)
    return resource_response(stored)


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    return _bundle(capability_statement(base_url(request)))


@router.post("")
@router.post("/")
async def batch_or_transaction(request: Request) -> Response:
    bundle = parse_json(await read_body(request))
    entry = audit_of(request)
    entry.interaction = (
        "transaction" if isinstance(bundle, dict) and bundle.get("type") == "transaction" else "batch"
    )
    principal = principal_of(request)
    authz.check_bundle(principal, bundle, repo_of(request), BundleEntryError)
    request.scope["medfusion.authorized"] = True
    report = bundles.process_bundle(repo_of(request), bundle=bundle, guard=authz.guard(principal))
    body = report.to_bundle(base_url(request))
    note_bundle_entities(request, body)
    return _bundle(body)


@router.get("/_history")
async def system_history(request: Request) -> Response:
    principal = allow(request, "history-system", "*")
    params = list(request.query_params.multi_items())
    body = search.history(
        repo_of(request), resource_type=None, id=None, params=params, base=base_url(request)
    )
    return _filtered(request, principal, body)


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
    names = {name.split(":")[0] for name, _ in params}
    aggregate = ("_summary", "count") in params and not names & {"_include", "_revinclude"}
    principal = allow(request, "search", resource_type, aggregate=aggregate)
    trail = _trail(request)
    if resource_type == "AuditEvent" and trail is not None:
        settings = get_settings()
        values = dict(params)
        try:
            count = min(int(values.get("_count", settings.default_page_size)), settings.max_page_size)
            offset = int(values.get("_offset", 0))
        except ValueError:
            raise InvalidRequestError("_count and _offset must be whole numbers") from None
        if count < 0 or offset < 0:
            raise InvalidRequestError("_count and _offset must not be negative")
        return _bundle(trail.search(params, base=base_url(request), count=count, offset=offset))
    body = search.search(
        repo_of(request),
        resource_type=resource_type,
        params=authz.restrict_search(principal, resource_type, params),
        base=base_url(request),
        strict=_strict(request),
    )
    return _filtered(request, principal, body)


@router.post("/{resource_type}")
async def create(resource_type: str, request: Request) -> Response:
    principal = allow(request, "create", resource_type)
    body = await read_body(request)
    _check_body(principal, body)
    outcome = records.create(
        repo_of(request),
        resource_type=resource_type,
        body=body,
        if_none_exist=authz.restrict_criteria(principal, resource_type, request.headers.get("if-none-exist")),
        guard=authz.guard(principal),
    )
    return _written(outcome, request)


@router.put("/{resource_type}")
async def conditional_update(resource_type: str, request: Request) -> Response:
    principal = allow(request, "update", resource_type)
    if principal.role == "patient":
        raise ForbiddenError("a patient may not make conditional updates")
    body = await read_body(request)
    query = list(request.query_params.multi_items())
    outcome = records.conditional_update(
        repo_of(request), resource_type=resource_type, query=query, body=body, guard=authz.guard(principal)
    )
    return _written(outcome, request)


async def type_history(resource_type: str, request: Request) -> Response:
    principal = allow(request, "history-type", resource_type)
    params = list(request.query_params.multi_items())
    body = search.history(
        repo_of(request), resource_type=resource_type, id=None, params=params, base=base_url(request)
    )
    return _filtered(request, principal, body)


@router.put("/{resource_type}/{id}")
async def update(resource_type: str, id: str, request: Request) -> Response:
    principal = allow(request, "update", resource_type, id)
    body = await read_body(request)
    _check_existing(request, principal, resource_type, id)
    _check_body(principal, body)
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
    principal = allow(request, "patch", resource_type, id)
    if principal.role == "patient":
        raise ForbiddenError("a patient may not patch records")
    body = await read_body(request)
    _check_existing(request, principal, resource_type, id)
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
    principal = allow(request, "delete", resource_type, id)
    _check_existing(request, principal, resource_type, id)
    records.delete(repo_of(request), resource_type=resource_type, id=id)
    return Response(status_code=204)


@router.get("/{resource_type}/{id}/_history")
async def instance_history(resource_type: str, id: str, request: Request) -> Response:
    principal = allow(request, "history-instance", resource_type, id)
    if principal.role == "patient":
        with repo_of(request).begin_read() as tx:
            found = tx.read_current(resource_type, id)
        if found is None or found.deleted:
            raise NotFoundError(authz.NOT_KNOWN)
        authz.check_visible(principal, found.body)
    params = list(request.query_params.multi_items())
    body = search.history(
        repo_of(request), resource_type=resource_type, id=id, params=params, base=base_url(request)
    )
    return _filtered(request, principal, body)


@router.get("/{resource_type}/{id}/_history/{version}")
async def vread(resource_type: str, id: str, version: str, request: Request) -> Response:
    principal = allow(request, "vread", resource_type, id)
    with _uniform_404(principal):
        stored = records.vread(repo_of(request), resource_type=resource_type, id=id, version=version)
    authz.check_visible(principal, stored.body)
    return resource_response(stored)


@router.get("/Patient/{id}/$everything")
async def everything(id: str, request: Request) -> Response:
    principal = allow(request, "everything", "Patient", id)
    if principal.role == "patient" and id != principal.patient_id:
        raise NotFoundError(f"Patient/{id} is not known")
    body = search.everything(repo_of(request), id=id, base=base_url(request))
    return _filtered(request, principal, body)
