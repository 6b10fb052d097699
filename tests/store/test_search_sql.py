"""The search scenario table on the SQL store (SQLite, and PostgreSQL when configured).

Rows are written by a small local helper (resource row + :func:`extract_index` rows, the
token rows through :func:`token_rows` as the store writes them), so these tests depend
on the table definitions, not on the repository's write path.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from medfusion.fhir.repository import StoredResource
from medfusion.fhir.search import SearchResult, extract_index
from medfusion.store.repository import SqlRepository
from medfusion.store.rows import token_rows
from medfusion.store.search_sql import execute_search
from medfusion.store.tables import INDEX_TABLES, metadata, resource
from tests.fhir.test_search_memory import INCLUDES, SCENARIOS, parse, stored_resources

POSTGRES_URL = os.environ.get("MEDFUSION_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _write(conn: sa.Connection, stored: StoredResource, *, current: bool = True) -> None:
    """Insert one version; index rows only for the current live one (as the store does)."""
    body: Any = stored.body.decode() if conn.dialect.name == "postgresql" else stored.body
    value = resource.c.body.type
    statement = sa.insert(resource)
    if conn.dialect.name == "postgresql":
        statement = statement.values(body=sa.cast(sa.bindparam("body", type_=sa.Text), value))
    rid = conn.execute(
        statement.returning(resource.c.rid),
        {
            "res_type": stored.resource_type,
            "res_id": stored.id,
            "version": stored.version,
            "last_updated": stored.last_updated,
            "deleted": stored.deleted,
            "current": current,
            "body": None if stored.deleted else body,
        },
    ).scalar_one()
    if not current or stored.deleted:
        return
    entries = extract_index(stored.resource_type, stored.json())
    common = {"rid": rid, "res_type": stored.resource_type}
    rows: dict[str, list[dict[str, Any]]] = {
        "string": [{**common, "param": p, "value": v, "exact": e} for p, v, e in entries.strings],
        "token": [
            {**common, "param": p, "system": s, "code": c, "patient": pt}
            for p, s, c, pt in token_rows(entries)
        ],
        "date": [{**common, "param": p, "low": lo, "high": hi} for p, lo, hi in entries.dates],
        "quantity": [
            {**common, "param": p, "value": v, "system": s, "code": c} for p, v, s, c in entries.quantities
        ],
        "reference": [
            {**common, "param": p, "target_type": t, "target_id": i} for p, t, i in entries.references
        ],
    }
    for name, batch in rows.items():
        if batch:
            conn.execute(sa.insert(INDEX_TABLES[name]), batch)


def _engine(backend: str) -> Iterator[sa.Engine]:
    if backend == "sqlite":
        engine = sa.create_engine("sqlite://")
        yield engine
        engine.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("MEDFUSION_TEST_POSTGRES_URL is not set; PostgreSQL tests need a server")
    name = f"mf_search_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(sa.make_url(POSTGRES_URL).set(database=name), poolclass=sa.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """An engine holding the scenario resources, plus an old version and a deletion."""
    for engine in _engine(request.param):
        metadata.create_all(engine)
        with engine.begin() as conn:
            for stored in stored_resources():
                if stored.id == "o1":  # an older version that must never match
                    _write(conn, StoredResource("Observation", "o1", 0, stored.last_updated, False,
                                                b'{"resourceType":"Observation","status":"final"}'),
                           current=False)  # fmt: skip
                _write(conn, stored)
            _write(conn, StoredResource("Patient", "p9", 2, stored.last_updated, True, b""))
        yield engine


def _search(engine: sa.Engine, resource_type: str, query: str) -> SearchResult:
    with engine.connect() as conn:
        return execute_search(conn, parse(resource_type, query))


@pytest.mark.parametrize(("resource_type", "query", "expected"), SCENARIOS)
def test_scenario(loaded: sa.Engine, resource_type: str, query: str, expected: list[str]) -> None:
    result = _search(loaded, resource_type, query)
    assert [s.id for s in result.matches] == expected
    if "_count" not in query and "_offset" not in query:
        assert result.total == len(expected)


@pytest.mark.parametrize(("resource_type", "query", "page", "included"), INCLUDES)
def test_includes(
    loaded: sa.Engine, resource_type: str, query: str, page: list[str], included: list[str]
) -> None:
    result = _search(loaded, resource_type, query)
    assert [s.id for s in result.matches] == page
    assert [f"{s.resource_type}/{s.id}" for s in result.included] == included


@pytest.mark.parametrize("sort", ["", "&_sort=status", "&_sort=-date,status", "&_sort=-_lastUpdated"])
def test_paging_visits_every_match_once(loaded: sa.Engine, sort: str) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        result = _search(loaded, "Observation", f"_count=3&_offset={offset}{sort}")
        assert result.total == 6
        if not result.matches:
            break
        seen += [s.id for s in result.matches]
        offset += 3
    assert sorted(seen) == ["o1", "o2", "o3", "o4", "o5", "o6"]


def test_summary_count(loaded: sa.Engine) -> None:
    result = _search(loaded, "Observation", "code=8867-4&_summary=count")
    assert (result.total, result.matches, result.included) == (4, [], [])


def test_matches_are_full_records(loaded: sa.Engine) -> None:
    (found,) = _search(loaded, "Patient", "_id=p1").matches
    expected = {s.id: s for s in stored_resources()}["p1"]
    assert (found.resource_type, found.id, found.version, found.deleted) == ("Patient", "p1", 1, False)
    assert found.last_updated == expected.last_updated
    assert found.json() == expected.json()  # PostgreSQL's JSONB reorders keys


def test_values_are_bound_not_inlined(loaded: sa.Engine) -> None:
    # A value that would break string-built SQL is just a value that matches nothing.
    assert _search(loaded, "Patient", "name=x'; DROP TABLE resource; --").matches == []
    assert _search(loaded, "Patient", "").total == 5


def test_patient_scoped_code_search_sees_every_patient_of_a_resource(sql_repo: SqlRepository) -> None:
    """``idx_token.patient`` has a row per patient, so ``patient=X&<token>`` misses none."""
    appointment = {
        "resourceType": "Appointment",
        "status": "booked",
        "participant": [
            {"actor": {"reference": "Patient/pa"}, "status": "accepted"},
            {"actor": {"reference": "Patient/pb"}, "status": "accepted"},
        ],
    }
    with sql_repo.begin() as tx:
        tx.write("Appointment", "a1", appointment, expected_version=0)
        tx.write("Appointment", "a2", {**appointment, "status": "cancelled"}, expected_version=0)
    for patient in ("pa", "Patient/pb"):
        query = parse("Appointment", f"patient={patient}&status=booked")
        assert [m.id for m in sql_repo.search(query).matches] == ["a1"]
    assert [m.id for m in sql_repo.search(parse("Appointment", "patient=pc&status=booked")).matches] == []
