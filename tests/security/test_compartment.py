"""Object-level checks: patient A never sees patient B, wherever a record could leak.

Runs on SQLite and PostgreSQL. Each case is a request a patient-A token makes about B;
each must answer 403 or 404 and B's data (name, ids of B's records) must not appear.
"""

from __future__ import annotations

import pytest

from .conftest import FHIR, Secured, observation

pytestmark = pytest.mark.auth

LEAKS = ("Bravo", "obs-B", "enc-B")

CROSS_PATIENT = [
    ("GET", "/fhir/Patient/B"),
    ("GET", "/fhir/Patient/B/_history"),
    ("GET", "/fhir/Patient/B/_history/1"),
    ("GET", "/fhir/Patient/B/$everything"),
    ("GET", "/fhir/Observation/obs-B"),
    ("GET", "/fhir/Observation/obs-B/_history"),
    ("GET", "/fhir/Observation/obs-B/_history/1"),
    ("GET", "/fhir/Observation?subject=B"),
    ("GET", "/fhir/Observation?subject=Patient/B"),
    ("GET", "/fhir/Observation?patient=Patient/B"),
    ("GET", "/fhir/Observation?subject:Patient=B"),
    ("GET", "/fhir/Observation?subject.name=Bravo"),
    ("GET", "/fhir/Patient?_id=B"),
    ("GET", "/fhir/Patient?_id=A,B"),
    ("GET", "/fhir/Encounter?subject=B"),
    ("GET", "/fhir/Observation/_history"),
    ("GET", "/fhir/_history"),
    ("PUT", "/fhir/Observation/obs-B"),
    ("DELETE", "/fhir/Observation/obs-B"),
    ("PATCH", "/fhir/Observation/obs-B"),
]


@pytest.mark.parametrize(("method", "path"), CROSS_PATIENT)
def test_patient_a_never_reaches_patient_b(secured: Secured, method: str, path: str) -> None:
    body = observation("A", "obs-B") if method == "PUT" else None
    headers = secured.auth("patient-a", **FHIR)
    if method == "PATCH":
        headers["Content-Type"] = "application/json-patch+json"
        response = secured.client.request(method, path, headers=headers, content=b"[]")
    else:
        response = secured.client.request(method, path, headers=headers, json=body)
    assert response.status_code in (403, 404), response.text
    for leak in LEAKS:
        assert leak not in response.text
    # And B's record is untouched.
    assert secured.client.get("/fhir/Observation/obs-B", headers=secured.auth("clinician")).json()[
        "subject"
    ] == {"reference": "Patient/B"}


def test_patient_a_sees_own_compartment(secured: Secured) -> None:
    auth = secured.auth("patient-a")
    assert secured.client.get("/fhir/Patient/A", headers=auth).status_code == 200
    assert secured.client.get("/fhir/Observation/obs-A", headers=auth).status_code == 200
    # A's own restricted record is visible to A (the label protects it from staff).
    assert secured.client.get("/fhir/Observation/obs-secret", headers=auth).status_code == 200
    found = secured.client.get("/fhir/Observation", headers=auth).json()
    ids = sorted(e["resource"]["id"] for e in found["entry"])
    assert ids == ["obs-A", "obs-secret"]
    assert found["total"] == 2
    everything = secured.client.get("/fhir/Patient/A/$everything", headers=auth)
    assert everything.status_code == 200
    assert "Bravo" not in everything.text and "obs-A" in everything.text


@pytest.mark.parametrize(
    "query",
    [
        "/fhir/Patient?_revinclude=Observation:subject",
        "/fhir/Observation?_include=Observation:subject",
        "/fhir/Encounter?_include=Encounter:subject&_revinclude=Observation:encounter",
        "/fhir/Observation?_include:iterate=Observation:subject&_revinclude:iterate=Encounter:subject",
    ],
)
def test_includes_never_pull_in_patient_b(secured: Secured, query: str) -> None:
    response = secured.client.get(query, headers=secured.auth("patient-a"))
    assert response.status_code == 200
    for leak in LEAKS:
        assert leak not in response.text
    refs = {e["fullUrl"].split("/fhir/")[1] for e in response.json().get("entry", [])}
    assert refs and all(ref in {"Patient/A", "Observation/obs-A", "Observation/obs-secret", "Encounter/enc-A"}
                        for ref in refs)  # fmt: skip


