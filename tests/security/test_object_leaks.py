"""Ways past the object-level checks that the first matrix did not try.

Conditional creates and updates (their search finds a record the caller may not see),
batch entries (reads of restricted records, conditional creates and updates), includes and
``$everything`` for a token whose scopes name fewer types, and a patient writing a record
that also names another patient.
"""

from __future__ import annotations

import pytest

from .conftest import FHIR, Secured, observation

pytestmark = pytest.mark.auth

LEAKS = ("Bravo", "obs-B", "enc-B")


def _bundle(*entries: dict[str, object], kind: str = "batch") -> dict[str, object]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _appointment(patient: str, id: str | None = None) -> dict[str, object]:
    appointment: dict[str, object] = {
        "resourceType": "Appointment",
        "status": "proposed",
        "description": f"visit of {patient}",
        "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}],
    }
    if id:
        appointment["id"] = id
    return appointment


def test_conditional_create_never_hands_back_another_patients_record(secured: Secured) -> None:
    # Appointments are the one type a patient may create.
    made = secured.client.put(
        "/fhir/Appointment/appt-B",
        json=_appointment("B", "appt-B"),
        headers=secured.auth("clinician", **FHIR),
    )
    assert made.status_code == 201
    for criteria in ("status=proposed", "_id=appt-B", "Appointment?_id=appt-B"):
        response = secured.client.post(
            "/fhir/Appointment",
            json=_appointment("A"),
            headers=secured.auth("patient-a", **FHIR, **{"If-None-Exist": criteria}),
        )
        assert response.status_code in (200, 201), (criteria, response.text)
        assert "appt-B" not in response.text and "visit of B" not in response.text, criteria
        assert response.json()["participant"][0]["actor"]["reference"] == "Patient/A"
    # Naming B in the criteria is refused outright, as in a search.
    named = secured.client.post(
        "/fhir/Appointment",
        json=_appointment("A"),
        headers=secured.auth("patient-a", **FHIR, **{"If-None-Exist": "patient=Patient/B"}),
    )
    assert named.status_code == 403


def test_conditional_create_and_update_respect_the_restricted_label(secured: Secured) -> None:
    auth = secured.auth("clinician", **FHIR)
    found = secured.client.post(
        "/fhir/Observation",
        json=observation("A", "ignored"),
        headers={**auth, "If-None-Exist": "_id=obs-secret"},
    )
    assert found.status_code == 403 and "obs-secret" not in found.text
    overwrite = secured.client.put(
        "/fhir/Observation?_id=obs-secret", json=observation("A", "obs-secret"), headers=auth
    )
    assert overwrite.status_code == 403
    glass = secured.client.post(
        "/auth/break-glass",
        data={"reason": "unconscious patient in the emergency room"},
        headers=secured.auth("clinician"),
    ).json()
    opened = {"Authorization": f"Bearer {glass['access_token']}"}
    kept = secured.client.get("/fhir/Observation/obs-secret", headers=opened).json()
    assert kept["meta"]["versionId"] == "1"  # the refused update wrote nothing


def test_batch_cannot_read_a_restricted_record_without_break_glass(secured: Secured) -> None:
    auth = secured.auth("clinician", **FHIR)
    for kind in ("batch", "transaction"):
        bundle = _bundle({"request": {"method": "GET", "url": "Observation/obs-secret"}}, kind=kind)
        response = secured.client.post("/fhir", json=bundle, headers=auth)
        assert response.status_code == 403, (kind, response.text)
        assert "valueQuantity" not in response.text


