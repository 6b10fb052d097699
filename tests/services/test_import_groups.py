"""Bundle files are imported without a savepoint each; a failing one is still undone alone.

The importer writes a group of Bundle files in one transaction with no savepoints (they
cost SQLite a copy of every page touched). When a unit of work fails after it wrote
something, the group is rolled back and run again file by file under savepoints: the
stored result and the report must be exactly those of the careful path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from medfusion.errors import MedfusionError
from medfusion.fhir.repository import FhirRepository
from medfusion.services._import_tx import Committer
from medfusion.services.importer import ImportReport, import_paths
from medfusion.store.repository import SqlRepository

_NPI = "http://hl7.org/fhir/sid/us-npi"


def _entry(resource: dict[str, Any], method: str = "POST", **request: Any) -> dict[str, Any]:
    url = resource["resourceType"] if method == "POST" else f"{resource['resourceType']}/{resource['id']}"
    return {"resource": resource, "request": {"method": method, "url": url, **request}}


def _bundle(path: Path, kind: str, *entries: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"resourceType": "Bundle", "type": kind, "entry": list(entries)}))
    return path


def _practitioner_file(path: Path) -> Path:
    """A transaction creating a practitioner once (``ifNoneExist``) and a patient."""
    practitioner = {
        "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
        "resource": {"resourceType": "Practitioner", "identifier": [{"system": _NPI, "value": "42"}]},
        "request": {"method": "POST", "url": "Practitioner", "ifNoneExist": f"identifier={_NPI}|42"},
    }
    patient = {
        "fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
        "resource": {
            "resourceType": "Patient",
            "generalPractitioner": [{"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"}],
        },
        "request": {"method": "POST", "url": "Patient"},
    }
    return _bundle(path, "transaction", practitioner, patient)


def _failing_files(folder: Path) -> None:
    """Good files around two that fail only after they wrote something."""
    _practitioner_file(folder / "a_first.json")
    # A transaction whose POST is written before its PUT fails on a stale If-Match.
    _bundle(
        folder / "b_transaction.json",
        "transaction",
        _entry({"resourceType": "Patient", "id": "written-then-undone"}, "PUT"),
        _entry({"resourceType": "Patient", "id": "stale"}, "PUT", ifMatch='W/"7"'),
    )
    # A batch: its first entry stays, its second fails after the first was written.
    _bundle(
        folder / "c_batch.json",
        "batch",
        _entry({"resourceType": "Patient", "id": "kept-once"}, "PUT"),
        _entry({"resourceType": "Patient", "id": "stale2"}, "PUT", ifMatch='W/"3"'),
    )
    # A later file leans on the practitioner the first file created.
    _bundle(
        folder / "d_last.json",
        "transaction",
        _entry(
            {
                "resourceType": "Patient",
                "id": "late",
                "generalPractitioner": [{"reference": f"Practitioner?identifier={_NPI}|42"}],
            },
            "PUT",
        ),
    )


def _outcome(repo: FhirRepository, report: ImportReport) -> dict[str, Any]:
    with repo.begin_read() as tx:
        versions = {
            id: tx.history("Patient", id, since=None, count=10, offset=0).total
            for id in ("written-then-undone", "kept-once", "late")
        }
        late = tx.read_current("Patient", "late")
    return {
        "counts": repo.counts(),
        "report": dict(report.counts),
        "problems": sorted((p.file, p.entry) for p in report.problems),
        "versions": versions,
        "late_gp": late.json()["generalPractitioner"] if late is not None else None,
    }


def test_a_failing_file_in_a_group_is_undone_alone(repo: FhirRepository, tmp_path: Path) -> None:
    _failing_files(tmp_path)
    report = import_paths(repo, paths=[tmp_path])
    outcome = _outcome(repo, report)
    assert outcome["counts"] == {"Practitioner": 1, "Patient": 3}
    assert outcome["problems"] == [("b_transaction.json", 1), ("c_batch.json", 1)]
    # Nothing of the failed transaction, and the batch's good entry written once, not twice.
    assert outcome["versions"] == {"written-then-undone": 0, "kept-once": 1, "late": 1}
    # The conditional reference resolved to the practitioner that survived the rollback.
    with repo.begin_read() as tx:
        practitioner = tx.read_current("Practitioner", "11111111-1111-4111-8111-111111111111")
    assert practitioner is not None
    assert outcome["late_gp"] == [{"reference": f"Practitioner/{practitioner.id}"}]


def test_optimistic_and_careful_imports_agree(tmp_path: Path) -> None:
    """Run the same files through both paths of the committer on fresh in-memory stores."""
    from medfusion.fhir.memory import InMemoryRepository
    from medfusion.services.importer import _import_file

    folder = tmp_path / "files"
    folder.mkdir()
    _failing_files(folder)
    outcomes = []
    replays = []
    for optimistic in (True, False):
        repo = InMemoryRepository()
        report = ImportReport()
        committer = Committer(repo, optimistic=optimistic, commit_every=1000)

        def run(
            path: Path,
            valid: bool,
            store: FhirRepository = repo,
            c: Committer = committer,
            r: ImportReport = report,
        ) -> None:
            _import_file(store, c, path, valid, r, False)

        for path in sorted(folder.iterdir()):
            committer.run_file(path, False, report, run)
        committer.commit()
        outcomes.append(_outcome(repo, report))
        replays.append(committer.replays)
    assert outcomes[0] == outcomes[1]
    assert replays == [2, 0]  # each failing file rolled its group back once


def test_good_bundles_are_written_with_no_savepoint(sql_repo: SqlRepository, tmp_path: Path) -> None:
    for i in range(5):
        _bundle(
            tmp_path / f"b{i}.json",
            "transaction",
            _entry({"resourceType": "Patient", "id": f"p{i}"}, "PUT"),
            _entry({"resourceType": "Patient", "id": f"q{i}"}, "PUT"),
        )
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(sql_repo.engine, "before_cursor_execute", record)
    try:
        report = import_paths(sql_repo, paths=[tmp_path])
    finally:
        sa.event.remove(sql_repo.engine, "before_cursor_execute", record)
    assert report.problems == []
    assert sql_repo.counts() == {"Patient": 10}
    assert not [s for s in statements if s.upper().startswith("SAVEPOINT")]


def test_strict_import_keeps_what_came_before_the_failure(repo: FhirRepository, tmp_path: Path) -> None:
    _failing_files(tmp_path)
    with pytest.raises(MedfusionError, match=r"not 7"):
        import_paths(repo, paths=[tmp_path], strict=True)
    # a_first.json was imported before b_transaction.json stopped the import.
    assert repo.counts() == {"Practitioner": 1, "Patient": 1}
