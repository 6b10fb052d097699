"""Contract tests every repository passes: in-memory twin, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from medfusion.errors import ConflictError, GoneError, NotFoundError, PreconditionFailedError
from medfusion.fhir.repository import FhirRepository, WriteRequest
from medfusion.store.repository import SqlRepository
from medfusion.store.tables import INDEX_TABLES, resource

PATIENT = {
    "resourceType": "Patient",
    "name": [{"family": "Chalmers", "given": ["Peter"]}],
    "gender": "male",
}


def test_write_read_and_versions(repo: FhirRepository) -> None:
    with repo.begin() as tx:
        first = tx.write("Patient", "p1", PATIENT, expected_version=0)
    assert (first.version, first.id, first.deleted) == (1, "p1", False)
    body = repo.read("Patient", "p1").json()
    assert body["meta"]["versionId"] == "1"
    assert body["id"] == "p1"
    assert body["name"] == PATIENT["name"]
    with repo.begin() as tx:
        second = tx.write("Patient", "p1", {**PATIENT, "gender": "other"}, expected_version=1)
    assert second.version == 2
    with repo.begin() as tx:
        assert tx.vread("Patient", "p1", 1).json()["gender"] == "male"
        assert tx.vread("Patient", "p1", 2).json()["gender"] == "other"
        with pytest.raises(NotFoundError):
            tx.vread("Patient", "p1", 3)


def test_stale_version_is_refused_and_changes_nothing(repo: FhirRepository) -> None:
    with repo.begin() as tx:
        tx.write("Patient", "p1", PATIENT, expected_version=0)
    with pytest.raises(PreconditionFailedError), repo.begin() as tx:
        tx.write("Patient", "p1", {**PATIENT, "gender": "female"}, expected_version=7)
    assert repo.read("Patient", "p1").version == 1
    assert repo.read("Patient", "p1").json()["gender"] == "male"


def test_delete_is_logical_and_history_keeps_everything(repo: FhirRepository) -> None:
    with repo.begin() as tx:
        tx.write("Patient", "p1", PATIENT, expected_version=0)
        tx.write("Patient", "p2", PATIENT, expected_version=0)
    with repo.begin() as tx:
        tombstone = tx.delete("Patient", "p1")
        assert tombstone is not None and tombstone.deleted and tombstone.version == 2
        assert tx.delete("Patient", "p1") is None
    with pytest.raises(GoneError):
        repo.read("Patient", "p1")
    with pytest.raises(NotFoundError):
        repo.read("Patient", "nope")
    with repo.begin() as tx:
        page = tx.history("Patient", "p1", since=None, count=10, offset=0)
        assert [(e.version, e.deleted) for e in page.entries] == [(2, True), (1, False)]
        assert tx.history("Patient", None, since=None, count=10, offset=0).total == 3
        assert tx.history(None, None, since=None, count=1, offset=0).total == 3
        # A deleted resource can come back with the next version number.
        again = tx.write("Patient", "p1", PATIENT, expected_version=0)
    assert again.version == 3
    assert repo.counts() == {"Patient": 2}


def test_rolled_back_transaction_leaves_no_trace(repo: FhirRepository) -> None:
    with pytest.raises(RuntimeError), repo.begin() as tx:
        tx.write("Patient", "p1", PATIENT, expected_version=0)
        raise RuntimeError("boom")
    with pytest.raises(NotFoundError):
        repo.read("Patient", "p1")
    with repo.begin() as tx:
        assert tx.history(None, None, since=None, count=10, offset=0).total == 0
    if isinstance(repo, SqlRepository):
        with repo.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(resource)).scalar_one() == 0
            for table in INDEX_TABLES.values():
                assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0


def test_write_many_skips_unchanged_content(repo: FhirRepository) -> None:
    requests = [WriteRequest("Patient", f"p{i}", {**PATIENT, "id": f"p{i}"}) for i in range(3)]
    with repo.begin() as tx:
        assert [s.version for s in tx.write_many(requests, skip_unchanged=True)] == [1, 1, 1]
    with repo.begin() as tx:
        assert [s.version for s in tx.write_many(requests, skip_unchanged=True)] == [1, 1, 1]
    changed = [WriteRequest("Patient", "p0", {**PATIENT, "gender": "female"})]
    with repo.begin() as tx:
        assert tx.write_many(changed, skip_unchanged=True)[0].version == 2


def test_same_resource_twice_in_one_transaction_conflicts(repo: FhirRepository) -> None:
    with pytest.raises(ConflictError), repo.begin() as tx:
        tx.write_many([WriteRequest("Patient", "p1", PATIENT), WriteRequest("Patient", "p1", PATIENT)])


def test_index_rows_follow_the_current_version(sql_repo: SqlRepository) -> None:
    with sql_repo.begin() as tx:
        tx.write("Patient", "p1", PATIENT, expected_version=0)
        tx.write("Patient", "p1", {**PATIENT, "name": [{"family": "Zed"}]}, expected_version=1)
    with sql_repo.engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(INDEX_TABLES["string"].c.value).where(INDEX_TABLES["string"].c.param == "family")
            )
            .scalars()
            .all()
        )
    keyring = sql_repo.protection.keyring
    assert keyring is not None  # the fixture stores with encryption at rest, as by default
    # A blind index: the HMAC of every prefix of the normalised family name.
    assert sorted(rows) == sorted(keyring.blind(f"p:family:{p}") for p in ("z", "ze", "zed"))
    with sql_repo.begin() as tx:
        tx.delete("Patient", "p1")
    with sql_repo.engine.connect() as conn:
        for table in INDEX_TABLES.values():
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
