"""Unit conversion round-trips and the LOINC check digit."""

from __future__ import annotations

import math

import pytest

from medfusion.errors import InvalidRequestError
from medfusion.quality import VARIABLES, convert, is_valid_loinc, loinc_check_digit

PAIRS = [
    ("[degF]", "Cel", None, 98.6, 37.0),
    ("[lb_av]", "kg", None, 220.462, 100.0),
    ("[in_i]", "cm", None, 70.0, 177.8),
    ("mmol/L", "mg/dL", "glucose", 5.5, 99.09),
    ("umol/L", "mg/dL", "creatinine", 88.42, 1.0),
    ("mmol/L", "mg/dL", "cholesterol", 5.0, 193.35),
    ("mmol/mol", "%", "hba1c", 48.0, 6.54),
]


@pytest.mark.parametrize(("source", "target", "variable", "value", "expected"), PAIRS)
def test_convert_known_values_and_round_trip(
    source: str, target: str, variable: str | None, value: float, expected: float
) -> None:
    there = convert(value, from_unit=source, to_unit=target, variable=variable)
    assert there == pytest.approx(expected, abs=0.01)
    back = convert(there, from_unit=target, to_unit=source, variable=variable)
    assert math.isclose(back, value, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("value", [-40.0, 0.0, 36.6, 41.2, 1e6])
def test_temperature_round_trip_many_values(value: float) -> None:
    fahrenheit = convert(value, from_unit="Cel", to_unit="[degF]")
    assert convert(fahrenheit, from_unit="[degF]", to_unit="Cel") == pytest.approx(value, rel=1e-12, abs=1e-9)
    assert convert(-40.0, from_unit="Cel", to_unit="[degF]") == pytest.approx(-40.0)


def test_glucose_conversion_needs_the_substance() -> None:
    with pytest.raises(InvalidRequestError, match="no conversion from unit 'mmol/L' to 'mg/dL'"):
        convert(5.5, from_unit="mmol/L", to_unit="mg/dL")
    with pytest.raises(InvalidRequestError, match="for heart_rate"):
        convert(140, from_unit="mmol/L", to_unit="mg/dL", variable="heart_rate")


@pytest.mark.parametrize("code", ["8867-4", "2345-7", "4548-4", "8310-5", "2160-0", "59408-5", "718-7"])
def test_known_loinc_codes_are_valid(code: str) -> None:
    assert is_valid_loinc(code)


@pytest.mark.parametrize("code", ["8867-5", "2345-1", "8867", "88a7-4", "8867-44", "", "12345678-9"])
def test_bad_loinc_codes_are_rejected(code: str) -> None:
    assert not is_valid_loinc(code)


def test_check_digit_and_catalogue_codes() -> None:
    assert loinc_check_digit("8867") == 4
    assert all(is_valid_loinc(v.loinc) for v in VARIABLES.values())
    with pytest.raises(InvalidRequestError):
        loinc_check_digit("12a")
