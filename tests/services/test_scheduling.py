"""Availability, $find, $book and cancel through the services, on every backend.

The 64-way race runs on SQLite and PostgreSQL; a naive check-then-insert is shown to
double-book under the same race, so the race test is one that can fail.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from medfusion.config import override_settings
from medfusion.errors import BusinessRuleError, ConflictError, InvalidRequestError, NotFoundError
from medfusion.fhir.repository import FhirRepository
from medfusion.services import records, scheduling
from medfusion.services.parsing import parse_resource

NOW = datetime(2030, 1, 7, tzinfo=UTC)  # a Monday, far enough ahead to stay in the future
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
RULES: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "slotMinutes": 20,
    "bufferMinutes": 10,
    "horizonDays": 14,
    "serviceTypes": ["http://terminology.hl7.org/CodeSystem/service-type|124"],
    "weekly": {d: [{"start": "08:00", "end": "10:00"}] for d in WEEKDAYS},
}


def put(repo: FhirRepository, resource: dict[str, Any]) -> None:
    records.update(
        repo, resource_type=resource["resourceType"], id=resource["id"], body=orjson.dumps(resource)
    )


def make_schedule(repo: FhirRepository, id: str = "dr-a", practitioner: str = "pa") -> None:
    put(repo, {"resourceType": "Practitioner", "id": practitioner})
    put(
        repo, {"resourceType": "Schedule", "id": id, "actor": [{"reference": f"Practitioner/{practitioner}"}]}
    )


def proposals(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"]]


def for_patient(proposal: dict[str, Any], patient: str = "p1") -> dict[str, Any]:
    return {
        **proposal,
        "participant": [
            *proposal["participant"],
            {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
        ],
    }


def slot_status(repo: FhirRepository, id: str) -> str:
    status: str = repo.read("Slot", id).json()["status"]
    return status


def test_set_availability_generates_valid_slots_and_is_idempotent(repo: FhirRepository) -> None:
    make_schedule(repo)
    report = scheduling.set_availability(repo, schedule_id="dr-a", rules=RULES, now=NOW)
    assert report.created == 10 * 4 and report.removed == 0  # 10 weekdays x 4 slots
    again = scheduling.set_availability(repo, schedule_id="dr-a", rules=RULES, now=NOW)
    assert (again.created, again.unchanged, again.removed) == (0, 40, 0)
    slot = repo.read("Slot", "dr-a-203001070700")  # 08:00 Berlin in winter
    body = slot.json()
    parse_resource(body, expected_type="Slot")
    assert (body["status"], body["start"], body["end"]) == (
        "free",
        "2030-01-07T07:00:00Z",
        "2030-01-07T07:20:00Z",
    )
    assert body["schedule"] == {"reference": "Schedule/dr-a"}
    assert (
        scheduling.availability(repo, schedule_id="dr-a")
        == scheduling.rules_of(repo.read("Schedule", "dr-a").json()).to_json()
    )  # type: ignore[union-attr]


def test_set_availability_errors(repo: FhirRepository) -> None:
    with pytest.raises(NotFoundError):
        scheduling.set_availability(repo, schedule_id="nobody", rules=RULES, now=NOW)
    make_schedule(repo)
    with pytest.raises(InvalidRequestError, match="slotMinutes"):
        scheduling.set_availability(repo, schedule_id="dr-a", rules={**RULES, "slotMinutes": -1}, now=NOW)


def test_regeneration_keeps_booked_slots(repo: FhirRepository) -> None:
    make_schedule(repo)
    scheduling.set_availability(repo, schedule_id="dr-a", rules=RULES, now=NOW)
    first = proposals(scheduling.find(repo, start=NOW, end=NOW + timedelta(days=1), count=1))[0]
    booked = scheduling.book(repo, appointment=for_patient(first))
    # Longer slots: the booked 08:00-08:20 stays, new slots that would overlap it are left out.
    changed = {**RULES, "slotMinutes": 40, "bufferMinutes": 0}
    report = scheduling.set_availability(repo, schedule_id="dr-a", rules=changed, now=NOW)
    # Per day the 07:30/08:00/08:30 UTC slots go, 07:40 and 08:20 come, 07:00 is reshaped.
    assert (report.kept, report.removed, report.created) == (1, 30, 20)
    day = proposals(scheduling.find(repo, start=NOW, end=NOW + timedelta(days=1)))
    assert [p["start"][11:16] for p in day] == ["07:40", "08:20"]
    assert slot_status(repo, "dr-a-203001070700") == "busy"
    # Cancelling frees the time in the new shape: 07:00-07:40 becomes bookable again.
    scheduling.cancel(repo, appointment_id=booked.id, reason="patient unwell")
    day = proposals(scheduling.find(repo, start=NOW, end=NOW + timedelta(days=1)))
    assert next((p["start"][11:16], p["end"][11:16]) for p in day) == ("07:00", "07:40")
    # A closed day removes its free slots.
    closed = {**changed, "exceptions": [{"date": "2030-01-07", "closed": True}]}
    scheduling.set_availability(repo, schedule_id="dr-a", rules=closed, now=NOW)
    assert proposals(scheduling.find(repo, start=NOW, end=NOW + timedelta(days=1))) == []


def test_find_filters_and_orders(repo: FhirRepository) -> None:
    make_schedule(repo, "dr-a", "pa")
    make_schedule(repo, "dr-b", "pb")
    scheduling.set_availability(repo, schedule_id="dr-a", rules=RULES, now=NOW)
    other = {**RULES, "serviceTypes": ["57"], "weekly": {"monday": [{"start": "07:00", "end": "08:00"}]}}
    scheduling.set_availability(repo, schedule_id="dr-b", rules=other, now=NOW)
    window = {"start": NOW, "end": NOW + timedelta(days=1)}
    everyone = proposals(scheduling.find(repo, **window))
    starts = [p["start"] for p in everyone]
    assert starts == sorted(starts) and len(everyone) == 4 + 2
    only_b = proposals(scheduling.find(repo, **window, practitioner="Practitioner/pb"))
    assert len(only_b) == 2
    assert only_b[0]["participant"][0]["actor"] == {"reference": "Practitioner/pb"}
    assert only_b[0]["status"] == "proposed"
    assert len(proposals(scheduling.find(repo, **window, service_type="57"))) == 2
    assert len(proposals(scheduling.find(repo, **window, practitioner="nobody"))) == 0
    assert len(proposals(scheduling.find(repo, **window, count=3))) == 3
    with pytest.raises(InvalidRequestError, match="after start"):
        scheduling.find(repo, start=NOW, end=NOW)


def test_book_and_cancel_rules(repo: FhirRepository) -> None:
    make_schedule(repo)
    scheduling.set_availability(repo, schedule_id="dr-a", rules=RULES, now=NOW)
    first, second = proposals(scheduling.find(repo, start=NOW, end=NOW + timedelta(days=1), count=2))
    both = for_patient({**first, "slot": first["slot"] + second["slot"]})
    with pytest.raises(InvalidRequestError, match="differs"):
        scheduling.book(repo, appointment=both)  # its end is the first slot's
    del both["start"], both["end"]
    booked = scheduling.book(repo, appointment=both).json()
    assert booked["status"] == "booked" and booked["end"] == second["end"]
    with pytest.raises(ConflictError, match="already taken"):
        scheduling.book(repo, appointment=for_patient(second, "p2"))
    with pytest.raises(InvalidRequestError, match="does not exist"):
        scheduling.book(repo, appointment=for_patient({**first, "slot": [{"reference": "Slot/nope"}]}))
    with pytest.raises(InvalidRequestError, match="reference the Slot"):
        scheduling.book(repo, appointment=for_patient({**first, "slot": []}))
    with pytest.raises(InvalidRequestError, match="reason"):
        scheduling.cancel(repo, appointment_id=booked["id"], reason=" ")
    cancelled = scheduling.cancel(repo, appointment_id=booked["id"], reason="clinic closed").json()
    assert cancelled["status"] == "cancelled" and cancelled["cancelationReason"] == {"text": "clinic closed"}
    again = scheduling.cancel(repo, appointment_id=booked["id"], reason="twice")
    assert again.version == 2  # idempotent
    # Freed slots can be booked again.
    rebooked = scheduling.book(repo, appointment=for_patient(second, "p2"))
    assert rebooked.json()["status"] == "booked"
    assert slot_status(repo, second["slot"][0]["reference"][5:]) == "busy"
    assert slot_status(repo, first["slot"][0]["reference"][5:]) == "free"


def test_a_patient_may_hold_only_a_few_future_appointments(repo: FhirRepository) -> None:
    make_schedule(repo)
    scheduling.set_availability(repo, schedule_id="dr-a", rules=RULES, now=NOW)
    first, second, third, fourth = proposals(scheduling.find(repo, start=NOW, end=NOW + timedelta(days=1)))
    with override_settings(max_future_appointments=2):
        kept = scheduling.book(repo, appointment=for_patient(first))
        scheduling.book(repo, appointment=for_patient(second))
        with pytest.raises(BusinessRuleError, match="2 future appointments") as caught:
            scheduling.book(repo, appointment=for_patient(third))
        assert caught.value.code == "business-rule"
        assert slot_status(repo, third["slot"][0]["reference"][5:]) == "free"  # nothing written
        scheduling.book(repo, appointment=for_patient(third, "someone-else"))
        scheduling.cancel(repo, appointment_id=kept.id, reason="frees a place")
        scheduling.book(repo, appointment=for_patient(fourth))


def test_hold_keeps_slots_for_the_holder_until_expiry(
    repo: FhirRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_schedule(repo)
    scheduling.set_availability(repo, schedule_id="dr-a", rules=RULES, now=NOW)
    window = {"start": NOW, "end": NOW + timedelta(days=1)}
    first, second = proposals(scheduling.find(repo, **window, count=2))
    held = scheduling.hold(repo, appointment=for_patient(first))
    assert held["status"] == "pending" and held["extension"][0]["url"] == scheduling.HOLD_URL
    slot = first["slot"][0]["reference"][5:]
    assert slot_status(repo, slot) == "busy-tentative"
    assert held["extension"][0]["valueString"].encode() not in repo.read("Slot", slot).body  # only a digest
    assert [p["slot"] for p in proposals(scheduling.find(repo, **window, count=1))] == [second["slot"]]
    with pytest.raises(ConflictError):
        scheduling.book(repo, appointment=for_patient(first, "p2"))
    with pytest.raises(ConflictError):
        scheduling.hold(repo, appointment=for_patient(first, "p2"))
    booked = scheduling.book(repo, appointment=held).json()
    assert booked["status"] == "booked" and "extension" not in booked
    assert "extension" not in repo.read("Slot", slot).json()
    assert slot_status(repo, slot) == "busy"
    # A hold that has expired leaves the slot to anyone.
    scheduling.hold(repo, appointment=for_patient(second), minutes=5)
    later = scheduling.now_utc() + timedelta(minutes=6)
    monkeypatch.setattr(scheduling, "now_utc", lambda: later)
    assert [p["slot"] for p in proposals(scheduling.find(repo, **window, count=1))] == [second["slot"]]
    assert scheduling.book(repo, appointment=for_patient(second, "p2")).json()["status"] == "booked"
    with pytest.raises(InvalidRequestError, match="1 to 60 minutes"):
        scheduling.hold(repo, appointment=for_patient(second), minutes=0)


def _race(worker: Callable[[], object], n: int = 64) -> Counter[str]:
    barrier = threading.Barrier(n)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            worker()
            result = "ok"
        except ConflictError:
            result = "conflict"
        except Exception as error:
            result = type(error).__name__
        with lock:
            outcomes[result] += 1

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def _one_slot(repo: FhirRepository) -> dict[str, Any]:
    make_schedule(repo)
    scheduling.set_availability(repo, schedule_id="dr-a", rules={**RULES, "horizonDays": 1}, now=NOW)
    return proposals(scheduling.find(repo, start=NOW, end=NOW + timedelta(days=1), count=1))[0]


def _appointments_on(repo: FhirRepository, slot: str) -> list[dict[str, Any]]:
    found = [r.json() for r in repo.iter_current(["Appointment"])]
    return [a for a in found if a["slot"] == [{"reference": f"Slot/{slot}"}] and a["status"] == "booked"]


def test_64_concurrent_bookings_of_one_slot_give_one_success(sql_repo: FhirRepository) -> None:
    proposal = _one_slot(sql_repo)
    slot = proposal["slot"][0]["reference"][5:]
    outcomes = _race(lambda: scheduling.book(sql_repo, appointment=for_patient(proposal)))
    assert outcomes == Counter({"ok": 1, "conflict": 63})
    assert slot_status(sql_repo, slot) == "busy"
    assert len(_appointments_on(sql_repo, slot)) == 1


def test_naive_check_then_insert_double_books(sql_repo: FhirRepository) -> None:
    proposal = _one_slot(sql_repo)
    slot = proposal["slot"][0]["reference"][5:]
    n = 16
    read_done = threading.Barrier(n)
    one_writer = threading.Lock()

    def naive_book() -> None:
        with sql_repo.begin_read() as tx:
            free = tx.read("Slot", slot).json()["status"] == "free"
        read_done.wait()  # every booker has looked before anyone writes: the race window
        if not free:
            raise ConflictError("taken")
        # One writer at a time, so the outcome does not hang on lock timing: the stale check
        # alone is enough to double-book.
        with one_writer, sql_repo.begin() as tx:
            body = tx.read("Slot", slot).json()
            tx.write("Slot", slot, {**body, "status": "busy"}, expected_version=None)
            tx.write(
                "Appointment",
                records.new_id(),
                {**for_patient(proposal), "status": "booked"},
                expected_version=0,
            )

    outcomes = _race(naive_book, n)
    assert outcomes["ok"] == n  # everyone "booked" the one slot
    assert len(_appointments_on(sql_repo, slot)) == n


def _examples(data_dir: Path) -> list[dict[str, Any]]:
    folder = data_dir / "fhir-examples"
    names = sorted(
        p for p in folder.glob("*.json") if p.name.split("-")[0] in ("appointment", "slot", "schedule")
    )
    if not names:
        pytest.skip("no Appointment/Slot/Schedule examples in the data folder")
    return [json.loads(p.read_text()) for p in names]


def test_official_examples_are_accepted(repo: FhirRepository, data_dir: Path) -> None:
    examples = _examples(data_dir)
    for example in examples:
        put(repo, example)
    counts = Counter(e["resourceType"] for e in examples)
    for resource_type, count in counts.items():
        assert repo.counts()[resource_type] == count
    assert {"Appointment", "Slot", "Schedule"} <= set(counts)