def test_batch_conditional_entries_respect_the_restricted_label(secured: Secured) -> None:
    auth = secured.auth("clinician", **FHIR)
    create = {
        "resource": observation("A", "x"),
        "request": {"method": "POST", "url": "Observation", "ifNoneExist": "_id=obs-secret"},
    }
    batch = secured.client.post("/fhir", json=_bundle(create), headers=auth)
    assert batch.status_code == 200
    assert batch.json()["entry"][0]["response"]["status"] == "403"
    assert "obs-secret" not in batch.text and "valueQuantity" not in batch.text
    update = {"resource": observation("A", "obs-secret"),
              "request": {"method": "PUT", "url": "Observation?_id=obs-secret"}}  # fmt: skip
    transaction = secured.client.post("/fhir", json=_bundle(update, kind="transaction"), headers=auth)
    assert transaction.status_code == 403
    # A patient may not send conditional creates in a Bundle at all.
    patient = secured.client.post(
        "/fhir",
        json=_bundle({"resource": observation("A", "x"),
                      "request": {"method": "POST", "url": "Observation", "ifNoneExist": "_id=obs-B"}}),
        headers=secured.auth("patient-a", **FHIR),
    )  # fmt: skip
    assert patient.status_code == 403
    for leak in LEAKS:
        assert leak not in patient.text


@pytest.mark.parametrize(
    "query",
    [
        "/fhir/Patient?_revinclude=Observation:subject",
        "/fhir/Patient?_id=A&_revinclude=Encounter:subject",
        "/fhir/Patient/A/$everything",
    ],
)
def test_includes_and_everything_hold_to_the_tokens_types(secured: Secured, query: str) -> None:
    token = secured.mint("clinician", "user/Patient.rs")
    response = secured.client.get(query, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    types = {e["resource"]["resourceType"] for e in response.json().get("entry", [])}
    assert types == {"Patient"}
    # The same query with every type granted does return the other types.
    wide = secured.client.get(query, headers=secured.auth("clinician")).json()
    assert {e["resource"]["resourceType"] for e in wide["entry"]} > {"Patient"}


def test_a_patient_writes_nothing_that_names_another_patient(secured: Secured) -> None:
    auth = secured.auth("patient-a", **FHIR)
    both = {
        "resourceType": "Appointment",
        "status": "proposed",
        "participant": [
            {"actor": {"reference": "Patient/A"}, "status": "accepted"},
            {"actor": {"reference": "Patient/B"}, "status": "needs-action"},
        ],
    }
    assert secured.client.post("/fhir/Appointment", json=both, headers=auth).status_code == 403
    assert secured.client.post("/fhir/Appointment/$hold", json=both, headers=auth).status_code == 403
    batch = _bundle({"resource": both, "request": {"method": "POST", "url": "Appointment"}})
    assert secured.client.post("/fhir", json=batch, headers=auth).status_code == 403
    found = secured.client.get("/fhir/Appointment", headers=secured.auth("clinician")).json()
    assert found["total"] == 0
    # Their own appointment alone is fine.
    own = {**both, "participant": both["participant"][:1]}
    assert secured.client.post("/fhir/Appointment", json=own, headers=auth).status_code == 201


def test_a_patients_404_does_not_tell_existing_deleted_or_absent_apart(secured: Secured) -> None:
    gone = secured.client.put(
        "/fhir/Observation/obs-gone",
        json=observation("B", "obs-gone"),
        headers=secured.auth("clinician", **FHIR),
    )
    assert gone.status_code == 201
    assert (
        secured.client.delete("/fhir/Observation/obs-gone", headers=secured.auth("clinician")).status_code
        == 204
    )
    auth = secured.auth("patient-a")
    answers = [
        secured.client.get(path, headers=auth)
        for path in (
            "/fhir/Observation/obs-B",  # another patient's
            "/fhir/Observation/obs-gone",  # another patient's, deleted
            "/fhir/Observation/obs-Z",  # absent
            "/fhir/Observation/obs-B/_history/1",
            "/fhir/Observation/obs-Z/_history/1",
            "/fhir/Observation/obs-gone/_history",
            "/fhir/Observation/obs-Z/_history",
        )
    ]
    assert {r.status_code for r in answers} == {404}
    assert len({r.json()["issue"][0]["diagnostics"] for r in answers}) == 1
