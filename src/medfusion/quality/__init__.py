"""Data quality: a named, versioned catalogue of checks over tables and FHIR resources (pure).

Checks follow the Kahn framework's categories (conformance, completeness, plausibility);
each has a severity and a threshold that a TOML or JSON config file can override.
"""

from medfusion.quality._catalogue import CATALOGUE, CATALOGUE_VERSION, Check, QualityConfig, load_config
from medfusion.quality._checks import CheckResult, Finding, QualityReport, check_table
from medfusion.quality._codes import is_valid_icd10, is_valid_icd10_cm, is_valid_snomed, verhoeff_check
from medfusion.quality._fhir import RecordFinding, StoreChecker, StoreReport, check_resource, check_resources
from medfusion.quality._ucum import UcumUnit, parse_ucum, ucum_conversion
from medfusion.quality._units import (
    DEFAULT_COLUMNS,
    VARIABLES,
    ColumnSpec,
    Variable,
    conversion,
    convert,
    is_valid_loinc,
    loinc_check_digit,
)

__all__ = [
    "CATALOGUE",
    "CATALOGUE_VERSION",
    "DEFAULT_COLUMNS",
    "VARIABLES",
    "Check",
    "CheckResult",
    "ColumnSpec",
    "Finding",
    "QualityConfig",
    "QualityReport",
    "RecordFinding",
    "StoreChecker",
    "StoreReport",
    "UcumUnit",
    "Variable",
    "check_resource",
    "check_resources",
    "check_table",
    "conversion",
    "convert",
    "is_valid_icd10",
    "is_valid_icd10_cm",
    "is_valid_loinc",
    "is_valid_snomed",
    "load_config",
    "loinc_check_digit",
    "parse_ucum",
    "ucum_conversion",
    "verhoeff_check",
]
