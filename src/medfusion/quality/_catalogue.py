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

__all__ = ["CATALOGUE", "CATALOGUE_VERSION", "Check", "QualityConfig", "load_config"]

CATALOGUE_VERSION = "2026.11"

Category = Literal["conformance", "completeness", "plausibility"]
Severity = Literal["error", "warning"]


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
    """

    id: str
    category: Category
    severity: Severity
    threshold: float
    description: str
    enabled: bool = True


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
    )
}


@dataclass(frozen=True)
class QualityConfig:
    """The catalogue as configured for one run."""

    checks: dict[str, Check] = field(default_factory=lambda: dict(CATALOGUE))
    columns: dict[str, ColumnSpec] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))
    variables: dict[str, Variable] = field(default_factory=lambda: dict(VARIABLES))
    required_columns: tuple[str, ...] = ()
    sentinels: tuple[float, ...] = (-1.0,)

    def spec(self, column: str) -> ColumnSpec | None:
        """The variable a column maps to (matched case-insensitively), or ``None``."""
        return self.columns.get(column.strip().lower())


_TOP_KEYS = {"checks", "columns", "ranges", "required_columns", "sentinels"}
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
    )
