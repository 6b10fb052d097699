"""The catalogue as configured for one run, read from a TOML or JSON file.

A configuration file overrides a check's severity, threshold or whether it runs, maps
column names to catalogue variables (with their unit), narrows a variable's range, names
required columns and sentinel values, sets what the image checks expect and the series
checks' limits, and names the label set. Every key is validated: a typo in a config file
would otherwise silently leave the default in force, the complaint this module exists to
answer.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medfusion.errors import InvalidRequestError
from medfusion.quality._catalogue import CATALOGUE, DEFAULT_ELEMENTS, Check
from medfusion.quality._units import DEFAULT_COLUMNS, VARIABLES, ColumnSpec, Variable

__all__ = ["ImageSettings", "QualityConfig", "SeriesSettings", "label_text", "load_config"]


@dataclass(frozen=True)
class ImageSettings:
    """What the image checks expect (config table ``images``).

    Parameters
    ----------
    dtype, shape, channels
        The expected pixel dtype (``"uint8"``), ``(height, width)`` and channel count;
        ``None`` expects what most images of the input have.
    saturated_share
        Share of an image's pixels at the top of the range, or at zero, above which
        ``image_saturation`` flags it.
    outlier_z
        Robust z-score (median / 1.4826 MAD) beyond which ``image_intensity`` flags an image.
    hounsfield
        Plausible CT values ``(low, high)`` in HU after rescaling (``dicom_hounsfield``).
    hounsfield_share
        Share of a CT file's pixels that may lie outside ``hounsfield`` (the tolerance for
        metal, calibration drift and unmarked padding) before it is flagged.
    """

    dtype: str | None = None
    shape: tuple[int, int] | None = None
    channels: int | None = None
    saturated_share: float = 0.5
    outlier_z: float = 5.0
    hounsfield: tuple[float, float] = (-1024.0, 3071.0)
    hounsfield_share: float = 0.01


@dataclass(frozen=True)
class SeriesSettings:
    """Parameters of the series checks (config table ``series``).

    Parameters
    ----------
    max_gap_hours
        Longest stretch of an irregular series without any observation before
        ``series_gap`` flags it.
    constant_run
        Identical consecutive values that make a flat line for ``series_constant``.
    length_z
        Robust z-score beyond which ``series_length`` flags a series.
    """

    max_gap_hours: float = 12.0
    constant_run: int = 20
    length_z: float = 5.0


def label_text(value: object) -> str:
    """A label as text for comparison: ``1``, ``1.0``, ``"1"`` and ``np.uint8(1)`` are all ``"1"``."""
    if isinstance(value, bool):
        return str(int(value))
    text = str(value).strip()
    try:
        number = float(value if not isinstance(value, str) else text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return text
    if number.is_integer():
        return str(int(number))
    return repr(number)


@dataclass(frozen=True)
class QualityConfig:
    """The catalogue as configured for one run."""

    checks: dict[str, Check] = field(default_factory=lambda: dict(CATALOGUE))
    columns: dict[str, ColumnSpec] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))
    variables: dict[str, Variable] = field(default_factory=lambda: dict(VARIABLES))
    required_columns: tuple[str, ...] = ()
    sentinels: tuple[float, ...] = (-1.0,)
    elements: dict[str, float | None] = field(default_factory=lambda: dict(DEFAULT_ELEMENTS))
    images: ImageSettings = field(default_factory=ImageSettings)
    series: SeriesSettings = field(default_factory=SeriesSettings)
    labels: tuple[str, ...] | None = None

    def scoped(self, scope: str) -> dict[str, Check]:
        """The checks of one scope (``"table"`` or ``"store"``), enabled or not."""
        return {k: c for k, c in self.checks.items() if c.scope == scope}

    def spec(self, column: str) -> ColumnSpec | None:
        """The variable a column maps to (matched case-insensitively), or ``None``."""
        return self.columns.get(column.strip().lower())


_TOP_KEYS = {
    "checks", "columns", "ranges", "required_columns", "sentinels", "elements", "images", "series", "labels"
}  # fmt: skip
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


def _positive(path: Path, where: str, value: Any, *, integer: bool = False) -> float:
    number = _number(path, where, value)
    if number <= 0 or (integer and not number.is_integer()):
        kind = "a positive whole number" if integer else "a positive number"
        raise _fail(path, f"{where} must be {kind}, got {value!r}")
    return number


def _images(path: Path, raw: Any) -> ImageSettings:
    if not isinstance(raw, dict):
        raise _fail(path, "'images' must be a table")
    allowed = {"dtype", "shape", "channels", "saturated_share", "outlier_z", "hounsfield", "hounsfield_share"}
    if set(raw) - allowed:
        raise _fail(path, f"images may set only {sorted(allowed)}; got {sorted(set(raw) - allowed)}")
    settings = ImageSettings()
    if "dtype" in raw:
        known = ("uint8", "uint16", "int16", "int32", "float32", "float64")
        if raw["dtype"] not in known:
            raise _fail(path, f"images.dtype must be one of {', '.join(known)}, got {raw['dtype']!r}")
        settings = replace(settings, dtype=raw["dtype"])
    if "shape" in raw:
        shape = raw["shape"]
        if not isinstance(shape, list) or len(shape) != 2:
            raise _fail(path, f"images.shape must be [height, width], got {shape!r}")
        height, width = (int(_positive(path, "images.shape[]", v, integer=True)) for v in shape)
        settings = replace(settings, shape=(height, width))
    if "channels" in raw:
        channels = int(_positive(path, "images.channels", raw["channels"], integer=True))
        if channels not in (1, 3, 4):
            raise _fail(path, f"images.channels must be 1, 3 or 4, got {channels}")
        settings = replace(settings, channels=channels)
    if "saturated_share" in raw:
        share = _number(path, "images.saturated_share", raw["saturated_share"])
        if not 0.0 < share <= 1.0:
            raise _fail(path, f"images.saturated_share must be in (0, 1], got {share}")
        settings = replace(settings, saturated_share=share)
    if "outlier_z" in raw:
        settings = replace(settings, outlier_z=_positive(path, "images.outlier_z", raw["outlier_z"]))
    if "hounsfield" in raw:
        bounds = raw["hounsfield"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise _fail(path, f"images.hounsfield must be [low, high], got {bounds!r}")
        low, high = (_number(path, "images.hounsfield[]", v) for v in bounds)
        if low >= high:
            raise _fail(path, f"images.hounsfield: low {low:g} is not below high {high:g}")
        settings = replace(settings, hounsfield=(low, high))
    if "hounsfield_share" in raw:
        share = _number(path, "images.hounsfield_share", raw["hounsfield_share"])
        if not 0.0 <= share <= 1.0:
            raise _fail(path, f"images.hounsfield_share must be in [0, 1], got {share}")
        settings = replace(settings, hounsfield_share=share)
    return settings


def _series(path: Path, raw: Any) -> SeriesSettings:
    if not isinstance(raw, dict):
        raise _fail(path, "'series' must be a table")
    allowed = {"max_gap_hours", "constant_run", "length_z"}
    if set(raw) - allowed:
        raise _fail(path, f"series may set only {sorted(allowed)}; got {sorted(set(raw) - allowed)}")
    settings = SeriesSettings()
    if "max_gap_hours" in raw:
        settings = replace(
            settings, max_gap_hours=_positive(path, "series.max_gap_hours", raw["max_gap_hours"])
        )
    if "constant_run" in raw:
        run = int(_positive(path, "series.constant_run", raw["constant_run"], integer=True))
        if run < 2:
            raise _fail(path, f"series.constant_run must be at least 2, got {run}")
        settings = replace(settings, constant_run=run)
    if "length_z" in raw:
        settings = replace(settings, length_z=_positive(path, "series.length_z", raw["length_z"]))
    return settings


def _labels(path: Path, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(v, str | int | float) for v in raw):
        raise _fail(path, "'labels' must be a non-empty list of labels (numbers or names)")
    return tuple(label_text(v) for v in raw)


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
        images=_images(path, raw.get("images", {})),
        series=_series(path, raw.get("series", {})),
        labels=_labels(path, raw["labels"]) if "labels" in raw else None,
    )
