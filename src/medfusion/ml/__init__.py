"""Clinical prediction models on tables and sequences: estimators, metrics, reports, a registry.

Every estimator follows the scikit-learn contract (``fit`` returns self, learned
attributes end in ``_``, randomness only from ``random_state``) and carries its own
preprocessing. This package never imports the record store: it works on tables.
"""

from __future__ import annotations

from typing import Any

from medfusion.errors import InvalidRequestError
from medfusion.ml._cox import CoxModel, survival_target
from medfusion.ml._data import (
    TabularData,
    Task,
    fingerprint,
    model_features,
    prepare,
    read_table,
    split_features,
)
from medfusion.ml._datasets import CLEVELAND_COLUMNS, load_cleveland
from medfusion.ml._describe import library_versions, metrics_json, model_details, outcome_summary
from medfusion.ml._estimators import LinearModel, LogisticModel, TabularEstimator, make_preprocessor
from medfusion.ml._evaluate import Evaluation, cross_validate, evaluate, survival_grid
from medfusion.ml._explain import (
    Explanation,
    Output,
    explain_linear,
    odds_ratios,
    reference_values,
    source_features,
)
from medfusion.ml._metrics import (
    CensoringSurvival,
    Estimate,
    auroc,
    average_precision,
    binary_metrics,
    bootstrap,
    calibration_intercept,
    calibration_slope,
    censoring_survival,
    expected_calibration_error,
    harrell_c,
    integrated_brier_score,
    multiclass_metrics,
    regression_metrics,
    survival_metrics,
    uno_c,
)
from medfusion.ml._plots import kaplan_meier, plot_evaluation, plot_explanation
from medfusion.ml._registry import ModelRecord, Registry
from medfusion.ml._report import model_card, report_files, run_report
from medfusion.ml._sequence import RNNModel, as_sequences, summary_features
from medfusion.ml._sequence_data import (
    PHYSIONET_DESCRIPTORS,
    SequenceData,
    UcrTable,
    read_long_csv,
    read_physionet,
    read_sequences,
    read_ucr,
    read_ucr_table,
    sequence_kind,
    stay_files,
    stay_observations,
)
from medfusion.ml._sequence_explain import (
    SequenceDeletion,
    SequenceExplanation,
    integrated_gradients,
    plot_attribution,
    plot_training_curves,
    sequence_deletion_test,
)
from medfusion.ml._shapley import DeletionResult, background_reference, deletion_test, shapley_values

__all__ = [
    "CLEVELAND_COLUMNS",
    "MODEL_KINDS",
    "PHYSIONET_DESCRIPTORS",
    "CensoringSurvival",
    "CoxModel",
    "DeletionResult",
    "Estimate",
    "Evaluation",
    "Explanation",
    "LinearModel",
    "LogisticModel",
    "ModelRecord",
    "Output",
    "RNNModel",
    "Registry",
    "SequenceData",
    "SequenceDeletion",
    "SequenceExplanation",
    "TabularData",
    "TabularEstimator",
    "Task",
    "UcrTable",
    "as_sequences",
    "auroc",
    "average_precision",
    "background_reference",
    "binary_metrics",
    "bootstrap",
    "calibration_intercept",
    "calibration_slope",
    "censoring_survival",
    "cross_validate",
    "deletion_test",
    "evaluate",
    "expected_calibration_error",
    "explain_linear",
    "fingerprint",
    "harrell_c",
    "integrated_brier_score",
    "integrated_gradients",
    "kaplan_meier",
    "library_versions",
    "load_cleveland",
    "make_estimator",
    "make_preprocessor",
    "metrics_json",
    "model_card",
    "model_details",
    "model_features",
    "multiclass_metrics",
    "odds_ratios",
    "outcome_summary",
    "plot_attribution",
    "plot_evaluation",
    "plot_explanation",
    "plot_training_curves",
    "prepare",
    "read_long_csv",
    "read_physionet",
    "read_sequences",
    "read_table",
    "read_ucr",
    "read_ucr_table",
    "reference_values",
    "regression_metrics",
    "report_files",
    "run_report",
    "sequence_deletion_test",
    "sequence_kind",
    "shapley_values",
    "source_features",
    "split_features",
    "stay_files",
    "stay_observations",
    "summary_features",
    "survival_grid",
    "survival_metrics",
    "survival_target",
    "uno_c",
]

MODEL_KINDS = ("linear", "logistic", "cox", "rnn")


def make_estimator(
    kind: str, *, random_state: int | None = None, **params: Any
) -> TabularEstimator | RNNModel:
    """A fresh, unfitted estimator of one kind.

    Parameters
    ----------
    kind
        ``linear``, ``logistic``, ``cox`` or ``rnn``.
    random_state
        Seed, for the kinds that use randomness.
    **params
        Estimator parameters (e.g. ``alpha`` for ridge, ``penalty`` for logistic).

    Raises
    ------
    InvalidRequestError
        Unknown kind or parameter.
    """
    try:
        if kind == "linear":
            return LinearModel(**params)
        if kind == "logistic":
            return LogisticModel(random_state=random_state, **params)
        if kind == "cox":
            return CoxModel(**params)
        if kind == "rnn":
            return RNNModel(random_state=random_state, **params)
    except TypeError as error:
        raise InvalidRequestError(f"bad parameter for model {kind!r}: {error}") from None
    raise InvalidRequestError(f"unknown model {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
