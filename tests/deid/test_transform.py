"""The Safe Harbor walk over hand-made resources: one test per kind of identifier."""

from __future__ import annotations

import base64
import json
from datetime import date, timedelta
from typing import Any

import pytest

from medfusion.deid import (
    Deidentifier,
    PatientFacts,
    Pseudonymizer,
    TextDetector,
    k_anonymize,
    patient_of,
    shift_date,
    zip3,
)

KEY = b"0123456789abcdef0123456789abcdef"


def deid(
    resource: dict[str, Any], *, shift: bool = False, facts: dict[str, PatientFacts] | None = None
) -> Any:
    d = Deidentifier(
        pseudonymizer=Pseudonymizer(KEY),
        detector=TextDetector(names=["Ramona", "Quist"], places=["12 Birch Lane", "Springfield"]),
        patients=facts or {},
        date_shift=shift,
    )
    return d.transform(resource)


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"versionId": "3", "lastUpdated": "2024-05-06T07:08:09Z", "profile": ["http://x/p"]},
    "text": {"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'>Ramona Quist</div>"},
    "extension": [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
            "valueString": "Elvira Z",
        },
        {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"},
        {
            "url": "http://hl7.org/fhir/StructureDefinition/geolocation",
            "extension": [{"url": "latitude", "valueDecimal": 42.1}],
        },
    ],
    "identifier": [
        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-12-3456"},
        {"type": {"text": "MRN"}, "value": "MRN-7766554"},
    ],
    "name": [{"family": "Quist", "given": ["Ramona"], "prefix": ["Ms."]}],
    "telecom": [{"system": "phone", "value": "555-123-4567"}, {"system": "email", "value": "rq@example.org"}],
    "gender": "female",
    "birthDate": "1961-03-14",
    "address": [
        {
            "line": ["12 Birch Lane"],
            "city": "Springfield",
            "state": "MA",
            "postalCode": "01103",
            "country": "US",
        }
    ],
    "photo": [{"contentType": "image/jpeg", "data": base64.b64encode(b"\xff\xd8face").decode()}],
    "contact": [{"name": {"family": "Quist", "given": ["Otto"]}, "telecom": [{"value": "555-000-1111"}]}],
}


def test_names_contacts_and_identifiers_are_removed() -> None:
    out = deid(PATIENT)
    text = json.dumps(out)
    for original in (
        "Ramona",
        "Quist",
        "Otto",
        "555-123-4567",
        "rq@example.org",
        "999-12-3456",
        "7766554",
        "555-000-1111",
        "Elvira",
        "12 Birch",
        "Springfield",
        "01103",
        "face",
    ):
        assert original not in text, original
    assert "name" not in out and "telecom" not in out and "identifier" not in out
    assert "text" not in out  # narrative
    assert out["contact"] == [] if "contact" in out else True


def test_address_keeps_state_and_zip3() -> None:
    assert deid(PATIENT)["address"] == [{"state": "MA", "country": "US", "postalCode": "011"}]


@pytest.mark.parametrize(
    ("code", "country", "expected"),
    [
        ("02118", "US", "021"),
        ("03601", "US", "000"),
        ("89301-1234", None, "000"),
        ("K1A 0B1", "CA", None),
        ("1234", "US", None),
    ],
)
def test_zip3(code: str, country: str | None, expected: str | None) -> None:
    assert zip3(code, country) == expected


def test_restricted_zip3_becomes_000_in_resources() -> None:
    patient = {**PATIENT, "address": [{"state": "NH", "postalCode": "03601"}]}
    assert deid(patient)["address"] == [{"state": "NH", "postalCode": "000"}]


def test_dates_keep_only_the_year_and_extensions_are_allow_listed() -> None:
    out = deid(PATIENT)
    assert out["birthDate"] == "1961"
    assert out["meta"] == {"profile": ["http://x/p"]}
    assert [e["url"] for e in out["extension"]] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
    ]
    assert "photo" not in out or all("data" not in p for p in out["photo"])


def test_ages_over_89_collapse_to_90() -> None:
    facts = {"p1": PatientFacts(age=97, anchor_year=2026)}
    assert deid(PATIENT, facts=facts)["birthDate"] == "1936"
    assert deid(PATIENT, facts=facts, shift=True)["birthDate"] == "1936"
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "onsetAge": {"value": 93, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"},
        "abatementAge": {"value": 40, "code": "a"},
    }
    out = deid(condition, facts=facts)
    assert out["onsetAge"]["value"] == 90 and out["onsetAge"]["comparator"] == ">="
    assert out["abatementAge"]["value"] == 40


