"""Terminology used by the generator: code systems, SNOMED, LOINC, RxNorm and UCUM.

Codes and displays follow what Synthea emits, so a terminology map written for Synthea
data also covers ours.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = [
    "ADMISSION_REASONS",
    "CONDITIONS",
    "LABS",
    "MEDICATIONS",
    "SMOKING",
    "VITALS",
    "Code",
    "Measure",
]

SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM: Final = "http://unitsofmeasure.org"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
NPI_SYSTEM: Final = "http://hl7.org/fhir/sid/us-npi"
SYNTHEA_SYSTEM: Final = "https://github.com/synthetichealth/synthea"
MRN_SYSTEM: Final = "http://hospital.smarthealthit.org"
MRN_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"


class Code(NamedTuple):
    """A code and its display text."""

    code: str
    display: str


class Measure(NamedTuple):
    """A LOINC-coded quantity and its UCUM unit."""

    loinc: str
    display: str
    unit: str
    ucum: str
    decimals: int


# Chronic conditions, keyed by the short name the simulation uses.
CONDITIONS: Final[dict[str, Code]] = {
    "hypertension": Code("38341003", "Hypertension"),
    "diabetes": Code("44054006", "Diabetes mellitus type 2 (disorder)"),
    "copd": Code("13645005", "Chronic obstructive lung disease (disorder)"),
    "heart_failure": Code("84114007", "Heart failure (disorder)"),
    "ckd": Code("709044004", "Chronic kidney disease (disorder)"),
}

VITALS: Final[dict[str, Measure]] = {
    "sbp": Measure("8480-6", "Systolic blood pressure", "mm[Hg]", "mm[Hg]", 0),
    "dbp": Measure("8462-4", "Diastolic blood pressure", "mm[Hg]", "mm[Hg]", 0),
    "hr": Measure("8867-4", "Heart rate", "/min", "/min", 0),
    "bmi": Measure("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "kg/m2", 1),
    "weight": Measure("29463-7", "Body weight", "kg", "kg", 1),
}
BP_PANEL: Final = Code("85354-9", "Blood pressure panel with all children optional")

LABS: Final[dict[str, Measure]] = {
    "hba1c": Measure("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "%", 1),
    "glucose": Measure("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", "mg/dL", 0),
    "cholesterol": Measure("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0),
    "creatinine": Measure("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 2),
    "egfr": Measure(
        "33914-3",
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma",
        "mL/min/{1.73_m2}",
        "mL/min/{1.73_m2}",
        0,
    ),
}

SMOKING_LOINC: Final = Code("72166-2", "Tobacco smoking status")
SMOKING: Final[dict[str, Code]] = {
    "never": Code("266919005", "Never smoked tobacco (finding)"),
    "former": Code("8517006", "Ex-smoker (finding)"),
    "current": Code("449868002", "Smokes tobacco daily (finding)"),
}

MEDICATIONS: Final[dict[str, Code]] = {
    "metformin": Code("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    "lisinopril": Code("314076", "lisinopril 10 MG Oral Tablet"),
    "atorvastatin": Code("617312", "atorvastatin 20 MG Oral Tablet"),
    "insulin": Code("311041", "insulin glargine 100 UNT/ML Injectable Solution"),
}

WELLNESS: Final = Code("162673000", "General examination of patient (procedure)")
ADMISSION: Final = Code("32485007", "Hospital admission (procedure)")
AMBULATORY: Final = Code("AMB", "ambulatory")
INPATIENT: Final = Code("IMP", "inpatient encounter")
PRIMARY_PERFORMER: Final = Code("PPRF", "primary performer")

# Reason coded on an admission, by the condition that most plausibly caused it; patients
# without a chronic condition are admitted for pneumonia.
ADMISSION_REASONS: Final[dict[str, Code]] = {
    "heart_failure": Code("84114007", "Heart failure (disorder)"),
    "copd": Code("195951007", "Acute exacerbation of chronic obstructive airways disease"),
    "ckd": Code("14669001", "Acute renal failure syndrome (disorder)"),
    "diabetes": Code("420422005", "Hyperosmolar hyperglycemic state (disorder)"),
    "hypertension": Code("22298006", "Myocardial infarction (disorder)"),
    "none": Code("233604007", "Pneumonia (disorder)"),
}
