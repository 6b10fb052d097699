"""batch and transaction Bundles over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}
NPI = "http://hl7.org/fhir/sid/us-npi"


def _entry(resource: dict[str, Any], full_url: str | None = None, **request: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _observation(subject: str, status: str = "final") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": status,
        "code": {"text": "heart rate"},
        "subject": {"reference": subject},
    }


def test_transaction_resolves_urn_uuid_and_conditional_references(client: TestClient) -> None:
    existing = {
        "resourceType": "Organization",
        "identifier": [{"system": "urn:org", "value": "o1"}],
    }
    org_id = client.post("/fhir/Organization", json=existing, headers=FHIR).json()["id"]
    practitioner = {"resourceType": "Practitioner", "identifier": [{"system": NPI, "value": "99"}]}
    patient = {
        "resourceType": "Patient",
        "managingOrganization": {"reference": "Organization?identifier=urn:org|o1"},
        "generalPractitioner": [{"reference": f"Practitioner?identifier={NPI}|99"}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry(_observation("urn:uuid:11111111-1111-4111-8111-111111111111")),
            _entry(patient, "urn:uuid:11111111-1111-4111-8111-111111111111"),
            _entry(
                practitioner,
                "urn:uuid:22222222-2222-4222-8222-222222222222",
                ifNoneExist=f"identifier={NPI}|99",
            ),
        ],
    }
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"] for e in result["entry"]] == ["201 Created"] * 3
    patient_id = result["entry"][1]["response"]["location"].split("/")[1]
    practitioner_id = result["entry"][2]["response"]["location"].split("/")[1]
    observation = client.get(
        "/" + "fhir/" + result["entry"][0]["response"]["location"].rsplit("/_history", 1)[0]
    )
    assert observation.json()["subject"]["reference"] == f"Patient/{patient_id}"
    stored_patient = client.get(f"/fhir/Patient/{patient_id}").json()
    assert stored_patient["managingOrganization"]["reference"] == f"Organization/{org_id}"
    assert stored_patient["generalPractitioner"][0]["reference"] == f"Practitioner/{practitioner_id}"

    # Posting the same Bundle again: ifNoneExist finds the practitioner instead of creating one.
    again = client.post("/fhir", json=bundle, headers=FHIR).json()
    assert again["entry"][2]["response"]["status"] == "200 OK"
    assert client.get("/fhir/Practitioner?_summary=count").json()["total"] == 1


def test_transaction_is_atomic_and_names_the_bad_entry(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry({"resourceType": "Patient"}, "urn:uuid:33333333-3333-4333-8333-333333333333"),
            _entry({"resourceType": "Observation", "status": 5, "code": {"text": "x"}}),
        ],
    }
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[1]" in outcome["issue"][0]["expression"]
    assert client.get("/fhir/_history").json()["total"] == 0


def test_transaction_failing_late_rolls_back_earlier_writes(client: TestClient) -> None:
    client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"}, headers=FHIR)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry({"resourceType": "Patient", "gender": "male"}),
            {
                "resource": {"resourceType": "Patient", "id": "p1", "gender": "female"},
                "request": {"method": "PUT", "url": "Patient/p1", "ifMatch": 'W/"9"'},
            },
        ],
    }
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 412
    assert "Bundle.entry[1]" in response.json()["issue"][0]["expression"]
    assert client.get("/fhir/_history").json()["total"] == 1
    assert client.get("/fhir/Patient/p1").headers["etag"] == 'W/"1"'


def test_transaction_with_dangling_urn_uuid_fails(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry(_observation("urn:uuid:44444444-4444-4444-8444-444444444444")),
        ],
    }
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 400
    assert client.get("/fhir/_history").json()["total"] == 0


def test_batch_processes_each_entry_on_its_own(client: TestClient) -> None:
    client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"}, headers=FHIR)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            _entry(_observation("Patient/p1")),
            _entry({"resourceType": "Observation", "status": ["final"], "code": {"text": "x"}}),
            {"request": {"method": "GET", "url": "Patient/p1"}},
            {"request": {"method": "GET", "url": "Patient/missing"}},
            {"request": {"method": "DELETE", "url": "Patient/p1"}},
            _entry(
                {"resourceType": "Patient", "identifier": [{"system": "s", "value": "v"}]},
                ifNoneExist="identifier=s|v",
            ),
        ],
    }
    response = client.post("/fhir", json=bundle, headers=FHIR)
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "400", "200 OK", "404", "204 No Content", "201 Created"]
    assert response.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Observation?_summary=count").json()["total"] == 1
    assert client.get("/fhir/Patient/p1").status_code == 410


def test_bundle_type_must_be_batch_or_transaction(client: TestClient) -> None:
    response = client.post("/fhir", json={"resourceType": "Bundle", "type": "collection"}, headers=FHIR)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