def test_batch_with_one_forbidden_entry_fails_whole(secured: Secured) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": observation("A", "new-a"), "request": {"method": "PUT", "url": "Observation/new-a"}},
            {"request": {"method": "GET", "url": "Observation/obs-B"}},
        ],
    }
    response = secured.client.post("/fhir", json=bundle, headers=secured.auth("patient-a", **FHIR))
    assert response.status_code in (403, 404)
    assert "Bravo" not in response.text
    # Nothing was written: the allowed first entry did not happen either.
    assert secured.client.get("/fhir/Observation/new-a", headers=secured.auth("clinician")).status_code == 404


def test_patient_cannot_write_into_another_compartment(secured: Secured) -> None:
    auth = secured.auth("patient-a", **FHIR)
    created = secured.client.post("/fhir/Observation", json=observation("B", "x"), headers=auth)
    assert created.status_code == 403
    # Directory data (Practitioner) is readable; other types are not.
    assert secured.client.get("/fhir/Practitioner/doc", headers=auth).status_code == 200
    assert secured.client.get("/fhir/Medication", headers=auth).status_code == 403


def test_restricted_record_needs_break_glass(secured: Secured) -> None:
    auth = secured.auth("clinician")
    assert secured.client.get("/fhir/Observation/obs-secret", headers=auth).status_code == 403
    listed = secured.client.get("/fhir/Observation?subject=A", headers=auth).json()
    assert [e["resource"]["id"] for e in listed["entry"]] == ["obs-A"]
    # No reason, no glass.
    refused = secured.client.post("/auth/break-glass", data={"reason": ""}, headers=auth)
    assert refused.status_code == 400
    assert (
        secured.client.post(
            "/auth/break-glass", data={"reason": "x" * 20}, headers=secured.auth("analyst")
        ).status_code
        == 403
    )
    glass = secured.client.post(
        "/auth/break-glass", data={"reason": "unconscious patient in the emergency room"}, headers=auth
    )
    assert glass.status_code == 200
    token = glass.json()
    assert token["expires_in"] <= 1800
    opened = {"Authorization": f"Bearer {token['access_token']}"}
    assert secured.client.get("/fhir/Observation/obs-secret", headers=opened).status_code == 200
    # Read only, and flagged in the audit trail.
    assert secured.client.delete("/fhir/Observation/obs-secret", headers=opened).status_code == 403
    events = secured.client.get(
        "/fhir/AuditEvent?entity=Observation/obs-secret", headers=secured.auth("admin")
    ).json()
    flagged = [e["resource"] for e in events["entry"] if e["resource"].get("purposeOfEvent")]
    assert flagged and flagged[0]["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    issued = secured.client.get(
        "/fhir/AuditEvent?agent=user/clinician&action=E", headers=secured.auth("admin")
    ).json()
    assert any("emergency room" in str(e["resource"]) for e in issued["entry"])


def test_analyst_gets_aggregates_only(secured: Secured) -> None:
    auth = secured.auth("analyst")
    assert secured.client.get("/fhir/Patient/A", headers=auth).status_code == 403
    assert secured.client.get("/fhir/Observation", headers=auth).status_code == 403
    counted = secured.client.get("/fhir/Observation?_summary=count", headers=auth)
    assert counted.status_code == 200
    assert counted.json()["total"] == 3 and "entry" not in counted.json()
    assert (
        secured.client.get(
            "/fhir/Patient?_summary=count&_revinclude=Observation:subject", headers=auth
        ).status_code
        == 403
    )
    assert secured.client.get("/fhir/Patient/A/$everything", headers=auth).status_code == 403
