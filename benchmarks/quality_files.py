"""Run ``quality check --data`` over BreastMNIST, ECG200 and the PhysioNet 2012 dev half; print
what the checks find (per check: failed of checked, examples) and how long each took.

The figures in ``docs/data-quality.md`` ("What the checks find on BreastMNIST, ECG200 and
the PhysioNet 2012 stays") and ``docs/benchmarks.md`` come from this script.

Usage: ``.venv/bin/python -m benchmarks.quality_files [DATA_DIR]``
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from medfusion.config import get_settings
from medfusion.services.quality import ItemRun, check_data

FILES = ("medmnist/breastmnist.npz", "ucr/ECG200_TRAIN.tsv", "physionet2012/set-a-dev.tar.gz")


def _show(run: ItemRun, seconds: float) -> None:
    report = run.report
    print(
        f"\n## {run.data.name} ({run.kind}): {report.items:,} items, passed={report.passed}, {seconds:.2f} s"
    )
    print(f"summary: {report.summary}")
    for check in report.checks:
        print(f"- {check.name} [{check.severity}]: {check.failed:,} of {check.checked:,}")
    by_column = Counter((f.check, f.column) for f in report.findings)
    for (check_id, column), count in by_column.most_common():
        examples = [f for f in report.findings if f.check == check_id and f.column == column][:3]
        shown = "; ".join(f"{f.row}: {f.value!r} ({f.message})" for f in examples)
        print(f"  {check_id} {column or ''}: {count:,}, e.g. {shown}")


def main(data_dir: Path) -> None:
    """Check each file and print the findings as Markdown."""
    with tempfile.TemporaryDirectory() as folder:
        for name in FILES:
            start = time.perf_counter()
            run = check_data(data=data_dir / name, out=Path(folder) / name.replace("/", "_"))
            seconds = time.perf_counter() - start
            assert isinstance(run, ItemRun)
            _show(run, seconds)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else get_settings().data_dir)
