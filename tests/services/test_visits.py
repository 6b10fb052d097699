"""Check-in, fulfilled, automatic no-shows and their rates; the acting-patient seam."""

from __future__ import annotations

from datetime import timedelta

import pytest

from medfusion.config import override_settings
from medfusion.errors import ConflictError, ForbiddenError
from medfusion.fhir.repository import FhirRepository
from medfusion.services import scheduling, visits
from tests.services.test_scheduling import NOW, RULES, for_patient, make_schedule, proposals


def _book_four(repo: FhirRepository) -> list[str]:
    make_schedule(repo, "dr-a", "pa")
    make_schedule(repo, "dr-b", "pb")
    for schedule in ("dr-a", "dr-b"):
        scheduling.set_availability(repo, schedule_id=schedule, rules=RULES, now=NOW)
    ids = []
    for practitioner, patient in (("pa", "p1"), ("pa", "p2"), ("pb", "p1"), ("pb", "p3")):
        found = scheduling.find(
            repo, start=NOW, end=NOW + timedelta(days=1), practitioner=practitioner, count=4
        )
        proposal = proposals(found)[len([i for i in ids if i[0] == practitioner])]
        ids.append((practitioner, scheduling.book(repo, appointment=for_patient(proposal, patient)).id))
    return [id for _, id in ids]


def test_check_in_fulfil_and_automatic_no_shows(repo: FhirRepository) -> None:
    a1, a2, b1, b3 = _book_four(repo)
    assert visits.check_in(repo, appointment_id=a1).json()["status"] == "arrived"
    assert visits.fulfill(repo, appointment_id=a1).json()["status"] == "fulfilled"
    visits.check_in(repo, appointment_id=b3)
    first_start = scheduling.parse_instant(repo.read("Appointment", b1).json()["start"])
    with override_settings(noshow_grace_minutes=15):
        # Within the grace period nothing is marked; after it, the booked ones without check-in are.
        assert visits.mark_no_shows(repo, now=NOW) == []
        assert visits.mark_no_shows(repo, now=first_start + timedelta(minutes=10)) == []
        marked = visits.mark_no_shows(repo, now=NOW + timedelta(days=1))
    assert sorted(marked) == sorted([a2, b1])
    assert repo.read("Appointment", a2).json()["status"] == "noshow"
    assert repo.read("Appointment", b3).json()["status"] == "arrived"
    with pytest.raises(ConflictError, match="noshow cannot become arrived"):
        visits.check_in(repo, appointment_id=a2)
    with pytest.raises(ConflictError):
        scheduling.cancel(repo, appointment_id=b1, reason="too late")
    stats = visits.no_show_stats(repo)
    assert (stats["visits"], stats["noShows"], stats["noShowRate"]) == (4, 2, 0.5)
    by_patient = {r["reference"]: r for r in stats["patients"]}
    assert by_patient["Patient/p1"] == {
        "reference": "Patient/p1", "visits": 2, "noShows": 1, "noShowRate": 0.5,
    }  # fmt: skip
    assert by_patient["Patient/p2"]["noShowRate"] == 1.0 and by_patient["Patient/p3"]["noShowRate"] == 0.0
    by_practitioner = {r["reference"]: r for r in stats["practitioners"]}
    assert (
        by_practitioner["Practitioner/pa"]["noShows"] == 1
        and by_practitioner["Practitioner/pa"]["visits"] == 2
    )
    assert stats["patients"][0]["reference"] == "Patient/p2"  # highest rate first


def test_a_patient_may_book_and_cancel_only_for_themself(repo: FhirRepository) -> None:
    make_schedule(repo)
    scheduling.set_availability(repo, schedule_id="dr-a", rules=RULES, now=NOW)
    first, second = proposals(scheduling.find(repo, start=NOW, end=NOW + timedelta(days=1), count=2))
    with pytest.raises(ForbiddenError, match="only for themself"):
        scheduling.book(repo, appointment=for_patient(first, "p2"), acting_patient="Patient/p1")
    with pytest.raises(ForbiddenError):
        scheduling.book(repo, appointment=first, acting_patient="p1")  # names no patient at all
    own = scheduling.book(repo, appointment=for_patient(first, "p1"), acting_patient="p1")
    staff = scheduling.book(repo, appointment=for_patient(second, "p2"))  # staff: anyone
    with pytest.raises(ForbiddenError):
        scheduling.cancel(repo, appointment_id=staff.id, reason="not mine", acting_patient="Patient/p1")
    assert repo.read("Appointment", staff.id).json()["status"] == "booked"
    cancelled = scheduling.cancel(repo, appointment_id=own.id, reason="sick", acting_patient="Patient/p1")
    assert cancelled.json()["status"] == "cancelled"
