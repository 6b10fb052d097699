"""Use cases: check a table's or the record store's data quality and write JSON and HTML
reports; gate training (:func:`quality_gate`) and import (:class:`ImportGate`) on it.

The checks themselves live in :mod:`medfusion.quality` (pure); this module reads the file
or the store, loads the config, runs them and writes the reports. Every bad input
(missing or empty file, bad config) is raised before anything is written.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from medfusion.errors import DataError, InvalidRequestError
from medfusion.fhir.repository import FhirRepository
from medfusion.ml import read_table
from medfusion.quality import (
    Finding,
    QualityConfig,
    QualityReport,
    RecordFinding,
    StoreChecker,
    StoreReport,
    check_resource,
    check_table,
    load_config,
)

__all__ = [
    "DEFAULT_QUALITY_DIR",
    "QUALITY_MODES",
    "QUALITY_TAG_SYSTEM",
    "ImportGate",
    "QualityNote",
    "QualityRun",
    "StoreRun",
    "check_file",
    "check_store",
    "make_import_gate",
    "quality_gate",
    "render_html",
    "render_store_html",
]

DEFAULT_QUALITY_DIR = Path(".medfusion/quality")


@dataclass(frozen=True)
class QualityRun:
    """A finished check: the report and where it was written."""

    report: QualityReport
    data: Path
    out: Path
    json_path: Path
    html_path: Path


def _chart(report: QualityReport | StoreReport) -> bytes:
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


# -- the record store -------------------------------------------------------------------

_PAGE = 500
_HTML_FINDINGS = 500


@dataclass(frozen=True)
class StoreRun:
    """A finished store check: the report and where it was written."""

    report: StoreReport
    out: Path
    json_path: Path
    html_path: Path


def render_store_html(report: StoreReport, *, title: str) -> str:
    """A self-contained HTML report of a store check (chart inlined as a base64 PNG)."""
    image = base64.b64encode(_chart(report)).decode("ascii")
    esc = html.escape
    check_rows = "".join(
        f"<tr><td>{esc(c.name)}</td><td>{c.category}</td><td>{c.severity}</td><td>{c.threshold:g}</td>"
        f"<td>{c.failed:,}</td><td>{c.checked:,}</td><td>{'pass' if c.passed else 'FAIL'}</td></tr>"
        for c in report.checks
    )
    shown = report.findings[:_HTML_FINDINGS]
    finding_rows = "".join(
        f"<tr><td>{esc(f.check)}</td><td>{f.severity}</td><td>{esc(f.row)}</td><td>{esc(f.column or '')}</td>"
        f"<td>{esc(repr(f.value)) if f.value is not None else ''}</td><td>{esc(f.message)}</td></tr>"
        for f in shown
    )
    more = (
        f"<p>{len(report.findings) - len(shown):,} more findings are in quality.json.</p>"
        if len(report.findings) > len(shown)
        else ""
    )
    verdict = "passed" if report.passed else "FAILED (error-severity checks failed)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}</style></head><body>
<h1>{esc(title)}</h1>
<p>catalogue {esc(report.catalogue_version)}; {report.resources:,} resources; {verdict}</p>
<img alt="failing share per check" src="data:image/png;base64,{image}">
<h2>Checks</h2><table><tr><th>check</th><th>category</th><th>severity</th><th>threshold</th>
<th>failed</th><th>checked</th><th>result</th></tr>{check_rows}</table>
<h2>Findings</h2><table><tr><th>check</th><th>severity</th><th>resource</th><th>element</th>
<th>value</th><th>message</th></tr>{finding_rows}</table>{more}
</body></html>
"""


def check_store(
    repo: FhirRepository,
    *,
    config: Path | None = None,
    out: Path | None = None,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StoreRun:
    """Check every current resource of a store and write ``quality.json`` and ``quality.html``.

    Parameters
    ----------
    repo
        The store, read through the repository protocol (streamed, never loaded whole).
    config
        A TOML or JSON catalogue override.
    out
        Folder for the reports (default ``.medfusion/quality/<UTC timestamp>/``).
    now
        The instant "future" is measured from (default: now).
    progress
        Called with ``(resources done, total)`` after each page of resources.

    Raises
    ------
    InvalidRequestError
        The config file is missing or invalid (before anything is read or written).
    """
    settings = load_config(config)
    total = sum(repo.counts().values())
    checker = StoreChecker(settings, now=now)
    done = 0
    for stored in repo.iter_current():  # streamed by the store in pages
        checker.add(stored.json())
        done += 1
        if progress is not None and (done % _PAGE == 0 or done == total):
            progress(done, total)
    if progress is not None:
        progress(done, max(total, done))
    report = checker.finish()
    folder = _out_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "quality.json", folder / "quality.html"
    document = {
        "source": "record store",
        "catalogue_version": report.catalogue_version,
        "passed": report.passed,
        "resources": report.resources,
        "checks": [c.to_dict() for c in report.checks],
        "findings": [{**f.to_dict(), "category": f.category, "message": f.message} for f in report.findings],
    }
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    html_path.write_text(render_store_html(report, title="Data quality: record store"), encoding="utf-8")
    return StoreRun(report, folder, json_path, html_path)


# -- the import gate ----------------------------------------------------------------------

QUALITY_TAG_SYSTEM = "https://medfusion.dev/fhir/CodeSystem/quality"


@dataclass(frozen=True)
class QualityNote:
    """An imported entry that failed an error-severity check: tagged (warn) or rejected (strict)."""

    file: str
    entry: int
    resource: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file} entry {self.entry} ({self.resource}): {self.reason}"


