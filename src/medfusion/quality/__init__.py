"""Data quality: a named, versioned catalogue of checks over tables, FHIR resources, images and
series (pure).

Checks follow the Kahn framework's categories (conformance, completeness, plausibility);
each has a severity and a threshold that a TOML or JSON config file can override.
"""

from medfusion.quality._catalogue import CATALOGUE, CATALOGUE_VERSION, Check
from medfusion.quality._checks import CheckResult, Finding, QualityReport, check_table
from medfusion.quality._codes import is_valid_icd10, is_valid_icd10_cm, is_valid_snomed, verhoeff_check
from medfusion.quality._config import (
    ImageSettings,
    QualityConfig,
    SeriesSettings,
    label_text,
    load_config,
)
from medfusion.quality._dicom import DICOM_REQUIRED, DicomObject
from medfusion.quality._fhir import RecordFinding, StoreChecker, StoreReport, check_resource, check_resources
from medfusion.quality._images import ImageItem, check_images
from medfusion.quality._items import ItemReport
from medfusion.quality._series import RegularSeries, Stay, check_regular, check_stays
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
    "DICOM_REQUIRED",
    "VARIABLES",
    "Check",
    "CheckResult",
    "ColumnSpec",
    "DicomObject",
    "Finding",
    "ImageItem",
    "ImageSettings",
    "ItemReport",
    "QualityConfig",
    "QualityReport",
    "RecordFinding",
    "RegularSeries",
    "SeriesSettings",
    "Stay",
    "StoreChecker",
    "StoreReport",
    "UcumUnit",
    "Variable",
    "check_images",
    "check_regular",
    "check_resource",
    "check_resources",
    "check_stays",
    "check_table",
    "conversion",
    "convert",
    "is_valid_icd10",
    "is_valid_icd10_cm",
    "is_valid_loinc",
    "is_valid_snomed",
    "label_text",
    "load_config",
    "loinc_check_digit",
    "parse_ucum",
    "ucum_conversion",
    "verhoeff_check",
]
