"""Appointment benchmarks: ``$find`` latency and ``$book`` throughput under contention.

Setup: 200 practitioners, each with a Schedule open weekdays 08:00-12:00 and 13:00-17:00
(Europe/Berlin, 20-minute slots, 10-minute buffer) for 90 days, generated through
``set_availability`` into a fresh SQLite file.

- ``$find``: 100 calls of ``scheduling.find`` (the service the route calls, no HTTP) for
  one random practitioner over one random week, and 100 for any practitioner over one
  random day (first 20 proposals); p50 / p99 in milliseconds of wall time, and of the
  calling thread's CPU time (what the call costs when the machine is shared).
- ``$book``: N clients (threads) book through ``scheduling.book``; every slot is wanted by
  two clients, so half of all attempts meet a 409. Throughput counts successful bookings
  per second; every slot must end with exactly one booking. The process CPU seconds are
  reported beside the wall time.

Prints a Markdown table and writes it to ``bench-out/scheduling.md``. Timing is reported,
never asserted. Usage: python benchmarks/bench_scheduling.py [--practitioners 200] [--bookings 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from medfusion.errors import ConflictError
from medfusion.fhir.repository import FhirRepository
from medfusion.services import records, scheduling
from medfusion.services.database import open_repository

RULES: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "slotMinutes": 20,
    "bufferMinutes": 10,
    "horizonDays": 90,
    "weekly": {
        d: [{"start": "08:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]
        for d in ("monday", "tuesday", "wednesday", "thursday", "friday")
    },
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _setup(repo: FhirRepository, practitioners: int, now: datetime) -> tuple[int, float]:
    started = time.perf_counter()
    slots = 0
    for i in range(practitioners):
        for resource in (
            {"resourceType": "Practitioner", "id": f"pr{i}"},
            {"resourceType": "Schedule", "id": f"sc{i}", "actor": [{"reference": f"Practitioner/pr{i}"}]},
        ):
            records.update(
                repo, resource_type=resource["resourceType"], id=resource["id"], body=orjson.dumps(resource)
            )
        slots += scheduling.set_availability(repo, schedule_id=f"sc{i}", rules=RULES, now=now).created
    return slots, time.perf_counter() - started


def _find_latency(repo: FhirRepository, practitioners: int, now: datetime, calls: int) -> dict[str, float]:
    rng = random.Random(7)
    week, day, week_cpu, day_cpu = [], [], [], []
    for _ in range(calls):
        start = now + timedelta(days=rng.randrange(0, 83))
        t, c = time.perf_counter(), time.thread_time()
        scheduling.find(
            repo, start=start, end=start + timedelta(days=7), practitioner=f"pr{rng.randrange(practitioners)}"
        )
        week.append((time.perf_counter() - t) * 1000)
        week_cpu.append((time.thread_time() - c) * 1000)
        t, c = time.perf_counter(), time.thread_time()
        scheduling.find(repo, start=start, end=start + timedelta(days=1), count=20)
        day.append((time.perf_counter() - t) * 1000)
        day_cpu.append((time.thread_time() - c) * 1000)
    return {
        "week_p50": statistics.median(week),
        "week_p99": _percentile(week, 0.99),
        "week_cpu_p50": statistics.median(week_cpu),
        "week_cpu_p99": _percentile(week_cpu, 0.99),
        "day_p50": statistics.median(day),
        "day_p99": _percentile(day, 0.99),
        "day_cpu_p50": statistics.median(day_cpu),
        "day_cpu_p99": _percentile(day_cpu, 0.99),
    }


def _proposals(repo: FhirRepository, practitioner: int, now: datetime, n: int) -> list[dict[str, Any]]:
    bundle = scheduling.find(
        repo, start=now, end=now + timedelta(days=90), practitioner=f"pr{practitioner}", count=n
    )
    out = []
    for i, entry in enumerate(bundle["entry"]):
        proposal = entry["resource"]
        # One patient per slot: a patient may hold only a few future appointments.
        patient = {"reference": f"Patient/bench-{practitioner}-{i}"}
        proposal["participant"].append({"actor": patient, "status": "accepted"})
        out.append(proposal)
    return out


def _book_throughput(repo: FhirRepository, proposals: list[dict[str, Any]], clients: int) -> dict[str, float]:
    # Each slot appears in the lists of two clients (one client alone books each once).
    copies = 1 if clients == 1 else 2
    work: list[list[dict[str, Any]]] = [[] for _ in range(clients)]
    for i, proposal in enumerate(proposals):
        for c in range(copies):
            work[(i + c * (clients // 2)) % clients].append(proposal)
    counts = {"ok": 0, "conflict": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(items: list[dict[str, Any]]) -> None:
        barrier.wait()
        ok = conflict = 0
        for proposal in items:
            try:
                scheduling.book(repo, appointment=proposal)
                ok += 1
            except ConflictError:
                conflict += 1
        with lock:
            counts["ok"] += ok
            counts["conflict"] += conflict

    threads = [threading.Thread(target=client, args=(items,)) for items in work]
    for thread in threads:
        thread.start()
    barrier.wait()
    started, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if counts["ok"] != len(proposals):
        raise AssertionError(f"{counts['ok']} bookings for {len(proposals)} slots")
    return {
        "bookings": counts["ok"],
        "conflicts": counts["conflict"],
        "seconds": seconds,
        "rate": counts["ok"] / seconds,
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--practitioners", type=int, default=200)
    parser.add_argument("--bookings", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench-out/scheduling.md"))
    args = parser.parse_args()
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    with tempfile.TemporaryDirectory() as folder:
        repo = open_repository(f"sqlite:///{folder}/bench.db")
        slots, setup_seconds = _setup(repo, args.practitioners, now)
        latency = _find_latency(repo, args.practitioners, now, args.calls)
        per = max(1, args.bookings // 2)
        one = _book_throughput(repo, _proposals(repo, 0, now, per), 1)
        many = _book_throughput(repo, _proposals(repo, 1, now, per), 16)
        repo.close()
    lines = [
        f"### Appointments (SQLite, service calls, {args.practitioners} practitioners x 90 days)",
        "",
        f"{slots:,} free slots generated by `set_availability` in {setup_seconds:.1f} s "
        f"({slots / setup_seconds:,.0f} slots/s).",
        "",
        "| measure | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| `$find` {label} | {latency[k + '_p50']:.2f} | {latency[k + '_p99']:.2f} "
            f"| {latency[k + '_cpu_p50']:.2f} | {latency[k + '_cpu_p99']:.2f} |"
            for label, k in (
                ("one practitioner, one week", "week"),
                ("any practitioner, one day, first 20", "day"),
            )
        ),
        "",
        "| `$book` clients | bookings | 409 conflicts | seconds | bookings/s | CPU s |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {n} | {r['bookings']:,.0f} | {r['conflicts']:,.0f} | {r['seconds']:.2f} | {r['rate']:,.0f} "
            f"| {r['cpu']:.2f} |"
            for n, r in ((1, one), (16, many))
        ),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
