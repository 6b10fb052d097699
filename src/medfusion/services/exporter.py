"""Bulk Data style export: one NDJSON file per resource type."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from medfusion.errors import InvalidRequestError
from medfusion.fhir.repository import FhirRepository
from medfusion.services.parsing import check_type

__all__ = ["ExportReport", "export_ndjson", "parse_since"]


@dataclass(slots=True)
class ExportReport:
    """Files written and resources per type."""

    counts: Counter[str] = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)


def parse_since(value: str | None) -> datetime | None:
    """Parse an ``--since`` FHIR instant; a value without a zone is an error."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError("--since must be an instant such as 2026-01-01T00:00:00Z") from None
    if parsed.tzinfo is None:
        raise InvalidRequestError("--since must carry a time zone, e.g. Z")
    return parsed


def export_ndjson(
    repo: FhirRepository,
    *,
    out: Path,
    types: Sequence[str] | None = None,
    since: datetime | None = None,
) -> ExportReport:
    """Write ``<Type>.ndjson`` files of current live resources into ``out``.

    Each file is written under a temporary name and renamed when complete, so an
    interrupted export leaves no half-written file behind.
    """
    for resource_type in types or ():
        check_type(resource_type)
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    handle: IO[bytes] | None = None
    current_type: str | None = None
    temp_name = ""

    def finish() -> None:
        if handle is not None and current_type is not None:
            handle.close()
            target = out / f"{current_type}.ndjson"
            os.replace(temp_name, target)
            report.files.append(target)

    try:
        for stored in repo.iter_current(types, since):
            if stored.resource_type != current_type:
                finish()
                current_type = stored.resource_type
                fd, temp_name = tempfile.mkstemp(dir=out, prefix=f".{current_type}.", suffix=".part")
                handle = os.fdopen(fd, "wb")
            assert handle is not None
            handle.write(stored.body)
            handle.write(b"\n")
            report.counts[stored.resource_type] += 1
        finish()
        handle = None
    finally:
        if handle is not None and not handle.closed:
            handle.close()
            Path(temp_name).unlink(missing_ok=True)
    return report
