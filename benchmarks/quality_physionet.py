"""Run the data-quality catalogue over the PhysioNet 2012 dev half and print what it finds.

The archive holds one ``Time,Parameter,Value`` file per ICU stay. It is checked as three
tables: the general descriptors recorded at admission (one row per stay), the time series
(one row per stay and time stamp, one column per parameter; sparse by design, so the
missing-rate check is off there) and the long table itself (for exact duplicates).

Usage: ``.venv/bin/python -m benchmarks.quality_physionet [ARCHIVE]``
"""

from __future__ import annotations

import io
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pandas as pd

from medfusion.config import get_settings
from medfusion.quality import QualityConfig, QualityReport, check_table

DESCRIPTORS = ["Age", "Gender", "Height", "ICUType", "Weight"]


def read_long(archive: Path) -> pd.DataFrame:
    """All stays as one long table: ``record``, ``time`` (minutes), ``parameter``, ``value``."""
    frames = []
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".txt"):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            frame = pd.read_csv(io.BytesIO(handle.read()))
            frame.insert(0, "record", Path(member.name).stem)
            frames.append(frame)
    long = pd.concat(frames, ignore_index=True)
    hours, minutes = long["Time"].str.split(":", expand=True).astype(int).T.to_numpy()
    long["time"] = hours * 60 + minutes
    long = long.rename(columns={"Parameter": "parameter", "Value": "value"})
    return long[long["parameter"] != "RecordID"][["record", "time", "parameter", "value"]]


def descriptors(long: pd.DataFrame) -> pd.DataFrame:
    """One row per stay: the admission descriptors (the first value at time 0)."""
    first = long[(long["time"] == 0) & long["parameter"].isin(DESCRIPTORS)]
    return first.groupby(["record", "parameter"])["value"].first().unstack()[DESCRIPTORS].reset_index()


def series(long: pd.DataFrame) -> pd.DataFrame:
    """One row per stay and time stamp; a parameter measured twice at one stamp keeps the first."""
    observed = long[~long["parameter"].isin(DESCRIPTORS) | (long["time"] > 0)]
    wide = observed.groupby(["record", "time", "parameter"])["value"].first().unstack()
    return wide.reset_index()


def _print(name: str, frame: pd.DataFrame, report: QualityReport) -> None:
    print(f"\n## {name}: {report.rows:,} rows x {report.columns} columns; passed={report.passed}")
    for finding in report.findings:
        share = finding.count / finding.checked if finding.checked else 0.0
        examples = []
        for row, value in zip(finding.rows[:4], finding.values[:4], strict=True):
            where = frame.iloc[row]
            minutes = int(where["time"]) if "time" in frame else None
            stamp = "" if minutes is None else f" t={minutes // 60:02d}:{minutes % 60:02d}"
            examples.append(f"{where['record']}{stamp}: {value}")
        print(
            f"- {finding.check} [{finding.severity}] {finding.column}: {finding.count:,} of "
            f"{finding.checked:,} ({share:.2%}); {finding.message}; e.g. {'; '.join(examples)}"
        )


def main(archive: Path) -> None:
    """Check the archive's three views and print the findings as Markdown."""
    long = read_long(archive)
    print(f"{long['record'].nunique():,} stays, {len(long):,} observations")
    default = QualityConfig()
    # Record and time are identifiers; a missing-rate check over a sparse series is noise.
    sparse = replace(
        default,
        checks={**default.checks, "missing_rate": replace(default.checks["missing_rate"], enabled=False)},
    )
    static = descriptors(long)
    _print("descriptors", static, check_table(static, default))
    timed = series(long)
    _print("time series", timed, check_table(timed, sparse))
    _print("long table", long, check_table(long[["record", "time", "parameter", "value"]], sparse))


if __name__ == "__main__":
    default_archive = get_settings().data_dir / "physionet2012" / "set-a-dev.tar.gz"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default_archive)
