"""Appointment routes: availability, ``$find``, ``$hold``, ``$book``, ``$cancel``, ``$reschedule``,
``$check-in``, ``$fulfill``, no-shows and their statistics.

Included ahead of the FHIR router so ``/fhir/Appointment/$find`` is not read as an id, and
so a plain ``POST /fhir/Appointment`` that books Slots goes through the booking rules.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from medfusion.api.errors import FHIR_JSON
from medfusion.api.http import acting_patient, base_url, read_body, repo_of, resource_response
from medfusion.api.security import allow
from medfusion.errors import ForbiddenError, InvalidRequestError
from medfusion.services import authz, notifications, records, scheduling, visits, waitlist
from medfusion.services.appointment_params import (
    appointment_from_body,
    parse_find_request,
    parse_waitlist_request,
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


def _staff(request: Request, interaction: str, resource_type: str, id: str | None = None) -> None:
    """Front-desk and clinical routes: authorized like the FHIR interaction, never for patients."""
    principal = allow(request, interaction, resource_type, id)
    if principal.role == "patient" and not principal.unrestricted:
        raise ForbiddenError("this route is for staff")


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
    waitlist.process(repo_of(request))  # changed hours may free slots someone waits for
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
        specialty=found.specialty,
        visit_type=found.visit_type,
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
    stored = scheduling.book(
        repo_of(request), appointment=appointment, acting_patient=acting_patient(request)
    )
    return resource_response(stored, 201, base=base_url(request))


@router.post("/fhir/Appointment/{id}/$cancel")
async def cancel(id: str, request: Request) -> Response:
    _existing_appointment(request, allow(request, "update", "Appointment", id), id)
    reason = reason_from_body(parse_json(await read_body(request)))
    stored = scheduling.cancel(
        repo_of(request), appointment_id=id, reason=reason, acting_patient=acting_patient(request)
    )
    waitlist.process(repo_of(request))  # the freed slot goes to the first in line
    return resource_response(stored)


@router.post("/fhir/Appointment/{id}/$reschedule")
async def reschedule(id: str, request: Request) -> Response:
    _existing_appointment(request, allow(request, "update", "Appointment", id), id)
    slots = slots_from_body(parse_json(await read_body(request)))
    stored = scheduling.reschedule(repo_of(request), appointment_id=id, slots=slots)
    waitlist.process(repo_of(request))
    return resource_response(stored)


@router.post("/fhir/Appointment/{id}/$check-in")
async def check_in(id: str, request: Request) -> Response:
    _staff(request, "update", "Appointment", id)
    return resource_response(visits.check_in(repo_of(request), appointment_id=id))


@router.post("/fhir/Appointment/{id}/$fulfill")
async def fulfill(id: str, request: Request) -> Response:
    _staff(request, "update", "Appointment", id)
    return resource_response(visits.fulfill(repo_of(request), appointment_id=id))


@router.get("/api/scheduling/stats")
async def stats(request: Request) -> Response:
    _staff(request, "search", "Appointment")
    return Response(orjson.dumps(visits.no_show_stats(repo_of(request))), media_type="application/json")


@router.post("/api/scheduling/no-shows")
async def no_shows(request: Request) -> Response:
    """Mark overdue ``booked`` Appointments ``noshow`` now (the reminder loop does it every tick)."""
    _staff(request, "update", "Appointment")
    marked = visits.mark_no_shows(repo_of(request))
    body = {"marked": [f"Appointment/{id}" for id in marked]}
    return Response(orjson.dumps(body), media_type="application/json")


def _json(value: object, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def _entry_id(id: str) -> int:
    if not id.isdigit():
        raise InvalidRequestError(f"a waitlist entry id is a number, got {id!r}", expression=["id"])
    return int(id)


@router.post("/api/waitlist")
async def waitlist_add(request: Request) -> Response:
    principal = allow(request, "create", "Appointment")
    wanted = parse_waitlist_request(parse_json(await read_body(request)))
    own = (principal.patient_id, f"Patient/{principal.patient_id}")
    if principal.role == "patient" and not principal.unrestricted and wanted.patient not in own:
        raise ForbiddenError("a patient may join the waitlist for themselves only")
    entry = waitlist.request(
        repo_of(request),
        patient=wanted.patient,
        start=wanted.start,
        end=wanted.end,
        practitioner=wanted.practitioner,
        service_type=wanted.service_type,
    )
    return _json(entry, 201)


@router.get("/api/waitlist")
async def waitlist_list(request: Request, status: str | None = None, patient: str | None = None) -> Response:
    _staff(request, "search", "Appointment")
    return _json(waitlist.list_entries(repo_of(request), status=status, patient=patient))


@router.get("/api/waitlist/{id}")
async def waitlist_read(id: str, request: Request) -> Response:
    _staff(request, "read", "Appointment")
    return _json(waitlist.get_entry(repo_of(request), entry_id=_entry_id(id)))


@router.delete("/api/waitlist/{id}")
async def waitlist_cancel(id: str, request: Request) -> Response:
    _staff(request, "update", "Appointment")
    return _json(waitlist.cancel_entry(repo_of(request), entry_id=_entry_id(id)))


@router.get("/api/notifications")
async def notifications_list(request: Request, status: str | None = None, limit: int = 100) -> Response:
    """Outbox messages, newest first; ``?status=failed`` lists the sends that need a person."""
    _staff(request, "search", "Communication")
    return _json(notifications.list_notifications(repo_of(request), status=status, limit=limit))


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
        stored = scheduling.book(repo_of(request), appointment=body, acting_patient=acting_patient(request))
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
