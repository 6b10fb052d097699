"""Clinical variables, their plausible ranges and units, unit conversion and LOINC check digits.

Ranges are wide on purpose: they flag values that cannot be physiological (a pH of 0, a
temperature of 370), not abnormal ones, because a plausibility check that fires on sick
patients is switched off by the first ICU team that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from medfusion.errors import InvalidRequestError
from medfusion.quality._ucum import ucum_conversion

__all__ = [
    "DEFAULT_COLUMNS",
    "VARIABLES",
    "ColumnSpec",
    "Variable",
    "conversion",
    "convert",
    "is_valid_loinc",
    "loinc_check_digit",
]


@dataclass(frozen=True)
class Variable:
    """A clinical variable with its canonical unit and plausible range (inclusive).

    Parameters
    ----------
    name
        Catalogue name, e.g. ``"heart_rate"``.
    unit
        Canonical UCUM unit the range is stated in.
    low, high
        Plausible range in ``unit``.
    loinc
        A representative LOINC code, for later FHIR checks.
    """

    name: str
    unit: str
    low: float
    high: float
    loinc: str = ""


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("temperature", "Cel", 25.0, 45.0, "8310-5"),
        Variable("heart_rate", "/min", 20.0, 300.0, "8867-4"),
        Variable("resp_rate", "/min", 2.0, 80.0, "9279-1"),
        Variable("systolic_bp", "mm[Hg]", 40.0, 300.0, "8480-6"),
        Variable("diastolic_bp", "mm[Hg]", 10.0, 200.0, "8462-4"),
        Variable("mean_bp", "mm[Hg]", 20.0, 250.0, "8478-0"),
        Variable("spo2", "%", 50.0, 100.0, "59408-5"),
        Variable("ph", "[pH]", 6.5, 8.0, "2744-1"),
        Variable("age", "a", 0.0, 120.0, "30525-0"),
        Variable("weight", "kg", 0.3, 400.0, "29463-7"),
        Variable("height", "cm", 20.0, 250.0, "8302-2"),
        Variable("bmi", "kg/m2", 8.0, 100.0, "39156-5"),
        Variable("glucose", "mg/dL", 10.0, 2000.0, "2345-7"),
        Variable("hba1c", "%", 3.0, 20.0, "4548-4"),
        Variable("creatinine", "mg/dL", 0.1, 25.0, "2160-0"),
        Variable("potassium", "mmol/L", 1.5, 10.0, "2823-3"),
        Variable("sodium", "mmol/L", 100.0, 200.0, "2951-2"),
        Variable("lactate", "mmol/L", 0.1, 30.0, "2524-7"),
        Variable("cholesterol", "mg/dL", 50.0, 1000.0, "2093-3"),
    )
}


@dataclass(frozen=True)
class ColumnSpec:
    """How a table column maps to a catalogue variable, and the unit its values are in."""

    variable: str
    unit: str


def _spec(variable: str, unit: str | None = None) -> ColumnSpec:
    return ColumnSpec(variable, unit or VARIABLES[variable].unit)


# Lower-cased column names recognised without configuration: common spellings, the
# PhysioNet 2012 parameters and the UCI heart-disease columns shipped in ../shared/data.
DEFAULT_COLUMNS: dict[str, ColumnSpec] = {
    **{n: _spec("temperature") for n in ("temp", "temperature", "temp_c", "temperature_c")},
    **{n: _spec("temperature", "[degF]") for n in ("temp_f", "temperature_f")},
    **{n: _spec("heart_rate") for n in ("hr", "heart_rate", "heartrate", "pulse", "thalach")},
    **{n: _spec("resp_rate") for n in ("rr", "resp_rate", "resprate", "respiratory_rate")},
    **{n: _spec("systolic_bp") for n in ("sbp", "systolic_bp", "sysabp", "nisysabp", "trestbps")},
    **{n: _spec("diastolic_bp") for n in ("dbp", "diastolic_bp", "diasabp", "nidiasabp")},
    **{n: _spec("mean_bp") for n in ("map", "mean_bp", "nimap")},
    **{n: _spec("spo2") for n in ("spo2", "sao2", "o2sat")},
    **{n: _spec("ph") for n in ("ph", "ph_arterial")},
    **{n: _spec("age") for n in ("age", "age_years")},
    **{n: _spec("weight") for n in ("weight", "weight_kg")},
    "weight_lb": _spec("weight", "[lb_av]"),
    **{n: _spec("height") for n in ("height", "height_cm")},
    "height_in": _spec("height", "[in_i]"),
    "bmi": _spec("bmi"),
    **{n: _spec("glucose") for n in ("glucose", "glucose_mgdl")},
    "glucose_mmol": _spec("glucose", "mmol/L"),
    "hba1c": _spec("hba1c"),
    **{n: _spec("creatinine") for n in ("creatinine", "creat")},
    "creatinine_umol": _spec("creatinine", "umol/L"),
    **{n: _spec("potassium") for n in ("k", "potassium")},
    **{n: _spec("sodium") for n in ("na", "sodium")},
    "lactate": _spec("lactate"),
    **{n: _spec("cholesterol") for n in ("chol", "cholesterol")},
}

# (from unit, to unit) -> (scale, offset): to = from * scale + offset. Linear units only,
# plus Fahrenheit, whose offset is why this is affine rather than a plain factor.
_GENERIC: dict[tuple[str, str], tuple[float, float]] = {
    ("[degF]", "Cel"): (5.0 / 9.0, -32.0 * 5.0 / 9.0),
    ("[lb_av]", "kg"): (0.45359237, 0.0),
    ("g", "kg"): (0.001, 0.0),
    ("[in_i]", "cm"): (2.54, 0.0),
    ("m", "cm"): (100.0, 0.0),
    ("mo", "a"): (1.0 / 12.0, 0.0),
    ("kPa", "mm[Hg]"): (7.50061683, 0.0),
}
# Substance-specific: a mass concentration becomes a molar one through the molar mass.
_SUBSTANCE: dict[tuple[str, str, str], tuple[float, float]] = {
    ("glucose", "mmol/L", "mg/dL"): (18.0156, 0.0),
    ("creatinine", "umol/L", "mg/dL"): (1.0 / 88.42, 0.0),
    ("cholesterol", "mmol/L", "mg/dL"): (38.67, 0.0),
    ("lactate", "mg/dL", "mmol/L"): (1.0 / 9.008, 0.0),
    ("hba1c", "mmol/mol", "%"): (0.09148, 2.152),  # the IFCC-NGSP master equation
}


# g/mol, for the UCUM fallback between mass and molar concentrations.
MOLAR_MASS: dict[str, float] = {
    "glucose": 180.156,
    "creatinine": 113.12,
    "cholesterol": 386.65,
    "lactate": 90.08,
    "potassium": 39.098,
    "sodium": 22.99,
}


def _lookup(
    table: dict[tuple[str, str], tuple[float, float]], from_unit: str, to_unit: str
) -> tuple[float, float] | None:
    if (from_unit, to_unit) in table:
        return table[(from_unit, to_unit)]
    if (to_unit, from_unit) in table:
        scale, offset = table[(to_unit, from_unit)]
        return 1.0 / scale, -offset / scale
    return None


def conversion(from_unit: str, to_unit: str, variable: str | None = None) -> tuple[float, float]:
    """``(scale, offset)`` with ``to = from * scale + offset``; see :func:`convert`."""
    if from_unit == to_unit:
        return 1.0, 0.0
    substance = {(f, t): v for (name, f, t), v in _SUBSTANCE.items() if name == variable}
    found = _lookup(substance, from_unit, to_unit) or _lookup(_GENERIC, from_unit, to_unit)
    if found is not None:
        return found
    # Anything else commensurable goes through the UCUM parser (g/dL -> mg/dL, mEq/L -> mmol/L).
    try:
        return ucum_conversion(from_unit, to_unit, MOLAR_MASS.get(variable or ""))
    except InvalidRequestError:
        where = f" for {variable}" if variable else ""
        raise InvalidRequestError(f"no conversion from unit '{from_unit}' to '{to_unit}'{where}") from None


def convert(value: float, *, from_unit: str, to_unit: str, variable: str | None = None) -> float:
    """Convert a value between units (UCUM codes).

    Parameters
    ----------
    value
        The number in ``from_unit``.
    from_unit, to_unit
        UCUM codes, e.g. ``"[degF]"`` and ``"Cel"``, ``"mmol/L"`` and ``"mg/dL"``.
    variable
        Needed for substance-specific conversions (glucose, creatinine, cholesterol).

    Raises
    ------
    InvalidRequestError
        No conversion is known between the two units.
    """
    scale, offset = conversion(from_unit, to_unit, variable)
    return value * scale + offset


def loinc_check_digit(stem: str) -> int:
    """The mod-10 (Luhn) check digit of a LOINC code's numeric part, e.g. ``8867`` -> ``4``."""
    if not stem.isdigit():
        raise InvalidRequestError(f"a LOINC code stem must be digits, got {stem!r}")
    total = 0
    # Luhn from the right: the rightmost stem digit is doubled, as the check digit follows it.
    for position, char in enumerate(reversed(stem)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return (10 - total % 10) % 10


def is_valid_loinc(code: str) -> bool:
    """Whether ``code`` has the LOINC shape ``NNNNN-C`` and a correct check digit."""
    stem, sep, check = code.strip().partition("-")
    if not sep or not stem.isdigit() or len(stem) > 7 or len(check) != 1 or not check.isdigit():
        return False
    return loinc_check_digit(stem) == int(check)
