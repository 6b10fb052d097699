"""Instance and type interactions over HTTP: create, read, vread, update, patch, delete."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}


def patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "http://example.org/mrn", "value": "12345"}],
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
        **extra,
    }


def test_create_read_update_delete(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient(), headers=FHIR)
    assert created.status_code == 201
    assert created.headers["content-type"].startswith("application/fhir+json")
    assert created.headers["etag"] == 'W/"1"'
    assert "last-modified" in created.headers
    body = created.json()
    id = body["id"]
    assert created.headers["location"] == f"http://testserver/fhir/Patient/{id}/_history/1"
    assert body["meta"]["versionId"] == "1"

    read = client.get(f"/fhir/Patient/{id}")
    assert read.status_code == 200
    assert read.json() == body
    assert read.headers["etag"] == 'W/"1"'

    updated = client.put(f"/fhir/Patient/{id}", json=patient(id=id, gender="female"), headers=FHIR)
    assert updated.status_code == 200
    assert updated.headers["etag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{id}/_history/1").json()["gender"] == "male"
    assert client.get(f"/fhir/Patient/{id}/_history/2").json()["gender"] == "female"
    assert client.get(f"/fhir/Patient/{id}/_history/9").status_code == 404

    assert client.delete(f"/fhir/Patient/{id}").status_code == 204
    gone = client.get(f"/fhir/Patient/{id}")
    assert gone.status_code == 410
    assert gone.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Patient/{id}/_history/2").status_code == 200


def test_plain_json_is_accepted(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient",
        content=b'{"resourceType":"Patient"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201


def test_update_as_create_with_client_id(client: TestClient) -> None:
    response = client.put("/fhir/Patient/abc-1", json=patient(id="abc-1"), headers=FHIR)
    assert response.status_code == 201
    assert response.json()["id"] == "abc-1"
    assert client.get("/fhir/Patient/abc-1").status_code == 200


def test_stale_if_match_gives_412_and_changes_nothing(client: TestClient) -> None:
    client.put("/fhir/Patient/p1", json=patient(id="p1"), headers=FHIR)
    client.put("/fhir/Patient/p1", json=patient(id="p1", gender="other"), headers=FHIR)
    stale = client.put(
        "/fhir/Patient/p1",
        json=patient(id="p1", gender="female"),
        headers={**FHIR, "If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    current = client.get("/fhir/Patient/p1")
    assert current.headers["etag"] == 'W/"2"'
    assert current.json()["gender"] == "other"
    fresh = client.put(
        "/fhir/Patient/p1",
        json=patient(id="p1", gender="female"),
        headers={**FHIR, "If-Match": 'W/"2"'},
    )
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == 'W/"3"'


def test_conditional_create(client: TestClient) -> None:
    criteria = {"If-None-Exist": "identifier=http://example.org/mrn|12345"}
    first = client.post("/fhir/Patient", json=patient(), headers={**FHIR, **criteria})
    assert first.status_code == 201
    second = client.post("/fhir/Patient", json=patient(), headers={**FHIR, **criteria})
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    client.post("/fhir/Patient", json=patient(), headers=FHIR)  # a second match now exists
    third = client.post("/fhir/Patient", json=patient(), headers={**FHIR, **criteria})
    assert third.status_code == 412
    assert client.get("/fhir/Patient?_summary=count").json()["total"] == 2


def test_conditional_update(client: TestClient) -> None:
    url = "/fhir/Patient?identifier=http://example.org/mrn|777"
    body = patient(identifier=[{"system": "http://example.org/mrn", "value": "777"}])
    created = client.put(url, json=body, headers=FHIR)
    assert created.status_code == 201
    id = created.json()["id"]
    updated = client.put(url, json={**body, "gender": "female"}, headers=FHIR)
    assert updated.status_code == 200
    assert updated.json()["id"] == id
    assert updated.headers["etag"] == 'W/"2"'
    client.post("/fhir/Patient", json=body, headers=FHIR)
    assert client.put(url, json=body, headers=FHIR).status_code == 412


def test_json_patch(client: TestClient) -> None:
    id = client.post("/fhir/Patient", json=patient(), headers=FHIR).json()["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    patched = client.patch(
        f"/fhir/Patient/{id}", json=ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert patched.status_code == 200
    assert patched.json()["gender"] == "female"
    assert patched.headers["etag"] == 'W/"2"'
    bad_path = [{"op": "replace", "path": "/nothing/there", "value": 1}]
    assert (
        client.patch(
            f"/fhir/Patient/{id}",
            json=bad_path,
            headers={"Content-Type": "application/json-patch+json"},
        ).status_code
        == 400
    )
    invalid = [{"op": "replace", "path": "/gender", "value": 12}]
    response = client.patch(
        f"/fhir/Patient/{id}", json=invalid, headers={"Content-Type": "application/json-patch+json"}
    )
    assert response.status_code == 400
    assert client.get(f"/fhir/Patient/{id}").headers["etag"] == 'W/"2"'
    stale = client.patch(
        f"/fhir/Patient/{id}",
        json=ops,
        headers={"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412


def test_any_r4_type_can_be_stored_read_and_listed(client: TestClient) -> None:
    for resource in (
        {"resourceType": "Basic", "code": {"text": "note"}},
        {"resourceType": "Device", "status": "active"},
        {"resourceType": "Substance", "code": {"text": "water"}},
    ):
        created = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR)
        assert created.status_code == 201, created.text
        id = created.json()["id"]
        assert client.get(f"/fhir/{resource['resourceType']}/{id}").status_code == 200
        listing = client.get(f"/fhir/{resource['resourceType']}").json()
        assert [e["resource"]["id"] for e in listing["entry"]] == [id]


def test_history_levels_and_paging(client: TestClient) -> None:
    for i in range(3):
        client.put("/fhir/Patient/p1", json=patient(id="p1", birthDate=f"197{i}-01-01"), headers=FHIR)
    client.put("/fhir/Patient/p2", json=patient(id="p2"), headers=FHIR)
    client.delete("/fhir/Patient/p2")
    client.post(
        "/fhir/Observation",
        json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
        headers=FHIR,
    )
    instance = client.get("/fhir/Patient/p1/_history").json()
    assert instance["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in instance["entry"]] == ["3", "2", "1"]
    assert client.get("/fhir/Patient/_history").json()["total"] == 5
    system = client.get("/fhir/_history").json()
    assert system["total"] == 6
    deletion = [e for e in client.get("/fhir/Patient/p2/_history").json()["entry"] if "resource" not in e]
    assert deletion[0]["request"]["method"] == "DELETE"

    seen: list[tuple[str, str]] = []
    url: str | None = "/fhir/_history?_count=2"
    while url:
        page = client.get(url).json()
        seen += [(e["fullUrl"], e["response"]["etag"]) for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert len(seen) == 6
    assert len(set(seen)) == 6
    assert client.get("/fhir/Patient/nope/_history").status_code == 404
