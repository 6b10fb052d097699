"""``$reschedule`` through the service: success, a taken new slot, and a race on both databases.

The patient must never hold both slots and never lose the old one when the new one is taken.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from medfusion.errors import BundleEntryError, ConflictError, InvalidRequestError
from medfusion.fhir.repository import FhirRepository
from medfusion.services import _reschedule, bundles, scheduling
from medfusion.store.repository import SqlRepository
from tests.services.test_scheduling import (
    NOW,
    RULES,
    for_patient,
    make_schedule,
    proposals,
    slot_status,
)


def _two_slots(repo: FhirRepository) -> tuple[dict[str, Any], dict[str, Any]]:
    make_schedule(repo)
    scheduling.set_availability(repo, schedule_id="dr-a", rules={**RULES, "horizonDays": 1}, now=NOW)
    first, second = proposals(scheduling.find(repo, start=NOW, end=NOW + timedelta(days=1), count=2))
    return first, second


def _ref(proposal: dict[str, Any]) -> str:
    ref: str = proposal["slot"][0]["reference"]
    return ref


def test_reschedule_moves_the_booking(repo: FhirRepository) -> None:
    first, second = _two_slots(repo)
    booked = scheduling.book(repo, appointment=for_patient(first))
    moved = scheduling.reschedule(repo, appointment_id=booked.id, slots=[_ref(second)])
    body = moved.json()
    assert moved.version == 2 and body["status"] == "booked"
    assert body["slot"] == second["slot"]
    assert (body["start"], body["end"]) == (second["start"], second["end"])
    assert body["participant"] == for_patient(first)["participant"]
    assert slot_status(repo, _ref(first)[5:]) == "free"
    assert slot_status(repo, _ref(second)[5:]) == "busy"
    # The freed slot can be booked by someone else.
    assert scheduling.book(repo, appointment=for_patient(first, "p2")).json()["status"] == "booked"


def test_reschedule_to_a_taken_slot_changes_nothing(repo: FhirRepository) -> None:
    first, second = _two_slots(repo)
    mine = scheduling.book(repo, appointment=for_patient(first))
    scheduling.book(repo, appointment=for_patient(second, "p2"))
    with pytest.raises(ConflictError, match="already taken"):
        scheduling.reschedule(repo, appointment_id=mine.id, slots=[_ref(second)])
    assert repo.read("Appointment", mine.id).version == 1
    assert slot_status(repo, _ref(first)[5:]) == "busy"
    with pytest.raises(InvalidRequestError, match="does not exist"):
        scheduling.reschedule(repo, appointment_id=mine.id, slots=["Slot/nope"])
    with pytest.raises(InvalidRequestError, match="Slot/<id>"):
        scheduling.reschedule(repo, appointment_id=mine.id, slots=["Patient/p1"])
    scheduling.cancel(repo, appointment_id=mine.id, reason="moved away")
    with pytest.raises(ConflictError, match="only a booked"):
        scheduling.reschedule(repo, appointment_id=mine.id, slots=[_ref(first)])


def test_reschedule_races_a_booker_for_the_new_slot(sql_repo: FhirRepository) -> None:
    first, second = _two_slots(sql_repo)
    mine = scheduling.book(sql_repo, appointment=for_patient(first))
    n = 16  # one mover against 15 bookers, all released at once
    barrier = threading.Barrier(n)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def run(index: int) -> None:
        barrier.wait()
        try:
            if index == 0:
                scheduling.reschedule(sql_repo, appointment_id=mine.id, slots=[_ref(second)])
                result = "moved"
            else:
                scheduling.book(sql_repo, appointment=for_patient(second, f"p{index + 1}"))
                result = "booked"
        except ConflictError:
            result = "conflict"
        except Exception as error:  # anything else is a failure the assertion shows
            result = type(error).__name__
        with lock:
            outcomes[result] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes["conflict"] == n - 1 and outcomes["moved"] + outcomes["booked"] == 1, outcomes
    appointment = sql_repo.read("Appointment", mine.id).json()
    booked = [
        a
        for a in (r.json() for r in sql_repo.iter_current(["Appointment"]))
        if a["status"] == "booked" and a["slot"] == second["slot"]
    ]
    assert len(booked) == 1  # exactly one holder of the new slot
    assert slot_status(sql_repo, _ref(second)[5:]) == "busy"
    if outcomes["moved"]:
        assert appointment["slot"] == second["slot"]
        assert slot_status(sql_repo, _ref(first)[5:]) == "free"  # never both
    else:
        assert appointment["slot"] == first["slot"]  # the old slot is kept
        assert slot_status(sql_repo, _ref(first)[5:]) == "busy"
        assert sql_repo.read("Appointment", mine.id).version == 1


def test_new_slot_taken_mid_way_keeps_the_old_booking(
    sql_repo: SqlRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A booker commits the new slot after the mover has checked it but before it writes."""
    first, second = _two_slots(sql_repo)
    mine = scheduling.book(sql_repo, appointment=for_patient(first))
    outcome: list[str] = []

    def book_other() -> None:
        try:
            scheduling.book(sql_repo, appointment=for_patient(second, "p2"))
            outcome.append("booked")
        except ConflictError:
            outcome.append("conflict")

    checked = _reschedule.available
    booker = threading.Thread(target=book_other)

    def available_then_race(slot: dict[str, Any], *args: Any) -> bool:
        free = checked(slot, *args)
        if not booker.is_alive() and not outcome:
            booker.start()
            # PostgreSQL: the booker commits now, inside the mover's window. SQLite
            # serialises writers, so it waits for the mover; the join just gives up.
            booker.join(timeout=1.0)
        return free

    monkeypatch.setattr(_reschedule, "available", available_then_race)
    try:
        scheduling.reschedule(sql_repo, appointment_id=mine.id, slots=[_ref(second)])
        moved = True
    except ConflictError as error:
        assert "unchanged" in str(error)
        moved = False
    booker.join()
    appointment = sql_repo.read("Appointment", mine.id)
    assert slot_status(sql_repo, _ref(second)[5:]) == "busy"
    if sql_repo.engine.dialect.name == "postgresql":
        assert (moved, outcome) == (False, ["booked"])
        assert appointment.version == 1 and appointment.json()["slot"] == first["slot"]
        assert slot_status(sql_repo, _ref(first)[5:]) == "busy"  # the old slot is kept
    else:
        assert (moved, outcome) == (True, ["conflict"])
        assert appointment.json()["slot"] == second["slot"]
        assert slot_status(sql_repo, _ref(first)[5:]) == "free"  # never both


def test_imports_keep_slot_references_as_they_are(repo: FhirRepository, data_dir: Path) -> None:
    """The official example names ``Slot/example``, which need not exist."""
    path = data_dir / "fhir-examples" / "appointment-example-request.json"
    if not path.exists():
        pytest.skip("no official Appointment request example in the data folder")
    example = json.loads(path.read_text())
    assert example["status"] == "proposed" and example["slot"]

    def bundle_of(resource: dict[str, Any]) -> dict[str, Any]:
        entry = {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": resource,
            "request": {"method": "POST", "url": "Appointment"},
        }
        return {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}

    # A proposed Appointment takes no slot, through the API or an import.
    assert bundles.process_bundle(repo, bundle=bundle_of(example)).results[0].status.startswith("201")
    booked = bundle_of({**example, "id": "imported", "status": "booked"})
    imported = bundles.process_bundle(repo, bundle=booked, keep_ids=True)
    assert imported.results[0].status.startswith("201")  # history is stored as it is
    with pytest.raises(BundleEntryError) as caught:  # through the API: the booking rules
        bundles.process_bundle(repo, bundle=booked)
    assert "does not exist" in str(caught.value.cause)
