"""Benchmark the de-identified export and measure free-text recall.

Run ``python benchmarks/bench_deid.py [--patients N]``. It

- imports the Synthea bundles of ``MEDFUSION_DATA_DIR`` (when present) and a synthetic
  cohort of N patients (``medfusion synth``) into SQLite files in a temporary folder;
- times ``export_deidentified`` on each: a cold run (first use, Presidio loading) and the
  best of three warm runs, in resources per second (read, transformed, written);
- measures recall on the planted-PHI free-text set (``tests/deid/planted.py``), per kind.

It prints markdown tables for ``docs/benchmarks.md`` and ``docs/deidentification.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from medfusion.config import get_settings
from medfusion.deid import TextDetector
from medfusion.services.database import open_repository, upgrade_database
from medfusion.services.deidentify import export_deidentified
from medfusion.services.importer import find_files, import_paths
from medfusion.synth import write_bundles

KEY = b"benchmark-key-0123456789"


def _store(folder: Path, source: Path) -> str:
    url = f"sqlite:///{folder / 'bench.db'}"
    upgrade_database(url)
    report = import_paths(open_repository(url), paths=find_files([source]))
    if report.problems:
        raise SystemExit(f"import problems: {report.problems[:3]}")
    return url


def _time_export(url: str, out: Path, *, date_shift: bool) -> tuple[int, float, float]:
    repo = open_repository(url)
    rates = []
    resources = 0
    for run in range(4):
        start = time.perf_counter()
        report = export_deidentified(
            repo, out=out / f"run{run}", key=KEY, k=5, date_shift=date_shift, as_of=date(2026, 11, 27)
        )
        seconds = time.perf_counter() - start
        resources = report.resources + report.dropped
        rates.append(resources / seconds)
    return resources, rates[0], max(rates[1:])


def _recall() -> list[tuple[str, int, int]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.deid import planted
    from tests.deid.test_text import recall_by_kind

    detector = TextDetector(names=planted.record_names(), places=planted.record_places())
    by_kind = recall_by_kind(detector, planted.build())
    return [(kind, found, total) for kind, (found, total) in sorted(by_kind.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=200)
    args = parser.parse_args()
    cohorts: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        synthea = get_settings().data_dir / "synthea"
        if synthea.is_dir():
            cohorts.append(("Synthea (25 patients)", synthea))
        write_bundles(root / "synth", args.patients, 42)
        cohorts.append((f"medfusion synth ({args.patients} patients)", root / "synth"))
        print("| cohort | dates | resources | cold run (res/s) | warm, best of 3 (res/s) |")
        print("|---|---|---:|---:|---:|")
        for index, (name, source) in enumerate(cohorts):
            folder = root / f"db{index}"
            folder.mkdir()
            url = _store(folder, source)
            for date_shift in (False, True):
                resources, cold, warm = _time_export(
                    url, folder / ("shift" if date_shift else "year"), date_shift=date_shift
                )
                mode = "shifted" if date_shift else "year"
                print(f"| {name} | {mode} | {resources:,} | {cold:,.0f} | {warm:,.0f} |")
    print()
    rows = _recall()
    print("| kind | found | planted | recall |")
    print("|---|---:|---:|---:|")
    for kind, found, total in rows:
        print(f"| {kind} | {found} | {total} | {found / total:.3f} |")
    found = sum(r[1] for r in rows)
    total = sum(r[2] for r in rows)
    print(f"| **all** | {found} | {total} | **{found / total:.3f}** |")


if __name__ == "__main__":
    main()
