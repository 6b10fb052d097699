"""``$reschedule`` and a plain ``POST /fhir/Appointment`` that books Slots, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.api.test_appointments import RULES, _find, _setup


def _slots(client: TestClient) -> list[dict[str, Any]]:
    _setup(client)
    client.put("/api/schedules/dr-a/availability", json={**RULES, "slotMinutes": 15, "horizonDays": 21})
    today = datetime.now(UTC).date()
    monday = today + timedelta(days=7 + (7 - today.weekday()) % 7)
    return _find(client, {"start": f"{monday}T00:00:00Z", "end": f"{monday + timedelta(days=1)}T06:00:00Z"})


def _for(proposal: dict[str, Any], patient: str) -> dict[str, Any]:
    return {**proposal, "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}]}


def _status(client: TestClient, proposal: dict[str, Any]) -> str:
    status: str = client.get(f"/fhir/{proposal['slot'][0]['reference']}").json()["status"]
    return status


def test_reschedule_over_http(client: TestClient) -> None:
    found = _slots(client)
    booked = client.post("/fhir/Appointment/$book", json=_for(found[0], "p1")).json()
    url = f"/fhir/Appointment/{booked['id']}/$reschedule"
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "slot", "valueReference": found[1]["slot"][0]}],
    }
    moved = client.post(url, json=parameters)
    assert moved.status_code == 200, moved.text
    assert moved.json()["slot"] == found[1]["slot"] and moved.json()["start"] == found[1]["start"]
    assert moved.headers["etag"] == 'W/"2"'
    assert (_status(client, found[0]), _status(client, found[1])) == ("free", "busy")
    client.post("/fhir/Appointment/$book", json=_for(found[2], "p2"))
    taken = client.post(url, json={**moved.json(), "slot": found[2]["slot"]})  # an Appointment body
    assert taken.status_code == 409 and taken.json()["issue"][0]["code"] == "conflict"
    assert client.get(f"/fhir/Appointment/{booked['id']}").json()["meta"]["versionId"] == "2"
    assert _status(client, found[1]) == "busy"
    assert client.post(url, json={"slot": []}).status_code == 400
    assert client.post("/fhir/Appointment/nope/$reschedule", json={"slot": ["Slot/x"]}).status_code == 404


def test_plain_create_of_a_booked_appointment_books_its_slots(client: TestClient) -> None:
    found = _slots(client)
    plain = {**_for(found[0], "p1"), "status": "booked"}
    created = client.post("/fhir/Appointment", json=plain)
    assert created.status_code == 201, created.text
    assert created.headers["location"].startswith("http://testserver/fhir/Appointment/")
    assert _status(client, found[0]) == "busy"
    again = client.post("/fhir/Appointment", json={**_for(found[0], "p2"), "status": "booked"})
    assert again.status_code == 409 and again.json()["issue"][0]["code"] == "conflict"
    ghost = {**plain, "slot": [{"reference": "Slot/ghost"}]}
    assert client.post("/fhir/Appointment", json=ghost).status_code == 400
    conditional = client.post("/fhir/Appointment", json=plain, headers={"If-None-Exist": "identifier=x"})
    assert conditional.status_code == 400
    # Statuses that take no slot now are stored as they are, slots untouched.
    proposed = client.post("/fhir/Appointment", json={**_for(found[1], "p3"), "status": "proposed"})
    assert proposed.status_code == 201 and _status(client, found[1]) == "free"
    no_slot = {k: v for k, v in plain.items() if k != "slot"}
    assert client.post("/fhir/Appointment", json=no_slot).status_code == 201


def test_transaction_bundle_creating_a_booked_appointment_takes_its_slots(client: TestClient) -> None:
    found = _slots(client)

    def bundle(proposal: dict[str, Any], patient: str, extra: list[dict[str, Any]] | None = None) -> Any:
        entry = {
            "resource": {**_for(proposal, patient), "status": "booked"},
            "request": {"method": "POST", "url": "Appointment"},
        }
        body = {"resourceType": "Bundle", "type": "transaction", "entry": [entry, *(extra or [])]}
        return client.post("/fhir", json=body)

    first = bundle(found[0], "p1")
    assert first.status_code == 200, first.text
    assert first.json()["entry"][0]["response"]["status"].startswith("201")
    assert _status(client, found[0]) == "busy"
    patient = {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}
    before = client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"]
    second = bundle(found[0], "p2", [patient])
    assert second.status_code == 409 and second.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Patient", params={"_summary": "count"}).json()["total"] == before  # all undone
    # A Slot created in the same Bundle is taken as it is written.
    slot = {
        "fullUrl": "urn:uuid:2b0b2f8e-5f0e-4d8a-9a51-1d3f7c0a0001",
        "resource": {
            "resourceType": "Slot",
            "schedule": {"reference": "Schedule/dr-a"},
            "status": "free",
            "start": "2031-01-06T14:00:00Z",
            "end": "2031-01-06T14:30:00Z",
        },
        "request": {"method": "POST", "url": "Slot"},
    }
    new = {**found[1], "slot": [{"reference": slot["fullUrl"]}], "start": None, "end": None}
    new = {k: v for k, v in new.items() if v is not None}
    third = bundle(new, "p3", [slot])
    assert third.status_code == 200, third.text
    location = third.json()["entry"][1]["response"]["location"]
    made = location.removeprefix("http://testserver/fhir/").split("/_history")[0]
    assert client.get(f"/fhir/{made}").json()["status"] == "busy", location
