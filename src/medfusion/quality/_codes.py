"""Code-system format checks: LOINC check digits, SNOMED CT identifiers, ICD-10 shapes.

Format only: a well-formed code may still not exist in the code system, which needs the
terminology itself (not shipped). What these catch is the common damage: a digit dropped
or swapped, a spreadsheet turning ``0010`` into ``10``, a code filed under the wrong system.
"""

from __future__ import annotations

import re

from medfusion.quality._units import is_valid_loinc

__all__ = [
    "CODE_SYSTEMS",
    "ICD10",
    "ICD10_CM",
    "LOINC",
    "SNOMED",
    "code_format_problem",
    "is_valid_icd10",
    "is_valid_icd10_cm",
    "is_valid_snomed",
    "verhoeff_check",
]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10_CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"

# Verhoeff's dihedral-group tables, as in the SNOMED CT Technical Implementation Guide.
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)  # fmt: skip
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4), (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7), (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)  # fmt: skip

# Partition identifiers (the two digits before the check digit) of concept ids: 00 in the
# short format, 10 in the long (namespaced) one. 01/02/11/12 are description and
# relationship ids, which do not belong in a Coding.
_CONCEPT_PARTITIONS = ("00", "10")

# ICD-10-CM: a letter, two characters of which the first is a digit, then optionally a dot
# and up to four more (the 7th character may be X or a letter). WHO ICD-10 stops at 4.
_ICD10_CM = re.compile(r"[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?")
_ICD10 = re.compile(r"[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,2})?")


def verhoeff_check(digits: str) -> bool:
    """Whether a digit string (check digit last) passes Verhoeff's check."""
    check = 0
    for position, char in enumerate(reversed(digits)):
        check = _D[check][_P[position % 8][int(char)]]
    return check == 0


def is_valid_snomed(code: str) -> bool:
    """A SNOMED CT concept id: 6-18 digits, no leading zero, concept partition, Verhoeff digit."""
    return (
        code.isascii()
        and code.isdigit()
        and 6 <= len(code) <= 18
        and code[0] != "0"
        and code[-3:-1] in _CONCEPT_PARTITIONS
        and verhoeff_check(code)
    )


def is_valid_icd10_cm(code: str) -> bool:
    """Whether ``code`` has the ICD-10-CM shape (``E11.9``, ``S72.001A``, ``I10``)."""
    return _ICD10_CM.fullmatch(code) is not None


def is_valid_icd10(code: str) -> bool:
    """Whether ``code`` has the WHO ICD-10 shape (``E11.9``, ``I10``)."""
    return _ICD10.fullmatch(code) is not None


CODE_SYSTEMS = {
    LOINC: ("LOINC code with a valid mod-10 check digit", is_valid_loinc),
    SNOMED: ("SNOMED CT concept id (partition, Verhoeff check digit)", is_valid_snomed),
    ICD10_CM: ("ICD-10-CM code shape", is_valid_icd10_cm),
    ICD10: ("ICD-10 code shape", is_valid_icd10),
}


def code_format_problem(system: str, code: str) -> str | None:
    """Why ``code`` is not well formed for ``system``, or ``None`` (also for systems not checked)."""
    known = CODE_SYSTEMS.get(system)
    if known is None:
        return None
    what, valid = known
    return None if valid(code) else f"not a {what}"
