"""Waitlist and notification routes over HTTP, and the reminder loop inside the served app."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from medfusion.api import create_app
from medfusion.config import override_settings
from medfusion.fhir.repository import FhirRepository
from medfusion.store.repository import SqlRepository
from tests.services.smtp_server import smtp_server
from tests.services.test_waitlist import _full_monday, _window


def _sql(client: TestClient) -> FhirRepository:
    repo: FhirRepository = client.app.state.repo  # type: ignore[attr-defined]
    if not isinstance(repo, SqlRepository):
        pytest.skip("the waitlist and outbox live in the SQL store")
    return repo


def test_waitlist_routes(client: TestClient) -> None:
    booked = _full_monday(_sql(client))
    start, end = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in _window())
    added = client.post(
        "/api/waitlist", json={"patient": "Patient/p1", "practitioner": "pa", "start": start, "end": end}
    )
    assert added.status_code == 201, added.text
    entry = added.json()
    assert entry["status"] == "waiting" and entry["patient"] == "Patient/p1"
    second = client.post(
        "/api/waitlist", json={"patient": "p2", "practitioner": "pa", "start": start, "end": end}
    )
    # Cancelling through the API hands the freed slot to the first in line at once.
    cancelled = client.post(f"/fhir/Appointment/{booked[0]}/$cancel", json={"reason": "ill"})
    assert cancelled.status_code == 200
    offered = client.get(f"/api/waitlist/{entry['id']}").json()
    assert offered["status"] == "offered"
    book = client.post("/fhir/Appointment/$book", json=offered["offer"]["appointment"])
    assert book.status_code == 201, book.text
    listing = client.get("/api/waitlist", params={"patient": "p2"}).json()
    assert [e["id"] for e in listing] == [second.json()["id"]]
    assert client.delete(f"/api/waitlist/{second.json()['id']}").json()["status"] == "cancelled"
    assert client.get("/api/waitlist", params={"status": "cancelled"}).json()[0]["patient"] == "Patient/p2"
    # Errors are OperationOutcomes naming the problem.
    no_target = client.post("/api/waitlist", json={"patient": "p1", "start": start, "end": end})
    assert no_target.status_code == 400 and "practitioner" in no_target.json()["issue"][0]["diagnostics"]
    assert client.get("/api/waitlist/12345").status_code == 404
    assert client.get("/api/waitlist/abc").status_code == 400
    assert client.get("/api/waitlist", params={"status": "lost"}).status_code == 400
    assert client.get("/api/notifications", params={"status": "nope"}).status_code == 400
    kinds = {n["kind"] for n in client.get("/api/notifications").json()}
    assert kinds == {"waitlist-offer"}


def test_the_reminder_loop_runs_inside_the_served_app(sql_repo: SqlRepository) -> None:
    from tests.services.test_reminders import _book, _clinic

    _clinic(sql_repo, 1)
    _book(sql_repo, "p0", timedelta(hours=1))
    with (
        smtp_server() as (received, port),
        override_settings(notifier="smtp", smtp_port=port, reminder_interval_seconds=0.05),
    ):
        with TestClient(create_app(sql_repo, reminders=True)) as client:
            deadline = time.monotonic() + 20
            while not received.snapshot() and time.monotonic() < deadline:
                time.sleep(0.05)
            sent = client.get("/api/notifications", params={"status": "sent"}).json()
        assert [r for r, _, _ in received.snapshot()] == ["p0@example.org"]
    assert len(sent) == 1 and sent[0]["communication"].startswith("Communication/")
