"""Every class of bad input gets its status, an OperationOutcome, and stores nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from medfusion.config import override_settings

FHIR = {"Content-Type": "application/fhir+json"}


def _assert_outcome(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    text = response.text
    assert "Traceback" not in text and 'File "' not in text
    return body


def _nothing_stored(client: TestClient) -> None:
    assert client.get("/fhir/_history").json()["total"] == 0


@pytest.mark.parametrize(
    ("path", "content", "status"),
    [
        ("/fhir/Patient", b'{"resourceType": "Patient",', 400),
        ("/fhir/Patient", b"[1, 2]", 400),
        ("/fhir/Patient", b'{"resourceType": "Observation", "status": "final", "code": {}}', 400),
        ("/fhir/NotAType", b'{"resourceType": "NotAType"}', 404),
        ("/fhir/Patient", b"", 400),
    ],
)
def test_malformed_requests(client: TestClient, path: str, content: bytes, status: int) -> None:
    _assert_outcome(client.post(path, content=content, headers=FHIR), status)
    _nothing_stored(client)


def test_invalid_resource_names_the_element(client: TestClient) -> None:
    body = {
        "resourceType": "Patient",
        "birthDate": "1974-13-45",
        "name": [{"family": "Secretname"}],
    }
    outcome = _assert_outcome(client.post("/fhir/Patient", json=body, headers=FHIR), 400)
    issue = outcome["issue"][0]
    assert any("birthDate" in e for e in issue["expression"])
    assert "Secretname" not in str(outcome) and "1974-13-45" not in str(outcome)
    unknown = {"resourceType": "Patient", "favouriteColour": "blue"}
    issue = _assert_outcome(client.post("/fhir/Patient", json=unknown, headers=FHIR), 400)["issue"][0]
    assert any("favouriteColour" in e for e in issue["expression"])
    _nothing_stored(client)


def test_observation_missing_required_element(client: TestClient) -> None:
    body = {"resourceType": "Observation", "code": {"text": "x"}}
    issue = _assert_outcome(client.post("/fhir/Observation", json=body, headers=FHIR), 400)["issue"][0]
    assert any("status" in e for e in issue["expression"])


def test_body_over_the_cap_gives_413(client: TestClient) -> None:
    with override_settings(max_body_bytes=100):
        body = {"resourceType": "Patient", "name": [{"family": "x" * 200}]}
        _assert_outcome(client.post("/fhir/Patient", json=body, headers=FHIR), 413)
    _nothing_stored(client)


def test_unsupported_content_type(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}
    )
    _assert_outcome(response, 400)


def test_update_id_rules(client: TestClient) -> None:
    no_id = {"resourceType": "Patient"}
    _assert_outcome(client.put("/fhir/Patient/p1", json=no_id, headers=FHIR), 400)
    other = {"resourceType": "Patient", "id": "p2"}
    _assert_outcome(client.put("/fhir/Patient/p1", json=other, headers=FHIR), 400)
    bad = {"resourceType": "Patient", "id": "bad id!"}
    _assert_outcome(client.put("/fhir/Patient/bad id!", json=bad, headers=FHIR), 400)
    _assert_outcome(
        client.put(
            "/fhir/Patient/p1",
            json={"resourceType": "Patient", "id": "p1"},
            headers={**FHIR, "If-Match": "garbage"},
        ),
        400,
    )
    _nothing_stored(client)


def test_unknown_routes_and_reads(client: TestClient) -> None:
    _assert_outcome(client.get("/fhir/Patient/missing"), 404)
    _assert_outcome(client.get("/fhir/Nonsense/1"), 404)
    _assert_outcome(client.get("/fhir/Nonsense"), 404)


def test_search_parameter_handling(client: TestClient) -> None:
    lenient = client.get("/fhir/Patient?unknown-param=1")
    assert lenient.status_code == 200
    strict = client.get("/fhir/Patient?unknown-param=1", headers={"Prefer": "handling=strict"})
    _assert_outcome(strict, 400)
    _assert_outcome(client.get("/fhir/Patient?birthdate=notadate"), 400)


def test_metadata_states_what_is_supported(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    patient_params = {p["name"] for p in resources["Patient"]["searchParam"]}
    assert {
        "identifier",
        "name",
        "family",
        "given",
        "birthdate",
        "gender",
        "address-postalcode",
        "_id",
        "_lastUpdated",
    } <= patient_params
    observation_params = {p["name"] for p in resources["Observation"]["searchParam"]}
    assert {
        "patient",
        "subject",
        "code",
        "category",
        "date",
        "value-quantity",
        "status",
        "encounter",
    } <= observation_params
    assert resources["Patient"]["conditionalCreate"] is True
    assert "Basic" in resources
