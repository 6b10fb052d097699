"""Run the catalogue over a table and collect findings into a report.

Rows are reported as 0-based data rows (the header is not a row). Findings keep every
failing row, so a training gate or a test can act on all of them; the JSON and HTML
renderings show a few examples only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medfusion.quality._catalogue import CATALOGUE_VERSION, Check, QualityConfig
from medfusion.quality._units import conversion

__all__ = ["CheckResult", "Finding", "QualityReport", "check_table"]

EXAMPLES = 5
# A text column is treated as numeric when at least this share of its values are numbers:
# one stray "n/a" among numbers is a typo, a column of words is not.
_NUMERIC_SHARE = 0.9


@dataclass(frozen=True)
class Finding:
    """A check that failed on one column (or on the whole table when ``column`` is ``None``)."""

    check: str
    category: str
    severity: str
    column: str | None
    count: int
    checked: int
    rows: tuple[int, ...]
    values: tuple[Any, ...]
    message: str

    def to_dict(self, examples: int = EXAMPLES, *, values: bool = True) -> dict[str, Any]:
        """JSON-ready form with up to ``examples`` example rows (with their values unless ``values=False``,
        for records such as a model card that must not carry cell contents)."""
        pairs = list(zip(self.rows, self.values, strict=True))[:examples]
        shown = [{"row": r, "value": v} if values else {"row": r} for r, v in pairs]
        return {
            "check": self.check,
            "category": self.category,
            "severity": self.severity,
            "column": self.column,
            "count": self.count,
            "checked": self.checked,
            "message": self.message,
            "examples": shown,
        }


@dataclass(frozen=True)
class CheckResult:
    """One check's totals over the table."""

    name: str
    category: str
    severity: str
    threshold: float
    failed: int
    checked: int
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "category": self.category,
            "severity": self.severity,
            "threshold": self.threshold,
            "failed": self.failed,
            "checked": self.checked,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class QualityReport:
    """All check results and findings for one table."""

    rows: int
    columns: int
    checks: tuple[CheckResult, ...]
    findings: tuple[Finding, ...]
    catalogue_version: str = CATALOGUE_VERSION

    @property
    def passed(self) -> bool:
        """No error-severity check failed."""
        return not self.errors

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings of error-severity checks."""
        return tuple(f for f in self.findings if f.severity == "error")

    def to_dict(self, examples: int = EXAMPLES) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "catalogue_version": self.catalogue_version,
            "passed": self.passed,
            "rows": self.rows,
            "columns": self.columns,
            "checks": [c.to_dict() for c in self.checks],
            "findings": [f.to_dict(examples) for f in self.findings],
        }


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (numpy numbers become Python ones, NaN becomes None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


@dataclass
class _Run:
    frame: pd.DataFrame
    config: QualityConfig
    numeric: dict[str, pd.Series] = field(default_factory=dict)
    sentinel_mask: dict[str, pd.Series] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)

    def record(self, check: Check, column: str | None, mask: pd.Series, checked: int, message: str) -> None:
        """Count ``mask``'s rows against ``check``; add a finding when over the threshold."""
        count = int(mask.sum())
        failed, total = self.totals.get(check.id, (0, 0))
        self.totals[check.id] = (failed + count, total + checked)
        if count == 0 or count <= check.threshold * checked:
            return
        positions = np.flatnonzero(mask.to_numpy())
        source = self.frame[column] if column is not None else None
        values = tuple(_plain(source.iloc[i]) if source is not None else None for i in positions)
        self.findings.append(
            Finding(
                check.id,
                check.category,
                check.severity,
                column,
                count,
                checked,
                tuple(int(i) for i in positions),
                values,
                message,
            )
        )


def _required(run: _Run, check: Check) -> None:
    present = {c.lower() for c in run.frame.columns}
    required = run.config.required_columns
    missing = [name for name in required if name.lower() not in present]
    run.totals[check.id] = (len(missing), len(required))
    for name in missing:
        # The column itself is absent, so the finding names no rows.
        run.findings.append(
            Finding(
                check.id,
                check.category,
                check.severity,
                name,
                1,
                1,
                (),
                (),
                f"required column '{name}' is missing",
            )
        )


