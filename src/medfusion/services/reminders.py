"""The reminder loop: no-shows, the waitlist, planning reminders and sending the outbox.

One :func:`tick` marks overdue visits ``noshow``, processes the waitlist, plans the
reminders that have come due and delivers due outbox messages. Reminders are planned from
the Appointments themselves (key ``reminder|<id>|<start>|<offset>``), so a reminder is
never lost to a crash between booking and planning, and planning twice adds nothing.
Only the latest due offset is planned: a visit booked an hour ahead gets the 2-hour
reminder, not the 48-hour one as well.

:func:`run_loop` repeats ticks until told to stop; it runs as ``medfusion reminders run``
or as a background thread of ``medfusion serve``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from medfusion.config import get_settings
from medfusion.fhir.repository import FhirTransaction
from medfusion.fhir.resource import now_utc
from medfusion.fhir.search import parse_search
from medfusion.services import visits, waitlist
from medfusion.services._slot_store import ALL, instant, parse_instant, patients_of, rules_of
from medfusion.services.notifications import DeliveryReport, deliver_due, email_of, enqueue_in
from medfusion.services.notifiers import Notifier
from medfusion.store.repository import SqlRepository

__all__ = ["TickReport", "plan_reminders", "run_loop", "tick"]

log = logging.getLogger("medfusion.reminders")


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did."""

    no_shows: int
    waitlist_offers: int
    planned: int
    delivery: DeliveryReport

    def to_json(self) -> dict[str, Any]:
        """A JSON summary."""
        return {
            "noShows": self.no_shows,
            "waitlistOffers": self.waitlist_offers,
            "remindersPlanned": self.planned,
            **self.delivery.to_json(),
        }


def _hours(offset: float) -> str:
    return f"{offset:g}h"


def _local_time(tx: FhirTransaction, appointment: dict[str, Any]) -> str:
    """The start on the clinic's wall clock (its Schedule's zone), else in UTC."""
    start = parse_instant(appointment["start"])
    zone = "UTC"
    slots = [
        r.get("reference", "")
        for r in appointment.get("slot", [])
        if r.get("reference", "").startswith("Slot/")
    ]
    slot = tx.read_current("Slot", slots[0][5:]) if slots else None
    if slot is not None and not slot.deleted:
        schedule = tx.read_current("Schedule", slot.json()["schedule"]["reference"].split("/", 1)[1])
        rules = rules_of(schedule.json()) if schedule is not None and not schedule.deleted else None
        zone = rules.timezone if rules is not None else zone
    local = start.astimezone(ZoneInfo(zone))
    return f"{local:%A %d %B %Y, %H:%M} ({zone})"


def plan_reminders(repo: SqlRepository, *, now: datetime | None = None) -> int:
    """Queue the reminders due by ``now`` for booked future Appointments; how many were new."""
    offsets = sorted({float(o) for o in get_settings().reminder_offsets_hours if o > 0})
    if not offsets:
        return 0
    now = now or now_utc()
    params = [
        ("status", "booked"),
        ("date", f"gt{instant(now)}"),
        ("date", f"le{instant(now + timedelta(hours=offsets[-1]))}"),
        ("_count", str(ALL)),
    ]
    added = 0
    with repo.begin() as tx:
        query = parse_search("Appointment", params, strict=True, default_count=ALL, max_count=ALL)
        for match in tx.search(query).matches:
            body = match.json()
            start = parse_instant(body["start"])
            due = [o for o in offsets if start - timedelta(hours=o) <= now]
            if not due:
                continue
            offset = due[0]  # the latest due: earlier ones would arrive together with it
            when = _local_time(tx, body)
            for patient in sorted(patients_of(body)):
                added += enqueue_in(
                    tx,
                    key=f"reminder|{match.id}|{body['start']}|{_hours(offset)}|{patient}",
                    kind="reminder",
                    recipient=email_of(tx, patient),
                    subject=f"Reminder: your appointment on {when}",
                    body=(
                        f"This is a reminder of your appointment on {when} "
                        f"(Appointment/{match.id}). To cancel, contact the practice."
                    ),
                    appointment_id=match.id,
                    patient=patient,
                    now=now,
                )
    return added


def tick(
    repo: SqlRepository,
    notifier: Notifier,
    *,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> TickReport:
    """One pass: no-shows, waitlist, reminder planning, outbox delivery."""
    no_shows = visits.mark_no_shows(repo, now=now)
    offers = waitlist.process(repo, now=now)
    planned = plan_reminders(repo, now=now)
    delivery = deliver_due(repo, notifier, now=now, stop=stop)
    return TickReport(len(no_shows), len(offers.offered), planned, delivery)


def run_loop(
    repo: SqlRepository,
    notifier: Notifier,
    *,
    stop: threading.Event,
    interval: float | None = None,
    once: bool = False,
) -> list[TickReport]:
    """Tick every ``interval`` seconds until ``stop`` is set (or once).

    A failing tick is logged and the loop goes on: one bad row must not stop reminders.

    Returns
    -------
    list[TickReport]
        The reports of the ticks that completed.
    """
    wait = get_settings().reminder_interval_seconds if interval is None else interval
    reports: list[TickReport] = []
    while not stop.is_set():
        try:
            reports.append(tick(repo, notifier, stop=stop))
        except Exception as error:  # keep the loop alive; the class is enough to find it
            log.exception("reminder tick failed: %s", type(error).__name__)
            if once:
                raise
        if once:
            break
        stop.wait(wait)
    return reports
