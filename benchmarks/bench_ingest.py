"""Ingest throughput: synthetic transaction Bundles imported into SQLite and PostgreSQL.

Two baselines, both the raw driver call: the same resource bodies inserted into a bare
two-column table with ``executemany`` (no validation, no versions, no search index), and
the *floor*: the very rows the SQLite import wrote (resource versions and search index
rows, in the same schema), read back and inserted again with bare ``executemany`` in
Bundle-sized batches. No import into this schema can beat the floor on the same machine.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections import defaultdict
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


_TABLES = ("resource", "idx_string", "idx_token", "idx_date", "idx_quantity", "idx_reference")


def sqlite_floor(imported: Path, database: Path, batch: int = 90) -> IngestResult:
    """Insert the rows of an imported store again, into the same schema, with ``executemany``.

    The rows are read and grouped by resource before the clock starts; the pragmas are the
    store's own (WAL, synchronous FULL, foreign keys, 256 MiB cache), with a commit every
    20,000 resources as the importer does.
    """
    source = sqlite3.connect(imported)
    schema = [
        row[0]
        for row in source.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
            "AND (tbl_name LIKE 'idx_%' OR tbl_name = 'resource')"
        )
    ]
    rows: dict[str, dict[int, list[tuple[object, ...]]]] = {}
    for table in _TABLES:
        grouped: dict[int, list[tuple[object, ...]]] = defaultdict(list)
        for row in source.execute(f"SELECT * FROM {table}"):
            grouped[row[0]].append(row)
        rows[table] = grouped
    source.close()
    rids = sorted(rows["resource"])
    conn = sqlite3.connect(database, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "cache_size=-262144"):
        conn.execute(f"PRAGMA {pragma}")
    for statement in schema:
        conn.execute(statement)
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    pending = 0
    for start in range(0, len(rids), batch):
        part = rids[start : start + batch]
        for table in _TABLES:
            values = [row for rid in part for row in rows[table].get(rid, ())]
            if values:
                marks = ", ".join("?" * len(values[0]))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
        pending += len(part)
        if pending >= 20_000:
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            pending = 0
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return IngestResult("SQLite floor: the import's own rows, bare executemany", len(rids), seconds)


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
        results.append(sqlite_floor(Path(tmp) / "ingest.db", Path(tmp) / "floor.db"))
        with override_settings(encrypt_at_rest=False):  # what encryption at rest costs
            results.append(
                ingest(f"sqlite:///{tmp}/plain.db", folder, "medfusion import -> SQLite, encryption off")
            )
        if postgres_url:
            results.append(ingest(postgres_url, folder, "medfusion import -> PostgreSQL"))
    return results