@dataclass
class ImportGate:
    """``medfusion import --quality warn|strict``: checks each entry before it is written.

    ``warn`` adds a ``meta.tag`` (system :data:`QUALITY_TAG_SYSTEM`, code the check) to each
    resource failing an error-severity check and lists it in :attr:`tagged`; ``strict``
    rejects it and lists it in :attr:`rejected`. Only the checks a resource answers alone
    run here (see :func:`medfusion.quality.check_resource`); the store-wide ones need
    ``medfusion quality check``.
    """

    mode: str
    config: QualityConfig = field(default_factory=QualityConfig)
    tagged: list[QualityNote] = field(default_factory=list)
    rejected: list[QualityNote] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in ("warn", "strict"):
            raise InvalidRequestError(
                f"--quality must be one of {', '.join(QUALITY_MODES)}, got {self.mode!r}"
            )

    def screen(self, resource: Any, *, file: str, entry: int) -> str | None:
        """Check one parsed entry: ``None`` to write it (tagged under ``warn``), else why it is rejected."""
        if not isinstance(resource, dict):
            return None  # not a resource: the importer reports it as such
        errors = [f for f in check_resource(resource, self.config) if f.severity == "error"]
        if not errors:
            return None
        reason = "quality: " + "; ".join(_reason(f) for f in errors[:3])
        if len(errors) > 3:
            reason += f" (+{len(errors) - 3} more)"
        note = QualityNote(file, entry, f"{resource.get('resourceType')}/{resource.get('id', '?')}", reason)
        if self.mode == "strict":
            self.rejected.append(note)
            return reason
        meta = resource.setdefault("meta", {})
        tags = meta.setdefault("tag", [])
        for check in sorted({f.check for f in errors}):
            tags.append({"system": QUALITY_TAG_SYSTEM, "code": check, "display": f"failed {check}"})
        self.tagged.append(note)
        return None

    def screen_bundle(self, bundle: dict[str, Any], *, file: str) -> list[tuple[int, str]]:
        """Screen a transaction / batch Bundle's entries in place.

        Under ``strict`` the rejected entries are removed, and so are entries referring to
        them by ``fullUrl`` (a transaction would otherwise fail as a whole on the dangling
        reference). Returns ``(entry index, reason)`` of each removed entry, in the file's
        numbering, and leaves in the Bundle only the others, in order.
        """
        entries = bundle.get("entry")
        if not isinstance(entries, list):
            return []
        removed: dict[int, str] = {}
        for index, entry in enumerate(entries):
            if isinstance(entry, dict):
                reason = self.screen(entry.get("resource"), file=file, entry=index)
                if reason is not None:
                    removed[index] = reason
        changed = bool(removed)
        while changed:  # entries that point at a removed one go too, and so on
            changed = False
            gone = {entries[i].get("fullUrl"): i for i in removed if entries[i].get("fullUrl")}
            for index, entry in enumerate(entries):
                if index in removed or not isinstance(entry, dict):
                    continue
                target = _refers_to(entry.get("resource"), gone)
                if target is not None:
                    removed[index] = f"quality: refers to rejected entry {gone[target]}"
                    resource = entry.get("resource") or {}
                    self.rejected.append(
                        QualityNote(
                            file,
                            index,
                            f"{resource.get('resourceType')}/{resource.get('id', '?')}",
                            removed[index],
                        )
                    )
                    changed = True
        if removed:
            bundle["entry"] = [e for i, e in enumerate(entries) if i not in removed]
        return sorted(removed.items())


def make_import_gate(mode: str, config: Path | None = None) -> ImportGate:
    """The gate for ``medfusion import --quality MODE [--quality-config FILE]``.

    Raises
    ------
    InvalidRequestError
        ``mode`` is not warn or strict, or the config is invalid.
    """
    settings = load_config(config)
    # The importer validates every entry's structure itself and reports failures as
    # problems; running the validator twice would double the gate's cost.
    checks = dict(settings.checks)
    checks["fhir_structure"] = replace(checks["fhir_structure"], enabled=False)
    return ImportGate(mode, replace(settings, checks=checks))


def _reason(finding: RecordFinding) -> str:
    where = f" at {finding.column}" if finding.column else ""
    return f"{finding.check}{where}: {finding.message}"


def _refers_to(value: Any, targets: dict[Any, int]) -> str | None:
    """The first of ``targets`` that ``value`` references, if any."""
    if isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and reference in targets:
            return reference
        children: Iterable[Any] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        if isinstance(child, dict | list):
            found = _refers_to(child, targets)
            if found is not None:
                return found
    return None
