"""Tabular data: read a CSV / Parquet file, check it, split it into features and outcome.

Error messages name the column and the row, never the offending value: a cell of a
clinical table may be patient data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from medfusion.errors import DataError

__all__ = ["TabularData", "Task", "fingerprint", "prepare", "read_table", "split_features"]

Task = Literal["regression", "binary", "multiclass", "survival"]

# UCI files mark missing cells with "?"; pandas' default NA strings do not include it.
_NA_VALUES = ["?", "NA", "N/A", "NaN", "nan", ""]


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame.

    Parameters
    ----------
    path
        ``.parquet`` / ``.pq`` files are read with pyarrow; anything else as CSV.

    Raises
    ------
    DataError
        The file is missing, empty or cannot be parsed.
    """
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, na_values=_NA_VALUES, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {path} is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataError(f"data file {path} cannot be read: {type(error).__name__}") from None
    if frame.shape[0] == 0:
        raise DataError(f"data file {path} is empty (a header but no rows)")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's content (columns, dtypes and values), independent of file format."""
    digest = hashlib.sha256()
    digest.update(repr([(c, str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _numeric(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
        raise DataError(f"{what} column '{column}' has a non-numeric value (data row {row})")
    return values.to_numpy(dtype=float)


def _check_feature_columns(features: pd.DataFrame) -> pd.DataFrame:
    """Coerce mostly-numeric text columns, refusing stray non-numbers in them.

    A column where most cells are numbers but some are not is almost always a typo in
    a numeric field; treating it as categorical would silently one-hot encode doses.
    """
    out = features.copy()
    for column in features.columns:
        series = features[column]
        if series.dtype != object:
            continue
        present = series.dropna()
        parsed = pd.to_numeric(present, errors="coerce")
        n_numbers = int(parsed.notna().sum())
        if n_numbers == len(present):
            out[column] = pd.to_numeric(series, errors="coerce")
        elif n_numbers >= len(present) / 2:
            bad = pd.to_numeric(series, errors="coerce").isna() & series.notna()
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise DataError(f"feature column '{column}' has a non-numeric value (data row {row})")
    return out


@dataclass(frozen=True, slots=True)
class TabularData:
    """Features and outcome ready for an estimator.

    Attributes
    ----------
    X
        Feature table (numeric and categorical columns).
    y
        Outcome: a float vector (regression), labels (classification) or an ``(n, 2)``
        array of ``time, event`` (survival).
    task
        Kind of prediction problem.
    outcome
        Names of the outcome column(s).
    """

    X: pd.DataFrame
    y: np.ndarray
    task: Task
    outcome: tuple[str, ...]


def model_features(model: Any, frame: pd.DataFrame, outcome: tuple[str, ...]) -> pd.DataFrame:
    """The columns a fitted model was trained on, in its order; a missing one is a ``DataError``."""
    names = [str(n) for n in getattr(model, "feature_names_in_", [])]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DataError(f"the data lacks feature columns the model needs: {', '.join(missing)}")
    return split_features(frame[names], outcome)


def split_features(frame: pd.DataFrame, outcome: tuple[str, ...]) -> pd.DataFrame:
    """Return the feature columns of ``frame`` (every column but the outcome ones)."""
    features = frame.drop(columns=[c for c in outcome if c in frame.columns])
    if features.shape[1] == 0:
        raise DataError("the data has no feature columns besides the outcome")
    return _check_feature_columns(features)


def _require(frame: pd.DataFrame, column: str, role: str) -> None:
    if column not in frame.columns:
        shown = ", ".join(list(frame.columns)[:12])
        raise DataError(f"{role} column '{column}' is not in the data (columns: {shown})")


def prepare(
    frame: pd.DataFrame,
    *,
    model: str,
    target: str = "target",
    time: str | None = None,
    event: str | None = None,
) -> TabularData:
    """Check a table for a model kind and split it into features and outcome.

    Parameters
    ----------
    frame
        The table as read by :func:`read_table`.
    model
        ``linear``, ``logistic`` or ``cox``.
    target
        Outcome column for ``linear`` and ``logistic``.
    time, event
        Survival time and event indicator (1 = event, 0 = censored) for ``cox``.

    Raises
    ------
    DataError
        A column is missing, a number is not numeric, the outcome has one class, or a
        time is negative.
    """
    if model == "cox":
        if time is None or event is None:
            raise DataError("a survival model needs --time COL and --event COL")
        _require(frame, time, "time")
        _require(frame, event, "event")
        times, events = _numeric(frame, time, "time"), _numeric(frame, event, "event")
        keep = ~(np.isnan(times) | np.isnan(events))
        if not keep.all():
            raise DataError(f"time '{time}' or event '{event}' is missing in {int((~keep).sum())} rows")
        if (times < 0).any():
            raise DataError(f"time column '{time}' has a negative value")
        if not np.isin(events, [0.0, 1.0]).all():
            raise DataError(f"event column '{event}' must hold 0 (censored) or 1 (event)")
        if events.sum() == 0:
            raise DataError(f"event column '{event}' has no events; a survival model cannot be fitted")
        outcome = (time, event)
        return TabularData(
            split_features(frame, outcome), np.column_stack([times, events]), "survival", outcome
        )
    _require(frame, target, "target")
    labels = frame[target]
    if labels.isna().any():
        raise DataError(f"target column '{target}' is missing in {int(labels.isna().sum())} rows")
    if model == "linear":
        y = _numeric(frame, target, "target")
        return TabularData(split_features(frame, (target,)), y, "regression", (target,))
    classes = np.unique(labels.astype(str))
    if len(classes) < 2:
        raise DataError(f"target column '{target}' has a single class; a classifier needs two or more")
    values = labels.to_numpy()
    if labels.dtype == object:
        values = labels.astype(str).to_numpy()
    task: Task = "binary" if len(classes) == 2 else "multiclass"
    return TabularData(split_features(frame, (target,)), values, task, (target,))
