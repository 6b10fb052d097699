"""Reminders and notifications through the outbox, with a real SMTP server on loopback.

Reminders are planned at the configured offsets, sent once, recorded as Communications;
failed sends are retried with back-off and then listed, never dropped; staff hear of
patient self-bookings and cancellations; and across a restart of the loop (a graceful
stop, and a SIGKILL of ``medfusion reminders run``) nothing is lost or sent twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from medfusion.config import override_settings
from medfusion.fhir.repository import FhirRepository
from medfusion.services import notifications, records, reminders, scheduling
from medfusion.services.database import open_repository
from medfusion.services.notifiers import Message, SmtpNotifier
from medfusion.store.repository import SqlRepository
from tests.services.smtp_server import free_port, smtp_server

ALL_DAY = {d: [{"start": "00:00", "end": "24:00"}] for d in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}  # fmt: skip
# Overbookable, so many patients can share the few slots starting soon.
RULES: dict[str, Any] = {
    "timezone": "UTC",
    "slotMinutes": 30,
    "horizonDays": 5,
    "weekly": ALL_DAY,
    "maxPerSlot": 50,
}


def _put(repo: FhirRepository, body: dict[str, Any]) -> None:
    records.update(repo, resource_type=body["resourceType"], id=body["id"], body=orjson.dumps(body))


def _clinic(repo: FhirRepository, patients: int) -> None:
    _put(repo, {"resourceType": "Practitioner", "id": "pa"})
    _put(repo, {"resourceType": "Schedule", "id": "dr-a", "actor": [{"reference": "Practitioner/pa"}]})
    scheduling.set_availability(repo, schedule_id="dr-a", rules=RULES)
    for i in range(patients):
        telecom = [{"system": "email", "value": f"p{i}@example.org"}]
        _put(repo, {"resourceType": "Patient", "id": f"p{i}", "telecom": telecom})


def _book(repo: FhirRepository, patient: str, after: timedelta, **kwargs: Any) -> dict[str, Any]:
    start = datetime.now(UTC) + after
    proposal = scheduling.find(repo, start=start, end=start + timedelta(hours=1), count=1)["entry"][0][
        "resource"
    ]
    proposal["participant"].append({"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"})
    return scheduling.book(repo, appointment=proposal, **kwargs).json()


def _statuses(repo: SqlRepository) -> Counter[str]:
    return Counter(row["status"] for row in notifications.list_notifications(repo, limit=1000))


def test_reminders_go_at_their_offsets_once_and_are_recorded(sql_repo: SqlRepository) -> None:
    _clinic(sql_repo, 3)
    in_ten_hours = _book(sql_repo, "p0", timedelta(hours=10))
    in_one_hour = _book(sql_repo, "p1", timedelta(hours=1))
    _book(sql_repo, "p2", timedelta(days=3))  # nothing due yet
    now = datetime.now(UTC)
    with smtp_server() as (received, port):
        notifier = SmtpNotifier("127.0.0.1", port, "clinic@example.org")
        first = reminders.tick(sql_repo, notifier, now=now)
        again = reminders.tick(sql_repo, notifier, now=now + timedelta(minutes=1))
        # Nine hours on, the 10-hour visit is within 2 hours: its second reminder.
        later = reminders.tick(sql_repo, notifier, now=now + timedelta(hours=9))
        got = received.snapshot()
    assert (first.planned, first.delivery.sent, again.planned, again.delivery.sent) == (2, 2, 0, 0)
    assert later.planned == 1 and later.delivery.sent == 1
    assert Counter(r for r, _, _ in got) == {"p0@example.org": 2, "p1@example.org": 1}
    assert all(in_ten_hours["id"] in body or in_one_hour["id"] in body for _, _, body in got)
    communications = [r.json() for r in sql_repo.iter_current(["Communication"])]
    assert len(communications) == 3
    about = Counter(c["about"][0]["reference"] for c in communications)
    assert about == {f"Appointment/{in_ten_hours['id']}": 2, f"Appointment/{in_one_hour['id']}": 1}
    assert all(
        c["status"] == "completed" and c["subject"]["reference"].startswith("Patient/")
        for c in communications
    )
    assert _statuses(sql_repo) == {"sent": 3}


def test_a_cancelled_visit_gets_no_reminder(sql_repo: SqlRepository) -> None:
    _clinic(sql_repo, 1)
    booked = _book(sql_repo, "p0", timedelta(hours=1))
    reminders.plan_reminders(sql_repo)
    scheduling.cancel(sql_repo, appointment_id=booked["id"], reason="ill")
    with smtp_server() as (received, port):
        report = notifications.deliver_due(sql_repo, SmtpNotifier("127.0.0.1", port, "c@example.org"))
        assert received.snapshot() == []
    assert report.skipped == 1 and _statuses(sql_repo) == {"skipped": 1}


def test_failed_sends_are_retried_with_back_off_then_listed(sql_repo: SqlRepository) -> None:
    _clinic(sql_repo, 1)
    _put(sql_repo, {"resourceType": "Patient", "id": "no-mail"})
    _book(sql_repo, "p0", timedelta(hours=1))
    _book(sql_repo, "no-mail", timedelta(hours=1, minutes=30))
    now = datetime.now(UTC)
    reminders.plan_reminders(sql_repo, now=now)
    down = SmtpNotifier("127.0.0.1", free_port(), "c@example.org", timeout=2)  # nobody listens
    with override_settings(outbox_max_attempts=3, outbox_backoff_seconds=60):
        first = notifications.deliver_due(sql_repo, down, now=now)
        # No email address: failed at once (permanent); the server being down: retried.
        assert (first.failed, first.retried) == (1, 1)
        pending = notifications.list_notifications(sql_repo, status="pending")
        assert pending[0]["attempts"] == 1 and pending[0]["nextAttemptAt"] == (
            now + timedelta(seconds=60)
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert notifications.deliver_due(sql_repo, down, now=now + timedelta(seconds=59)).retried == 0
        second = notifications.deliver_due(sql_repo, down, now=now + timedelta(seconds=60))
        assert second.retried == 1  # next wait doubles: 120 s
        assert notifications.list_notifications(sql_repo, status="pending")[0]["nextAttemptAt"] == (
            now + timedelta(seconds=180)
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
        third = notifications.deliver_due(sql_repo, down, now=now + timedelta(seconds=180))
        assert third.failed == 1
    failed = notifications.list_notifications(sql_repo, status="failed")
    assert len(failed) == 2 and all(f["lastError"] for f in failed)
    assert {f["recipient"] for f in failed} == {"p0@example.org", "Patient/no-mail"}
    assert not list(sql_repo.iter_current(["Communication"]))


def test_staff_hear_of_self_bookings_and_cancellations(sql_repo: SqlRepository) -> None:
    _clinic(sql_repo, 2)
    own = _book(sql_repo, "p0", timedelta(days=4), acting_patient="Patient/p0")
    _book(sql_repo, "p1", timedelta(days=4, hours=1))  # booked by staff: no notice
    scheduling.cancel(sql_repo, appointment_id=own["id"], reason="moving away", acting_patient="Patient/p0")
    with override_settings(staff_email="desk@example.org"), smtp_server() as (received, port):
        notifications.deliver_due(sql_repo, SmtpNotifier("127.0.0.1", port, "c@example.org"))
        got = received.snapshot()
    assert [(r, s) for r, s, _ in got] == [
        ("frontdesk@localhost", "Patient/p0 booked an appointment themself"),
        ("frontdesk@localhost", "Patient/p0 cancelled an appointment themself"),
    ]
    assert "moving away" in got[1][2]


def _many_reminders(repo: SqlRepository, n: int) -> None:
    _clinic(repo, n)
    for i in range(n):
        _book(repo, f"p{i}", timedelta(minutes=40 + 30 * (i % 3)))
    assert reminders.plan_reminders(repo) == n


class _Slow:
    """A real SMTP notifier that counts and can stop the loop after some sends."""

    def __init__(self, inner: SmtpNotifier, stop: threading.Event, after: int) -> None:
        self.inner, self.stop, self.after, self.sent = inner, stop, after, 0

    def send(self, message: Message) -> None:
        self.inner.send(message)
        self.sent += 1
        if self.sent == self.after:
            self.stop.set()  # a shutdown request arriving while the loop is busy


def test_none_lost_or_duplicated_across_a_restart_of_the_loop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    repo = open_repository(url)
    _many_reminders(repo, 12)
    with smtp_server() as (received, port):
        stop = threading.Event()
        notifier = _Slow(SmtpNotifier("127.0.0.1", port, "c@example.org"), stop, after=5)
        thread = threading.Thread(target=reminders.run_loop, args=(repo, notifier), kwargs={"stop": stop})
        thread.start()
        thread.join(timeout=60)
        repo.close()
        assert len(received.snapshot()) == 5
        restarted = open_repository(url)  # a new process would open the database afresh
        reminders.run_loop(
            restarted, SmtpNotifier("127.0.0.1", port, "c@example.org"), stop=threading.Event(), once=True
        )
        got = received.snapshot()
    assert Counter(r for r, _, _ in got) == {f"p{i}@example.org": 1 for i in range(12)}
    assert _statuses(restarted) == {"sent": 12}
    assert len(list(restarted.iter_current(["Communication"]))) == 12
    restarted.close()


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_a_killed_loop_sends_nothing_twice_and_shows_what_it_interrupted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    repo = open_repository(url)
    _many_reminders(repo, 30)
    repo.close()
    with smtp_server() as (received, port):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH")) if p
            ),
            "MEDFUSION_NOTIFIER": "smtp",
            "MEDFUSION_SMTP_PORT": str(port),
            "MEDFUSION_OUTBOX_LEASE_SECONDS": "1",
        }
        command = ["reminders", "run", "--db", url, "--interval", "0.05"]
        child = subprocess.Popen(
            [sys.executable, "-m", "medfusion.cli.main", *command],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while len(received.snapshot()) < 8 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        before = len(received.snapshot())
        assert 8 <= before < 30, before
        time.sleep(1.1)  # past the lease of a message the killed loop held
        with override_settings(outbox_lease_seconds=1):
            restarted = open_repository(url)
            reminders.run_loop(
                restarted, SmtpNotifier("127.0.0.1", port, "c@example.org"), stop=threading.Event(), once=True
            )
        got = received.snapshot()
    counts = Counter(r for r, _, _ in got)
    assert max(counts.values()) == 1  # nothing twice
    statuses = _statuses(restarted)
    interrupted = notifications.list_notifications(restarted, status="failed")
    # Every reminder is sent, or (at most the one in flight at the kill) listed as failed.
    assert statuses["sent"] + statuses["failed"] == 30 and statuses["failed"] <= 1
    assert all("stopped while sending" in row["lastError"] for row in interrupted)
    assert len(counts) >= statuses["sent"]
    restarted.close()
