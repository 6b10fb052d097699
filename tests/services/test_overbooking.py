"""Overbooking: off by default; a schedule may allow up to N bookings per slot, enforced in the database."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from medfusion.errors import ConflictError
from medfusion.fhir.repository import FhirRepository
from medfusion.services import scheduling
from tests.services.test_scheduling import (
    NOW,
    RULES,
    _race,
    for_patient,
    make_schedule,
    proposals,
    slot_status,
)

OVERBOOK = {**RULES, "horizonDays": 1, "maxPerSlot": 3}


def _first(repo: FhirRepository, rules: dict[str, Any]) -> dict[str, Any]:
    make_schedule(repo)
    scheduling.set_availability(repo, schedule_id="dr-a", rules=rules, now=NOW)
    return proposals(scheduling.find(repo, start=NOW, end=NOW + timedelta(days=1), count=1))[0]


def _booked_on(repo: FhirRepository, slot: str) -> int:
    return sum(
        1
        for r in repo.iter_current(["Appointment"])
        if r.json()["status"] == "booked" and r.json()["slot"] == [{"reference": f"Slot/{slot}"}]
    )


def test_overbooking_is_off_by_default(repo: FhirRepository) -> None:
    proposal = _first(repo, {**RULES, "horizonDays": 1})
    scheduling.book(repo, appointment=for_patient(proposal, "p1"))
    with pytest.raises(ConflictError):
        scheduling.book(repo, appointment=for_patient(proposal, "p2"))


def test_a_slot_takes_up_to_n_bookings_and_cancel_frees_one_place(repo: FhirRepository) -> None:
    proposal = _first(repo, OVERBOOK)
    slot = proposal["slot"][0]["reference"][5:]
    window = {"start": NOW, "end": NOW + timedelta(days=1), "count": 1}
    booked = [scheduling.book(repo, appointment=for_patient(proposal, f"p{i}")) for i in range(3)]
    assert slot_status(repo, slot) == "busy"
    assert proposals(scheduling.find(repo, **window))[0]["slot"] != proposal["slot"]
    with pytest.raises(ConflictError):
        scheduling.book(repo, appointment=for_patient(proposal, "p4"))
    scheduling.cancel(repo, appointment_id=booked[0].id, reason="ill")
    assert slot_status(repo, slot) == "free"
    assert proposals(scheduling.find(repo, **window))[0]["slot"] == proposal["slot"]
    # Regenerating the rules keeps a slot that still carries bookings, and its count.
    scheduling.set_availability(repo, schedule_id="dr-a", rules=OVERBOOK, now=NOW)
    scheduling.book(repo, appointment=for_patient(proposal, "p5"))
    with pytest.raises(ConflictError):
        scheduling.book(repo, appointment=for_patient(proposal, "p6"))
    assert _booked_on(repo, slot) == 3
    for appointment in booked[1:]:
        scheduling.cancel(repo, appointment_id=appointment.id, reason="ill")
    assert slot_status(repo, slot) == "free" and _booked_on(repo, slot) == 1


def test_64_concurrent_bookings_of_an_overbookable_slot_give_exactly_n(sql_repo: FhirRepository) -> None:
    proposal = _first(sql_repo, OVERBOOK)
    slot = proposal["slot"][0]["reference"][5:]
    patients = iter(range(64))

    def book() -> object:
        return scheduling.book(sql_repo, appointment=for_patient(proposal, f"p{next(patients)}"))

    outcomes = _race(book)
    assert outcomes == Counter({"ok": 3, "conflict": 61})
    assert slot_status(sql_repo, slot) == "busy"
    assert _booked_on(sql_repo, slot) == 3
