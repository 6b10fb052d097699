"""The named, versioned check catalogue: every check with its category, severity, threshold
and scope, and the elements the store's completeness check expects.

The configuration that overrides it is in :mod:`medfusion.quality._config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CATALOGUE", "CATALOGUE_VERSION", "DEFAULT_ELEMENTS", "Check"]

CATALOGUE_VERSION = "2027.02"

Category = Literal["conformance", "completeness", "plausibility"]
Severity = Literal["error", "warning"]
Scope = Literal["table", "store", "image", "dicom", "series", "labels"]


@dataclass(frozen=True)
class Check:
    """One catalogue entry.

    Parameters
    ----------
    id
        Stable name, used in reports and config files.
    category
        Kahn framework category: conformance, completeness or plausibility.
    severity
        ``"error"`` fails the run (and gates training); ``"warning"`` is reported only.
    threshold
        Share of checked cells (or rows) that may fail before the check fails; its meaning
        per check is in ``description``.
    description
        What the check looks for, shown in reports.
    enabled
        Whether the check runs.
    scope
        ``"table"`` for checks over a table (``--data``), ``"store"`` for checks over FHIR
        resources (the record store and ``import --quality``), ``"image"`` for image files,
        ``"dicom"`` for DICOM files (besides the image checks on their frames),
        ``"series"`` for series files and folders, ``"labels"`` for the label and split
        checks both of these run.
    """

    id: str
    category: Category
    severity: Severity
    threshold: float
    description: str
    enabled: bool = True
    scope: Scope = "table"


CATALOGUE: dict[str, Check] = {
    c.id: c
    for c in (
        Check("required_columns", "conformance", "error", 0.0, "required columns are present"),
        Check(
            "value_type",
            "conformance",
            "error",
            0.0,
            "numeric columns hold numbers (a column is numeric when it maps to a variable "
            "or at least 90 % of its values are numbers); threshold: share of bad cells allowed",
        ),
        Check(
            "missing_rate",
            "completeness",
            "warning",
            0.2,
            "share of empty cells per column; threshold: the highest share allowed",
        ),
        Check(
            "sentinel",
            "completeness",
            "warning",
            0.0,
            "codes standing for 'missing' (such as -1) in numeric columns that cannot hold them",
        ),
        Check(
            "plausible_range",
            "plausibility",
            "error",
            0.0,
            "values of recognised clinical variables inside their plausible range, after unit "
            "conversion; threshold: share of out-of-range values allowed",
        ),
        Check("duplicate_rows", "plausibility", "warning", 0.0, "rows repeated exactly"),
        # Over FHIR resources (the record store, and the import gate for the local ones).
        Check(
            "fhir_structure",
            "conformance",
            "error",
            0.0,
            "required elements and value types (the FHIR R4 structure validator)",
            scope="store",
        ),
        Check(
            "code_format",
            "conformance",
            "error",
            0.0,
            "codes are well formed for their system: LOINC check digit, SNOMED CT concept id "
            "(partition and Verhoeff check digit), ICD-10 / ICD-10-CM shape",
            scope="store",
        ),
        Check("ucum_unit", "conformance", "error", 0.0, "UCUM unit codes of Quantities parse", scope="store"),
        Check(
            "reference_resolves",
            "conformance",
            "error",
            0.0,
            "relative references (Type/id) name a resource in the store; '#id' a contained one",
            scope="store",
        ),
        Check(
            "element_missing",
            "completeness",
            "warning",
            0.05,
            "share of resources missing an expected element, per element (per-element "
            "thresholds in the config's 'elements'); threshold: the highest share allowed",
            scope="store",
        ),
        Check(
            "observation_range",
            "plausibility",
            "error",
            0.0,
            "Observation values (and components) of known LOINC codes inside the variable's "
            "physiological range, after UCUM unit conversion",
            scope="store",
        ),
        Check(
            "temporal_order",
            "plausibility",
            "error",
            0.0,
            "no dates in the future, periods end after they start, the patient's birth "
            "before every event and every event before death",
            scope="store",
        ),
        Check(
            "sex_specific",
            "plausibility",
            "warning",
            0.0,
            "codes for one sex only (pregnancy, prostate) recorded for a patient of the other",
            scope="store",
        ),
        Check(
            "age_specific",
            "plausibility",
            "warning",
            0.0,
            "codes for an age band only (paediatric percentiles) recorded outside it",
            scope="store",
        ),
        Check(
            "duplicate_resources",
            "plausibility",
            "warning",
            0.0,
            "resources repeating another's content under a new id, and Observations of one "
            "patient, code and time with different values",
            scope="store",
        ),
        # Over image files (MedMNIST .npz, .npy, PNG and folders of them).
        Check(
            "image_format",
            "conformance",
            "error",
            0.0,
            "each image is readable, numeric, 2-D with 1, 3 or 4 channels, and has the "
            "expected dtype, size and channel count (config 'images'; default: the most common)",
            scope="image",
        ),
        Check(
            "image_missing",
            "completeness",
            "error",
            0.0,
            "images that are absent, empty (zero bytes or pixels) or hold NaN / infinite pixels",
            scope="image",
        ),
        Check(
            "image_constant",
            "plausibility",
            "warning",
            0.0,
            "blank images: every pixel the same (all black, all white or one grey)",
            scope="image",
        ),
        Check(
            "image_saturation",
            "plausibility",
            "warning",
            0.0,
            "images with more than images.saturated_share of their pixels at the top of the "
            "range (saturated) or at zero (black)",
            scope="image",
        ),
        Check(
            "image_intensity",
            "plausibility",
            "warning",
            0.0,
            "images whose mean or spread of intensity lies more than images.outlier_z robust "
            "standard deviations (median / MAD) from the set's",
            scope="image",
        ),
        # Over DICOM files (besides the image checks above on every frame).
        Check(
            "dicom_pixel_data",
            "conformance",
            "error",
            0.0,
            "each file is readable DICOM with pixel data that decodes without extra decoders "
            "(non-image objects such as RT plans, structured reports and waveforms, and "
            "compressed pixel data needing pylibjpeg / GDCM, are findings naming the SOP class)",
            scope="dicom",
        ),
        Check(
            "dicom_header",
            "completeness",
            "error",
            0.0,
            "required elements carry a value: SOPInstanceUID, StudyInstanceUID, "
            "SeriesInstanceUID, Modality, and Rows / Columns for objects with pixel data",
            scope="dicom",
        ),
        Check(
            "dicom_shape",
            "conformance",
            "error",
            0.0,
            "Pixel Data length and the decoded array agree with Rows, Columns, "
            "NumberOfFrames and SamplesPerPixel",
            scope="dicom",
        ),
        Check(
            "dicom_hounsfield",
            "plausibility",
            "error",
            0.0,
            "CT pixels after RescaleSlope / RescaleIntercept within images.hounsfield "
            "(-1024..3071 HU; PixelPaddingValue pixels left out), more than "
            "images.hounsfield_share of a file's pixels outside flags it",
            scope="dicom",
        ),
        Check(
            "dicom_duplicate_uid",
            "plausibility",
            "error",
            0.0,
            "a SOPInstanceUID carried by more than one file",
            scope="dicom",
        ),
        # Over series: PhysioNet-2012 stay folders / archives and UCR .tsv files.
        Check(
            "series_format",
            "conformance",
            "error",
            0.0,
            "each stay file or series row parses: header Time,Parameter,Value, numeric times and values",
            scope="series",
        ),
        Check(
            "series_empty",
            "completeness",
            "warning",
            0.0,
            "stays with no observations after admission, series rows with no values",
            scope="series",
        ),
        Check(
            "series_gap",
            "completeness",
            "warning",
            0.0,
            "NaN runs inside a regular series; stretches longer than series.max_gap_hours "
            "with no observation in an irregular one",
            scope="series",
        ),
        Check(
            "series_sentinel",
            "completeness",
            "warning",
            0.0,
            "codes standing for 'missing' (such as -1) recorded as values of a variable that "
            "cannot hold them",
            scope="series",
        ),
        Check(
            "series_range",
            "plausibility",
            "error",
            0.0,
            "observations of recognised clinical variables inside their range, after unit "
            "conversion; threshold: share of out-of-range values allowed",
            scope="series",
        ),
        Check(
            "series_timestamps",
            "plausibility",
            "error",
            0.0,
            "times that go backwards within a stay file, or are negative",
            scope="series",
        ),
        Check(
            "series_duplicate_times",
            "plausibility",
            "warning",
            0.0,
            "one variable recorded twice at the same time in a stay (same or conflicting values)",
            scope="series",
        ),
        Check(
            "series_constant",
            "plausibility",
            "warning",
            0.0,
            "runs of at least series.constant_run identical consecutive values (a flat line) "
            "in a regular series or a recognised clinical variable",
            scope="series",
        ),
        Check(
            "series_length",
            "plausibility",
            "warning",
            0.0,
            "series whose length (observed samples; observations per stay) lies more than "
            "series.length_z robust standard deviations from the set's (log scale for stays)",
            scope="series",
        ),
        # Labels and splits, for image and series files alike.
        Check(
            "label_missing",
            "completeness",
            "error",
            0.0,
            "items without a label (no label array, fewer labels than items, empty labels)",
            scope="labels",
        ),
        Check(
            "label_set",
            "conformance",
            "error",
            0.0,
            "labels in the label set (config 'labels'; default: non-negative integers for "
            "numeric images, and no class in a val / test split that the train split lacks)",
            scope="labels",
        ),
        Check(
            "label_balance",
            "plausibility",
            "warning",
            0.05,
            "class balance per split; threshold: the smallest share of a split a class may hold",
            scope="labels",
        ),
        Check(
            "duplicate_items",
            "plausibility",
            "warning",
            0.0,
            "an image or series repeating another of the same split exactly",
            scope="labels",
        ),
        Check(
            "split_leakage",
            "plausibility",
            "error",
            0.0,
            "an image or series that appears in two splits (train / val / test): leakage",
            scope="labels",
        ),
    )
}

# Expected elements per resource type for the completeness check, with the highest missing
# share allowed (None: the check's threshold). "x[x]" is any choice type of x.
DEFAULT_ELEMENTS: dict[str, float | None] = {
    "Patient.birthDate": None,
    "Patient.gender": None,
    "Observation.subject": None,
    "Observation.effective[x]": None,
    # value, components or a reason for its absence; panels carry hasMember instead
    "Observation.value[x]|component|dataAbsentReason|hasMember": None,
    "Encounter.subject": None,
    "Encounter.period": None,
    "Condition.subject": None,
    "Condition.onset[x]": None,
    "Procedure.performed[x]": None,
    "Immunization.occurrence[x]": None,
    "MedicationRequest.authoredOn": None,
}
