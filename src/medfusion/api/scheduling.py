"""Appointment routes: availability, ``$find``, ``$hold``, ``$book``, ``$cancel``, ``$reschedule``.

Included ahead of the FHIR router so ``/fhir/Appointment/$find`` is not read as an id, and
so a plain ``POST /fhir/Appointment`` that books Slots goes through the booking rules.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from medfusion.api.errors import FHIR_JSON
from medfusion.api.http import base_url, read_body, repo_of, resource_response
from medfusion.api.security import allow
from medfusion.errors import ForbiddenError, InvalidRequestError
from medfusion.services import authz, records, scheduling
from medfusion.services.appointment_params import (
    appointment_from_body,
    parse_find_request,
    reason_from_body,
    slots_from_body,
)
from medfusion.services.parsing import parse_json
from medfusion.services.security import Principal

__all__ = ["router"]

router = APIRouter()


def _own_appointment(principal: Principal, body: object) -> None:
    """A patient books, holds and creates appointments for themselves only."""
    if principal.role != "patient" or principal.unrestricted:
        return
    if not isinstance(body, dict) or not authz.visible(principal, {**body, "resourceType": "Appointment"}):
        raise ForbiddenError("a patient may book appointments for themselves only")


def _existing_appointment(request: Request, principal: Principal, id: str) -> None:
    if principal.unrestricted:
        return
    with repo_of(request).begin_read() as tx:
        found = tx.read_current("Appointment", id)
    if found is not None and not found.deleted:
        authz.check_visible(principal, found.body)


@router.put("/api/schedules/{id}/availability")
async def put_availability(id: str, request: Request) -> Response:
    allow(request, "update", "Schedule", id)
    rules = parse_json(await read_body(request))
    report = scheduling.set_availability(repo_of(request), schedule_id=id, rules=rules)
    return Response(orjson.dumps(report.to_json()), media_type="application/json")


@router.get("/api/schedules/{id}/availability")
async def get_availability(id: str, request: Request) -> Response:
    allow(request, "read", "Schedule", id)
    rules = scheduling.availability(repo_of(request), schedule_id=id)
    return Response(orjson.dumps(rules), media_type="application/json")


@router.post("/fhir/Appointment/$find")
async def find(request: Request) -> Response:
    allow(request, "search", "Slot")
    found = parse_find_request(parse_json(await read_body(request)))
    bundle = scheduling.find(
        repo_of(request),
        start=found.start,
        end=found.end,
        practitioner=found.practitioner,
        location=found.location,
        service_type=found.service_type,
        count=found.count,
    )
    return Response(orjson.dumps(bundle), media_type=FHIR_JSON)


@router.post("/fhir/Appointment/$hold")
async def hold(request: Request) -> Response:
    principal = allow(request, "create", "Appointment")
    appointment = appointment_from_body(parse_json(await read_body(request)))
    _own_appointment(principal, appointment)
    held = scheduling.hold(repo_of(request), appointment=appointment)
    return Response(orjson.dumps(held), media_type=FHIR_JSON)


@router.post("/fhir/Appointment/$book")
async def book(request: Request) -> Response:
    principal = allow(request, "create", "Appointment")
    appointment = appointment_from_body(parse_json(await read_body(request)))
    _own_appointment(principal, appointment)
    stored = scheduling.book(repo_of(request), appointment=appointment)
    return resource_response(stored, 201, base=base_url(request))


@router.post("/fhir/Appointment/{id}/$cancel")
async def cancel(id: str, request: Request) -> Response:
    _existing_appointment(request, allow(request, "update", "Appointment", id), id)
    reason = reason_from_body(parse_json(await read_body(request)))
    stored = scheduling.cancel(repo_of(request), appointment_id=id, reason=reason)
    return resource_response(stored)


@router.post("/fhir/Appointment/{id}/$reschedule")
async def reschedule(id: str, request: Request) -> Response:
    _existing_appointment(request, allow(request, "update", "Appointment", id), id)
    slots = slots_from_body(parse_json(await read_body(request)))
    stored = scheduling.reschedule(repo_of(request), appointment_id=id, slots=slots)
    return resource_response(stored)


@router.post("/fhir/Appointment")
async def create(request: Request) -> Response:
    """A plain create; a ``booked`` Appointment that names Slots is booked like ``$book``.

    Otherwise a create that names Slots would bypass the double-booking rules. Other
    statuses (proposed, cancelled, fulfilled, ...) do not take a Slot now, so they are
    stored as they are, like any resource.
    """
    principal = allow(request, "create", "Appointment")
    raw = await read_body(request)
    body = parse_json(raw)
    _own_appointment(principal, body)
    if isinstance(body, dict) and body.get("status") == "booked" and body.get("slot"):
        if request.headers.get("if-none-exist"):
            raise InvalidRequestError(
                "a conditional create cannot book Slots; use $book", expression=["Appointment.slot"]
            )
        stored = scheduling.book(repo_of(request), appointment=body)
        return resource_response(stored, 201, base=base_url(request), prefer=request.headers.get("prefer"))
    outcome = records.create(
        repo_of(request),
        resource_type="Appointment",
        body=raw,
        if_none_exist=request.headers.get("if-none-exist"),
    )
    return resource_response(
        outcome.stored,
        201 if outcome.created else 200,
        base=base_url(request),
        prefer=request.headers.get("prefer"),
    )
