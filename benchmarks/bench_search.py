"""Latency of one typical search through the service layer, without HTTP.

Builds a store of N Observations over P patients (SQLite unless ``--url`` names another
database; a store that already holds Observations is reused), then times
``medfusion.services.search.search`` for
``Observation?patient=pX&code=http://loinc.org|8867-4&date=ge2022-01-01`` with random
patients, and the bare ``execute_search`` call for the same queries.

Usage: python benchmarks/bench_search.py [--observations N] [--patients P] [--calls C]
[--db PATH] [--url URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_http import write_observations
from medfusion.fhir.search import parse_search
from medfusion.services.database import open_repository
from medfusion.services.importer import import_paths
from medfusion.services.search import search
from medfusion.store.search_sql import execute_search


def _params(patient: int) -> list[tuple[str, str]]:
    return [("patient", f"p{patient}"), ("code", "http://loinc.org|8867-4"), ("date", "ge2022-01-01")]


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 * 1000, p99 * 1000, statistics.fmean(ordered) * 1000


def _time(label: str, calls: list[Callable[[], object]]) -> None:
    for call in calls[:50]:  # warm-up: caches, pages, pool
        call()
    samples = []
    for call in calls:
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    p50, p99, mean = _percentiles(samples)
    print(f"{label:28} n={len(calls)}  p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  mean {mean:6.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--observations", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=2_000)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--db", type=Path, help="SQLite file to keep (reused when it exists)")
    parser.add_argument("--url", help="database URL instead of a SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="medfusion-search-") as tmp:
        url = args.url or f"sqlite:///{args.db or Path(tmp) / 'bench.sqlite'}"
        repo = open_repository(url)
        if not repo.counts().get("Observation"):  # a store left by an earlier run is reused
            data = Path(tmp) / "load.ndjson"
            write_observations(data, args.observations, args.patients)
            started = time.perf_counter()
            import_paths(repo, paths=[data])
            print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
        print(f"store: {repo.counts()}")

        rng = random.Random(7)
        patients = [rng.randrange(args.patients) for _ in range(args.calls)]
        example = search(repo, resource_type="Observation", params=_params(patients[0]), base="http://x/fhir")
        print(f"example bundle: {len(example)} bytes")

        _time(
            "services.search.search",
            [
                partial(search, repo, resource_type="Observation", params=_params(p), base="http://x/fhir")
                for p in patients
            ],
        )
        queries = [
            parse_search("Observation", _params(p), strict=False, default_count=20, max_count=1000)
            for p in patients
        ]
        with repo.engine.connect() as conn:
            _time("store execute_search", [partial(execute_search, conn, q) for q in queries])
        repo.close()


if __name__ == "__main__":
    main()
