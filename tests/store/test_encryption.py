"""Encryption at rest: sealed bodies, blind indexes, tamper detection, key rotation.

The ``strings`` tests plant a name, an MRN and a phone number and then look for them in
the raw bytes of the SQLite file and its WAL, and in every PostgreSQL table read raw.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from medfusion.config import override_settings
from medfusion.errors import EncryptionError, UnsupportedError
from medfusion.fhir.search import parse_search
from medfusion.services.database import open_repository
from medfusion.services.keys import rotate_keys
from medfusion.store.crypto import Keyring, load_keyring
from medfusion.store.protection import Protection
from medfusion.store.repository import SqlRepository
from medfusion.store.rotation import count_unsealed
from medfusion.store.tables import INDEX_TABLES, resource

NAME, MRN, PHONE = "Quintessa", "MRN-88412-ZX", "555-867-5309"
FAMILY = "Vandersloot"
PLANTED = (NAME, FAMILY, MRN, PHONE, NAME.lower(), FAMILY.lower(), MRN.lower())
PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "http://hospital.example/mrn", "value": MRN}],
    "name": [{"family": FAMILY, "given": [NAME]}],
    "telecom": [{"system": "phone", "value": PHONE}],
    "gender": "female",
    "birthDate": "1961-04-12",
}
OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "subject": {"reference": "Patient/p1", "display": f"{NAME} {FAMILY}"},
}


def _load(repo: SqlRepository) -> None:
    with repo.begin() as tx:
        tx.write("Patient", "p1", PATIENT, expected_version=0)
        tx.write("Patient", "p1", {**PATIENT, "gender": "other"}, expected_version=1)  # history too
        tx.write("Observation", "o1", OBSERVATION, expected_version=0)
        tx.write(
            "Patient", "p2", {"resourceType": "Patient", "name": [{"family": "Other"}]}, expected_version=0
        )


def _ids(repo: SqlRepository, resource_type: str, query: str) -> list[str]:
    params = [(name, value) for name, _, value in (part.partition("=") for part in query.split("&"))]
    parsed = parse_search(resource_type, params, strict=True, default_count=50, max_count=50)
    return [m.id for m in repo.search(parsed).matches]


def test_search_still_works_on_blind_indexes(sql_repo: SqlRepository) -> None:
    _load(sql_repo)
    assert _ids(sql_repo, "Patient", "name=quint") == ["p1"]
    assert _ids(sql_repo, "Patient", f"family={FAMILY.upper()}") == ["p1"]
    assert _ids(sql_repo, "Patient", f"family:exact={FAMILY}") == ["p1"]
    assert _ids(sql_repo, "Patient", f"family:exact={FAMILY.lower()}") == []
    assert _ids(sql_repo, "Patient", f"identifier=http://hospital.example/mrn|{MRN}") == ["p1"]
    assert _ids(sql_repo, "Patient", f"identifier={MRN}") == ["p1"]
    assert _ids(sql_repo, "Patient", f"phone={PHONE}") == ["p1"]
    assert _ids(sql_repo, "Patient", "name=vander,other") == ["p1", "p2"]
    assert _ids(sql_repo, "Patient", "birthdate=ge1960") == ["p1"]  # dates stay ranges
    # The bodies come back whole, and history versions open too.
    assert sql_repo.read("Patient", "p1").json()["name"][0]["given"] == [NAME]
    with sql_repo.begin_read() as tx:
        assert tx.vread("Patient", "p1", 1).json()["gender"] == "female"


def test_contains_and_sort_on_identifying_parameters_are_refused(sql_repo: SqlRepository) -> None:
    _load(sql_repo)
    with pytest.raises(UnsupportedError, match="blind indexes"):
        _ids(sql_repo, "Patient", "name:contains=tess")
    with pytest.raises(UnsupportedError, match="blind indexes"):
        _ids(sql_repo, "Patient", "_sort=family")
    assert _ids(sql_repo, "Observation", "code=8867-4") == ["o1"]  # other types unaffected


def _database_file(repo: SqlRepository) -> Path:
    database = repo.engine.url.database
    assert database
    return Path(database)


def test_planted_phi_is_not_in_the_sqlite_file_or_its_wal(sql_repo: SqlRepository) -> None:
    if sql_repo.engine.dialect.name != "sqlite":
        pytest.skip("the file test is for SQLite; PostgreSQL is read raw below")
    _load(sql_repo)
    path = _database_file(sql_repo)
    files = [path, path.with_name(path.name + "-wal")]
    assert files[1].exists() and files[1].stat().st_size > 0  # the rows are still in the WAL
    for file in files:
        data = file.read_bytes()
        for planted in PLANTED:
            assert planted.encode() not in data, f"{planted!r} found in {file.name}"
    with sql_repo.engine.connect() as conn:  # and after a checkpoint moved them to the file
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    assert not any(planted.encode() in data for planted in PLANTED)
    assert b"8867-4" in data  # the non-identifying index is in the clear: the test can see text


def test_planted_phi_is_not_in_postgresql_tables_read_raw(sql_repo: SqlRepository) -> None:
    if sql_repo.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    _load(sql_repo)
    with sql_repo.engine.connect() as conn:
        for table in [resource, *INDEX_TABLES.values()]:
            rows = conn.exec_driver_sql(f"SELECT t::text FROM {table.name} t").scalars().all()
            text = "\n".join(rows)
            for planted in PLANTED:
                assert planted not in text, f"{planted!r} found in {table.name}"


def test_a_tampered_or_moved_body_fails_its_integrity_check(sql_repo: SqlRepository) -> None:
    _load(sql_repo)
    with sql_repo.engine.begin() as conn:
        sealed = {
            row.res_id: bytes(row.sealed)
            for row in conn.execute(
                sa.select(resource.c.res_id, resource.c.sealed).where(
                    resource.c.current, resource.c.res_type == "Patient"
                )
            )
        }
        flipped = sealed["p2"][:-1] + bytes([sealed["p2"][-1] ^ 1])
        conn.execute(sa.update(resource).where(resource.c.res_id == "p2").values(sealed=flipped))
        # p1's ciphertext copied onto o1's row: the associated data (type/id/version) differs.
        conn.execute(sa.update(resource).where(resource.c.res_id == "o1").values(sealed=sealed["p1"]))
    with pytest.raises(EncryptionError, match="integrity"):
        sql_repo.read("Patient", "p2")
    with pytest.raises(EncryptionError, match="integrity"):
        sql_repo.read("Observation", "o1")
    assert sql_repo.read("Patient", "p1").json()["id"] == "p1"


def test_an_unknown_key_is_an_error_not_garbage(sql_repo: SqlRepository) -> None:
    _load(sql_repo)
    stranger = SqlRepository(sql_repo.engine, Protection(Keyring.generate()))
    with pytest.raises(EncryptionError, match="not in the keyring"):
        stranger.read("Patient", "p1")


def test_key_file_is_created_private_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "keys.json"
    first = load_keyring(secret=None, key_file=key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_keyring(secret=None, key_file=key_file).active == first.active  # reused, not regenerated
    os.chmod(key_file, 0o644)
    with pytest.raises(EncryptionError, match="readable by others"):
        load_keyring(secret=None, key_file=key_file)


def test_a_key_from_the_environment_must_be_256_bits() -> None:
    with pytest.raises(EncryptionError, match="32 bytes"):
        load_keyring(secret="c2hvcnQ=", key_file=Path("/nonexistent"))
    same = [load_keyring(secret="A" * 43 + "=", key_file=Path("/nonexistent")) for _ in range(2)]
    assert same[0].active == same[1].active  # derived, so every process agrees


def test_rotation_reseals_everything_and_reads_never_stop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rot.db'}"
    key_file = tmp_path / "keys.json"
    with override_settings(key_file=key_file, encrypt_at_rest=False):
        plain = open_repository(url)  # rows written before encryption was switched on
        with plain.begin() as tx:
            tx.write("Patient", "old", {**PATIENT, "id": "old"}, expected_version=0)
        plain.close()
    with override_settings(key_file=key_file):
        repo = open_repository(url)
        _load(repo)
        before = load_keyring(secret=None, key_file=key_file).active
        assert _ids(repo, "Patient", "name=quint") == ["p1"]  # the plain row is not blind-indexed yet
        assert count_unsealed(repo) == 1
        report = rotate_keys(url)
        assert report.active_key != before
        assert report.sealed_plain == 1 and report.reindexed == 1 and report.resealed == 4
        # The running repository still holds the old keyring: it reloads on the new key id.
        assert repo.read("Patient", "p1").json()["name"][0]["family"] == FAMILY
        assert repo.read("Patient", "old").json()["id"] == "old"
        assert _ids(repo, "Patient", "name=quint") == ["old", "p1"]
        assert count_unsealed(open_repository(url)) == 0
        retired = rotate_keys(url, retire=True)
        assert retired.retired == 2
        assert list(load_keyring(secret=None, key_file=key_file).keys) == [retired.active_key]
        fresh = open_repository(url)
        assert fresh.read("Patient", "old").json()["gender"] == "female"
        with fresh.begin_read() as tx:
            assert tx.vread("Patient", "p1", 1).json()["gender"] == "female"
        fresh.close()
        repo.close()


def test_rotation_needs_the_key_file(tmp_path: Path) -> None:
    from medfusion.errors import InvalidRequestError

    with (
        override_settings(encryption_key="A" * 43 + "="),
        pytest.raises(InvalidRequestError, match="key file"),
    ):
        rotate_keys(f"sqlite:///{tmp_path / 'x.db'}")


def test_outbox_messages_are_sealed_and_read_back(sql_repo: SqlRepository) -> None:
    from medfusion.services.notifications import enqueue_in, list_notifications
    from medfusion.store.tables import outbox

    email = "quintessa.vandersloot@example.org"
    with sql_repo.begin() as tx:
        assert enqueue_in(
            tx,
            key="r1",
            kind="reminder",
            recipient=email,
            subject=f"Reminder for {NAME}",
            body=f"Dear {NAME} {FAMILY}",
        )
    with sql_repo.engine.connect() as conn:
        raw = " ".join(str(value) for value in conn.execute(sa.select(outbox)).one())
    for planted in (email, NAME, FAMILY):
        assert planted not in raw
    listed = list_notifications(sql_repo)
    assert [(m["recipient"], m["subject"]) for m in listed] == [(email, f"Reminder for {NAME}")]
