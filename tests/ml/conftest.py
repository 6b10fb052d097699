"""Small generated tables for the ML tests (no shared data needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfusion.config import override_settings


def regression_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Outcome linear in two numbers and a category, with a missing value."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"age": rng.normal(60, 10, n), "dose": rng.normal(5, 2, n), "site": rng.choice(["a", "b", "c"], n)}
    )
    frame["target"] = (
        0.5 * frame["age"] - 2 * frame["dose"] + (frame["site"] == "b") * 3 + rng.normal(0, 2, n)
    )
    frame.loc[3, "dose"] = np.nan
    return frame


def binary_frame(n: int = 200, seed: int = 0, classes: int = 2) -> pd.DataFrame:
    """Classes driven by two numbers; ``classes=3`` gives a multiclass table."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"x1": rng.normal(size=n), "x2": rng.normal(size=n), "sex": rng.choice(["f", "m"], n)}
    )
    score = 1.5 * frame["x1"] - frame["x2"] + rng.logistic(size=n) * 0.7
    if classes == 2:
        frame["target"] = (score > 0).astype(int)
    else:
        frame["target"] = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    return frame


def survival_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Exponential survival with hazard ``exp(0.8 x1)`` and independent censoring."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"x1": rng.normal(size=n), "x2": rng.normal(size=n), "stage": rng.choice(["I", "II"], n)}
    )
    event_time = rng.exponential(10 / np.exp(0.8 * frame["x1"]))
    censor_time = rng.exponential(15, n)
    frame["time"] = np.round(np.minimum(event_time, censor_time) + 0.01, 3)
    frame["event"] = (event_time <= censor_time).astype(int)
    return frame


@pytest.fixture
def models_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh registry folder, set as ``Settings.models_dir`` for the test."""
    path = tmp_path / "models"
    with override_settings(models_dir=path):
        yield path


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Path]:
    """CSV files of each kind of table."""
    paths = {}
    for name, frame in {
        "regression": regression_frame(),
        "binary": binary_frame(),
        "multiclass": binary_frame(classes=3),
        "survival": survival_frame(),
    }.items():
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths
