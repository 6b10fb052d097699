"""Use cases: check the data quality of a table, an image file or folder, a series file or
folder, or the record store, and write JSON and HTML reports; gate training
(:func:`quality_gate`) and import (:class:`ImportGate`) on it.

The checks themselves live in :mod:`medfusion.quality` (pure); this module (with
``_quality_inputs`` for reading files and ``_quality_html`` for the pages) reads the input,
loads the config, runs them and writes the reports. Every bad input (missing, empty or
unsupported file, bad config) is raised before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from medfusion.errors import DataError, InvalidRequestError
from medfusion.fhir.repository import FhirRepository
from medfusion.ml import PHYSIONET_DESCRIPTORS, read_table
from medfusion.quality import (
    ItemReport,
    QualityConfig,
    QualityReport,
    RecordFinding,
    StoreChecker,
    StoreReport,
    check_images,
    check_regular,
    check_resource,
    check_stays,
    check_table,
    load_config,
)
from medfusion.services._quality_html import render_html, render_items_html, render_store_html
from medfusion.services._quality_inputs import Progress, input_kind, read_images, read_regular, read_stays

__all__ = [
    "DEFAULT_QUALITY_DIR",
    "QUALITY_MODES",
    "QUALITY_TAG_SYSTEM",
    "ImportGate",
    "ItemRun",
    "QualityNote",
    "QualityRun",
    "StoreRun",
    "check_data",
    "check_file",
    "check_store",
    "make_import_gate",
    "quality_gate",
    "render_html",
    "render_items_html",
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


@dataclass(frozen=True)
class ItemRun:
    """A finished image or series check: the report and where it was written."""

    report: ItemReport
    data: Path
    kind: str
    out: Path
    json_path: Path
    html_path: Path


def _items_report(data: Path, kind: str, settings: QualityConfig, progress: Progress | None) -> ItemReport:
    if kind == "images":
        read = read_images(data, progress)
        return check_images(read.images, settings, labelled=read.labelled, dicom=read.dicom)
    if kind == "ucr":
        return check_regular(read_regular(data), settings)
    return check_stays(read_stays(data, progress), settings, descriptors=PHYSIONET_DESCRIPTORS)


def check_data(
    *,
    data: Path,
    config: Path | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
) -> QualityRun | ItemRun:
    """Check a table, an image file or folder, or a series file or folder, by what ``data`` is.

    The kind comes from the path (see :func:`~medfusion.services._quality_inputs.input_kind`):
    ``.csv`` / ``.parquet`` tables (:func:`check_file`); ``.npz`` / ``.npy`` / ``.png``
    / ``.dcm`` images or a folder of them; a UCR ``.tsv`` (with its ``_TRAIN`` / ``_TEST`` sibling);
    a folder or ``.tar.gz`` of PhysioNet-style stay files. Writes ``quality.json`` and
    ``quality.html`` to ``out``.

    Parameters
    ----------
    data
        The input.
    config
        A TOML or JSON catalogue override.
    out
        Folder for the reports (default ``.medfusion/quality/<UTC timestamp>/``).
    progress
        Called with ``(items read, total or None)`` while a folder or archive is read.

    Raises
    ------
    DataError
        The input is missing, empty, unreadable as a whole, or of an unsupported kind.
    InvalidRequestError
        The config file is missing or invalid.
    """
    settings = load_config(config)  # a bad config fails before the data is even read
    kind = input_kind(data)
    if kind == "table":
        return check_file(data=data, config=config, out=out)
    report = _items_report(data, kind, settings, progress)
    folder = _out_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "quality.json", folder / "quality.html"
    document = {
        "data": str(data),
        "kind": kind,
        "catalogue_version": report.catalogue_version,
        "passed": report.passed,
        "items": report.items,
        "summary": report.summary,
        "checks": [c.to_dict() for c in report.checks],
        "findings": [{**f.to_dict(), "category": f.category, "message": f.message} for f in report.findings],
    }
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    html_path.write_text(render_items_html(report, title=f"Data quality: {data.name}"), encoding="utf-8")
    return ItemRun(report, data, kind, folder, json_path, html_path)


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


@dataclass(frozen=True)
class StoreRun:
    """A finished store check: the report and where it was written."""

    report: StoreReport
    out: Path
    json_path: Path
    html_path: Path


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
