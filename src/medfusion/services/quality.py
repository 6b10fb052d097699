"""Use case: check a table's data quality and write JSON and HTML reports.

The checks themselves live in :mod:`medfusion.quality` (pure); this module reads the file,
loads the config, runs them and writes the reports. Every bad input (missing or empty
file, bad config) is raised before anything is written.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from medfusion.errors import DataError, InvalidRequestError
from medfusion.ml import read_table
from medfusion.quality import Finding, QualityReport, check_table, load_config

__all__ = ["DEFAULT_QUALITY_DIR", "QUALITY_MODES", "QualityRun", "check_file", "quality_gate", "render_html"]

DEFAULT_QUALITY_DIR = Path(".medfusion/quality")


@dataclass(frozen=True)
class QualityRun:
    """A finished check: the report and where it was written."""

    report: QualityReport
    data: Path
    out: Path
    json_path: Path
    html_path: Path


def _chart(report: QualityReport) -> bytes:
    """PNG bar chart of the failing share per check (red for errors, amber for warnings)."""
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display on servers and in CI
    from matplotlib import pyplot as plt

    names = [c.name for c in report.checks]
    shares = [100.0 * c.failed / c.checked if c.checked else 0.0 for c in report.checks]
    colours = [
        "#c0392b" if not c.passed and c.severity == "error" else "#e67e22" if not c.passed else "#7f8c8d"
        for c in report.checks
    ]
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(names) + 1.2), dpi=100)
    try:
        ax.barh(names[::-1], shares[::-1], color=colours[::-1])
        ax.set_xlabel("failing cells or rows (% of checked)")
        ax.set_title("data quality by check")
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def render_html(report: QualityReport, *, title: str) -> str:
    """A self-contained HTML report (chart inlined as a base64 PNG)."""
    image = base64.b64encode(_chart(report)).decode("ascii")
    esc = html.escape
    check_rows = "".join(
        f"<tr><td>{esc(c.name)}</td><td>{c.category}</td><td>{c.severity}</td><td>{c.threshold:g}</td>"
        f"<td>{c.failed:,}</td><td>{c.checked:,}</td><td>{'pass' if c.passed else 'FAIL'}</td></tr>"
        for c in report.checks
    )

    def examples(finding: Finding) -> str:
        pairs = zip(finding.rows[:5], finding.values[:5], strict=True)
        return esc(", ".join(f"row {row}: {value!r}" for row, value in pairs))

    finding_rows = "".join(
        f"<tr><td>{esc(f.check)}</td><td>{f.severity}</td><td>{esc(str(f.column or ''))}</td>"
        f"<td>{f.count:,}</td><td>{esc(f.message)}</td>"
        f"<td>{examples(f)}</td></tr>"
        for f in report.findings
    )
    verdict = "passed" if report.passed else "FAILED (error-severity checks failed)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}</style></head><body>
<h1>{esc(title)}</h1>
<p>catalogue {esc(report.catalogue_version)}; {report.rows:,} rows, {report.columns} columns; {verdict}</p>
<img alt="failing share per check" src="data:image/png;base64,{image}">
<h2>Checks</h2><table><tr><th>check</th><th>category</th><th>severity</th><th>threshold</th>
<th>failed</th><th>checked</th><th>result</th></tr>{check_rows}</table>
<h2>Findings</h2><table><tr><th>check</th><th>severity</th><th>column</th><th>count</th>
<th>message</th><th>examples</th></tr>{finding_rows}</table>
</body></html>
"""


def _out_dir(out: Path | None) -> Path:
    if out is not None:
        return out
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return DEFAULT_QUALITY_DIR / stamp


def check_file(*, data: Path, config: Path | None = None, out: Path | None = None) -> QualityRun:
    """Check a CSV / Parquet table and write ``quality.json`` and ``quality.html``.

    Parameters
    ----------
    data
        The table.
    config
        A TOML or JSON file overriding the catalogue (see :func:`medfusion.quality.load_config`).
    out
        Folder for the reports (default ``.medfusion/quality/<UTC timestamp>/``).

    Raises
    ------
    DataError
        The data file is missing, empty or unreadable.
    InvalidRequestError
        The config file is missing or invalid.
    """
    settings = load_config(config)  # a bad config fails before the data is even read
    report = check_table(read_table(data), settings)
    folder = _out_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "quality.json", folder / "quality.html"
    document = {"data": str(data), **report.to_dict(examples=20)}
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    html_path.write_text(render_html(report, title=f"Data quality: {data.name}"), encoding="utf-8")
    return QualityRun(report, data, folder, json_path, html_path)


QUALITY_MODES = ("off", "warn", "strict")


def quality_gate(frame: pd.DataFrame, *, mode: str, config: Path | None = None) -> QualityReport | None:
    """Check a training table before any model sees it.

    Parameters
    ----------
    frame
        The training table as read.
    mode
        ``off`` skips the checks; ``warn`` returns the report for the caller to print and
        record; ``strict`` also refuses when an error-severity check fails.
    config
        A TOML or JSON catalogue override.

    Raises
    ------
    DataError
        Under ``strict``, when an error-severity check fails: the message names each check,
        its column, the count and example rows (never values: a cell may be patient data).
    InvalidRequestError
        ``mode`` is unknown or the config is invalid.
    """
    if mode not in QUALITY_MODES:
        raise InvalidRequestError(f"--quality must be one of {', '.join(QUALITY_MODES)}, got {mode!r}")
    if mode == "off":
        return None
    report = check_table(frame, load_config(config))
    if mode == "strict" and not report.passed:
        failed = "; ".join(
            f"{f.check} on {f.column or 'the table'}: {f.count} "
            f"(rows {', '.join(map(str, f.rows[:5])) or 'n/a'})"
            for f in report.errors
        )
        raise DataError(f"quality gate (strict) refused the training data: {failed}")
    return report
