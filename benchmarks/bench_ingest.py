"""Ingest throughput: synthetic transaction Bundles imported into SQLite and PostgreSQL.

The baseline is the raw driver call: the same resource bodies inserted into a bare
two-column table with ``executemany`` (no validation, no versions, no search index).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from medfusion.config import override_settings
from medfusion.services.database import open_repository
from medfusion.services.importer import import_paths
from medfusion.synth import write_bundles


@dataclass
class IngestResult:
    target: str
    resources: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.resources / self.seconds


def make_bundles(folder: Path, min_resources: int, seed: int = 1) -> int:
    """Write synthetic bundles until at least ``min_resources`` resources exist."""
    total = 0
    batch = 0
    while total < min_resources:
        summary = write_bundles(folder / f"part{batch}", patients=1000, seed=seed + batch)
        total += sum(summary.resources.values())
        batch += 1
    return total


def raw_sqlite_baseline(folder: Path, database: Path) -> IngestResult:
    """Parse the same files and insert the bodies with sqlite3 ``executemany``."""
    started = time.perf_counter()
    conn = sqlite3.connect(database)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE raw (id TEXT PRIMARY KEY, body BLOB)")
    count = 0
    for path in sorted(folder.rglob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        rows = [(e["fullUrl"], orjson.dumps(e["resource"])) for e in bundle["entry"]]
        conn.executemany("INSERT OR REPLACE INTO raw VALUES (?, ?)", rows)
        conn.commit()
        count += len(rows)
    conn.close()
    return IngestResult("SQLite raw executemany (baseline)", count, time.perf_counter() - started)


def ingest(url: str, folder: Path, label: str) -> IngestResult:
    repo = open_repository(url)
    report = import_paths(repo, paths=[folder])
    if report.problems:
        raise SystemExit(f"ingest reported problems: {report.problems[:3]}")
    repo.engine.dispose()
    return IngestResult(label, report.resources, report.seconds)


def run(min_resources: int, postgres_url: str | None) -> list[IngestResult]:
    with tempfile.TemporaryDirectory(prefix="medfusion-bench-") as tmp:
        folder = Path(tmp) / "bundles"
        make_bundles(folder, min_resources)
        results = [raw_sqlite_baseline(folder, Path(tmp) / "raw.db")]
        results.append(ingest(f"sqlite:///{tmp}/ingest.db", folder, "medfusion import -> SQLite"))
        with override_settings(encrypt_at_rest=False):  # what encryption at rest costs
            results.append(
                ingest(f"sqlite:///{tmp}/plain.db", folder, "medfusion import -> SQLite, encryption off")
            )
        if postgres_url:
            results.append(ingest(postgres_url, folder, "medfusion import -> PostgreSQL"))
    return results
