"""Appointment routes: availability, $find, $book, $cancel, over HTTP on every backend."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from medfusion.config import override_settings

RULES: dict[str, Any] = {
    "timezone": "America/New_York",
    "slotMinutes": 30,
    "horizonDays": 7,
    "serviceTypes": ["57"],
    "weekly": {"monday": [{"start": "09:00", "end": "10:00"}]},
}
WINDOW = {"start": "2030-01-07T00:00:00Z", "end": "2030-01-08T00:00:00Z"}


def _utc(day: date, at: time) -> str:
    local = datetime.combine(day, at, tzinfo=ZoneInfo("America/New_York"))
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _setup(client: TestClient) -> None:
    client.put("/fhir/Practitioner/pa", json={"resourceType": "Practitioner", "id": "pa"})
    client.put(
        "/fhir/Schedule/dr-a",
        json={
            "resourceType": "Schedule",
            "id": "dr-a",
            "actor": [{"reference": "Practitioner/pa"}],
        },
    )


def _find(client: TestClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post("/fhir/Appointment/$find", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    return [e["resource"] for e in response.json()["entry"]]


def test_front_desk_flow(client: TestClient) -> None:
    _setup(client)
    # The horizon starts now, so search a Monday one to two weeks ahead.
    response = client.put("/api/schedules/dr-a/availability", json={**RULES, "horizonDays": 21})
    assert response.status_code == 200, response.text
    assert response.json()["created"] >= 4
    assert client.get("/api/schedules/dr-a/availability").json()["timezone"] == "America/New_York"
    today = datetime.now(UTC).date()
    monday = today + timedelta(days=7 + (7 - today.weekday()) % 7)
    soon = f"{monday}T00:00:00Z", f"{monday + timedelta(days=1)}T06:00:00Z"
    expected = [_utc(monday, time(9)), _utc(monday, time(9, 30))]
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "start", "valueDateTime": soon[0]},
            {"name": "end", "valueDateTime": soon[1]},
            {"name": "practitioner", "valueReference": {"reference": "Practitioner/pa"}},
            {"name": "service-type", "valueCoding": {"code": "57"}},
        ],
    }
    proposals = _find(client, parameters)
    assert [p["start"] for p in proposals] == expected
    chosen = {
        **proposals[0],
        "participant": [
            *proposals[0]["participant"],
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
        ],
    }
    booked = client.post("/fhir/Appointment/$book", json=chosen)
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "booked" and booked.headers["location"].startswith(
        "http://testserver/fhir/Appointment/"
    )
    slot_id = chosen["slot"][0]["reference"]
    assert client.get(f"/fhir/{slot_id}").json()["status"] == "busy"
    again = client.post(
        "/fhir/Appointment/$book",
        json={"resourceType": "Parameters", "parameter": [{"name": "appt-resource", "resource": chosen}]},
    )
    assert again.status_code == 409
    assert again.json()["resourceType"] == "OperationOutcome"
    assert again.json()["issue"][0]["code"] == "conflict"
    assert [p["start"] for p in _find(client, {"start": soon[0], "end": soon[1]})] == expected[1:]
    appointment = booked.json()["id"]
    cancelled = client.post(f"/fhir/Appointment/{appointment}/$cancel", json={"reason": "patient request"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get(f"/fhir/{slot_id}").json()["status"] == "free"
    assert len(_find(client, {"start": soon[0], "end": soon[1]})) == 2


def test_errors_are_operation_outcomes(client: TestClient) -> None:
    _setup(client)
    bad_rules = client.put("/api/schedules/dr-a/availability", json={**RULES, "timezone": "Nowhere/Land"})
    assert bad_rules.status_code == 400 and "timezone" in bad_rules.json()["issue"][0]["diagnostics"]
    assert client.put("/api/schedules/ghost/availability", json=RULES).status_code == 404
    assert client.get("/api/schedules/dr-a/availability").status_code == 404
    assert client.post("/fhir/Appointment/$find", json={"start": "2030-01-07"}).status_code == 400
    assert client.post("/fhir/Appointment/$find", json={**WINDOW, "specialty": "x|"}).status_code == 400
    assert client.post("/fhir/Appointment/$find", json={**WINDOW, "colour": "red"}).status_code == 400
    assert (
        client.post("/fhir/Appointment/$find", json={**WINDOW, "start": "2030-01-07T09:00"}).status_code
        == 400
    )
    no_slot = {
        "resourceType": "Appointment",
        "status": "proposed",
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}],
    }
    assert client.post("/fhir/Appointment/$book", json=no_slot).status_code == 400
    assert client.post("/fhir/Appointment/nope/$cancel", json={"reason": "x"}).status_code == 404
    assert client.post("/fhir/Appointment/nope/$cancel", json={}).status_code == 400


def test_hold_and_patient_limit(client: TestClient) -> None:
    _setup(client)
    client.put("/api/schedules/dr-a/availability", json={**RULES, "slotMinutes": 15, "horizonDays": 21})
    today = datetime.now(UTC).date()
    monday = today + timedelta(days=7 + (7 - today.weekday()) % 7)
    found = _find(client, {"start": f"{monday}T00:00:00Z", "end": f"{monday + timedelta(days=1)}T06:00:00Z"})
    held = client.post(
        "/fhir/Appointment/$hold",
        json={**found[2], "participant": [{"actor": {"reference": "Patient/p8"}, "status": "accepted"}]},
    )
    assert held.status_code == 200 and held.json()["status"] == "pending"
    assert (
        client.post(
            "/fhir/Appointment/$book",
            json={**found[2], "participant": [{"actor": {"reference": "Patient/p7"}, "status": "accepted"}]},
        ).status_code
        == 409
    )
    assert client.post("/fhir/Appointment/$book", json=held.json()).status_code == 201
    with override_settings(max_future_appointments=1):
        patient = {"actor": {"reference": "Patient/p9"}, "status": "accepted"}
        first = client.post("/fhir/Appointment/$book", json={**found[0], "participant": [patient]})
        assert first.status_code == 201, first.text
        second = client.post("/fhir/Appointment/$book", json={**found[1], "participant": [patient]})
        assert second.status_code == 422
        assert second.json()["issue"][0]["code"] == "business-rule"
