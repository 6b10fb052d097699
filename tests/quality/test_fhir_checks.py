"""Each store check flags a crafted bad resource and passes the good ones."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from medfusion.quality import (
    CATALOGUE,
    QualityConfig,
    StoreChecker,
    StoreReport,
    check_resource,
    check_resources,
    load_config,
)
from tests.quality.fhir_cases import (
    SNOMED,
    blood_pressure,
    condition,
    encounter,
    good_store,
    observation,
    patient,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LATER = "2021-02-02T08:00:00Z"  # added Observations are timed apart from the good ones, so
# that a second value for the same code and time is not also a conflicting duplicate
STORE_CHECKS = {c.id for c in CATALOGUE.values() if c.scope == "store"}


def _run(resources: list[dict[str, Any]], config: QualityConfig | None = None) -> StoreReport:
    checker = StoreChecker(config, now=NOW)
    for resource in resources:
        checker.add(resource)
    return checker.finish()


def _flagged(
    resources: list[dict[str, Any]], config: QualityConfig | None = None
) -> set[tuple[str, str, str | None]]:
    return {(f.check, f.row, f.column) for f in _run(resources, config).findings}


def test_the_good_store_passes_every_check() -> None:
    report = _run(good_store())
    assert report.findings == () and report.passed
    assert {c.name for c in report.checks} == STORE_CHECKS
    # Every check saw something, so "no findings" is not "nothing looked at".
    assert all(c.checked > 0 for c in report.checks), report.checks


def test_json_has_exactly_the_issue_shape() -> None:
    bad = [*good_store(), observation("hr-bad", "8867-4", 400, "/min", when=LATER)]
    document = _run(bad).to_dict()
    assert set(document) == {"checks", "findings"}
    assert all(set(c) == {"name", "category", "severity", "failed", "checked"} for c in document["checks"])
    assert document["findings"] == [
        {
            "check": "observation_range",
            "severity": "error",
            "row": "Observation/hr-bad",
            "column": "Observation.valueQuantity.value",
            "value": 400,
        }
    ]


def test_fhir_structure_flags_a_wrong_value_type_and_unknown_element() -> None:
    wrong_type = observation("typed", "8867-4", 70, "/min", when=LATER, status=7)
    unknown = observation("extra", "8867-4", 70, "/min", when=LATER, colour="blue")
    found = _flagged([*good_store(), wrong_type, unknown])
    assert ("fhir_structure", "Observation/typed", "Observation.status") in found
    assert any(c == "fhir_structure" and r == "Observation/extra" for c, r, _ in found)


@pytest.mark.parametrize(
    ("system", "code"),
    [
        ("http://loinc.org", "8867-5"),  # wrong check digit
        ("http://loinc.org", "88674"),  # no dash
        (SNOMED, "44054007"),  # Verhoeff digit wrong
        (SNOMED, "44054016"),  # a description-id partition (01)
        (SNOMED, "044054006"),  # leading zero
        ("http://hl7.org/fhir/sid/icd-10-cm", "E11-9"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "11.9"),
        ("http://hl7.org/fhir/sid/icd-10", "E11.900"),
    ],
)
def test_code_format_flags_malformed_codes(system: str, code: str) -> None:
    bad = condition("bad-code", system, code)
    found = _flagged([*good_store(), bad])
    assert found == {("code_format", "Condition/bad-code", "Condition.code.coding[0].code")}


def test_code_format_ignores_systems_it_cannot_check() -> None:
    other = condition("local", "http://example.org/codes", "whatever-1")
    assert _flagged([*good_store(), other]) == set()


@pytest.mark.parametrize("unit", ["beats/minute", "mmHg", "kg/m^2", "mg/dl ", "{unclosed"])
def test_ucum_unit_flags_units_that_do_not_parse(unit: str) -> None:
    bad = observation("unit", "2093-3", 180, unit, when=LATER)
    report = _run([*good_store(), bad])
    found = {(f.check, f.column, f.value) for f in report.findings if f.check == "ucum_unit"}
    assert found == {("ucum_unit", "Observation.valueQuantity.code", unit)}


def test_reference_resolves_flags_missing_targets_and_contained_ids() -> None:
    dangling = observation("orphan", "8867-4", 70, "/min", when=LATER, subject="Patient/nobody")
    contained = observation(
        "contained", "8867-4", 70, "/min", performer=[{"reference": "#missing"}], contained=[]
    )
    contained["contained"] = [{"resourceType": "Practitioner", "id": "there"}]
    ok = observation("ok", "8867-4", 71, "/min", when=LATER, performer=[{"reference": "#there"}])
    ok["contained"] = [{"resourceType": "Practitioner", "id": "there"}]
    found = _flagged([*good_store(), dangling, contained, ok])
    assert ("reference_resolves", "Observation/orphan", "Observation.subject.reference") in found
    assert ("reference_resolves", "Observation/contained", "Observation.performer[0].reference") in found
    assert not any(r == "Observation/ok" for _, r, _ in found)


def test_element_missing_compares_each_element_with_its_threshold(tmp_path: Path) -> None:
    store = good_store()
    store.append(patient("p2", birth="1990-01-01"))
    del store[-1]["birthDate"]
    found = _flagged(store)
    # 1 of 2 patients (50 %) lacks a birth date: above the 5 % default.
    assert found == {("element_missing", "Patient/p2", "Patient.birthDate")}
    config = tmp_path / "q.toml"
    config.write_text('[elements]\n"Patient.birthDate" = 0.6\n')
    assert _flagged(store, load_config(config)) == set()
    config.write_text("[checks.element_missing]\nthreshold = 0.6\n")
    assert _flagged(store, load_config(config)) == set()


def test_element_missing_accepts_any_choice_type() -> None:
    store = good_store()
    period = observation("period", "8867-4", 70, "/min", when=LATER)
    period["effectivePeriod"] = {"start": period.pop("effectiveDateTime")}
    absent = observation("absent", "8867-4", None, "/min", when=LATER, dataAbsentReason={"text": "refused"})
    nothing = observation("nothing", "8867-4", None, "/min", when=LATER)
    found = _flagged([*store, period, absent, nothing], QualityConfig())
    missing = {(r, c) for check, r, c in found if check == "element_missing"}
    # 1 of 18 Observations without a value is 5.6 %: above the 5 % threshold.
    assert missing == {("Observation/nothing", "Observation.value[x]|component|dataAbsentReason|hasMember")}


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [
        ("8867-4", 400, "/min"),  # heart rate
        ("8310-5", 98.6, "Cel"),  # a Fahrenheit number filed as Celsius
        ("8310-5", 150.0, "[degF]"),  # 65.6 Cel after conversion
        ("29463-7", 1500.0, "[lb_av]"),  # 680 kg
        ("8302-2", 7.0, "[ft_i]"),  # 213 cm is fine; see the good case below
        ("39156-5", 250.0, "kg/m2"),
        ("2345-7", 5.5, "mg/dL"),  # mmol/L value under a mg/dL unit
        ("2345-7", 200.0, "mmol/L"),  # 3,600 mg/dL
        ("4548-4", 45.0, "%"),
        ("2160-0", 40.0, "mg/dL"),
        ("2823-3", 22.9, "mmol/L"),
        ("2951-2", 98.0, "mmol/L"),
        ("2744-1", 734.0, "[pH]"),  # the decimal point dropped
        ("2524-7", 45.0, "mmol/L"),
        ("59408-5", 33.0, "%"),
        ("9279-1", 98.0, "/min"),
        ("8867-4", 70.0, "kg"),  # a heart rate in kilograms cannot be read at all
    ],
)
def test_observation_range_after_unit_conversion(code: str, value: float, unit: str) -> None:
    bad = observation("bad", code, value, unit, when=LATER)
    found = _flagged([*good_store(), bad])
    if (code, unit) == ("8302-2", "[ft_i]"):
        assert found == set()  # 7 ft = 213 cm: plausible once converted
        return
    assert {(c, r) for c, r, _ in found} == {("observation_range", "Observation/bad")}


def test_observation_range_checks_components_and_respects_config(tmp_path: Path) -> None:
    found = _flagged([*good_store(), blood_pressure("bp-bad", 400.0, 80.0)])
    assert found == {
        ("observation_range", "Observation/bp-bad", "Observation.component[0].valueQuantity.value")
    }
    config = tmp_path / "q.toml"
    config.write_text("[ranges.heart_rate]\nhigh = 60\n")
    narrowed = _flagged(good_store(), load_config(config))
    assert narrowed == {("observation_range", "Observation/hr", "Observation.valueQuantity.value")}


def test_temporal_order() -> None:
    store = good_store()
    store[0]["deceasedDateTime"] = "2021-01-01T00:00:00Z"
    future = observation("future", "8867-4", 70, "/min", when="2031-01-01T00:00:00Z")
    before_birth = observation("early", "8867-4", 70, "/min", when="1970-01-01")
    after_death = observation("late", "8867-4", 70, "/min", when="2022-06-01T00:00:00Z")
    backwards = encounter("back", start="2020-03-04T11:00:00Z", end="2020-03-03T09:00:00Z")
    dead_before_born = patient("p3", birth="2000-01-01", deceasedDateTime="1999-01-01")
    found = _flagged([*store, future, before_birth, after_death, backwards, dead_before_born])
    temporal = {(r, c) for check, r, c in found if check == "temporal_order"}
    assert temporal == {
        ("Observation/future", "Observation.effectiveDateTime"),  # future, and after death
        ("Observation/early", "Observation.effectiveDateTime"),
        ("Observation/late", "Observation.effectiveDateTime"),
        ("Encounter/back", "Encounter.period.end"),
        ("Patient/p3", "Patient.deceasedDateTime"),
    }
    messages = {f.message for f in _run([*store, future]).findings}
    assert "date in the future" in messages


def test_records_that_rightly_follow_a_death_pass() -> None:
    store = good_store()
    store[0]["deceasedDateTime"] = "2020-03-04T10:30:00Z"  # died during the encounter
    certification = encounter("cert", start="2020-03-11T10:00:00Z", end="2020-03-11T10:15:00Z")
    certification["type"] = [{"coding": [{"system": SNOMED, "code": "308646001"}]}]
    cause = observation("cause", "69453-9", None, "", when="2020-03-11T10:00:00Z", valueString="stroke")
    claim = {
        "resourceType": "Claim",
        "id": "bill",
        "status": "active",
        "type": {"text": "institutional"},
        "use": "claim",
        "patient": {"reference": "Patient/p1"},
        "created": "2020-03-20",
        "provider": {"display": "hospital"},
        "priority": {"text": "normal"},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "private"}}],
    }
    assert _flagged([*store, certification, cause, claim]) == set()
    # ... but a visit a week after death is not paperwork.
    visit = encounter("visit", start="2020-03-11T10:00:00Z", end="2020-03-11T10:15:00Z")
    assert _flagged([*store, visit]) == {("temporal_order", "Encounter/visit", "Encounter.period.start")}


def test_sex_specific_codes() -> None:
    pregnant_man = condition("preg", SNOMED, "72892002")
    found = _flagged([*good_store(), pregnant_man])
    assert found == {("sex_specific", "Condition/preg", "Condition.code.coding[0].code")}
    woman = [patient("p1", gender="female"), *good_store()[1:], pregnant_man]
    assert _flagged(woman) == set()
    prostate = condition("psa", SNOMED, "399068003")
    assert {c for c, _, _ in _flagged([*woman, prostate])} == {"sex_specific"}
    icd = condition("icd-o", "http://hl7.org/fhir/sid/icd-10-cm", "O80")
    assert {r for _, r, _ in _flagged([*good_store(), icd])} == {"Condition/icd-o"}


def test_age_specific_codes() -> None:
    adult = observation("bmi-pct", "59576-9", 55.0, "%", when=LATER)  # BMI percentile at age 39
    found = _flagged([*good_store(), adult])
    assert found == {("age_specific", "Observation/bmi-pct", "Observation.code.coding[0].code")}
    child = [patient(birth="2010-01-01"), *good_store()[1:], adult]  # age 10
    assert not any(c == "age_specific" for c, _, _ in _flagged(child))


def test_duplicate_resources() -> None:
    store = good_store()
    copy_of_hr = copy.deepcopy(store[2]) | {"id": "hr-copy"}
    conflicting = observation("hr-other", "8867-4", 95, "/min")
    found = _flagged([*store, copy_of_hr, conflicting])
    duplicates = {r for c, r, _ in found if c == "duplicate_resources"}
    assert duplicates == {"Observation/hr-copy", "Observation/hr-other"}
    report = _run([*store, copy_of_hr])
    assert report.findings[0].value == "Observation/hr" and report.passed  # a warning


def test_severity_and_enabled_overrides(tmp_path: Path) -> None:
    bad = [*good_store(), observation("hot", "8310-5", 52.0, "Cel", when=LATER)]
    assert not _run(bad).passed
    config = tmp_path / "q.json"
    config.write_text('{"checks": {"observation_range": {"severity": "warning"}}}')
    report = _run(bad, load_config(config))
    assert report.passed and report.findings[0].severity == "warning"
    config.write_text('{"checks": {"observation_range": {"enabled": false}}}')
    report = _run(bad, load_config(config))
    assert report.findings == () and "observation_range" not in {c.name for c in report.checks}


def test_check_resource_runs_the_local_checks_only() -> None:
    hr = observation("hr", "8867-4", 400, "/min", when=LATER, subject="Patient/unknown")
    assert [(f.check, f.severity) for f in check_resource(hr)] == [("observation_range", "error")]
    assert check_resource(good_store()[2]) == []


def test_check_resources_convenience_matches_the_checker() -> None:
    bad = [*good_store(), observation("hr-bad", "8867-4", 400, "/min", when=LATER)]
    assert {f.row for f in check_resources(bad).findings} == {"Observation/hr-bad"}
