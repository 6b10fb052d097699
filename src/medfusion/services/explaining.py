"""Use case: explain a saved model's predictions on a table, keyed by feature name.

Linear, logistic and Cox models get exact contributions (``coef x centred value``);
``method="shapley"`` runs the model-agnostic Shapley explainer on the model's natural
output instead (``value``, the calibrated ``probability`` of the last class, or the
``log_partial_hazard``), with the first rows of the given table as background, since
the training rows are not stored with the model.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from medfusion.config import get_settings
from medfusion.errors import DataError, InvalidRequestError
from medfusion.ml import (
    CoxModel,
    Explanation,
    LinearModel,
    LogisticModel,
    Registry,
    explain_linear,
    model_features,
    odds_ratios,
    plot_explanation,
    read_table,
    shapley_values,
)
from medfusion.services.image_explaining import ImageExplainResult

__all__ = ["ExplainResult", "Method", "explain_model", "explain_rows"]

Method = Literal["auto", "linear", "shapley"]


@dataclass(frozen=True, slots=True)
class ExplainResult:
    """An explanation of a saved model, with its ratio table and any PNGs written.

    Attributes
    ----------
    ratios
        Odds ratios (binary logistic) or hazard ratios (Cox) with CIs, else ``None``.
    """

    model_id: str
    explanation: Explanation
    ratios: pd.DataFrame | None = None
    plots: list[Path] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The ``medfusion explain --json`` object."""
        return self.explanation.as_json(self.model_id)


def _output(model: Any) -> Any:
    """The model's natural output as a function of a DataFrame, and its units."""
    if isinstance(model, CoxModel):
        return lambda frame: np.log(model.predict(frame)), "log_partial_hazard"
    if isinstance(model, LogisticModel):
        return lambda frame: model.predict_proba(frame)[:, -1], "probability"
    return model.predict, "value"


def explain_rows(
    model: Any, features: pd.DataFrame, *, method: Method = "auto", seed: int = 0
) -> Explanation:
    """Explain the rows of ``features`` with the exact linear path or the Shapley explainer."""
    if method not in ("auto", "linear", "shapley"):
        raise InvalidRequestError(f"--method must be auto, linear or shapley; got {method!r}")
    linear = isinstance(model, LinearModel | LogisticModel | CoxModel)
    if method == "linear" and not linear:
        raise InvalidRequestError(f"the linear explainer does not apply to {type(model).__name__}")
    if linear and method != "shapley":
        return explain_linear(model, features)
    predict, output = _output(model)
    return shapley_values(predict, features, features, output=output, seed=seed)


def _write(path: Path, payload: bytes) -> None:
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def explain_model(
    *,
    model_id: str,
    data: Path,
    rows: int | None = None,
    out: Path | None = None,
    method: Method = "auto",
    seed: int = 0,
    registry_dir: Path | None = None,
) -> ExplainResult | ImageExplainResult:
    """Explain a saved model's predictions for the first ``rows`` rows of a table.

    Parameters
    ----------
    model_id
        ``NAME`` or ``NAME@vN``.
    data
        CSV or Parquet table with the model's feature columns (outcome columns ignored); for
        an image model a ``.npz`` of images (see :mod:`medfusion.services.image_explaining`).
    rows
        Explain only the first ``rows`` data rows (default all).
    out
        Folder for PNG bar charts: ``global_importance.png`` and ``row_<n>.png``.
    method
        ``auto`` / ``linear`` (exact contributions) or ``shapley`` (sampled or exact
        Shapley values of the natural output, with the table as background).
    seed
        Seeds the Shapley explainer.

    Raises
    ------
    NotFoundError
        Unknown model id.
    DataError
        The table is unreadable or lacks a feature column; ``rows`` is not positive.
    """
    if rows is not None and rows < 1:
        raise DataError(f"--rows must be at least 1, got {rows}")
    fitted, record = Registry(registry_dir or get_settings().models_dir).load(model_id)
    if record.metadata.get("data", {}).get("kind") == "images":
        from medfusion.services.image_explaining import explain_images

        return explain_images(fitted, record.model_id, data, rows=rows, out=out)
    outcome = tuple(c for c in record.metadata.get("data", {}).get("outcome", []) if c)
    table = model_features(fitted, read_table(data), outcome)
    if rows is not None:
        table = table.iloc[:rows]
    explanation = explain_rows(fitted, table, method=method, seed=seed)
    ratios = None
    if isinstance(fitted, CoxModel):
        ratios = fitted.hazard_ratios_
    elif isinstance(fitted, LogisticModel) and getattr(fitted, "coef_se_", None) is not None:
        ratios = odds_ratios(fitted)
    plots: list[Path] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, png in plot_explanation(explanation).items():
            _write(out / f"{name}.png", png)
            plots.append(out / f"{name}.png")
    return ExplainResult(record.model_id, explanation, ratios, plots)
