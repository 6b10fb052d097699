"""Statistical properties of a generated cohort: the signal models are meant to learn.

The margins are wide on purpose: the assertions hold for any seed, not just this one.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime

import pytest

from medfusion.synth import REFERENCE, generate_bundle

HYPERTENSION = "38341003"
DIABETES = "44054006"
HEART_FAILURE = "84114007"
CKD = "709044004"
LISINOPRIL = "314076"


@dataclass
class Row:
    age: float
    conditions: set[str]
    medications: set[str]
    died: bool
    admitted: bool
    hba1c: list[float]
    egfr: list[float]
    systolic: list[float]


def _summarise(bundle: dict[str, object]) -> Row:
    resources = [e["resource"] for e in bundle["entry"]]  # type: ignore[attr-defined]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    end = (
        datetime.fromisoformat(patient["deceasedDateTime"]).date()
        if "deceasedDateTime" in patient
        else REFERENCE.date()
    )
    values: dict[str, list[float]] = {"4548-4": [], "33914-3": [], "8480-6": []}
    for r in resources:
        if r["resourceType"] != "Observation":
            continue
        code = r["code"]["coding"][0]["code"]
        if code in values:
            values[code].append(r["valueQuantity"]["value"])
        for component in r.get("component", []):
            if component["code"]["coding"][0]["code"] == "8480-6":
                values["8480-6"].append(component["valueQuantity"]["value"])
    return Row(
        age=(end - date.fromisoformat(patient["birthDate"])).days / 365.25,
        conditions={r["code"]["coding"][0]["code"] for r in resources if r["resourceType"] == "Condition"},
        medications={
            r["medicationCodeableConcept"]["coding"][0]["code"]
            for r in resources
            if r["resourceType"] == "MedicationRequest"
        },
        died="deceasedDateTime" in patient,
        admitted=any(r["resourceType"] == "Encounter" and r["class"]["code"] == "IMP" for r in resources),
        hba1c=values["4548-4"],
        egfr=values["33914-3"],
        systolic=values["8480-6"],
    )


@pytest.fixture(scope="module")
def cohort() -> list[Row]:
    return [_summarise(generate_bundle(index, 2024)) for index in range(2000)]


def _rate(rows: list[Row], flag: str) -> float:
    assert rows, "empty group"
    return sum(bool(getattr(r, flag)) for r in rows) / len(rows)


def test_hypertension_prevalence_rises_with_age(cohort: list[Row]) -> None:
    young = [r for r in cohort if r.age < 40]
    old = [r for r in cohort if r.age >= 65]
    assert len(young) > 200 and len(old) > 200
    p_young = sum(HYPERTENSION in r.conditions for r in young) / len(young)
    p_old = sum(HYPERTENSION in r.conditions for r in old) / len(old)
    assert p_old > p_young + 0.25


def test_every_condition_is_more_common_in_the_old(cohort: list[Row]) -> None:
    young = [r for r in cohort if r.age < 40]
    old = [r for r in cohort if r.age >= 65]
    for code in (HYPERTENSION, DIABETES, HEART_FAILURE, CKD, "13645005"):
        assert sum(code in r.conditions for r in old) / len(old) > 2 * (
            sum(code in r.conditions for r in young) / len(young)
        )


def test_deaths_and_admissions_follow_risk(cohort: list[Row]) -> None:
    for code in (HEART_FAILURE, CKD):
        with_it = [r for r in cohort if code in r.conditions]
        without = [r for r in cohort if code not in r.conditions]
        assert _rate(with_it, "died") > 2 * _rate(without, "died")
        assert _rate(with_it, "admitted") > 1.5 * _rate(without, "admitted")
    # Some but not all patients die or are admitted: the outcome is learnable, not constant.
    assert 0.02 < _rate(cohort, "died") < 0.4
    assert 0.05 < _rate(cohort, "admitted") < 0.6


def test_lab_trajectories_respond_to_conditions(cohort: list[Row]) -> None:
    diabetic = [statistics.mean(r.hba1c) for r in cohort if DIABETES in r.conditions]
    other = [statistics.mean(r.hba1c) for r in cohort if DIABETES not in r.conditions]
    assert statistics.mean(diabetic) > statistics.mean(other) + 1.0
    ckd = [min(r.egfr) for r in cohort if CKD in r.conditions]
    no_ckd = [min(r.egfr) for r in cohort if CKD not in r.conditions]
    assert statistics.mean(ckd) < statistics.mean(no_ckd) - 15


def test_lisinopril_lowers_blood_pressure(cohort: list[Row]) -> None:
    # Among treated hypertensives, the last reading (on treatment) is below the first one
    # (at diagnosis or before) on average, although patients only get older.
    drops = [
        r.systolic[0] - r.systolic[-1] for r in cohort if LISINOPRIL in r.medications and len(r.systolic) >= 4
    ]
    assert len(drops) > 50
    assert statistics.mean(drops) > 1.5