def _value_type(run: _Run, check: Check) -> None:
    for column in run.frame.columns:
        series = run.frame[column]
        if pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_numeric_dtype(series):
            run.numeric[column] = series.astype(float)
            run.record(check, column, pd.Series(False, index=series.index), int(series.notna().sum()), "")
            continue
        present = series.notna()
        if not present.any():
            continue
        numbers = pd.to_numeric(series.astype(str).str.strip().where(present), errors="coerce")
        bad = present & numbers.isna()
        share = 1.0 - bad.sum() / present.sum()
        if run.config.spec(column) is None and share < _NUMERIC_SHARE:
            continue  # a text column: nothing to check
        run.numeric[column] = numbers.astype(float)
        run.record(
            check,
            column,
            bad,
            int(present.sum()),
            f"{int(bad.sum())} non-numeric value(s) in a numeric column",
        )


def _missing_rate(run: _Run, check: Check) -> None:
    rows = len(run.frame)
    for column in run.frame.columns:
        missing = run.frame[column].isna()
        rate = float(missing.mean())
        run.record(check, column, missing, rows, f"{rate:.1%} of cells are empty")


def _sentinel(run: _Run, check: Check) -> None:
    for column, values in run.numeric.items():
        spec = run.config.spec(column)
        flagged = pd.Series(False, index=values.index)
        for code in run.config.sentinels:
            hit = values == code
            if not hit.any():
                continue
            others = values[~hit & values.notna()]
            if spec is not None:
                variable = run.config.variables[spec.variable]
                scale, offset = conversion(spec.unit, variable.unit, spec.variable)
                impossible = not variable.low <= code * scale + offset <= variable.high
            else:
                # An unmapped column: the code is a sentinel when no real value comes near it.
                impossible = len(others) > 0 and not others.min() <= code <= others.max()
            if impossible:
                flagged |= hit
        run.sentinel_mask[column] = flagged
        run.record(check, column, flagged, int(values.notna().sum()), "a 'missing' code stands as a value")


def _plausible_range(run: _Run, check: Check) -> None:
    for column, values in run.numeric.items():
        spec = run.config.spec(column)
        if spec is None:
            continue
        variable = run.config.variables[spec.variable]
        scale, offset = conversion(spec.unit, variable.unit, spec.variable)
        canonical = values * scale + offset
        usable = values.notna() & ~run.sentinel_mask.get(column, pd.Series(False, index=values.index))
        out = usable & ((canonical < variable.low) | (canonical > variable.high))
        source = "" if spec.unit == variable.unit else f" (values in {spec.unit}, converted)"
        bounds = f"{variable.low:g}-{variable.high:g} {variable.unit}"
        run.record(check, column, out, int(usable.sum()), f"{spec.variable} outside {bounds}{source}")


def _duplicate_rows(run: _Run, check: Check) -> None:
    duplicated = run.frame.duplicated(keep="first")
    run.record(check, None, duplicated, len(run.frame), "rows repeat an earlier row exactly")


# Order matters: value types decide which columns are numeric, sentinels are excluded
# from the range check so a -1 is reported once, as what it is.
_RUNNERS = {
    "required_columns": _required,
    "value_type": _value_type,
    "missing_rate": _missing_rate,
    "sentinel": _sentinel,
    "plausible_range": _plausible_range,
    "duplicate_rows": _duplicate_rows,
}


def _results(run: _Run) -> Iterator[CheckResult]:
    for check_id, check in run.config.scoped("table").items():
        if not check.enabled:
            continue
        failed, checked = run.totals.get(check_id, (0, 0))
        passed = not any(f.check == check_id for f in run.findings)
        yield CheckResult(check_id, check.category, check.severity, check.threshold, failed, checked, passed)


def check_table(frame: pd.DataFrame, config: QualityConfig | None = None) -> QualityReport:
    """Run every enabled check of the catalogue over a table.

    Parameters
    ----------
    frame
        The table; columns are matched to catalogue variables by name.
    config
        The configured catalogue (default: :class:`QualityConfig` defaults).

    Returns
    -------
    QualityReport
        Per-check totals and the findings of the checks that failed.
    """
    config = config or QualityConfig()
    run = _Run(frame.reset_index(drop=True), config)
    for check_id, runner in _RUNNERS.items():
        check = config.checks[check_id]
        if check.enabled:
            runner(run, check)
        elif check_id == "value_type":
            # Later checks still need to know which columns hold numbers.
            runner(run, Check(check_id, check.category, check.severity, 1.0, "", enabled=False))
    run.findings = [f for f in run.findings if config.checks[f.check].enabled]
    return QualityReport(len(frame), frame.shape[1], tuple(_results(run)), tuple(run.findings))
