"""Plain descriptions of a run for metadata and cards: JSON metrics, versions, model details."""

from __future__ import annotations

import math
import platform
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from typing import Any

import numpy as np

from medfusion.ml._data import TabularData
from medfusion.ml._metrics import Estimate

__all__ = ["library_versions", "metrics_json", "model_details", "outcome_summary"]

_LIBRARIES = ("medfusion", "scikit-learn", "lifelines", "numpy", "pandas", "scipy", "matplotlib", "joblib")


def metrics_json(metrics: dict[str, Estimate]) -> dict[str, dict[str, float | None]]:
    """``{name: {value, ci_low, ci_high}}``; JSON has no NaN, so an undefined number is null."""
    return {
        name: {k: (v if math.isfinite(v) else None) for k, v in estimate.as_dict().items()}
        for name, estimate in metrics.items()
    }


def library_versions(*extra: str) -> dict[str, str]:
    """Versions of Python and of the libraries a saved model depends on (plus ``extra``, e.g. torch)."""
    versions = {"python": platform.python_version()}
    for name in (*_LIBRARIES, *extra):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def run_header(model: str, fitted: Any, *, task: str, seed: int, n_bootstrap: int) -> dict[str, Any]:
    """The fields every saved training run's metadata starts with: kind, estimator, parameters, seed, time."""
    return {
        "model": model,
        "estimator": type(fitted).__name__,
        "task": task,
        "params": fitted.get_params(),
        "seed": seed,
        "n_bootstrap": n_bootstrap,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def outcome_summary(data: TabularData) -> str:
    """One aggregate sentence about the outcome (mean / events / class counts), no rows."""
    if data.task == "regression":
        return f"Mean {data.y.mean():.4g}, SD {data.y.std():.4g}."
    if data.task == "survival":
        events, median = int(data.y[:, 1].sum()), np.median(data.y[:, 0])
        return f"{events} events in {len(data.y)} rows; median time {median:.4g}."
    labels, counts = np.unique(data.y.astype(str), return_counts=True)
    return "Class counts: " + ", ".join(f"{lab} {n}" for lab, n in zip(labels, counts, strict=True)) + "."


def model_details(kind: str, model: Any) -> dict[str, Any]:
    """Hazard ratios and PH test (cox), coefficients (linear, binary logistic), calibration."""
    details: dict[str, Any] = {}
    if kind == "cox":
        details["hazard_ratios"] = model.hazard_ratios_.to_dict(orient="index")
        details["ph_test"] = model.ph_test_.to_dict(orient="index")
    elif np.ndim(model.coef_) == 1 or np.shape(model.coef_)[0] == 1:
        details["coefficients"] = dict(
            zip(model.feature_names_out_, np.ravel(model.coef_).tolist(), strict=True)
        )
    if kind == "logistic":
        details.update(calibrated=bool(model.calibrated_), calibration=model.calibration_method_)
    return details
