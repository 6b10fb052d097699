"""The named, versioned check catalogue and its configuration (TOML or JSON).

A configuration file overrides a check's severity, threshold or whether it runs, maps
column names to catalogue variables (with their unit), narrows a variable's range, and
names required columns and sentinel values. Every key is validated: a typo in a config
file would otherwise silently leave the default in force, the complaint this module exists
to answer.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from medfusion.errors import InvalidRequestError
from medfusion.quality._units import DEFAULT_COLUMNS, VARIABLES, ColumnSpec, Variable

__all__ = ["CATALOGUE", "CATALOGUE_VERSION", "DEFAULT_ELEMENTS", "Check", "QualityConfig", "load_config"]

CATALOGUE_VERSION = "2026.12"

Category = Literal["conformance", "completeness", "plausibility"]
Severity = Literal["error", "warning"]
Scope = Literal["table", "store"]


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
        resources (the record store and ``import --quality``).
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


@dataclass(frozen=True)
class QualityConfig:
    """The catalogue as configured for one run."""

    checks: dict[str, Check] = field(default_factory=lambda: dict(CATALOGUE))
    columns: dict[str, ColumnSpec] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))
    variables: dict[str, Variable] = field(default_factory=lambda: dict(VARIABLES))
    required_columns: tuple[str, ...] = ()
    sentinels: tuple[float, ...] = (-1.0,)
    elements: dict[str, float | None] = field(default_factory=lambda: dict(DEFAULT_ELEMENTS))

    def scoped(self, scope: str) -> dict[str, Check]:
        """The checks of one scope (``"table"`` or ``"store"``), enabled or not."""
        return {k: c for k, c in self.checks.items() if c.scope == scope}

    def spec(self, column: str) -> ColumnSpec | None:
        """The variable a column maps to (matched case-insensitively), or ``None``."""
        return self.columns.get(column.strip().lower())


_TOP_KEYS = {"checks", "columns", "ranges", "required_columns", "sentinels", "elements"}
_CHECK_KEYS = {"severity", "threshold", "enabled"}


def _fail(path: Path, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"quality config {path}: {message}")


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise _fail(path, "file does not exist")
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        # tomllib.TOMLDecodeError and json.JSONDecodeError are both ValueErrors.
        raise _fail(path, f"cannot be parsed ({type(error).__name__})") from None
    if not isinstance(raw, dict):
        raise _fail(path, "must hold an object / table at the top level")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise _fail(path, f"unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    return raw


def _number(path: Path, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, f"{where} must be a number, got {value!r}")
    return float(value)


def _checks(path: Path, raw: Any) -> dict[str, Check]:
    checks = dict(CATALOGUE)
    if not isinstance(raw, dict):
        raise _fail(path, "'checks' must be a table of check ids")
    for check_id, override in raw.items():
        if check_id not in checks:
            raise _fail(path, f"unknown check '{check_id}'; known: {sorted(checks)}")
        if not isinstance(override, dict) or set(override) - _CHECK_KEYS:
            raise _fail(path, f"checks.{check_id} may set only {sorted(_CHECK_KEYS)}")
        check = checks[check_id]
        if "severity" in override:
            if override["severity"] not in ("error", "warning"):
                raise _fail(path, f"checks.{check_id}.severity must be 'error' or 'warning'")
            check = replace(check, severity=override["severity"])
        if "threshold" in override:
            threshold = _number(path, f"checks.{check_id}.threshold", override["threshold"])
            if not 0.0 <= threshold <= 1.0:
                raise _fail(path, f"checks.{check_id}.threshold must be in [0, 1], got {threshold}")
            check = replace(check, threshold=threshold)
        if "enabled" in override:
            if not isinstance(override["enabled"], bool):
                raise _fail(path, f"checks.{check_id}.enabled must be true or false")
            check = replace(check, enabled=override["enabled"])
        checks[check_id] = check
    return checks


def _columns(path: Path, raw: Any, variables: dict[str, Variable]) -> dict[str, ColumnSpec]:
    columns = dict(DEFAULT_COLUMNS)
    if not isinstance(raw, dict):
        raise _fail(path, "'columns' must map column names to variables")
    for name, target in raw.items():
        # "glucose" or {variable = "glucose", unit = "mmol/L"}; false removes a default mapping.
        if target is False:
            columns.pop(name.lower(), None)
            continue
        variable, unit = (target, None) if isinstance(target, str) else (None, None)
        if isinstance(target, dict):
            variable, unit = target.get("variable"), target.get("unit")
        if variable not in variables:
            raise _fail(path, f"columns.{name}: unknown variable {variable!r}; known: {sorted(variables)}")
        columns[name.lower()] = ColumnSpec(variable, unit or variables[variable].unit)
    return columns


def _ranges(path: Path, raw: Any) -> dict[str, Variable]:
    variables = dict(VARIABLES)
    if not isinstance(raw, dict):
        raise _fail(path, "'ranges' must be a table of variables")
    for name, bounds in raw.items():
        if name not in variables:
            raise _fail(path, f"ranges.{name}: unknown variable; known: {sorted(variables)}")
        if not isinstance(bounds, dict) or set(bounds) - {"low", "high"}:
            raise _fail(path, f"ranges.{name} may set only 'low' and 'high'")
        low = _number(path, f"ranges.{name}.low", bounds.get("low", variables[name].low))
        high = _number(path, f"ranges.{name}.high", bounds.get("high", variables[name].high))
        if low > high:
            raise _fail(path, f"ranges.{name}: low {low} is above high {high}")
        variables[name] = replace(variables[name], low=low, high=high)
    return variables


def _elements(path: Path, raw: Any) -> dict[str, float | None]:
    elements = dict(DEFAULT_ELEMENTS)
    if not isinstance(raw, dict):
        raise _fail(path, "'elements' must map 'Type.element' to a threshold or false")
    for name, threshold in raw.items():
        # "Observation.value[x]" = 0.1 sets (or adds) a threshold; false stops checking it.
        kind, dot, element = name.partition(".")
        if not dot or not kind[:1].isupper() or not element:
            raise _fail(path, f"elements.{name}: write elements as 'Type.element'")
        if threshold is False:
            elements.pop(name, None)
            continue
        value = _number(path, f"elements.{name}", threshold)
        if not 0.0 <= value <= 1.0:
            raise _fail(path, f"elements.{name} must be in [0, 1], got {value}")
        elements[name] = value
    return elements


def load_config(path: Path | None) -> QualityConfig:
    """Read a TOML or JSON quality config (``.json`` by suffix, TOML otherwise).

    Parameters
    ----------
    path
        The config file, or ``None`` for the catalogue defaults.

    Raises
    ------
    InvalidRequestError
        The file is missing, cannot be parsed, or names an unknown check, key or variable.
    """
    if path is None:
        return QualityConfig()
    raw = _read(path)
    variables = _ranges(path, raw.get("ranges", {}))
    required = raw.get("required_columns", [])
    if not isinstance(required, list) or not all(isinstance(c, str) for c in required):
        raise _fail(path, "'required_columns' must be a list of column names")
    sentinels = raw.get("sentinels", [-1])
    if not isinstance(sentinels, list):
        raise _fail(path, "'sentinels' must be a list of numbers")
    return QualityConfig(
        checks=_checks(path, raw.get("checks", {})),
        columns=_columns(path, raw.get("columns", {}), variables),
        variables=variables,
        required_columns=tuple(required),
        sentinels=tuple(_number(path, "sentinels[]", s) for s in sentinels),
        elements=_elements(path, raw.get("elements", {})),
    )
