"""Import files validated ahead by worker processes give exactly what inline validation gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medfusion.config import override_settings
from medfusion.fhir.repository import FhirRepository
from medfusion.services import _prevalidate
from medfusion.services._prevalidate import Prevalidator
from medfusion.services.bundles import PreparedBundle
from medfusion.services.importer import find_files, import_paths
from medfusion.synth import write_bundles


def _transaction(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in resources
        ],
    }


def _mixed_folder(folder: Path) -> dict[str, bool]:
    """Files of every kind, good and bad; what a worker should say of each."""
    patient = {"resourceType": "Patient", "gender": "female"}
    observation = {"resourceType": "Observation", "status": "final"}  # no code: invalid
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {**patient, "id": "c1"}}],
    }
    files: dict[str, tuple[Any, bool]] = {
        "a_good_bundle.json": (_transaction(patient), True),
        "b_bad_entry.json": (_transaction(patient, observation), False),
        "c_broken.json": ("{not json", False),
        "d_good.ndjson": ("\n".join(json.dumps({**patient, "id": f"n{i}"}) for i in range(3)), True),
        "e_bad_line.ndjson": (json.dumps(patient) + "\n" + json.dumps({"resourceType": "Nope"}), False),
        "f_single.json": ({**patient, "id": "single"}, True),
        "g_bad_single.json": ({"resourceType": "Patient", "gender": 5}, False),
        "h_collection.json": (collection, True),
        "i_searchset.json": ({"resourceType": "Bundle", "type": "searchset"}, False),
    }
    for name, (content, _) in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / name).write_text(text)
    return {name: valid for name, (_, valid) in files.items()}


@pytest.fixture
def eager_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start workers even for a handful of small files (the test files are tiny)."""
    monkeypatch.setattr(_prevalidate, "_MIN_FILES", 0)
    monkeypatch.setattr(_prevalidate, "_MIN_BYTES", 0)


@pytest.mark.usefixtures("eager_workers")
def test_workers_pass_exactly_the_files_the_importer_would_accept(tmp_path: Path) -> None:
    expected = _mixed_folder(tmp_path)
    files = find_files([tmp_path])
    with Prevalidator(files, 1) as prevalidator:
        assert prevalidator.workers == 1
        checked = [(path.name, valid) for path, valid in prevalidator]
    assert [(name, bool(valid)) for name, valid in checked] == sorted(expected.items())
    # A valid transaction Bundle comes back prepared for the writer; nothing else does.
    prepared = [name for name, valid in checked if isinstance(valid, PreparedBundle)]
    assert prepared == ["a_good_bundle.json"]


def test_small_imports_and_zero_workers_validate_inline(tmp_path: Path) -> None:
    _mixed_folder(tmp_path)
    files = find_files([tmp_path])
    with Prevalidator(files, -1) as small:
        assert small.workers == 0  # below the size where a worker pays for its start
        assert all(not valid for _, valid in small)
    with Prevalidator(files, 0) as off:
        assert off.workers == 0


@pytest.mark.usefixtures("eager_workers")
def test_an_import_with_workers_stores_and_reports_what_inline_does(
    repo: FhirRepository, tmp_path: Path
) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    _mixed_folder(folder)
    write_bundles(folder / "synthetic", patients=5, seed=11)
    with override_settings(import_workers=1):
        with_workers = import_paths(repo, paths=[folder])
    # synthetic 5, good bundle 1, ndjson 3, single 1, collection 1, the bad-line file's good line 1
    assert repo.counts()["Patient"] == 12
    with override_settings(import_workers=0):
        inline = import_paths(repo, paths=[folder])  # again: nothing new, same report
    assert [str(p) for p in with_workers.problems] == [str(p) for p in inline.problems]
    assert {p.file for p in with_workers.problems} == {
        "b_bad_entry.json",
        "c_broken.json",
        "e_bad_line.ndjson",
        "g_bad_single.json",
        "i_searchset.json",
    }
    assert with_workers.counts == inline.counts
    assert with_workers.counts["Observation"] > 0
