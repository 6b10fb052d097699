"""De-identified export: HIPAA Safe Harbor NDJSON with a k-anonymity report.

Two passes over the store. The first reads the people (Patients, RelatedPersons,
Practitioners, Persons) to learn each patient's age, gender and ZIP3, to decide which
patients k-anonymity suppresses, and to build the free-text gazetteer of names and places.
The second streams every current resource through :class:`medfusion.deid.Deidentifier`,
leaving out the suppressed patients and everything that belongs to them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from medfusion.config import Settings, get_settings
from medfusion.deid import (
    Deidentifier,
    KAnonymityReport,
    PatientFacts,
    Pseudonymizer,
    TextDetector,
    age_band,
    age_in_years,
    k_anonymize,
    patient_of,
    zip3,
)
from medfusion.errors import InvalidRequestError
from medfusion.fhir.repository import FhirRepository
from medfusion.services.parsing import check_type

__all__ = [
    "REPORT_FILE",
    "DeidExportReport",
    "DeidRequest",
    "DeidStream",
    "check_k",
    "deidentified_stream",
    "export_deidentified",
    "load_deid_key",
    "parse_deid_request",
]

REPORT_FILE = "deidentification-report.json"
_PEOPLE = ("Patient", "RelatedPerson", "Practitioner", "Person")
_MAIDEN_NAME = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"


def load_deid_key(settings: Settings | None = None) -> bytes:
    """The de-identification secret: ``MEDFUSION_DEID_KEY``, else the key file.

    The key file is created with mode 0600 on first use; an existing file that group or
    others may read is refused rather than trusted.
    """
    settings = settings or get_settings()
    if settings.deid_key is not None:
        key = settings.deid_key.get_secret_value().encode()
        if len(key) < 16:
            raise InvalidRequestError("MEDFUSION_DEID_KEY must be at least 16 characters")
        return key
    path = settings.deid_key_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InvalidRequestError(f"de-identification key file {path} has mode {mode:04o}; it must be 0600")
    key = path.read_text(encoding="utf-8").strip().encode()
    if len(key) < 16:
        raise InvalidRequestError(f"de-identification key file {path} holds fewer than 16 characters")
    return key


def check_k(k: object) -> int:
    """Validate ``k`` (a whole number, at least 1)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidRequestError(f"k must be a whole number of at least 1, got {k!r}")
    return k


@dataclass(slots=True)
class DeidStream:
    """The de-identified resources, to be consumed once, and what suppression did."""

    k_anonymity: KAnonymityReport
    resources: Iterator[tuple[str, bytes]]
    total: int


@dataclass(slots=True)
class DeidExportReport:
    """Files written, resources per type, the k-anonymity outcome and the throughput."""

    k_anonymity: KAnonymityReport
    date_shift: bool
    counts: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def resources(self) -> int:
        """Resources written."""
        return sum(self.counts.values())

    @property
    def rate(self) -> float:
        """Resources read per second (written and suppressed)."""
        return (self.resources + self.dropped) / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        """The report file's content."""
        return {
            "method": "HIPAA Safe Harbor (45 CFR 164.514(b)(2))",
            "dates": "shifted per patient" if self.date_shift else "year only",
            "resources": dict(sorted(self.counts.items())),
            "resources_suppressed": self.dropped,
            "k_anonymity": self.k_anonymity.as_json(),
        }


def _facts(patient: dict[str, Any], as_of: date) -> tuple[PatientFacts, tuple[str, str, str]]:
    born = _parse_date(patient.get("birthDate"))
    died = _parse_date(patient.get("deceasedDateTime"))
    anchor = died or as_of
    age = age_in_years(born, anchor) if born else None
    addresses = [a for a in patient.get("address") or [] if isinstance(a, dict)]
    home = next((a for a in addresses if a.get("use") == "home"), addresses[0] if addresses else {})
    area = zip3(home.get("postalCode"), home.get("country")) or "unknown"
    gender = patient.get("gender") if isinstance(patient.get("gender"), str) else "unknown"
    return PatientFacts(age=age, anchor_year=anchor.year), (age_band(age), str(gender), area)


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 4 or not value[:4].isdigit():
        return None
    try:
        return date.fromisoformat(value[:10]) if len(value) >= 10 else date(int(value[:4]), 7, 1)
    except ValueError:
        return None


def _people_text(resource: dict[str, Any], names: list[str], places: list[str]) -> None:
    people = [resource] + [c for c in resource.get("contact") or [] if isinstance(c, dict)]
    for person in people:
        raw_names = person.get("name")
        for name in raw_names if isinstance(raw_names, list) else [raw_names]:
            if isinstance(name, dict):
                names += [n for n in name.get("given") or [] if isinstance(n, str)]
                names += [n for n in (name.get("family"), name.get("text")) if isinstance(n, str)]
        raw_addresses = person.get("address")
        for address in raw_addresses if isinstance(raw_addresses, list) else [raw_addresses]:
            if isinstance(address, dict):
                places += [line for line in address.get("line") or [] if isinstance(line, str)]
                places += [p for p in (address.get("city"), address.get("district")) if isinstance(p, str)]
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == _MAIDEN_NAME:
            names.append(str(extension.get("valueString", "")))


