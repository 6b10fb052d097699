"""``$find`` filters (specialty, visit type) and the start-ordered plan against the generic one.

Without a practitioner the SQL store reads Slots in start order and filters them in
Python; the in-memory twin runs the generic search. Both must give the same proposals on
the same random bookings, including ties of many schedules at one start time.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from medfusion.fhir.memory import InMemoryRepository
from medfusion.fhir.repository import FhirRepository
from medfusion.services import records, scheduling

NOW = datetime(2030, 1, 7, tzinfo=UTC)
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


def _rules(i: int) -> dict[str, Any]:
    return {
        "timezone": "Europe/Berlin",
        "slotMinutes": 30,
        "horizonDays": 7,
        "serviceTypes": [f"http://example.org/service|s{i % 3}"],
        "specialties": [f"http://snomed.info/sct|sp{i % 2}"],
        "visitType": "http://terminology.hl7.org/CodeSystem/v2-0276|ROUTINE" if i % 2 else "WALKIN",
        "weekly": {d: [{"start": "08:00", "end": "10:00"}] for d in WEEKDAYS},
    }


def _populate(repo: FhirRepository, schedules: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(schedules):
        for body in (
            {"resourceType": "Practitioner", "id": f"p{i}"},
            {"resourceType": "Schedule", "id": f"s{i}", "actor": [{"reference": f"Practitioner/p{i}"}]},
        ):
            records.update(repo, resource_type=body["resourceType"], id=body["id"], body=orjson.dumps(body))
        scheduling.set_availability(repo, schedule_id=f"s{i}", rules=_rules(i), now=NOW)
    free = scheduling.find(repo, start=NOW, end=NOW + timedelta(days=2), count=1000)["entry"]
    for n, entry in enumerate(rng.sample(free, len(free) // 2)):
        proposal = entry["resource"]
        proposal["participant"].append({"actor": {"reference": f"Patient/x{n}"}, "status": "accepted"})
        scheduling.book(repo, appointment=proposal)


def _slots(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["slot"][0]["reference"] for e in bundle["entry"]]


@pytest.mark.parametrize("seed", [1, 2])
def test_start_ordered_plan_matches_the_generic_search(sql_repo: FhirRepository, seed: int) -> None:
    memory = InMemoryRepository()
    _populate(memory, 12, seed)
    _populate(sql_repo, 12, seed)
    rng = random.Random(seed)
    for _ in range(15):
        start = NOW + timedelta(minutes=rng.randrange(0, 3 * 24 * 60, 30))
        window: dict[str, Any] = {
            "start": start,
            "end": start + timedelta(hours=rng.choice([1, 6, 30])),
            "count": rng.choice([1, 5, 13, 40]),
        }
        window.update(
            rng.choice(
                [
                    {},
                    {"service_type": "s1"},
                    {"specialty": "http://snomed.info/sct|sp0"},
                    {"visit_type": "WALKIN"},
                    {"service_type": "http://example.org/service|s2", "visit_type": "ROUTINE"},
                ]
            )
        )
        expected = _slots(scheduling.find(memory, **window))
        assert _slots(scheduling.find(sql_repo, **window)) == expected


def test_specialty_and_visit_type_filter(repo: FhirRepository) -> None:
    _populate(repo, 4, 3)
    window = {"start": NOW + timedelta(days=3), "end": NOW + timedelta(days=4)}
    every = scheduling.find(repo, **window)["entry"]
    sp1 = scheduling.find(repo, **window, specialty="http://snomed.info/sct|sp1")["entry"]
    walk_in = scheduling.find(repo, **window, visit_type="WALKIN")["entry"]
    assert len(every) == 4 * 4 and len(sp1) == 2 * 4 and len(walk_in) == 2 * 4
    assert all(
        e["resource"]["participant"][0]["actor"]["reference"] in {"Practitioner/p1", "Practitioner/p3"}
        for e in sp1
    )
    assert not scheduling.find(repo, **window, specialty="http://other|sp1")["entry"]
    slot = repo.read("Slot", sp1[0]["resource"]["slot"][0]["reference"].split("/")[1]).json()
    assert slot["specialty"][0]["coding"][0]["code"] == "sp1"
    assert slot["appointmentType"]["coding"][0]["code"] == "ROUTINE"
