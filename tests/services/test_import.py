"""Importing the Synthea bundles and the official examples, and exporting again."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from medfusion.errors import MedfusionError
from medfusion.fhir.references import split_reference
from medfusion.fhir.repository import FhirRepository
from medfusion.fhir.validation import validate_resource_reference
from medfusion.services.exporter import export_ndjson
from medfusion.services.importer import import_paths
from medfusion.store.repository import SqlRepository


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


@pytest.fixture
def synthea(data_dir: Path) -> Path:
    folder = data_dir / "synthea"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


def test_synthea_import_round_trips(sql_repo: SqlRepository, synthea: Path) -> None:
    report = import_paths(sql_repo, paths=[synthea])
    assert report.problems == []
    assert report.files == 25

    entries: Counter[str] = Counter()
    originals: dict[tuple[str, str], dict[str, Any]] = {}
    urn_map: dict[str, str] = {}
    for path in sorted(synthea.glob("*.json")):
        for entry in json.loads(path.read_text())["entry"]:
            resource = entry["resource"]
            key = (resource["resourceType"], entry["fullUrl"].removeprefix("urn:uuid:"))
            entries[resource["resourceType"]] += 1
            originals[key] = resource
            urn_map[entry["fullUrl"]] = f"{key[0]}/{key[1]}"
    # Practitioners and Organizations recur across bundles with the same fullUrl: one each.
    expected = Counter(resource_type for resource_type, _ in originals)
    assert sql_repo.counts() == dict(expected)
    assert dict(report.counts) == dict(entries)

    stored_all = list(sql_repo.iter_current())
    assert len(stored_all) == sum(expected.values())
    for stored in stored_all:
        resource = stored.json()
        validate_resource_reference(resource)
        for reference in _references(resource):
            if reference.startswith("#"):
                continue
            target = split_reference(reference)
            assert target is not None, reference
            sql_repo.read(*target)
        rewritten = json.loads(
            json.dumps(originals[(stored.resource_type, stored.id)]),
            object_hook=lambda d: (
                {**d, "reference": urn_map.get(d["reference"], d["reference"])}
                if isinstance(d.get("reference"), str)
                else d
            ),
        )
        assert _strip(resource) == _strip(rewritten)

    again = import_paths(sql_repo, paths=[synthea])
    assert again.problems == []
    assert sql_repo.counts() == dict(expected)
    with sql_repo.begin_read() as tx:
        assert tx.history(None, None, since=None, count=1, offset=0).total == sum(expected.values())


def test_official_examples_round_trip(repo: FhirRepository, data_dir: Path) -> None:
    folder = data_dir / "fhir-examples"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    report = import_paths(repo, paths=[folder])
    assert report.problems == []
    for path in sorted(folder.glob("*.json")):
        original = json.loads(path.read_text())
        stored = repo.read(original["resourceType"], original["id"]).json()
        assert _strip(stored) == _strip(original), path.name


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_bad_files_and_entries_are_reported_and_the_rest_goes_on(
    repo: FhirRepository, tmp_path: Path
) -> None:
    _write(tmp_path / "a_broken.json", "{not json")
    good = {"resourceType": "Patient", "id": "ok1"}
    bad = {"resourceType": "Patient", "id": "bad1", "gender": 5}
    _write(
        tmp_path / "b_lines.ndjson",
        "\n".join(json.dumps(r) for r in (good, bad, {"resourceType": "Nope"})),
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:55555555-5555-4555-8555-555555555555",
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {"resourceType": "Observation", "status": "final"},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    _write(tmp_path / "c_bundle.json", json.dumps(bundle))
    report = import_paths(repo, paths=[tmp_path])
    problems = sorted((p.file, p.entry) for p in report.problems)
    assert problems == [
        ("a_broken.json", None),
        ("b_lines.ndjson", 1),
        ("b_lines.ndjson", 2),
        ("c_bundle.json", 1),
    ]
    assert report.files == 3
    # The transaction bundle stayed atomic: its good Patient was not stored either.
    assert repo.counts() == {"Patient": 1}

    with pytest.raises(MedfusionError):
        import_paths(repo, paths=[tmp_path], strict=True)


def test_export_writes_bulk_ndjson_that_imports_back(repo: FhirRepository, tmp_path: Path) -> None:
    lines = [{"resourceType": "Patient", "id": f"p{i}"} for i in range(3)]
    lines.append(
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": "Patient/p1"},
        }
    )
    _write(tmp_path / "in.ndjson", "\n".join(json.dumps(r) for r in lines))
    import_paths(repo, paths=[tmp_path / "in.ndjson"])
    out = tmp_path / "out"
    report = export_ndjson(repo, out=out)
    assert sorted(p.name for p in out.iterdir()) == ["Observation.ndjson", "Patient.ndjson"]
    assert report.counts == Counter({"Patient": 3, "Observation": 1})
    patients = [json.loads(line) for line in (out / "Patient.ndjson").read_text().splitlines()]
    assert [p["id"] for p in patients] == ["p0", "p1", "p2"]
    only_obs = export_ndjson(repo, out=tmp_path / "obs", types=["Observation"])
    assert only_obs.counts == Counter({"Observation": 1})
