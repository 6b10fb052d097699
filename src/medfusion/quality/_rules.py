"""Clinical knowledge the FHIR checks use: LOINC codes per variable, sex- and age-specific codes.

Kept as data, apart from the check code, so that adding a code is a one-line change that
a clinician can review.
"""

from __future__ import annotations

from dataclasses import dataclass

from medfusion.quality._codes import ICD10, ICD10_CM, LOINC, SNOMED

__all__ = [
    "AFTER_DEATH_TYPES",
    "AGE_RULES",
    "LOINC_VARIABLES",
    "POST_MORTEM_CODES",
    "SEX_RULES",
    "AgeRule",
    "SexRule",
    "match_code",
]

# LOINC code -> catalogue variable (see VARIABLES in _units for ranges and canonical units).
LOINC_VARIABLES: dict[str, str] = {
    "8867-4": "heart_rate",
    "9279-1": "resp_rate",
    "8310-5": "temperature",  # body temperature
    "8331-1": "temperature",  # oral temperature
    "8480-6": "systolic_bp",
    "8462-4": "diastolic_bp",
    "8478-0": "mean_bp",
    "59408-5": "spo2",  # by pulse oximetry
    "2708-6": "spo2",  # arterial blood
    "20564-1": "spo2",  # blood
    "2744-1": "ph",  # arterial blood
    "11558-4": "ph",  # blood
    "29463-7": "weight",
    "3141-9": "weight",  # measured
    "8302-2": "height",
    "8306-3": "height",  # lying
    "39156-5": "bmi",
    "2345-7": "glucose",  # serum or plasma
    "2339-0": "glucose",  # blood
    "41653-7": "glucose",  # glucometer
    "4548-4": "hba1c",
    "17856-6": "hba1c",  # by HPLC
    "2160-0": "creatinine",  # serum or plasma
    "38483-4": "creatinine",  # blood
    "2823-3": "potassium",  # serum or plasma
    "6298-4": "potassium",  # blood
    "2951-2": "sodium",  # serum or plasma
    "2947-0": "sodium",  # blood
    "2524-7": "lactate",  # serum or plasma
    "32693-4": "lactate",  # blood
    "2518-9": "lactate",  # arterial blood
    "2093-3": "cholesterol",
}


def match_code(system: str, code: str, patterns: tuple[tuple[str, str], ...]) -> bool:
    """Whether ``(system, code)`` matches one of ``patterns``; a pattern ending in ``*`` is a prefix."""
    for pattern_system, pattern in patterns:
        if system != pattern_system:
            continue
        if (pattern.endswith("*") and code.startswith(pattern[:-1])) or code == pattern:
            return True
    return False


@dataclass(frozen=True)
class SexRule:
    """Codes that only apply to patients of one administrative sex."""

    name: str
    sex: str  # the FHIR Patient.gender the codes belong to
    codes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class AgeRule:
    """Codes that only apply within an age band (years, inclusive, at the event)."""

    name: str
    low: float
    high: float
    codes: tuple[tuple[str, str], ...]


SEX_RULES: tuple[SexRule, ...] = (
    SexRule(
        "pregnancy",
        "female",
        (
            (SNOMED, "72892002"),  # normal pregnancy
            (SNOMED, "77386006"),  # pregnancy
            (SNOMED, "47200007"),  # high-risk pregnancy
            (ICD10_CM, "O*"),  # chapter 15: pregnancy, childbirth and the puerperium
            (ICD10, "O*"),
            (ICD10_CM, "Z33*"),
            (ICD10_CM, "Z34*"),
        ),
    ),
    SexRule(
        "female genital organs",
        "female",
        ((ICD10_CM, "C53*"), (ICD10_CM, "C54*"), (ICD10_CM, "C56*"), (ICD10_CM, "N80*")),
    ),
    SexRule(
        "prostate",
        "male",
        (
            (SNOMED, "399068003"),  # malignant tumour of prostate
            (SNOMED, "126906006"),  # neoplasm of prostate
            (SNOMED, "266569009"),  # benign prostatic hyperplasia
            (LOINC, "2857-1"),  # prostate specific antigen
            (ICD10_CM, "C61*"),
            (ICD10, "C61*"),
            (ICD10_CM, "N40*"),
            (ICD10_CM, "N41*"),
        ),
    ),
    SexRule("male genital organs", "male", ((ICD10_CM, "C62*"), (ICD10_CM, "N43*"), (ICD10_CM, "N44*"))),
)

AGE_RULES: tuple[AgeRule, ...] = (
    # CDC BMI-for-age percentiles exist for ages 2 to 20.
    AgeRule("BMI percentile (ages 2-20)", 2.0, 21.0, ((LOINC, "59576-9"),)),
    # Head circumference percentiles (WHO / CDC charts) stop at 36 months.
    AgeRule("head circumference percentile (0-3 years)", 0.0, 3.5, ((LOINC, "8289-1"),)),
    # Perinatal conditions are coded at birth; a first record past early childhood is
    # more likely a miscode than a late diagnosis.
    AgeRule("perinatal condition (first years)", 0.0, 5.0, ((ICD10_CM, "P*"), (ICD10, "P*"))),
)

# Records that rightly follow a death: the paperwork of death itself, and billing, which
# goes on after it. The Synthea sample's one deceased patient has both (a death
# certification encounter a week later, its claims), which is how these were found.
POST_MORTEM_CODES: tuple[tuple[str, str], ...] = (
    (SNOMED, "308646001"),  # death certification (an encounter type)
    (LOINC, "69409-1"),  # U.S. standard certificate of death
    (LOINC, "69453-9"),  # cause of death
    (SNOMED, "419620001"),  # death (finding)
)
AFTER_DEATH_TYPES = frozenset({"Claim", "ExplanationOfBenefit", "Coverage", "Invoice", "Account"})
