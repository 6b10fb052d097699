"""The parameter registry and index extraction."""

from __future__ import annotations

from typing import Any

import pytest

from medfusion.fhir.search import extract_index, search_param_types
from medfusion.fhir.search._extract import OPEN_HIGH, OPEN_LOW

REQUIRED = {
    "Patient": ["identifier", "name", "family", "given", "birthdate", "gender", "address-postalcode"],
    "Encounter": ["patient", "subject", "date", "class", "type", "status"],
    "Observation": [
        "patient",
        "subject",
        "code",
        "category",
        "date",
        "value-quantity",
        "status",
        "encounter",
    ],
    "Condition": ["patient", "subject", "code", "clinical-status", "onset-date"],
    "Practitioner": ["identifier", "name", "family", "given"],
    "PractitionerRole": ["practitioner", "organization", "role", "identifier"],
    "Organization": ["identifier", "name", "type"],
    "Location": ["identifier", "name", "address-postalcode", "organization"],
    "Procedure": ["patient", "code", "date", "status", "encounter"],
    "MedicationRequest": ["patient", "code", "authoredon", "status", "intent", "encounter", "requester"],
    "Immunization": ["patient", "date", "status", "vaccine-code"],
    "AllergyIntolerance": ["patient", "code", "clinical-status", "date"],
    "DiagnosticReport": ["patient", "code", "date", "status", "category", "encounter", "result"],
    "DocumentReference": ["patient", "type", "date", "status"],
    "ImagingStudy": ["patient", "started", "status", "modality"],
    "CarePlan": ["patient", "date", "status", "category"],
    "Claim": ["patient", "created", "status", "use"],
    "ExplanationOfBenefit": ["patient", "created", "status"],
    "Schedule": ["actor", "date", "active"],
    "Slot": ["schedule", "start", "status"],
    "Appointment": ["patient", "practitioner", "date", "status", "actor"],
}


@pytest.mark.parametrize("resource_type", sorted(REQUIRED))
def test_required_parameters_are_registered(resource_type: str) -> None:
    types = search_param_types(resource_type)
    assert {"_id": "token", "_lastUpdated": "date"}.items() <= types.items()
    assert set(REQUIRED[resource_type]) <= set(types)
    assert set(types.values()) <= {"string", "token", "date", "quantity", "reference", "number", "uri"}


def test_unregistered_type_has_only_common_parameters() -> None:
    assert search_param_types("Group") == {"_id": "token", "_lastUpdated": "date"}
    assert extract_index("Group", {"resourceType": "Group"}).tokens == []


def test_strings_cover_name_parts_normalized_and_truncated() -> None:
    patient: dict[str, Any] = {
        "name": [{"family": "Ñúñez", "given": ["José"], "prefix": ["Dr."], "text": "x" * 300}],
        "address": [{"line": ["1 Main St"], "city": "Zürich", "postalCode": "8000"}],
    }
    strings = extract_index("Patient", patient).strings
    assert ("family", "nunez", "Ñúñez") in strings
    assert ("name", "jose", "José") in strings
    assert ("name", "dr.", "Dr.") in strings
    assert ("address-city", "zurich", "Zürich") in strings
    assert ("address", "1 main st", "1 Main St") in strings
    long = [s for s in strings if s[2].startswith("xxx")]
    assert long and all(len(s[1]) == 255 and len(s[2]) == 255 for s in long)


def test_tokens_of_each_datatype() -> None:
    patient: dict[str, Any] = {
        "identifier": [{"system": "urn:mrn", "value": "42"}, {"value": "nosys"}],
        "gender": "female",
        "active": False,
        "telecom": [{"system": "phone", "value": "555"}, {"system": "email", "value": "a@b.c"}],
    }
    tokens = extract_index("Patient", patient).tokens
    assert ("identifier", "urn:mrn", "42") in tokens
    assert ("identifier", None, "nosys") in tokens
    assert ("gender", None, "female") in tokens
    assert ("active", None, "false") in tokens
    assert ("phone", "phone", "555") in tokens and ("phone", "email", "a@b.c") not in tokens
    assert ("email", "email", "a@b.c") in tokens
    assert ("deceased", None, "false") in tokens
    observation = {"code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}, {"display": "x"}]}}
    assert extract_index("Observation", observation).tokens == [("code", "http://loinc.org", "1-8")]
    encounter = {"class": {"system": "http://act", "code": "AMB"}}
    assert extract_index("Encounter", encounter).tokens == [("class", "http://act", "AMB")]


def test_dates_are_inclusive_ranges() -> None:
    assert extract_index("Patient", {"birthDate": "2020"}).dates == [
        ("birthdate", 1577836800.0, 1609459200.0 - 1e-6)
    ]
    (day,) = extract_index("Patient", {"birthDate": "2020-02-29"}).dates
    assert day[1:] == (1582934400.0, 1583020800.0 - 1e-6)
    (instant,) = extract_index("Slot", {"start": "2020-01-01T10:00:00.250+01:00"}).dates
    assert instant[1] == 1577869200.25
    assert instant[2] == pytest.approx(1577869200.251 - 1e-6)
    (period,) = extract_index("Encounter", {"period": {"start": "2020-01-01"}}).dates
    assert period[1:] == (1577836800.0, OPEN_HIGH)
    (ended,) = extract_index("Encounter", {"period": {"end": "2020-01-01"}}).dates
    assert ended[1:] == (OPEN_LOW, 1577923200.0 - 1e-6)
    assert extract_index("Patient", {"birthDate": "not a date"}).dates == []


def test_quantities_keep_code_and_unit() -> None:
    observation = {"valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://ucum", "code": "mm[Hg]"}}
    assert extract_index("Observation", observation).quantities == [
        ("value-quantity", 120.0, "http://ucum", "mm[Hg]"),
        ("value-quantity", 120.0, None, "mmHg"),
    ]
    assert extract_index("Observation", {"valueQuantity": {"value": 1.5, "unit": "g"}}).quantities == [
        ("value-quantity", 1.5, None, "g")
    ]
    assert extract_index("Observation", {"valueQuantity": {"value": True}}).quantities == []


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/1", [("patient", "Patient", "1"), ("subject", "Patient", "1")]),
        ("Patient/1/_history/2", [("patient", "Patient", "1"), ("subject", "Patient", "1")]),
        ("https://h/fhir/Patient/1", [("patient", "Patient", "1"), ("subject", "Patient", "1")]),
        ("Group/g", [("subject", "Group", "g")]),
        ("#c1", []),
        ("urn:uuid:0f2f8a6e-0000-0000-0000-000000000000", []),
    ],
)
def test_reference_forms(reference: str, expected: list[tuple[str, str, str]]) -> None:
    assert extract_index("Observation", {"subject": {"reference": reference}}).references == expected


def test_restricted_reference_parameters() -> None:
    appointment = {
        "participant": [
            {"actor": {"reference": "Patient/p"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/d"}, "status": "accepted"},
        ]
    }
    entries = extract_index("Appointment", appointment)
    assert ("patient", "Patient", "p") in entries.references
    assert ("practitioner", "Practitioner", "d") in entries.references
    assert ("practitioner", "Patient", "p") not in entries.references
    assert ("part-status", None, "accepted") in entries.tokens
    assert entries.tokens.count(("part-status", None, "accepted")) == 1  # deduplicated
