"""Small, clean FHIR resources for the store-check tests; each test damages a copy."""

from __future__ import annotations

import copy
from typing import Any

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


def patient(id: str = "p1", gender: str = "male", birth: str = "1980-05-01", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id, "gender": gender, "birthDate": birth, **extra}


def observation(
    id: str,
    code: str,
    value: float | None,
    unit: str,
    *,
    subject: str = "Patient/p1",
    when: str = "2020-03-04T10:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        **extra,
    }
    if value is not None:
        resource["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    return resource


def blood_pressure(id: str, systolic: float, diastolic: float) -> dict[str, Any]:
    def component(code: str, value: float) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
        }

    return {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2020-03-04T10:00:00Z",
        "component": [component("8480-6", systolic), component("8462-4", diastolic)],
    }


def condition(
    id: str, system: str, code: str, *, subject: str = "Patient/p1", onset: str = "2019-01-01"
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": id,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": subject},
        "onsetDateTime": onset,
    }


def encounter(
    id: str = "e1", start: str = "2020-03-04T09:00:00Z", end: str = "2020-03-04T11:00:00Z"
) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": id,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": start, "end": end},
    }


def good_store() -> list[dict[str, Any]]:
    """One patient with plausible vitals and labs in several units, an encounter, a condition."""
    return copy.deepcopy(
        [
            patient(),
            encounter(),
            observation("hr", "8867-4", 72, "/min"),
            observation("temp-f", "8310-5", 98.6, "[degF]"),
            observation("weight-lb", "29463-7", 176.0, "[lb_av]"),
            observation("height", "8302-2", 180.0, "cm"),
            observation("bmi", "39156-5", 24.6, "kg/m2"),
            observation("glucose-mmol", "2345-7", 5.5, "mmol/L"),
            observation("glucose-mg", "2339-0", 99.0, "mg/dL"),
            observation("hba1c", "4548-4", 5.4, "%"),
            observation("creatinine-umol", "2160-0", 80.0, "umol/L"),
            observation("potassium", "2823-3", 4.1, "meq/L"),
            observation("sodium", "2951-2", 140.0, "mmol/L"),
            observation("ph", "2744-1", 7.38, "[pH]"),
            observation("lactate", "2524-7", 1.2, "mmol/L"),
            observation("spo2", "59408-5", 97.0, "%"),
            observation("rr", "9279-1", 16.0, "/min"),
            blood_pressure("bp", 122.0, 78.0),
            condition("diabetes", SNOMED, "44054006"),
            condition("icd", "http://hl7.org/fhir/sid/icd-10-cm", "E11.9", onset="2019-06-01"),
        ]
    )
