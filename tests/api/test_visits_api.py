"""Check-in, fulfil, no-shows and ``/api/scheduling/stats`` over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from medfusion.config import override_settings
from medfusion.fhir.repository import FhirRepository
from medfusion.services import visits
from tests.api.test_appointments import RULES, _find, _setup


def repo_of_client(client: TestClient) -> FhirRepository:
    repo: FhirRepository = client.app.state.repo  # type: ignore[attr-defined]
    return repo


def _book(client: TestClient, proposal: dict[str, Any], patient: str) -> str:
    proposal["participant"].append({"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"})
    response = client.post("/fhir/Appointment/$book", json=proposal)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_check_in_no_shows_and_stats(client: TestClient) -> None:
    _setup(client)
    # Open every hour of today and tomorrow, so some slots start soon and some have passed.
    rules = {**RULES, "horizonDays": 2, "weekly": {d: [{"start": "00:00", "end": "24:00"}] for d in (
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}}  # fmt: skip
    assert client.put("/api/schedules/dr-a/availability", json=rules).status_code == 200
    now = datetime.now(UTC)
    window = {"start": now.isoformat(), "end": (now + timedelta(hours=3)).isoformat(), "_count": 2}
    first, second = _find(client, window)
    came, missed = _book(client, first, "p1"), _book(client, second, "p2")
    arrived = client.post(f"/fhir/Appointment/{came}/$check-in")
    assert arrived.status_code == 200 and arrived.json()["status"] == "arrived"
    assert client.post(f"/fhir/Appointment/{came}/$fulfill").json()["status"] == "fulfilled"
    assert client.post("/fhir/Appointment/ghost/$check-in").status_code == 404
    with override_settings(noshow_grace_minutes=0):
        assert client.post("/api/scheduling/no-shows").json() == {"marked": []}  # not started yet
    # Four hours on, the booked visit without check-in is past its start and grace period.
    marked = visits.mark_no_shows(repo_of_client(client), now=datetime.now(UTC) + timedelta(hours=4))
    assert marked == [missed]
    again = client.post(f"/fhir/Appointment/{missed}/$check-in")
    assert again.status_code == 409 and again.json()["resourceType"] == "OperationOutcome"
    stats = client.get("/api/scheduling/stats").json()
    assert stats["visits"] == 2 and stats["noShows"] == 1
    assert {r["reference"]: r["noShowRate"] for r in stats["patients"]} == {
        "Patient/p2": 1.0,
        "Patient/p1": 0.0,
    }
    assert stats["practitioners"] == [
        {"reference": "Practitioner/pa", "visits": 2, "noShows": 1, "noShowRate": 0.5}
    ]


def test_a_patient_caller_may_book_only_for_themself(sql_repo: FhirRepository) -> None:
    """The HTTP seam: whatever authenticates a patient sets ``request.state.acting_patient``."""
    from medfusion.api import create_app

    app = create_app(sql_repo)

    @app.middleware("http")
    async def as_patient_p1(request: Any, call_next: Any) -> Any:  # stands in for authentication
        request.state.acting_patient = "Patient/p1"
        return await call_next(request)

    with TestClient(app) as client:
        _setup(client)
        assert (
            client.put("/api/schedules/dr-a/availability", json={**RULES, "horizonDays": 21}).status_code
            == 200
        )
        today = datetime.now(UTC).date()
        monday = today + timedelta(days=7 + (7 - today.weekday()) % 7)
        window = {"start": f"{monday}T00:00:00Z", "end": f"{monday + timedelta(days=1)}T00:00:00Z"}
        first, second = _find(client, window)
        first["participant"].append({"actor": {"reference": "Patient/p2"}, "status": "accepted"})
        refused = client.post("/fhir/Appointment/$book", json=first)
        assert refused.status_code == 403 and refused.json()["issue"][0]["code"] == "forbidden"
        second["participant"].append({"actor": {"reference": "Patient/p1"}, "status": "accepted"})
        booked = client.post("/fhir/Appointment/$book", json=second)
        assert booked.status_code == 201
        # The front desk hears of the self-booking.
        notices = client.get("/api/notifications").json()
        assert [n["kind"] for n in notices] == ["staff-booked"]
