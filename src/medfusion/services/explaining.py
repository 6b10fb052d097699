"""Use case: explain a saved model's predictions on a table, keyed by feature name.

Linear, logistic and Cox models get exact contributions (``coef x centred value``);
``method="shapley"`` runs the model-agnostic Shapley explainer on the model's natural
output instead (``value``, the calibrated ``probability`` of the last class, or the
``log_partial_hazard``), with the first rows of the given table as background, since
the training rows are not stored with the model.
"""

from __future__ import annotations

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
from medfusion.services._files import write_atomic

__all__ = ["ExplainResult", "Method", "explain_model", "explain_rows"]

Method = Literal["auto", "linear", "shapley"]


@dataclass(frozen=True, slots=True)
class ExplainResult:
    """An explanation of a saved model, with its ratio table and any PNGs written.

    Attributes
    ----------
    explanation
        Per-feature contributions (tabular models); ``None`` for ``cnn`` and ``rnn``.
    attributions
        ``cnn`` and ``rnn``: the JSON object whose rows name attribution files (Grad-CAM /
        occlusion PNGs, integrated-gradients NPY and PNG).
    ratios
        Odds ratios (binary logistic) or hazard ratios (Cox) with CIs, else ``None``.
    """

    model_id: str
    explanation: Explanation | None
    ratios: pd.DataFrame | None = None
    plots: list[Path] = field(default_factory=list)
    attributions: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``medfusion explain --json`` object (image and sequence rows carry ``attribution_file``)."""
        if self.attributions is not None:
            return self.attributions
        assert self.explanation is not None
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


def explain_model(
    *,
    model_id: str,
    data: Path,
    rows: int | None = None,
    out: Path | None = None,
    method: Method = "auto",
    seed: int = 0,
    registry_dir: Path | None = None,
) -> ExplainResult:
    """Explain a saved model's predictions for the first ``rows`` rows of a table.

    Parameters
    ----------
    model_id
        ``NAME`` or ``NAME@vN``.
    data
        CSV or Parquet table with the model's feature columns (outcome columns ignored); for
        ``cnn`` a ``.npz`` of images (see :mod:`medfusion.services.image_explaining`), for
        ``rnn`` sequences.
    rows
        Explain only the first ``rows`` data rows (default all).
    out
        Folder for PNG bar charts: ``global_importance.png`` and ``row_<n>.png``; for
        ``cnn`` the ``image_<n>.png`` heat maps, for ``rnn`` the ``attr_<n>.npy`` /
        ``attr_<n>.png`` attribution files (default ``explain-<name>-v<version>`` in the
        working folder).
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
    kind = record.metadata.get("model")
    if kind in ("cnn", "rnn"):
        if method != "auto":
            raise InvalidRequestError(f"{kind} models have one explanation method; use --method auto")
        folder = out or Path(f"explain-{record.name}-v{record.version}")
        if kind == "cnn":
            from medfusion.services.image_explaining import explain_images

            payload = explain_images(fitted, record.model_id, data, rows=rows, out=folder)
        else:
            from medfusion.services.sequence_training import explain_sequence_model

            payload = explain_sequence_model(
                fitted, record.metadata, model_id=record.model_id, data=data, rows=rows, out=folder
            )
        files = [Path(r.get("heatmap_file", r["attribution_file"])) for r in payload["rows"]]
        return ExplainResult(record.model_id, None, None, files, payload)
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
            write_atomic(out / f"{name}.png", png)
            plots.append(out / f"{name}.png")
    return ExplainResult(record.model_id, explanation, ratios, plots)
