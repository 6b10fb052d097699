"""Transaction Bundles prepared by the import workers store exactly what the writer's own
path stores: the same bodies, the same search index rows, the same report.

The workers serialise each resource and extract its index rows before ids and references
are known; the writer splices those in. Every case below is imported twice, through the
workers and inline, into two fresh stores that are then compared row for row.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from medfusion.config import override_settings
from medfusion.services import _prevalidate, importer
from medfusion.services.bundles import BundleReport, PreparedBundle
from medfusion.services.database import open_repository
from medfusion.services.importer import ImportReport, import_paths
from medfusion.store.repository import SqlRepository
from medfusion.synth import write_bundles

_NPI = "http://hl7.org/fhir/sid/us-npi"
_TABLES = {
    "idx_string": "param, value, exact",
    "idx_token": "param, system, code, patient",
    "idx_date": "param, low, high",
    "idx_quantity": "param, value, system, code",
    "idx_reference": "param, target_type, target_id",
}


@pytest.fixture
def eager_workers(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Workers even for a few small files; counts the Bundles the prepared path took."""
    monkeypatch.setattr(_prevalidate, "_MIN_FILES", 0)
    monkeypatch.setattr(_prevalidate, "_MIN_BYTES", 0)
    taken: Counter[str] = Counter()
    real = importer.process_prepared

    def counting(prepared: PreparedBundle, **kwargs: Any) -> BundleReport | None:
        result = real(prepared, **kwargs)
        taken["prepared" if result is not None else "handed back"] += 1
        return result

    monkeypatch.setattr(importer, "process_prepared", counting)
    return taken


def _store(url: str) -> SqlRepository:
    repo = open_repository(url)
    assert isinstance(repo, SqlRepository)
    return repo


def _contents(repo: SqlRepository) -> tuple[dict[tuple[str, str], Any], dict[str, list[tuple[Any, ...]]]]:
    """Every current resource (``meta.lastUpdated`` dropped) and every index row, by identity."""
    bodies: dict[tuple[str, str], Any] = {}
    with repo.begin_read() as tx:
        for resource_type in repo.counts():
            for stored in tx.history(resource_type, None, since=None, count=100_000, offset=0).entries:
                if (resource_type, stored.id) in bodies:
                    continue  # newest first: the current version came already
                body = orjson.loads(stored.body) if stored.body else None
                if body is not None:
                    body["meta"].pop("lastUpdated")
                bodies[(resource_type, stored.id)] = (stored.version, body)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with repo.engine.connect() as conn:
        for table, columns in _TABLES.items():
            picked = ", ".join("i." + c.strip() for c in columns.split(","))
            found = conn.execute(
                sa.text(
                    f"SELECT r.res_type, r.res_id, r.version, {picked} "
                    f"FROM {table} i JOIN resource r ON r.rid = i.rid"
                )
            ).all()
            rows[table] = sorted((tuple(row) for row in found), key=repr)
    return bodies, rows


def _import_both(
    paths: list[Path], tmp_path: Path, workers_url: str | None = None
) -> tuple[ImportReport, ImportReport, SqlRepository, SqlRepository]:
    workers = _store(workers_url or f"sqlite:///{tmp_path / 'workers.db'}")
    inline = _store(f"sqlite:///{tmp_path / 'inline.db'}")
    with override_settings(import_workers=1):
        by_workers = import_paths(workers, paths=paths)
    with override_settings(import_workers=0):
        by_writer = import_paths(inline, paths=paths)
    return by_workers, by_writer, workers, inline


def _assert_same(
    by_workers: ImportReport, by_writer: ImportReport, workers: SqlRepository, inline: SqlRepository
) -> None:
    assert by_workers.counts == by_writer.counts
    assert [str(p) for p in by_workers.problems] == [str(p) for p in by_writer.problems]
    bodies, rows = _contents(workers)
    expected_bodies, expected_rows = _contents(inline)
    assert bodies == expected_bodies
    for table in _TABLES:
        assert rows[table] == expected_rows[table], table
    workers.close()
    inline.close()


def _bundle(path: Path, *entries: dict[str, Any]) -> None:
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}))


