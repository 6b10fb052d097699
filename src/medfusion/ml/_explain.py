"""Exact explanations of the linear models: contributions, odds ratios, hazard ratios.

For a model whose output is linear in the preprocessed features ``z`` (linear
regression, the log-odds of logistic regression, the log partial hazard of Cox), the
Shapley value of each feature with an independent reference at the training mean is
``coef * (z - mean)``: exact, with no sampling. Contributions are summed over the
one-hot columns of a categorical feature so that they are keyed by the *original*
feature names, which is what a clinician reading the explanation knows.

Local accuracy: ``base_value + sum(contributions) == prediction`` up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.utils.validation import check_is_fitted

from medfusion.ml._cox import CoxModel
from medfusion.ml._estimators import LinearModel, LogisticModel

__all__ = [
    "Explanation",
    "Output",
    "explain_linear",
    "odds_ratios",
    "reference_values",
    "source_features",
]

Output = Literal["probability", "log_odds", "value", "log_partial_hazard"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Per-row, per-feature contributions to a model output.

    Attributes
    ----------
    method
        How the contributions were computed (``linear-exact``, ``shapley-exact``,
        ``shapley-permutation``), with a qualifier where it matters.
    output
        Units of ``base_value``, ``predictions`` and ``contributions``.
    base_value
        The output at the reference point (training mean, or background average).
    features
        Original feature names, the columns of ``contributions``.
    predictions
        Model output per explained row, in ``output`` units.
    contributions
        Array of shape ``(n_rows, n_features)``; each row sums to
        ``prediction - base_value``.
    rows
        0-based data-row numbers of the explained rows.
    """

    method: str
    output: Output
    base_value: float
    features: tuple[str, ...]
    predictions: np.ndarray
    contributions: np.ndarray
    rows: tuple[int, ...] = field(default=())

    def global_importance(self) -> dict[str, float]:
        """Mean absolute contribution per feature over the explained rows."""
        values = (
            np.abs(self.contributions).mean(axis=0) if len(self.contributions) else self.contributions.sum(0)
        )
        return {name: float(v) for name, v in zip(self.features, values, strict=True)}

    def max_local_error(self) -> float:
        """Largest ``|base_value + sum(contributions) - prediction|`` over the rows."""
        if not len(self.predictions):
            return 0.0
        return float(np.max(np.abs(self.base_value + self.contributions.sum(axis=1) - self.predictions)))

    def as_json(self, model_id: str) -> dict[str, Any]:
        """The ``medfusion explain --json`` object (plain floats, feature order kept)."""
        rows = self.rows or tuple(range(len(self.predictions)))
        return {
            "model_id": model_id,
            "method": self.method,
            "base_value": float(self.base_value),
            "output": self.output,
            "rows": [
                {
                    "row": int(row),
                    "prediction": float(prediction),
                    "contributions": {
                        name: float(v) for name, v in zip(self.features, contribution, strict=True)
                    },
                }
                for row, prediction, contribution in zip(
                    rows, self.predictions, self.contributions, strict=True
                )
            ],
            "global_importance": self.global_importance(),
        }


def _input_names(model: Any) -> list[str]:
    if hasattr(model, "feature_names_in_"):
        return [str(n) for n in model.feature_names_in_]
    return [f"x{i}" for i in range(int(model.n_features_in_))]


def _pre(model: Any) -> ColumnTransformer:
    check_is_fitted(model)
    pre = model.pipeline_[0]
    if not isinstance(pre, ColumnTransformer):
        raise TypeError(f"{type(model).__name__} has no column preprocessing to explain")
    return pre


def source_features(model: Any) -> tuple[list[str], np.ndarray]:
    """Original feature names and, per preprocessed column, the index of its source feature.

    Parameters
    ----------
    model
        A fitted :class:`LinearModel`, :class:`LogisticModel` or :class:`CoxModel`.

    Returns
    -------
    names, source
        ``names`` in input-column order; ``source[j]`` is the position in ``names`` of
        the input column that preprocessed column ``j`` came from.
    """
    pre = _pre(model)
    names = _input_names(model)
    position = (
        {column: i for i, column in enumerate(model.feature_names_in_)}
        if hasattr(model, "feature_names_in_")
        else None
    )
    width = sum(s.stop - s.start for s in pre.output_indices_.values())
    source = np.full(width, -1, dtype=int)
    for name, transformer, columns in pre.transformers_:
        if name == "remainder":
            continue  # remainder="drop": no output columns
        where = pre.output_indices_[name]
        counts = [1] * len(columns)
        if name == "cat":
            encoder = transformer.named_steps["onehot"]
            drops = encoder.drop_idx_ if encoder.drop_idx_ is not None else [None] * len(columns)
            counts = [len(c) - (d is not None) for c, d in zip(encoder.categories_, drops, strict=True)]
        index = [position[c] if position is not None else int(c) for c in columns]
        source[where] = np.repeat(index, counts)
    if (source < 0).any():  # pragma: no cover - would mean a preprocessing layout we do not know
        raise ValueError("cannot map the preprocessed columns back to their input features")
    return names, source


