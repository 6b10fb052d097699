"""Search scenarios with expected results, run on the in-memory twin.

``tests/store/test_search_sql.py`` runs the same table on SQLite (and PostgreSQL),
so the two implementations must agree on every row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from medfusion.fhir.repository import StoredResource
from medfusion.fhir.search import SearchResult, parse_search, search_in_memory

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _obs(id: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": id, **fields}


def _loinc(code: str, *extra: dict[str, str]) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code}, *extra]}


PATIENTS: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:mrn", "value": "1"}],
        "name": [{"family": "Müller", "given": ["Anna", "Maria"]}],
        "birthDate": "1980-05-12",
        "gender": "female",
        "active": True,
        "telecom": [{"system": "phone", "value": "555-1"}],
        "address": [{"city": "Berlin", "postalCode": "12345"}],
    },
    {
        "resourceType": "Patient",
        "id": "p2",
        "identifier": [{"system": "http://other", "value": "1"}],
        "name": [{"family": "Mullen", "given": ["Bob"]}],
        "birthDate": "1980",
        "gender": "male",
        "deceasedBoolean": True,
        "address": [{"postalCode": "99999"}],
    },
    {
        "resourceType": "Patient",
        "id": "p3",
        "identifier": [{"value": "X9"}],
        "name": [{"family": "Smith_%", "given": ["Carl"]}],
        "birthDate": "1975-12-31",
        "gender": "male",
    },
    {
        "resourceType": "Patient",
        "id": "p4",
        "name": [{"family": "O'Neil", "given": ["Dana"], "text": "Dana O'Neil"}],
        "birthDate": "1980-05",
        "gender": "other",
    },
    {"resourceType": "Patient", "id": "p5", "name": [{"given": ["Émile"]}]},
]

OBSERVATIONS: list[dict[str, Any]] = [
    _obs(
        "o1",
        status="final",
        subject={"reference": "Patient/p1"},
        encounter={"reference": "Encounter/e1"},
        category=[{"coding": [{"code": "vital-signs"}]}],
        code=_loinc("8867-4", {"system": "http://other", "code": "HR"}),
        effectiveDateTime="2020-01-01T10:00:00Z",
        valueQuantity={"value": 72, "unit": "/min", "system": UCUM, "code": "/min"},
    ),
    _obs(
        "o2",
        status="preliminary",
        subject={"reference": "http://example.org/fhir/Patient/p1"},
        code=_loinc("8867-4"),
        effectiveDateTime="2019-12-31T23:59:59Z",
        valueQuantity={"value": 5.4, "unit": "mmol/l", "system": UCUM, "code": "mmol/L"},
    ),
    _obs(
        "o3",
        status="final",
        subject={"reference": "Patient/p2"},
        code=_loinc("2339-0"),
        effectivePeriod={"start": "2020-01-01T00:00:00Z", "end": "2020-01-05"},
        valueQuantity={"value": 120, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
    ),
    _obs(
        "o4",
        status="final",
        subject={"reference": "Group/g1"},
        code=_loinc("8867-4"),
        effectiveDateTime="2020-01-01",
        valueQuantity={"value": 5.35, "system": UCUM, "code": "mmol/L"},
    ),
    _obs(
        "o5",
        status="amended",
        subject={"reference": "#contained"},
        performer=[{"reference": "urn:uuid:8c7f2d43-0000-0000-0000-000000000000"}],
        code={"coding": [{"code": "8867-4"}]},
        effectivePeriod={"start": "2021-06-01"},
    ),
    _obs("o6", status="final", code={"text": "free text"}, valueQuantity={"value": 5.45, "unit": "mmol/L"}),
]

OTHERS: list[dict[str, Any]] = [
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2020-01-01T09:00:00Z", "end": "2020-01-01T11:00:00Z"},
    },
    {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
        "onsetDateTime": "2015-03",
    },
    {"resourceType": "Group", "id": "g1", "type": "person", "actual": True},
]

_UPDATED = {"p1": "2024-01-01T00:00:00", "p2": "2024-02-01T00:00:00", "p5": "2024-04-01T00:00:00"}


def stored_resources() -> list[StoredResource]:
    """Every live resource of the scenarios, as the store would hold it."""
    out: list[StoredResource] = []
    for resource in [*PATIENTS, *OBSERVATIONS, *OTHERS]:
        updated = _when(_UPDATED.get(resource["id"], "2024-03-01T12:00:00"))
        body = orjson.dumps(resource)
        out.append(StoredResource(resource["resourceType"], resource["id"], 1, updated, False, body))
    return out


# (resource type, query, expected ids in order); without _sort the order is by id.
SCENARIOS: list[tuple[str, str, list[str]]] = [
    ("Patient", "", ["p1", "p2", "p3", "p4", "p5"]),
    # dates: every prefix, partial dates as ranges
    ("Patient", "birthdate=1980-05-12", ["p1"]),
    ("Patient", "birthdate=1980", ["p1", "p2", "p4"]),
    ("Patient", "birthdate=eq1980-05", ["p1", "p4"]),
    ("Patient", "birthdate=ne1980-05", ["p2", "p3"]),
    ("Patient", "birthdate=gt1980-05-12", ["p2", "p4"]),
    ("Patient", "birthdate=lt1980-05-12", ["p2", "p3", "p4"]),
    ("Patient", "birthdate=ge1980-05-12", ["p1", "p2", "p4"]),
    ("Patient", "birthdate=le1980-05-12", ["p1", "p2", "p3", "p4"]),
    ("Patient", "birthdate=sa1980-04-30", ["p1", "p4"]),
    ("Patient", "birthdate=sa1979", ["p1", "p2", "p4"]),
    ("Patient", "birthdate=eb1980-01-01", ["p3"]),
    ("Patient", "birthdate=eb1980-06", ["p1", "p3", "p4"]),
    ("Patient", "birthdate:missing=true", ["p5"]),
    ("Observation", "date=2020-01-01", ["o1", "o4"]),
    ("Observation", "date=eq2020", ["o1", "o3", "o4"]),
    ("Observation", "date=2020-01", ["o1", "o3", "o4"]),
    ("Observation", "date=ne2020-01-01", ["o2", "o3", "o5"]),
    ("Observation", "date=gt2020-01-01", ["o3", "o5"]),
    ("Observation", "date=lt2020-01-01", ["o2"]),
    ("Observation", "date=ge2020-01-01", ["o1", "o3", "o4", "o5"]),
    ("Observation", "date=le2020-01-01", ["o1", "o2", "o4"]),
    ("Observation", "date=sa2019-12-31", ["o1", "o3", "o4", "o5"]),
    ("Observation", "date=eb2020-01-02", ["o1", "o2", "o4"]),
    ("Observation", "date=ap2020-01-01", ["o1", "o2", "o3", "o4"]),
    ("Observation", "date=2020-01-01T10:00:00Z", ["o1"]),
    ("Observation", "date=2020-01-01T11:00:00%2B01:00", ["o1"]),
    ("Observation", "date=2020-01-01T10:00", ["o1"]),
    ("Observation", "date=ge2020-01-01&date=lt2020-01-02", ["o1", "o3", "o4"]),
    ("Observation", "date=2019,2021", ["o2"]),
    ("Observation", "date:missing=true", ["o6"]),
    ("Observation", "date:missing=false", ["o1", "o2", "o3", "o4", "o5"]),
    ("Condition", "onset-date=2015", ["c1"]),
    ("Encounter", "date=2020-01-01", ["e1"]),
    # strings: prefix, accents, modifiers, LIKE metacharacters
    ("Patient", "name=mull", ["p1", "p2"]),
    ("Patient", "name=MÜL", ["p1", "p2"]),
    ("Patient", "family:exact=Müller", ["p1"]),
    ("Patient", "family:exact=muller", []),
    ("Patient", "name:contains=LLE", ["p1", "p2"]),
    ("Patient", "name:contains=_", ["p3"]),
    ("Patient", "name:contains=%25", ["p3"]),
    ("Patient", "name=smith_", ["p3"]),
    ("Patient", "name=s%25h", []),
    ("Patient", "name=s_ith", []),
    ("Patient", "given=emile", ["p5"]),
    ("Patient", "name=dana o", ["p4"]),
    ("Patient", "name=anna,bob", ["p1", "p2"]),
    ("Patient", "given=anna&given=maria", ["p1"]),
    ("Patient", "given=anna&given=bob", []),
    ("Patient", "address-postalcode=123", ["p1"]),
    ("Patient", "address-city=berlin", ["p1"]),
    ("Patient", "address=99", ["p2"]),
    ("Patient", "family:missing=true", ["p5"]),
    # tokens
    ("Patient", "gender=male", ["p2", "p3"]),
    ("Patient", "gender:not=male", ["p1", "p4", "p5"]),
    ("Patient", "identifier=1", ["p1", "p2"]),
    ("Patient", "identifier=urn:mrn|1", ["p1"]),
    ("Patient", "identifier=|X9", ["p3"]),
    ("Patient", "identifier=|1", []),
    ("Patient", "identifier=http://other|", ["p2"]),
    ("Patient", "phone=555-1", ["p1"]),
    ("Patient", "email=555-1", []),
    ("Patient", "telecom=555-1", ["p1"]),
    ("Patient", "active=true", ["p1"]),
    ("Patient", "deceased=true", ["p2"]),
    ("Patient", "deceased=false", ["p1", "p3", "p4", "p5"]),
    ("Observation", "code=http://loinc.org|8867-4", ["o1", "o2", "o4"]),
    ("Observation", "code=8867-4", ["o1", "o2", "o4", "o5"]),
    ("Observation", "code=|8867-4", ["o5"]),
    ("Observation", "code=http://other|HR", ["o1"]),
    ("Observation", "code=http://loinc.org|", ["o1", "o2", "o3", "o4"]),
    ("Observation", "code=http://loinc.org|2339-0,|8867-4", ["o3", "o5"]),
    ("Observation", "status=final,amended", ["o1", "o3", "o4", "o5", "o6"]),
    ("Observation", "category=vital-signs", ["o1"]),
    ("Encounter", "class=AMB", ["e1"]),
    # quantities
    ("Observation", "value-quantity=72", ["o1"]),
    ("Observation", "value-quantity=5.4", ["o2", "o4"]),
    ("Observation", "value-quantity=5.4|http://unitsofmeasure.org|mmol/L", ["o2", "o4"]),
    ("Observation", "value-quantity=5.4||mmol/l", ["o2"]),
    ("Observation", "value-quantity=5.45||mmol/L", ["o6"]),
    ("Observation", "value-quantity=gt5.4", ["o1", "o3", "o6"]),
    ("Observation", "value-quantity=ge5.4", ["o1", "o2", "o3", "o6"]),
    ("Observation", "value-quantity=lt5.4", ["o4"]),
    ("Observation", "value-quantity=le5.4", ["o2", "o4"]),
    ("Observation", "value-quantity=ne5.4", ["o1", "o3", "o6"]),
    ("Observation", "value-quantity=sa100", ["o3"]),
    ("Observation", "value-quantity=eb5.4", ["o4"]),
    ("Observation", "value-quantity=ap5.4", ["o2", "o4", "o6"]),
    ("Observation", "value-quantity=1e2", ["o1", "o3"]),
    ("Observation", "value-quantity=120||mmHg", ["o3"]),
    ("Observation", "value-quantity=120|http://unitsofmeasure.org|mm[Hg]", ["o3"]),
    ("Observation", "value-quantity:missing=true", ["o5"]),
    # references
    ("Observation", "patient=p1", ["o1", "o2"]),
    ("Observation", "patient=Patient/p1", ["o1", "o2"]),
    ("Observation", "patient=http://example.org/fhir/Patient/p1", ["o1", "o2"]),
    ("Observation", "patient=g1", []),
    ("Observation", "subject=g1", ["o4"]),
    ("Observation", "subject=Group/g1", ["o4"]),
    ("Observation", "subject:Patient=p2", ["o3"]),
    ("Observation", "subject=p1,p2", ["o1", "o2", "o3"]),
    ("Observation", "subject:missing=true", ["o5", "o6"]),
    ("Observation", "subject:missing=false", ["o1", "o2", "o3", "o4"]),
    ("Observation", "performer:missing=true", ["o1", "o2", "o3", "o4", "o5", "o6"]),
    ("Observation", "encounter=Encounter/e1", ["o1"]),
    ("Encounter", "patient=p1", ["e1"]),
    ("Condition", "patient=p1&code=http://snomed.info/sct|38341003", ["c1"]),
    # AND across parameters
    ("Observation", "patient=p1&code=http://loinc.org|8867-4&date=ge2020-01-01", ["o1"]),
    ("Observation", "code=8867-4&status:not=final", ["o2", "o5"]),
    # _id and _lastUpdated
    ("Patient", "_id=p1,p3", ["p1", "p3"]),
    ("Patient", "_id=p1&gender=male", []),
    ("Patient", "_lastUpdated=ge2024-02-01", ["p2", "p3", "p4", "p5"]),
    ("Patient", "_lastUpdated=lt2024-02", ["p1"]),
    ("Patient", "_lastUpdated=2024-03-01", ["p3", "p4"]),
    ("Patient", "_lastUpdated=gt2024-03", ["p5"]),
    ("Patient", "_lastUpdated=ne2024-03", ["p1", "p2", "p5"]),
    ("Patient", "_lastUpdated=le2024-02-01", ["p1", "p2"]),
    # unknown parameters are ignored when lenient
    ("Patient", "nonsense=1&gender=female", ["p1"]),
    # _sort
    ("Patient", "_sort=birthdate", ["p3", "p2", "p4", "p1", "p5"]),
    ("Patient", "_sort=-birthdate", ["p2", "p4", "p1", "p3", "p5"]),
    ("Patient", "_sort=family", ["p2", "p1", "p4", "p3", "p5"]),
    ("Patient", "_sort=-family", ["p3", "p4", "p1", "p2", "p5"]),
    ("Patient", "_sort=-_lastUpdated,_id", ["p5", "p3", "p4", "p2", "p1"]),
    ("Patient", "_sort=-_id", ["p5", "p4", "p3", "p2", "p1"]),
    ("Patient", "_sort=gender", ["p1", "p2", "p3", "p4", "p5"]),
    ("Patient", "_sort=-gender,-_id", ["p4", "p3", "p2", "p1", "p5"]),
    ("Observation", "_sort=value-quantity", ["o4", "o2", "o6", "o1", "o3", "o5"]),
    ("Observation", "_sort=-date", ["o5", "o3", "o4", "o1", "o2", "o6"]),
    ("Observation", "_sort=status,-date", ["o5", "o3", "o4", "o1", "o6", "o2"]),
    # paging
    ("Observation", "_count=2&_offset=2", ["o3", "o4"]),
    ("Observation", "_count=0", []),
    ("Observation", "_offset=10", []),
]

_CODED = ["o1", "o2", "o4", "o5"]
_P1_OBSERVATIONS = ["Observation/o1", "Observation/o2"]

# (resource type, query, expected page ids, expected included "Type/id")
INCLUDES: list[tuple[str, str, list[str], list[str]]] = [
    ("Observation", "_id=o1&_include=Observation:patient", ["o1"], ["Patient/p1"]),
    ("Observation", "_id=o1&_include=Observation:encounter", ["o1"], ["Encounter/e1"]),
    ("Observation", "_id=o1&_include=*", ["o1"], ["Encounter/e1", "Patient/p1"]),
    ("Observation", "code=8867-4&_include=Observation:subject", _CODED, ["Group/g1", "Patient/p1"]),
    ("Observation", "code=8867-4&_include=Observation:subject:Patient", _CODED, ["Patient/p1"]),
    ("Observation", "_id=o3&_include=Encounter:patient", ["o3"], []),
    ("Patient", "_id=p1&_revinclude=Observation:patient", ["p1"], ["Observation/o1", "Observation/o2"]),
    (
        "Patient",
        "_id=p1&_revinclude=*",
        ["p1"],
        ["Condition/c1", "Encounter/e1", "Observation/o1", "Observation/o2"],
    ),
    ("Patient", "_id=p1,p2&_count=1&_revinclude=Observation:subject", ["p1"], _P1_OBSERVATIONS),
    (
        "Patient",
        "_id=p1&_revinclude=Encounter:subject&_revinclude=Condition:patient",
        ["p1"],
        ["Condition/c1", "Encounter/e1"],
    ),
]


def split_query(query: str) -> list[tuple[str, str]]:
    """``a=1&b=2`` into pairs, decoding ``%XX`` like a web framework would."""
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=True)


def parse(resource_type: str, query: str) -> Any:
    """Parse leniently with a default page size of 10."""
    return parse_search(resource_type, split_query(query), strict=False, default_count=10, max_count=100)


def _current() -> dict[tuple[str, str], StoredResource]:
    return {(s.resource_type, s.id): s for s in stored_resources()}


def _ids(result: SearchResult) -> list[str]:
    return [s.id for s in result.matches]


@pytest.mark.parametrize(("resource_type", "query", "expected"), SCENARIOS)
def test_scenario(resource_type: str, query: str, expected: list[str]) -> None:
    result = search_in_memory(_current(), parse(resource_type, query))
    assert _ids(result) == expected
    if "_count" not in query and "_offset" not in query:
        assert result.total == len(expected)


@pytest.mark.parametrize(("resource_type", "query", "page", "included"), INCLUDES)
def test_includes(resource_type: str, query: str, page: list[str], included: list[str]) -> None:
    result = search_in_memory(_current(), parse(resource_type, query))
    assert _ids(result) == page
    assert [f"{s.resource_type}/{s.id}" for s in result.included] == included


@pytest.mark.parametrize("sort", ["", "&_sort=status", "&_sort=-date,status", "&_sort=-_lastUpdated"])
def test_paging_visits_every_match_once(sort: str) -> None:
    current = _current()
    seen: list[str] = []
    offset = 0
    while True:
        result = search_in_memory(current, parse("Observation", f"_count=3&_offset={offset}{sort}"))
        assert result.total == 6
        if not result.matches:
            break
        seen += _ids(result)
        offset += 3
    assert sorted(seen) == ["o1", "o2", "o3", "o4", "o5", "o6"]


def test_summary_count() -> None:
    result = search_in_memory(_current(), parse("Observation", "code=8867-4&_summary=count"))
    assert result.total == 4
    assert result.matches == []
    assert result.included == []


def test_deleted_resources_are_skipped() -> None:
    current = _current()
    gone = StoredResource("Patient", "p9", 2, _when("2024-01-01T00:00:00"), True, b"")
    current[("Patient", "p9")] = gone
    assert _ids(search_in_memory(current, parse("Patient", "_count=20"))) == ["p1", "p2", "p3", "p4", "p5"]
