"""The UCUM parser, UCUM-based conversions (round trips) and code-system formats."""

from __future__ import annotations

import math

import pytest

from medfusion.errors import InvalidRequestError
from medfusion.quality import (
    VARIABLES,
    convert,
    is_valid_icd10,
    is_valid_icd10_cm,
    is_valid_loinc,
    is_valid_snomed,
    parse_ucum,
    ucum_conversion,
    verhoeff_check,
)
from medfusion.quality._codes import LOINC, SNOMED
from medfusion.quality._rules import AGE_RULES, LOINC_VARIABLES, POST_MORTEM_CODES, SEX_RULES

# Every unit code in the Synthea sample bundles, and a few more clinical ones.
VALID_UNITS = [
    "mm[Hg]", "fL", "{score}", "cm", "kg", "kg/m2", "mg/dL", "10*3/uL", "g/dL", "%", "10*6/uL",
    "pg", "mL/min/{1.73_m2}", "mmol/L", "Cel", "{count}", "mg/g", "/min", "[degF]", "[lb_av]",
    "kg.m-2", "mmol/mol", "[pH]", "ug/(24.h)", "10^9/L", "{beats}/min", "m2", "s-1", "meq/L",
    "umol/L", "[in_i]", "kPa", "U/L", "[iU]/L", "mosm/kg", "L/min", "mL/(kg.h)", "1", "/[HPF]x",
]  # fmt: skip
VALID_UNITS.remove("/[HPF]x")  # not in the atom table (and malformed): see the invalid list

INVALID_UNITS = [
    "", " kg", "mg/", "mmHg", "beats/minute", "kg/m^2", "{unclosed", "[lb_av", "k[lb_av]",
    "Cel/h", "[degF]2", "mCel.g", "mg//dL", "(mg/dL", "/[HPF]x", "10*3*", "kg m2",
]  # fmt: skip


@pytest.mark.parametrize("code", VALID_UNITS)
def test_valid_units_parse(code: str) -> None:
    assert parse_ucum(code).code == code


@pytest.mark.parametrize("code", INVALID_UNITS)
def test_invalid_units_are_named(code: str) -> None:
    with pytest.raises(InvalidRequestError, match="is not a valid UCUM unit"):
        parse_ucum(code)


def test_parsed_magnitudes() -> None:
    assert parse_ucum("10*3/uL").factor == pytest.approx(1e12)  # 10^3 per microlitre, per cubic metre
    assert parse_ucum("mg/dL").dims == parse_ucum("g/L").dims
    assert parse_ucum("kg/m2").dims == parse_ucum("kg.m-2").dims
    assert parse_ucum("/min").factor == pytest.approx(1 / 60)