def reference_values(model: Any) -> dict[str, Any]:
    """The training reference per input feature: mean (numeric) or most frequent level.

    Read from the fitted preprocessing (the scaler's mean after median imputation, the
    imputer's most frequent level), so no training rows are needed. Used as the
    "removed" value in the deletion test.
    """
    pre = _pre(model)
    names = _input_names(model)
    reference: dict[str, Any] = {}
    for name, transformer, columns in pre.transformers_:
        if name == "num":
            values = transformer.named_steps["scale"].mean_
        elif name == "log":  # the mean on the log scale, back in the column's own units
            values = np.expm1(transformer.named_steps["scale"].mean_)
        elif name == "cat":
            values = transformer.named_steps["impute"].statistics_
        else:
            continue
        for column, value in zip(columns, values, strict=True):
            key = str(column) if hasattr(model, "feature_names_in_") else names[int(column)]
            reference[key] = value.item() if isinstance(value, np.generic) else value
    return {name: reference[name] for name in names}


def _linear_parts(
    model: Any, design: np.ndarray, target_class: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Output, str]:
    """Coefficients, reference point, predictions, output units and method name.

    Predictions are computed from the preprocessed ``design`` by the fitted final step
    (or lifelines' own formula), so the preprocessing runs once per call.
    """
    if isinstance(model, CoxModel):
        coef = np.asarray(model.lifelines_.params_, dtype=float)
        # lifelines centres on its own training mean, so the base value is 0 by design.
        mean = np.asarray(model.lifelines_._norm_mean, dtype=float)
        prediction = (design - mean) @ coef  # lifelines' predict_log_partial_hazard
        return coef, mean, prediction, "log_partial_hazard", "linear-exact"
    stored = getattr(model, "training_mean_", None)
    # A model saved before training_mean_ existed: centre on the data given instead.
    mean = design.mean(axis=0) if stored is None else np.asarray(stored, dtype=float)
    if isinstance(model, LinearModel):
        coef = np.ravel(model.coef_).astype(float)
        prediction = np.asarray(model.pipeline_[-1].predict(design), dtype=float)
        return coef, mean, prediction, "value", "linear-exact"
    linear = model.pipeline_[-1]
    classes = list(model.classes_)
    label = classes[-1] if target_class is None else target_class
    if label not in classes:
        raise ValueError(f"target_class must be one of {classes}, got {label!r}")
    scores = np.asarray(linear.decision_function(design), dtype=float)
    if len(classes) == 2:
        # Binary scikit-learn models keep one row of coefficients: the log-odds of classes[1].
        sign = 1.0 if label == classes[1] else -1.0
        coef, prediction = sign * np.ravel(linear.coef_), sign * scores
    else:
        k = classes.index(label)
        coef, prediction = np.asarray(linear.coef_[k], dtype=float), scores[:, k]
    method = "linear-exact"
    if model.calibrated_:
        method += " (uncalibrated log-odds; probabilities are recalibrated)"
    return coef, mean, prediction, "log_odds", method


def explain_linear(model: Any, X: Any, *, target_class: Any = None) -> Explanation:
    """Exact contributions ``coef * (z - training mean)`` per original feature.

    Parameters
    ----------
    model
        A fitted :class:`LinearModel` (output ``value``), :class:`LogisticModel`
        (output ``log_odds`` of ``target_class``: for a calibrated model this is the
        underlying linear predictor, which the method name says) or :class:`CoxModel`
        (output ``log_partial_hazard``).
    X
        Rows to explain, with the columns the model was fitted on.
    target_class
        Class whose log-odds (or multinomial score) to explain; default the last class.

    Returns
    -------
    Explanation
        ``base_value`` is the output at the training mean; contributions of one-hot
        columns are summed per categorical feature.
    """
    if not isinstance(model, LinearModel | LogisticModel | CoxModel):
        raise TypeError(
            f"explain_linear needs a LinearModel, LogisticModel or CoxModel, got {type(model).__name__}"
        )
    names, source = source_features(model)
    design = np.asarray(model.pipeline_[0].transform(X), dtype=float)
    coef, mean, prediction, output, method = _linear_parts(model, design, target_class)
    per_column = (design - mean) * coef
    grouping = np.zeros((len(source), len(names)))
    grouping[np.arange(len(source)), source] = 1.0
    contributions = per_column @ grouping
    # The base value is the exact complement of the contributions, so that local
    # accuracy holds to rounding error even for lifelines' centring.
    intercept = float(np.mean(prediction - per_column.sum(axis=1))) if len(prediction) else 0.0
    return Explanation(method, output, intercept, tuple(names), prediction, contributions)


def odds_ratios(model: LogisticModel, *, alpha: float = 0.05) -> pd.DataFrame:
    """Odds ratios with Wald confidence intervals for a binary :class:`LogisticModel`.

    The standard errors come from the inverse penalised Hessian at the fit
    (``coef_se_``, see :class:`LogisticModel`), not from a bootstrap. Numeric features
    are standardised, so their odds ratio is per standard deviation; one-hot columns
    give the odds ratio of the level against the average of the model (full coding).

    Returns
    -------
    DataFrame
        Index ``feature_names_out_``; columns ``odds_ratio``, ``ci_low``, ``ci_high``.

    Raises
    ------
    ValueError
        The model has more than two classes or was saved without standard errors.
    """
    from scipy.stats import norm

    check_is_fitted(model)
    se = getattr(model, "coef_se_", None)
    if se is None:
        raise ValueError("odds ratios need a binary LogisticModel fitted with this version")
    coef = np.ravel(model.coef_)
    z = float(norm.ppf(1 - alpha / 2))
    return pd.DataFrame(
        {"odds_ratio": np.exp(coef), "ci_low": np.exp(coef - z * se), "ci_high": np.exp(coef + z * se)},
        index=[str(n) for n in model.feature_names_out_],
    )