def test_references_are_pseudonymous_and_consistent() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/p1", "display": "Ramona Quist"},
        "performer": [{"reference": "Practitioner/dr9", "identifier": {"value": "NPI 1234567893"}}],
    }
    out = deid(observation)
    patient = deid(PATIENT)
    assert out["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert out["performer"] == [
        {"reference": f"Practitioner/{Pseudonymizer(KEY).resource_id('Practitioner', 'dr9')}"}
    ]
    assert patient["id"] != "p1" and len(patient["id"]) == 32
    assert Pseudonymizer(b"another key, 16+ bytes").resource_id("Patient", "p1") != patient["id"]
    assert patient_of(observation) == "p1"


def test_free_text_is_scrubbed_and_attachments_handled() -> None:
    note = "Ramona Quist called from 555-123-4567 on 03/02/2024 about MRN 7766554."
    document = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "subject": {"reference": "Patient/p1"},
        "description": "Letter to Ramona",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "data": base64.b64encode(note.encode()).decode(),
                    "url": "https://files.example.org/d1",
                    "title": "Note for Quist",
                }
            },
            {"attachment": {"contentType": "application/pdf", "data": base64.b64encode(b"%PDF").decode()}},
        ],
    }
    out = deid(document)
    scrubbed = base64.b64decode(out["content"][0]["attachment"]["data"]).decode()
    assert scrubbed == "[NAME] called from [PHONE] on [DATE] about [MRN]."
    assert "url" not in out["content"][0]["attachment"]
    assert out["content"][0]["attachment"]["title"] == "Note for [NAME]"
    assert out["content"][1]["attachment"] == {"contentType": "application/pdf"}
    assert out["description"] == "Letter to [NAME]"
    observation = {
        "resourceType": "Observation",
        "id": "o",
        "status": "final",
        "code": {"text": "note"},
        "valueString": "wife Ramona at 12 Birch Lane",
        "note": [{"text": "call Quist", "time": "2024-01-02"}],
    }
    out = deid(observation)
    assert out["valueString"] == "wife [NAME] at [ADDRESS]"
    assert out["note"] == [{"text": "call [NAME]", "time": "2024"}]


def test_device_vehicle_location_and_other_unique_numbers() -> None:
    device = {
        "resourceType": "Device",
        "id": "dev",
        "serialNumber": "SN-998877",
        "lotNumber": "LOT42",
        "udiCarrier": [{"deviceIdentifier": "00844588003288", "carrierHRF": "(01)00844588003288"}],
        "url": "http://device.local/123",
        "patient": {"reference": "Patient/p1"},
    }
    text = json.dumps(deid(device))
    for original in ("998877", "LOT42", "00844588003288", "device.local"):
        assert original not in text
    location = {"resourceType": "Location", "id": "l", "position": {"longitude": -71.1, "latitude": 42.3}}
    assert "position" not in deid(location)
    study = {
        "resourceType": "ImagingStudy",
        "id": "i",
        "status": "available",
        "subject": {"reference": "Patient/p1"},
        "series": [{"uid": "1.2.840.99", "modality": {"code": "CT"}}],
    }
    uid = deid(study)["series"][0]["uid"]
    assert uid.startswith("2.25.") and "1.2.840.99" not in uid


def test_date_shift_is_per_patient_and_keeps_intervals() -> None:
    encounter = {
        "resourceType": "Encounter",
        "id": "e",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2020-02-28T10:00:00Z", "end": "2020-03-01T11:30:00+02:00"},
    }
    out = deid(encounter, shift=True)
    offset = Pseudonymizer(KEY).shift_days("p1")
    assert out["period"]["start"] == shift_date("2020-02-28T10:00:00Z", offset)
    assert deid(PATIENT, shift=True)["birthDate"] == (date(1961, 3, 14) + timedelta(days=offset)).isoformat()
    assert offset != 0 and abs(offset) <= 365
    assert Pseudonymizer(KEY).shift_days("p2") != offset or Pseudonymizer(KEY).shift_days("p3") != offset


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("2020-02-28", 2, "2020-03-01"),
        ("2020-02", 30, "2020-03"),
        ("2020", -200, "2019"),
        ("2020-12-31T23:00:00Z", 1, "2021-01-01T23:00:00Z"),
        ("2020-01-01T00:00:00.123+05:00", -1, "2019-12-31T00:00:00.123000+05:00"),
    ],
)
def test_shift_date_keeps_precision(value: str, days: int, expected: str) -> None:
    assert shift_date(value, days) == expected


def test_k_anonymize_suppresses_small_classes() -> None:
    records = {f"a{i}": ("40-49", "female", "021") for i in range(5)}
    records |= {f"b{i}": ("90+", "male", "000") for i in range(2)}
    report = k_anonymize(records, 5)
    assert report.suppressed_ids == {"b0", "b1"}
    assert report.k_achieved == 5 and report.suppressed == 2 and report.records == 7
    assert k_anonymize(records, 1).suppressed == 0 and k_anonymize(records, 1).k_achieved == 2
    assert k_anonymize(records, 6).k_achieved == 0
    with pytest.raises(ValueError, match="at least 1"):
        k_anonymize(records, 0)