@pytest.mark.parametrize(
    ("from_unit", "to_unit", "value", "expected", "molar_mass"),
    [
        ("[lb_av]", "kg", 150.0, 68.0388555, None),
        ("[degF]", "Cel", 98.6, 37.0, None),
        ("[degF]", "Cel", -40.0, -40.0, None),
        ("mg/dL", "mmol/L", 90.0, 4.9957, 180.156),  # glucose
        ("umol/L", "mg/dL", 88.42, 1.0002, 113.12),  # creatinine
        ("g/dL", "mg/dL", 1.5, 1500.0, None),
        ("[in_i]", "cm", 70.0, 177.8, None),
        ("kPa", "mm[Hg]", 13.3, 99.76, None),
        ("meq/L", "mmol/L", 4.0, 4.0, None),
        ("[ft_i]", "m", 6.0, 1.8288, None),
    ],
)
def test_ucum_conversions(
    from_unit: str, to_unit: str, value: float, expected: float, molar_mass: float | None
) -> None:
    scale, offset = ucum_conversion(from_unit, to_unit, molar_mass)
    assert value * scale + offset == pytest.approx(expected, rel=1e-4)
    # ... and back again.
    back_scale, back_offset = ucum_conversion(to_unit, from_unit, molar_mass)
    assert (value * scale + offset) * back_scale + back_offset == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("variable", "unit"),
    [
        ("glucose", "mmol/L"), ("glucose", "g/L"), ("creatinine", "umol/L"), ("creatinine", "mmol/L"),
        ("weight", "[lb_av]"), ("weight", "g"), ("temperature", "[degF]"), ("temperature", "K"),
        ("height", "[in_i]"), ("height", "m"), ("potassium", "meq/L"), ("sodium", "mg/dL"),
        ("lactate", "mg/dL"), ("systolic_bp", "kPa"), ("hba1c", "mmol/mol"), ("cholesterol", "mmol/L"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("share", [0.0, 0.37, 1.0])
def test_round_trip_through_every_variable_unit(variable: str, unit: str, share: float) -> None:
    spec = VARIABLES[variable]
    value = spec.low + share * (spec.high - spec.low)
    there = convert(value, from_unit=spec.unit, to_unit=unit, variable=variable)
    back = convert(there, from_unit=unit, to_unit=spec.unit, variable=variable)
    assert math.isclose(back, value, rel_tol=1e-12, abs_tol=1e-9)


def test_incommensurable_units_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="measure different things"):
        ucum_conversion("kg", "mmol/L")
    with pytest.raises(InvalidRequestError, match="no conversion"):
        convert(1.0, from_unit="mmol/L", to_unit="mg/dL")  # no substance, no molar mass


@pytest.mark.parametrize(
    "code",
    [
        "72892002",
        "77386006",
        "44054006",
        "399068003",
        "266569009",
        "22298006",
        "10509002",
        "900000000000207008",
    ],
)
def test_snomed_concept_ids(code: str) -> None:
    assert is_valid_snomed(code)


def test_snomed_verhoeff_catches_single_errors_and_transpositions() -> None:
    code = "44054006"
    for position in range(len(code)):
        for digit in "0123456789":
            if digit != code[position]:
                changed = code[:position] + digit + code[position + 1 :]
                assert not verhoeff_check(changed), changed
    for position in range(len(code) - 1):
        a, b = code[position], code[position + 1]
        if a != b:
            swapped = code[:position] + b + a + code[position + 2 :]
            assert not verhoeff_check(swapped), swapped


def test_snomed_partition_and_shape() -> None:
    assert is_valid_snomed("900000000000207008")  # a core metadata concept (partition 00)
    assert not is_valid_snomed("12345")  # too short
    assert not is_valid_snomed("044054006")  # leading zero
    # A description id passes Verhoeff but has partition 01: not a concept.
    description = next(f"1234501{d}" for d in "0123456789" if verhoeff_check(f"1234501{d}"))
    assert not is_valid_snomed(description)


@pytest.mark.parametrize("code", ["E11.9", "I10", "S72.001A", "O80", "Z34.00", "C61", "F32.A"])
def test_icd10_cm_shapes(code: str) -> None:
    assert is_valid_icd10_cm(code)


@pytest.mark.parametrize("code", ["E119 ", "e11.9", "E11-9", "11.9", "E1", "E11.12345", "E11."])
def test_icd10_cm_bad_shapes(code: str) -> None:
    assert not is_valid_icd10_cm(code)


def test_who_icd10_is_shorter() -> None:
    assert is_valid_icd10("E11.9") and not is_valid_icd10("S72.001A")


def test_rule_tables_hold_well_formed_codes() -> None:
    for loinc, variable in LOINC_VARIABLES.items():
        assert is_valid_loinc(loinc) and variable in VARIABLES
    for codes in (*(r.codes for r in SEX_RULES), *(r.codes for r in AGE_RULES), POST_MORTEM_CODES):
        for system, code in codes:
            if system == LOINC:
                assert is_valid_loinc(code), code
            elif system == SNOMED:
                assert is_valid_snomed(code), code
