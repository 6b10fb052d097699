"""What happens at the visit: check-in (``arrived``), ``fulfilled``, automatic ``noshow``, and rates.

A ``booked`` Appointment whose start plus ``settings.noshow_grace_minutes`` has passed
without a check-in is marked ``noshow`` by :func:`mark_no_shows` (the reminder loop calls
it every tick). :func:`no_show_stats` counts, per practitioner and per patient, how many
past visits were missed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from medfusion.config import get_settings
from medfusion.errors import ConflictError, PreconditionFailedError
from medfusion.fhir.repository import FhirRepository, StoredResource
from medfusion.fhir.resource import now_utc
from medfusion.fhir.search import parse_search
from medfusion.services._slot_store import ALL, instant, patients_of

__all__ = ["check_in", "fulfill", "mark_no_shows", "no_show_stats"]

# Which status each step may start from.
_FROM = {
    "arrived": {"booked"},
    "fulfilled": {"arrived", "checked-in", "booked"},
}
_SEEN = ("arrived", "checked-in", "fulfilled")


def _move(repo: FhirRepository, appointment_id: str, status: str) -> StoredResource:
    try:
        with repo.begin() as tx:
            current = tx.read("Appointment", appointment_id)
            body = current.json()
            if body.get("status") == status:
                return current
            if body.get("status") not in _FROM[status]:
                raise ConflictError(
                    f"an Appointment that is {body.get('status')} cannot become {status}",
                    expression=["Appointment.status"],
                )
            body["status"] = status
            return tx.write("Appointment", appointment_id, body, expected_version=current.version)
    except PreconditionFailedError:
        raise ConflictError("the appointment changed concurrently; try again") from None


def check_in(repo: FhirRepository, *, appointment_id: str) -> StoredResource:
    """Mark a ``booked`` Appointment ``arrived`` (the patient is here).

    Raises
    ------
    ConflictError
        The Appointment is not ``booked`` (cancelled, already a no-show, ...).
    NotFoundError
        No such Appointment.
    """
    return _move(repo, appointment_id, "arrived")


def fulfill(repo: FhirRepository, *, appointment_id: str) -> StoredResource:
    """Mark an ``arrived`` (or ``booked``) Appointment ``fulfilled`` (the visit took place).

    Raises
    ------
    ConflictError
        The Appointment was cancelled or is a no-show.
    """
    return _move(repo, appointment_id, "fulfilled")


def mark_no_shows(repo: FhirRepository, *, now: datetime | None = None) -> list[str]:
    """Mark ``noshow`` every ``booked`` Appointment whose start + grace period has passed.

    Returns
    -------
    list[str]
        Ids of the Appointments marked. One that changed concurrently (a late check-in)
        is left for the next call.
    """
    cutoff = (now or now_utc()) - timedelta(minutes=get_settings().noshow_grace_minutes)
    params = [("status", "booked"), ("date", f"lt{instant(cutoff)}"), ("_count", str(ALL))]
    with repo.begin_read() as tx:
        due = [
            m.id
            for m in tx.search(
                parse_search("Appointment", params, strict=True, default_count=ALL, max_count=ALL)
            ).matches
        ]
    marked = []
    for id in due:
        try:
            with repo.begin() as tx:
                current = tx.read("Appointment", id)
                body = current.json()
                if body.get("status") != "booked":
                    continue
                body["status"] = "noshow"
                tx.write("Appointment", id, body, expected_version=current.version)
                marked.append(id)
        except PreconditionFailedError:
            continue
    return marked


def _rates(counts: dict[str, list[int]]) -> list[dict[str, Any]]:
    rows = [
        {"reference": ref, "visits": seen + missed, "noShows": missed, "noShowRate": missed / (seen + missed)}
        for ref, (seen, missed) in counts.items()
    ]
    return sorted(rows, key=lambda r: (-r["noShowRate"], r["reference"]))


def no_show_stats(repo: FhirRepository) -> dict[str, Any]:
    """No-show rates per practitioner and per patient over past visits.

    A visit counts when it is ``arrived``, ``checked-in``, ``fulfilled`` or ``noshow``;
    booked future and cancelled ones do not.

    Returns
    -------
    dict
        ``{"visits", "noShows", "noShowRate", "practitioners": [...], "patients": [...]}``,
        each row ``{"reference", "visits", "noShows", "noShowRate"}``, highest rate first.
    """
    params = [("status", ",".join((*_SEEN, "noshow"))), ("_count", str(ALL))]
    with repo.begin_read() as tx:
        bodies = [
            m.json()
            for m in tx.search(
                parse_search("Appointment", params, strict=True, default_count=ALL, max_count=ALL)
            ).matches
        ]
    practitioners: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    patients: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    missed_total = 0
    for body in bodies:
        missed = 1 if body["status"] == "noshow" else 0
        missed_total += missed
        for ref in patients_of(body):
            patients[ref][missed] += 1
        for participant in body.get("participant", []):
            ref = participant.get("actor", {}).get("reference", "")
            if ref.startswith("Practitioner/"):
                practitioners[ref][missed] += 1
    return {
        "visits": len(bodies),
        "noShows": missed_total,
        "noShowRate": missed_total / len(bodies) if bodies else 0.0,
        "practitioners": _rates(practitioners),
        "patients": _rates(patients),
    }
