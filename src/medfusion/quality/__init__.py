"""Data quality: a named, versioned catalogue of checks over tables (pure; pandas only).

Checks follow the Kahn framework's categories (conformance, completeness, plausibility);
each has a severity and a threshold that a TOML or JSON config file can override.
"""

from medfusion.quality._catalogue import CATALOGUE, CATALOGUE_VERSION, Check, QualityConfig, load_config
from medfusion.quality._checks import CheckResult, Finding, QualityReport, check_table
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
    "Variable",
    "check_table",
    "conversion",
    "convert",
    "is_valid_loinc",
    "load_config",
    "loinc_check_digit",
]
