"""HIPAA Safe Harbor de-identification of FHIR R4 resources (pure: no web, ORM or store).

Detect, then transform: :class:`TextDetector` finds identifiers in free text;
:class:`Deidentifier` walks every element of a resource by datatype and applies one
operator per kind of identifier (remove, generalise, shift or cut dates, pseudonymise,
scrub); :func:`k_anonymize` suppresses patients whose quasi-identifiers are too rare.
"""

from medfusion.deid._geo import RESTRICTED_ZIP3, zip3
from medfusion.deid._kanon import (
    QUASI_IDENTIFIERS,
    KAnonymityReport,
    age_band,
    age_in_years,
    k_anonymize,
)
from medfusion.deid._keys import MAX_SHIFT_DAYS, Pseudonymizer
from medfusion.deid._text import COMMON_GIVEN_NAMES, Finding, TextDetector
from medfusion.deid._transform import (
    ALLOWED_EXTENSIONS,
    OVER_89_AGE,
    Deidentifier,
    PatientFacts,
    patient_of,
    shift_date,
)

__all__ = [
    "ALLOWED_EXTENSIONS",
    "COMMON_GIVEN_NAMES",
    "MAX_SHIFT_DAYS",
    "OVER_89_AGE",
    "QUASI_IDENTIFIERS",
    "RESTRICTED_ZIP3",
    "Deidentifier",
    "Finding",
    "KAnonymityReport",
    "PatientFacts",
    "Pseudonymizer",
    "TextDetector",
    "age_band",
    "age_in_years",
    "k_anonymize",
    "patient_of",
    "shift_date",
    "zip3",
]
