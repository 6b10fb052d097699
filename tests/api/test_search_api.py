"""Search over HTTP: GET and POST _search, paging links, _include, _elements, $everything."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}
LOINC = "http://loinc.org"


def _seed(client: TestClient) -> None:
    for pid, family in (("p1", "Álvarez"), ("p2", "Alvarado"), ("p3", "Brown")):
        body = {"resourceType": "Patient", "id": pid, "name": [{"family": family}], "gender": "female"}
        assert client.put(f"/fhir/Patient/{pid}", json=body, headers=FHIR).status_code == 201
    for i, (pid, code, day, value) in enumerate(
        [
            ("p1", "8867-4", "2021-05-01", 60),
            ("p1", "8867-4", "2023-02-01", 88),
            ("p1", "4548-4", "2023-03-01", 6.1),
            ("p2", "8867-4", "2024-01-01", 71),
            ("p3", "8867-4", "2019-12-31", 90),
        ]
    ):
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"o{i}",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": day,
            "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": "/min"},
        }
        assert client.put(f"/fhir/Observation/o{i}", json=observation, headers=FHIR).status_code == 201


def _ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode)


def test_typical_search_by_get_and_post(client: TestClient) -> None:
    _seed(client)
    query = f"patient=p1&code={LOINC}|8867-4&date=ge2022-01-01"
    got = client.get(f"/fhir/Observation?{query}")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/fhir+json")
    assert _ids(got.json()) == ["o1"]
    posted = client.post(
        "/fhir/Observation/_search",
        content=query,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert _ids(posted.json()) == ["o1"]
    assert _ids(client.get("/fhir/Patient?name=alv").json()) == ["p1", "p2"]
    assert _ids(client.get("/fhir/Patient?family:exact=Álvarez").json()) == ["p1"]
    assert _ids(client.get("/fhir/Observation?value-quantity=gt80").json()) == ["o1", "o4"]
    assert _ids(client.get(f"/fhir/Observation?code={LOINC}|8867-4,{LOINC}|4548-4&patient=p1").json()) == [
        "o0",
        "o1",
        "o2",
    ]


def test_paging_links_visit_every_match_once(client: TestClient) -> None:
    _seed(client)
    seen: list[str] = []
    url: str | None = "/fhir/Observation?_count=2&_sort=-date"
    pages = 0
    while url:
        page = client.get(url).json()
        assert page["total"] == 5
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        pages += 1
    assert pages == 3
    assert seen == ["o3", "o2", "o1", "o0", "o4"]


def test_include_revinclude_elements_and_count(client: TestClient) -> None:
    _seed(client)
    included = client.get("/fhir/Observation?code=4548-4&_include=Observation:patient").json()
    assert _ids(included) == ["o2"]
    assert _ids(included, "include") == ["p1"]
    reverse = client.get("/fhir/Patient?_id=p2&_revinclude=Observation:patient").json()
    assert _ids(reverse) == ["p2"] and _ids(reverse, "include") == ["o3"]
    slim = client.get("/fhir/Patient?_id=p1&_elements=gender").json()["entry"][0]["resource"]
    assert "name" not in slim and slim["gender"] == "female"
    assert any(tag["code"] == "SUBSETTED" for tag in slim["meta"]["tag"])
    counted = client.get("/fhir/Observation?patient=p1&_summary=count").json()
    assert counted["total"] == 3 and "entry" not in counted


def test_everything_returns_the_patient_compartment(client: TestClient) -> None:
    _seed(client)
    bundle = client.get("/fhir/Patient/p1/$everything").json()
    assert sorted(e["resource"]["id"] for e in bundle["entry"]) == ["o0", "o1", "o2", "p1"]
    assert client.get("/fhir/Patient/nobody/$everything").status_code == 404
