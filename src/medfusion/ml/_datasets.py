"""Readers for the public data sets the published-results benchmarks use."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medfusion.errors import DataError

__all__ = ["CLEVELAND_COLUMNS", "load_cleveland"]

# Column order of ``processed.cleveland.data`` (see ``heart-disease.names``).
CLEVELAND_COLUMNS = (
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
    "thalach", "exang", "oldpeak", "slope", "ca", "thal", "num",
)  # fmt: skip


def load_cleveland(path: Path) -> pd.DataFrame:
    """UCI Heart Disease (Cleveland) with ``target = num > 0``; ``?`` becomes missing.

    Parameters
    ----------
    path
        The ``processed.cleveland.data`` file.
    """
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    frame = pd.read_csv(path, header=None, names=list(CLEVELAND_COLUMNS), na_values="?")
    frame["target"] = (frame.pop("num") > 0).astype(int)
    return frame
