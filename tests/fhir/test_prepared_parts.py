"""The pieces an import worker prepares put back together give what the writer would make.

:func:`stamp_parts` must give :func:`stamp`'s bytes exactly, and the index rows extracted
with references deferred, once the references are settled, must be those of
:func:`extract_index` on the resource with its references rewritten.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from medfusion.fhir.references import rewrite_references
from medfusion.fhir.resource import split_for_stamp, stamp, stamp_parts
from medfusion.fhir.search import extract_index, extract_index_deferred, reference_rows
from medfusion.synth import write_bundles

_WHEN = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)


def _resources(data_dir: Path | None, tmp_path: Path) -> list[dict[str, Any]]:
    folder = tmp_path / "synthetic"
    write_bundles(folder, patients=6, seed=2)
    found: list[dict[str, Any]] = []
    sources = sorted(folder.rglob("*.json"))
    if data_dir is not None and (data_dir / "synthea").is_dir():
        sources += sorted((data_dir / "synthea").glob("*.json"))[:3]
    for path in sources:
        bundle = orjson.loads(path.read_bytes())
        found.extend(entry["resource"] for entry in bundle["entry"])
    if data_dir is not None:
        found.extend(
            orjson.loads(p.read_bytes()) for p in sorted((data_dir / "fhir-examples").glob("*.json"))
        )
    found.append({"resourceType": "Patient"})
    found.append({"resourceType": "Patient", "meta": {}, "id": "x"})
    found.append(
        {"resourceType": "Patient", "meta": {"versionId": "4", "tag": [{"code": "t"}]}, "gender": "é"}
    )
    return found


@pytest.fixture
def resources(request: pytest.FixtureRequest, tmp_path: Path) -> list[dict[str, Any]]:
    try:
        data_dir: Path | None = request.getfixturevalue("data_dir")
    except pytest.skip.Exception:
        data_dir = None  # the synthetic and crafted resources still run
    return _resources(data_dir, tmp_path)


def test_stamp_parts_gives_stamps_bytes(resources: list[dict[str, Any]]) -> None:
    assert len(resources) > 50
    for resource in resources:
        meta, rest = split_for_stamp(resource)
        expected = stamp(resource, id="the-id", version=3, last_updated=_WHEN)
        spliced = stamp_parts(resource["resourceType"], "the-id", meta, rest, version=3, last_updated=_WHEN)
        assert spliced == expected


def test_deferred_references_settle_to_the_rows_of_the_rewritten_resource(
    resources: list[dict[str, Any]],
) -> None:
    rows_seen = 0
    for resource in resources:
        resource_type = resource["resourceType"]
        settled: dict[str, str] = {}

        def settle(reference: str, settled: dict[str, str] = settled) -> str | None:
            # urn:uuid and conditional references become Type/id, as a Bundle settles them
            if reference.startswith("urn:uuid:") or "?" in reference:
                return settled.setdefault(reference, f"Patient/p{len(settled)}")
            return None

        rewritten = copy.deepcopy(resource)
        rewrite_references(rewritten, settle)
        entries, references = extract_index_deferred(resource_type, resource)
        entries.references.extend(reference_rows(resource_type, references, settled))
        assert entries == extract_index(resource_type, rewritten)
        rows_seen += len(entries.references)
    assert rows_seen > 100
