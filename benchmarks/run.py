"""`make bench`: ingest, HTTP and appointment benchmarks; prints Markdown tables for docs/benchmarks.md.

Usage: python benchmarks/run.py [--ingest-resources N] [--observations N] [--seconds S]
       [--skip-ingest] [--skip-http] [--skip-scheduling] [--workers 1 2] [--http-db PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bench_http, bench_ingest, bench_scheduling, bench_validation
from benchmarks._postgres import temporary_postgres


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def _http_table(load: list[bench_http.LoadResult], facts: dict[str, float], workers: int) -> list[str]:
    ceiling = {r.concurrency: r.rps for r in load if r.endpoint == "bare (ceiling)"}
    loaded = (
        f" ({facts['loaded_resources']:,.0f} resources loaded at {facts['load_rate']:,.0f}/s)"
        if "loaded_resources" in facts
        else ""
    )
    lines = [
        f"### HTTP on loopback (SQLite, {workers} uvicorn worker{'s' if workers > 1 else ''}, wrk)",
        "",
        f"{facts['observations_stored']:,.0f} Observations stored{loaded}; response body "
        f"{facts['body_bytes']:.0f} bytes; the example search matched "
        f"{facts['search_matches_example']:.0f} Observations.",
        "",
        "| endpoint | concurrency | rps | ratio to ceiling | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.endpoint} | {r.concurrency} | {r.rps:,.0f} | {r.rps / ceiling[r.concurrency]:.2f} | "
        f"{r.p50_ms:.2f} | {r.p99_ms:.2f} |"
        for r in load
    ]
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ingest-resources", type=int, default=500_000)
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-scheduling", action="store_true")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server processes to try")
    parser.add_argument("--http-db", type=Path, help="keep the HTTP store here and reuse it next time")
    args = parser.parse_args()

    lines = [f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {_machine()}.", ""]
    print("validation ...", flush=True)
    validation = bench_validation.table()
    if validation:
        lines += ["### Validation: fast path vs fhir.resources R4B (µs per resource)", "", *validation, ""]
    with temporary_postgres() as postgres_url:
        if not args.skip_ingest:
            print("ingest ...", flush=True)
            results = bench_ingest.run(args.ingest_resources, postgres_url)
            lines += [
                "### Ingest",
                "",
                "| target | resources | seconds | resources/s |",
                "|---|---:|---:|---:|",
            ]
            lines += [f"| {r.target} | {r.resources:,} | {r.seconds:.1f} | {r.rate:,.0f} |" for r in results]
            lines.append("")
        if not args.skip_http:
            with tempfile.TemporaryDirectory(prefix="medfusion-httpdb-") as tmp:
                url = f"sqlite:///{args.http_db or Path(tmp) / 'http.db'}"
                for workers in args.workers:
                    print(f"http (SQLite, {workers} worker(s)) ...", flush=True)
                    load, facts = bench_http.run(
                        url, args.observations, args.patients, args.seconds, workers=workers
                    )
                    lines += _http_table(load, facts, workers)
    if not args.skip_scheduling:
        print("appointments ...", flush=True)
        lines += bench_scheduling.table()
    text = "\n".join(lines) + "\n"
    out = Path("bench-out")
    out.mkdir(exist_ok=True)
    (out / "benchmarks.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