def deidentified_stream(
    repo: FhirRepository,
    *,
    key: bytes,
    k: int = 5,
    date_shift: bool = False,
    types: Sequence[str] | None = None,
    as_of: date | None = None,
) -> DeidStream:
    """De-identify the store's current resources, lazily.

    Parameters
    ----------
    repo
        The record store.
    key
        Secret for pseudonyms and date shifts (:func:`load_deid_key`).
    k
        Smallest equivalence class over (age band, gender, ZIP3) to keep.
    date_shift
        Shift each patient's dates by a keyed offset instead of keeping only the year.
    types
        Resource types to export (default: all).
    as_of
        Reference date for ages (default: today, UTC).

    Returns
    -------
    DeidStream
        The k-anonymity outcome (computed up front) and an iterator of
        ``(resource type, NDJSON line)`` pairs.
    """
    check_k(k)
    for resource_type in types or ():
        check_type(resource_type)
    as_of = as_of or datetime.now(UTC).date()
    facts: dict[str, PatientFacts] = {}
    quasi: dict[str, tuple[str, str, str]] = {}
    names: list[str] = []
    places: list[str] = []
    for stored in repo.iter_current(list(_PEOPLE)):
        resource = stored.json()
        _people_text(resource, names, places)
        if stored.resource_type == "Patient":
            facts[stored.id], quasi[stored.id] = _facts(resource, as_of)
    report = k_anonymize(quasi, k)
    deidentifier = Deidentifier(
        pseudonymizer=Pseudonymizer(key),
        detector=TextDetector(names=names, places=places),
        patients=facts,
        date_shift=date_shift,
    )
    counts = repo.counts()
    total = sum(n for t, n in counts.items() if types is None or t in types)

    def lines() -> Iterator[tuple[str, bytes]]:
        for stored in repo.iter_current(types):
            resource = stored.json()
            owner = patient_of(resource)
            if owner is not None and owner in report.suppressed_ids:
                yield stored.resource_type, b""
                continue
            yield stored.resource_type, orjson.dumps(deidentifier.transform(resource))

    return DeidStream(k_anonymity=report, resources=lines(), total=total)


def export_deidentified(
    repo: FhirRepository,
    *,
    out: Path,
    key: bytes,
    k: int = 5,
    date_shift: bool = False,
    types: Sequence[str] | None = None,
    as_of: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DeidExportReport:
    """Write de-identified ``<Type>.ndjson`` files and the report into ``out``.

    Everything is written into a hidden staging folder inside ``out`` and moved into place
    only when complete, so a failure leaves nothing half-written.

    Parameters
    ----------
    out
        Destination folder (created if missing).
    progress
        Called as ``progress(done, total)`` after each resource read.

    The other parameters are those of :func:`deidentified_stream`.
    """
    started = time.perf_counter()
    stream = deidentified_stream(repo, key=key, k=k, date_shift=date_shift, types=types, as_of=as_of)
    report = DeidExportReport(k_anonymity=stream.k_anonymity, date_shift=date_shift)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".deid-"))
    try:
        handles: dict[str, Any] = {}
        try:
            for done, (resource_type, line) in enumerate(stream.resources, start=1):
                if progress is not None:
                    progress(done, stream.total)
                if not line:
                    report.dropped += 1
                    continue
                handle = handles.get(resource_type)
                if handle is None:
                    handle = handles[resource_type] = (staging / f"{resource_type}.ndjson").open("wb")
                handle.write(line)
                handle.write(b"\n")
                report.counts[resource_type] += 1
        finally:
            for handle in handles.values():
                handle.close()
        report.seconds = time.perf_counter() - started
        (staging / REPORT_FILE).write_bytes(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2))
        for path in sorted(staging.iterdir()):
            target = out / path.name
            os.replace(path, target)
            if target.suffix == ".ndjson":
                report.files.append(target)
        report.files.append(out / REPORT_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


@dataclass(frozen=True, slots=True)
class DeidRequest:
    """Options of a de-identified export asked for over HTTP."""

    k: int = 5
    date_shift: bool = False
    types: tuple[str, ...] | None = None


_TRUE = {"true": True, "false": False}


def parse_deid_request(params: Sequence[tuple[str, str]]) -> DeidRequest:
    """Read ``k``, ``dateShift`` and ``_type`` from query parameters, naming any bad one."""
    k, date_shift, types = 5, False, None
    for name, value in params:
        if name == "k":
            if not value.strip().lstrip("-").isdigit():
                raise InvalidRequestError(f"k must be a whole number of at least 1, got '{value[:32]}'")
            k = check_k(int(value))
        elif name == "dateShift":
            if value.lower() not in _TRUE:
                raise InvalidRequestError(f"dateShift must be true or false, got '{value[:32]}'")
            date_shift = _TRUE[value.lower()]
        elif name == "_type":
            types = tuple(t.strip() for t in value.split(",") if t.strip())
            for resource_type in types:
                check_type(resource_type)
        else:
            raise InvalidRequestError(f"unknown parameter '{name[:64]}' (use k, dateShift, _type)")
    return DeidRequest(k=k, date_shift=date_shift, types=types)
