"""Run the store checks over the 25 Synthea bundles and print what they find.

Imports the bundles into a fresh SQLite database in a temporary folder (never the
project's), runs :func:`medfusion.services.quality.check_store` over it, prints each
check's totals and the findings grouped by check and message, with examples; then times
``import --quality off|warn|strict`` over the same files.

Usage: ``.venv/bin/python -m benchmarks.quality_synthea [FOLDER]``
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from medfusion.config import get_settings
from medfusion.services.database import open_repository
from medfusion.services.importer import import_paths
from medfusion.services.quality import check_store


def _kind(message: str) -> str:
    """A message with its numbers, dates and ids blanked, to group like findings."""
    message = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "ID", message)
    message = re.sub(r"\d{4}-\d\d-\d\d(T[\d:.+-]+)?", "DATE", message)
    return re.sub(r"\d+(\.\d+)?", "N", message)


def main(folder: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = open_repository(f"sqlite:///{Path(tmp) / 'synthea.db'}")
        imported = import_paths(repo, paths=[folder])
        print(
            f"imported {imported.resources:,} entries ({sum(repo.counts().values()):,} resources) "
            f"from {imported.files} files"
        )
        seconds = float("inf")
        for _ in range(3):  # best of three
            started = time.perf_counter()
            run = check_store(repo, out=Path(tmp) / "report")
            seconds = min(seconds, time.perf_counter() - started)
        report = run.report
        print(f"checked {report.resources:,} resources in {seconds:.2f} s (best of 3)")
        for check in report.checks:
            print(f"  {check.name:20} {check.severity:8} failed {check.failed:5,} of {check.checked:6,}")
        groups: dict[tuple[str, str, str | None], list[str]] = defaultdict(list)
        for finding in report.findings:
            groups[(finding.check, _kind(finding.message), finding.column)].append(
                f"{finding.row} {finding.value!r}: {finding.message}"
            )
        for (check, kind, column), examples in sorted(groups.items(), key=lambda g: -len(g[1])):
            print(f"\n{check}: {len(examples)} x {column}: {kind}")
            for example in examples[:3]:
                print(f"    {example}")
        by_type = Counter(f.row.split("/")[0] for f in report.findings)
        print(f"\nfindings by resource type: {dict(by_type)}")
        repo.close()
    for mode in ("off", "warn", "strict"):
        best = float("inf")
        for _ in range(3):  # best of three: the machine may be shared
            with tempfile.TemporaryDirectory() as tmp:
                repo = open_repository(f"sqlite:///{Path(tmp) / 'synthea.db'}")
                started = time.perf_counter()
                result = import_paths(repo, paths=[folder], quality=mode)
                best = min(best, time.perf_counter() - started)
                repo.close()
        print(
            f"import --quality {mode:6}: best of 3 {best:.2f} s, {result.resources:,} written, "
            f"{len(result.tagged)} tagged, {len(result.problems)} rejected"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else get_settings().data_dir / "synthea")