def _post(full_url: str | None, resource: dict[str, Any], **request: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url is not None:
        entry["fullUrl"] = full_url
    return entry


def _urn(n: int) -> str:
    return f"urn:uuid:{n:08d}-0000-4000-8000-000000000000"


def _edge_cases(folder: Path) -> None:
    """Bundles exercising each way a reference or an id can be settled."""
    practitioner = {"resourceType": "Practitioner", "identifier": [{"system": _NPI, "value": "7"}]}
    # 1: creates the practitioner; a patient points at it by urn and by conditional reference.
    _bundle(
        folder / "a.json",
        _post(_urn(1), practitioner, ifNoneExist=f"identifier={_NPI}|7"),
        _post(
            _urn(2),
            {
                "resourceType": "Patient",
                "meta": {
                    "tag": [{"system": "http://example.org/tags", "code": "imported"}],
                    "versionId": "9",
                },
                "name": [{"family": "Zoë", "given": ["Ana"]}],
                "generalPractitioner": [{"reference": _urn(1)}],
                "managingOrganization": {"reference": "Organization/literal-org"},
            },
        ),
    )
    # 2: the practitioner again under a new urn, which ``ifNoneExist`` maps to the stored one:
    # the urn's own id is never used, and every reference to it must follow.
    _bundle(
        folder / "b.json",
        _post(_urn(3), practitioner, ifNoneExist=f"identifier={_NPI}|7"),
        _post(
            _urn(4),
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": _urn(2).replace("00000002", "00000005")},
                "participant": [
                    {"individual": {"reference": _urn(3)}},
                    {"individual": {"reference": f"Practitioner?identifier={_NPI}|7"}},
                ],
                "contained": [{"resourceType": "Location", "id": "room", "partOf": {"reference": _urn(3)}}],
                "location": [{"location": {"reference": "#room"}}],
            },
        ),
        _post(_urn(5), {"resourceType": "Patient", "id": "ignored-by-urn", "gender": "other"}),
    )
    # 3: a conditional reference that only an entry of the same Bundle satisfies, and an
    # absolute fullUrl referenced literally.
    org = {
        "resourceType": "Organization",
        "identifier": [{"system": "http://example.org/org", "value": "o1"}],
    }
    _bundle(
        folder / "c.json",
        _post("http://example.org/fhir/Organization/org-1", {**org, "id": "org-1"}),
        _post(
            _urn(6),
            {
                "resourceType": "Patient",
                "managingOrganization": {"reference": "Organization?identifier=http://example.org/org|o1"},
                "link": [
                    {"other": {"reference": "http://example.org/fhir/Organization/org-1"}, "type": "seealso"}
                ],
            },
        ),
    )
    # 4: a urn that points at no entry: the Bundle fails, named, on both paths.
    _bundle(
        folder / "d.json",
        _post(_urn(7), {"resourceType": "Patient", "generalPractitioner": [{"reference": _urn(99)}]}),
    )
    # 5: no fullUrl and no id: not comparable across stores (a fresh id), so an id is given.
    _bundle(folder / "e.json", _post(None, {"resourceType": "Patient", "id": "given-id", "gender": "male"}))
    # 6: a conditional reference searching the Bundle's own entries by a reference, which
    # must see their references rewritten: the workers' output cannot settle it, and the
    # writer takes the Bundle itself.
    _bundle(
        folder / "f.json",
        _post(_urn(8), {"resourceType": "Patient", "generalPractitioner": [{"reference": _urn(9)}]}),
        _post(_urn(9), {"resourceType": "Practitioner", "identifier": [{"system": _NPI, "value": "8"}]}),
        _post(
            _urn(10),
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "weight"},
                "subject": {"reference": f"Patient?general-practitioner=Practitioner/{_urn(9)[9:]}"},
            },
        ),
    )


def test_edge_case_bundles_store_the_same_through_the_workers(
    eager_workers: Counter[str], tmp_path: Path
) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    _edge_cases(folder)
    by_workers, by_writer, workers, inline = _import_both([folder], tmp_path)
    # a, b, c and e go the prepared way and f is handed back (d's failure runs the group twice)
    assert eager_workers["prepared"] >= 4
    assert eager_workers["handed back"] >= 1
    assert [p.file for p in by_writer.problems] == ["d.json"]
    with workers.begin_read() as tx:
        encounter = tx.read("Encounter", "00000004-0000-4000-8000-000000000000").json()
        patient = tx.read("Patient", "00000006-0000-4000-8000-000000000000").json()
        observation = tx.read("Observation", "00000010-0000-4000-8000-000000000000").json()
    stored = "Practitioner/00000001-0000-4000-8000-000000000000"
    assert [p["individual"]["reference"] for p in encounter["participant"]] == [stored, stored]
    assert encounter["contained"][0]["partOf"]["reference"] == stored
    assert patient["managingOrganization"]["reference"] == "Organization/org-1"
    assert patient["link"][0]["other"]["reference"] == "Organization/org-1"
    assert observation["subject"]["reference"] == "Patient/00000008-0000-4000-8000-000000000000"
    _assert_same(by_workers, by_writer, workers, inline)


def test_synthetic_bundles_store_the_same_through_the_workers(
    eager_workers: Counter[str], tmp_path: Path
) -> None:
    folder = tmp_path / "files"
    write_bundles(folder, patients=40, seed=5)
    by_workers, by_writer, workers, inline = _import_both([folder], tmp_path)
    assert eager_workers["prepared"] == 40
    assert by_workers.resources > 1000
    _assert_same(by_workers, by_writer, workers, inline)


def test_synthea_bundles_store_the_same_through_the_workers(
    eager_workers: Counter[str], data_dir: Path, tmp_path: Path
) -> None:
    source = data_dir / "synthea"
    if not source.is_dir():
        pytest.skip(f"{source} is absent")
    files = sorted(source.glob("*.json"))[:8]
    by_workers, by_writer, workers, inline = _import_both(files, tmp_path)
    assert eager_workers["prepared"] > 0
    assert not by_workers.problems
    _assert_same(by_workers, by_writer, workers, inline)


def test_prepared_bundles_store_the_same_on_postgresql(
    eager_workers: Counter[str], postgres_url: str, tmp_path: Path
) -> None:
    """Through the workers into PostgreSQL (``COPY``) against inline into SQLite."""
    folder = tmp_path / "files"
    folder.mkdir()
    _edge_cases(folder)
    write_bundles(folder / "synthetic", patients=10, seed=8)
    by_workers, by_writer, workers, inline = _import_both([folder], tmp_path, postgres_url)
    assert eager_workers["prepared"] >= 14
    _assert_same(by_workers, by_writer, workers, inline)
