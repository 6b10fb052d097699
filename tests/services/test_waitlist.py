"""The waitlist: order of the line, offers held for a while, lapsed offers passing to the next."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from medfusion.config import override_settings
from medfusion.errors import ConflictError, InvalidRequestError, NotFoundError
from medfusion.fhir import resource as fhir_resource
from medfusion.fhir.repository import FhirRepository
from medfusion.services import notifications, records, scheduling, waitlist
from medfusion.store.repository import SqlRepository

MONDAY_HOUR: dict[str, Any] = {
    "timezone": "UTC",
    "slotMinutes": 30,
    "horizonDays": 21,
    "weekly": {"monday": [{"start": "09:00", "end": "10:00"}]},
}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], None]:
    """Move every medfusion module's clock forward by a given amount."""
    original = fhir_resource.now_utc

    def advance(by: timedelta) -> None:
        for name, module in list(sys.modules.items()):
            if name.startswith("medfusion.") and getattr(module, "now_utc", None) is not None:
                monkeypatch.setattr(module, "now_utc", lambda: original() + by)

    return advance


def _put(repo: FhirRepository, body: dict[str, Any]) -> None:
    records.update(repo, resource_type=body["resourceType"], id=body["id"], body=orjson.dumps(body))


def _window() -> tuple[datetime, datetime]:
    today = datetime.now(UTC).date()
    monday = today + timedelta(days=7 + (7 - today.weekday()) % 7)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _full_monday(repo: FhirRepository) -> list[str]:
    """A practitioner whose two Monday slots are both booked; returns the Appointment ids."""
    _put(repo, {"resourceType": "Practitioner", "id": "pa"})
    _put(repo, {"resourceType": "Schedule", "id": "dr-a", "actor": [{"reference": "Practitioner/pa"}]})
    for patient in ("x1", "x2", "p1", "p2", "p3"):
        _put(
            repo,
            {
                "resourceType": "Patient",
                "id": patient,
                "telecom": [{"system": "email", "value": f"{patient}@example.org"}],
            },
        )
    scheduling.set_availability(repo, schedule_id="dr-a", rules=MONDAY_HOUR)
    start, end = _window()
    ids = []
    for i, entry in enumerate(scheduling.find(repo, start=start, end=end)["entry"]):
        proposal = entry["resource"]
        proposal["participant"].append({"actor": {"reference": f"Patient/x{i + 1}"}, "status": "accepted"})
        ids.append(scheduling.book(repo, appointment=proposal).id)
    assert len(ids) == 2
    return ids


def _wait(repo: FhirRepository, patient: str) -> int:
    start, end = _window()
    entry = waitlist.request(repo, patient=patient, practitioner="pa", start=start, end=end)
    return int(entry["id"])


def test_freed_slots_go_to_the_line_in_order_and_lapse_to_the_next(
    sql_repo: SqlRepository, clock: Callable[[timedelta], None]
) -> None:
    booked = _full_monday(sql_repo)
    first, second, third = _wait(sql_repo, "p1"), _wait(sql_repo, "Patient/p2"), _wait(sql_repo, "p3")
    assert [e["status"] for e in waitlist.list_entries(sql_repo)] == ["waiting"] * 3
    # A cancellation frees a slot: the first in line is offered it, held for them.
    scheduling.cancel(sql_repo, appointment_id=booked[0], reason="ill")
    report = waitlist.process(sql_repo)
    assert report.offered == [first]
    offer = waitlist.get_entry(sql_repo, entry_id=first)
    assert offer["status"] == "offered" and offer["offers"] == 1
    slot = offer["offer"]["slot"].split("/")[1]
    assert sql_repo.read("Slot", slot).json()["status"] == "busy-tentative"
    assert waitlist.get_entry(sql_repo, entry_id=second)["status"] == "waiting"
    # Nobody else can take the held slot, not even the second in line.
    start, end = _window()
    assert scheduling.find(sql_repo, start=start, end=end)["entry"] == []
    # The offer reaches the patient through the outbox.
    offers = [n for n in notifications.list_notifications(sql_repo) if n["kind"] == "waitlist-offer"]
    assert [n["recipient"] for n in offers] == ["p1@example.org"]
    # The first patient lets it lapse: after expiry it passes to the second.
    with override_settings(waitlist_offer_minutes=15):
        clock(timedelta(minutes=16))
        report = waitlist.process(sql_repo)
    assert report.expired == [first] and report.offered == [second]
    assert waitlist.get_entry(sql_repo, entry_id=first)["status"] == "expired"
    taken = waitlist.get_entry(sql_repo, entry_id=second)["offer"]
    assert taken["slot"] == f"Slot/{slot}"
    # The second books it with the held Appointment (it carries the hold token).
    with pytest.raises(ConflictError):  # the lapsed offer's patient cannot take it any more
        expired_hold = {**taken["appointment"], "extension": offer["offer"]["appointment"]["extension"]}
        scheduling.book(sql_repo, appointment=expired_hold)
    assert scheduling.book(sql_repo, appointment=taken["appointment"]).json()["status"] == "booked"
    assert waitlist.process(sql_repo).booked == [second]
    assert waitlist.get_entry(sql_repo, entry_id=second)["status"] == "booked"
    # The third waits until the next slot frees.
    assert waitlist.get_entry(sql_repo, entry_id=third)["status"] == "waiting"
    scheduling.cancel(sql_repo, appointment_id=booked[1], reason="moved")
    assert waitlist.process(sql_repo).offered == [third]


def test_cancelling_an_offered_entry_passes_the_slot_on(sql_repo: SqlRepository) -> None:
    booked = _full_monday(sql_repo)
    first, second = _wait(sql_repo, "p1"), _wait(sql_repo, "p2")
    scheduling.cancel(sql_repo, appointment_id=booked[0], reason="ill")
    waitlist.process(sql_repo)
    cancelled = waitlist.cancel_entry(sql_repo, entry_id=first)
    assert cancelled["status"] == "cancelled"
    assert waitlist.get_entry(sql_repo, entry_id=second)["status"] == "offered"
    assert waitlist.list_entries(sql_repo, status="offered", patient="p2")[0]["id"] == second
    with pytest.raises(NotFoundError):
        waitlist.get_entry(sql_repo, entry_id=999)


def test_changed_hours_offer_new_slots(sql_repo: SqlRepository) -> None:
    _full_monday(sql_repo)
    first = _wait(sql_repo, "p1")
    longer = {**MONDAY_HOUR, "weekly": {"monday": [{"start": "09:00", "end": "10:30"}]}}
    scheduling.set_availability(sql_repo, schedule_id="dr-a", rules=longer)
    assert waitlist.process(sql_repo).offered == [first]


def test_bad_requests(sql_repo: SqlRepository) -> None:
    _full_monday(sql_repo)
    start, end = _window()
    with pytest.raises(InvalidRequestError, match="practitioner or a service-type"):
        waitlist.request(sql_repo, patient="p1", start=start, end=end)
    with pytest.raises(InvalidRequestError, match="after start"):
        waitlist.request(sql_repo, patient="p1", practitioner="pa", start=end, end=start)
    with pytest.raises(NotFoundError, match="Patient/ghost"):
        waitlist.request(sql_repo, patient="ghost", practitioner="pa", start=start, end=end)
    assert waitlist.list_entries(sql_repo) == []
