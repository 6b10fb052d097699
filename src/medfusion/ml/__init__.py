"""Clinical prediction models on tables, images and sequences: estimators, metrics, reports, a registry.

Every estimator follows the scikit-learn contract (``fit`` returns self, learned
attributes end in ``_``, randomness only from ``random_state``) and carries its own
preprocessing. This package never imports the record store: it works on tables.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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
from medfusion.ml._describe import (
    library_versions,
    metrics_json,
    model_details,
    outcome_summary,
    run_header,
)
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
from medfusion.ml._images import (
    ImageSet,
    as_images,
    describe_images,
    file_sha256,
    read_image_split,
    read_image_splits,
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
from medfusion.ml._plots import kaplan_meier, plot_evaluation, plot_explanation, plot_training_curves
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
    sequence_deletion_test,
)
from medfusion.ml._shapley import DeletionResult, background_reference, deletion_test, shapley_values

if TYPE_CHECKING:
    from medfusion.ml._cnn import CNNClassifier, ResNetSmall
    from medfusion.ml._saliency import (
        CamResult,
        ImageDeletion,
        grad_cam,
        image_deletion_test,
        occlusion,
        overlay_png,
    )
    from medfusion.ml._torch import FitConfig, History, TorchEstimator, fit_loop, resolve_device

# torch takes seconds to import: the names that need it load on first use, so the tabular
# commands and the web app never pay for it.
_LAZY = {
    **dict.fromkeys(["CNNClassifier", "ResNetSmall"], "_cnn"),
    **dict.fromkeys(
        ["CamResult", "ImageDeletion", "grad_cam", "image_deletion_test", "occlusion", "overlay_png"],
        "_saliency",
    ),
    # The torch base's public face; the rest of it (batches, seeded, ...) via medfusion.ml._torch.
    **dict.fromkeys(["FitConfig", "History", "TorchEstimator", "fit_loop", "resolve_device"], "_torch"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"medfusion.ml.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLEVELAND_COLUMNS",
    "MODEL_KINDS",
    "PHYSIONET_DESCRIPTORS",
    "CNNClassifier",
    "CamResult",
    "CensoringSurvival",
    "CoxModel",
    "DeletionResult",
    "Estimate",
    "Evaluation",
    "Explanation",
    "FitConfig",
    "History",
    "ImageDeletion",
    "ImageSet",
    "LinearModel",
    "LogisticModel",
    "ModelRecord",
    "Output",
    "RNNModel",
    "Registry",
    "ResNetSmall",
    "SequenceData",
    "SequenceDeletion",
    "SequenceExplanation",
    "TabularData",
    "TabularEstimator",
    "Task",
    "TorchEstimator",
    "UcrTable",
    "as_images",
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
    "describe_images",
    "evaluate",
    "expected_calibration_error",
    "explain_linear",
    "file_sha256",
    "fingerprint",
    "fit_loop",
    "grad_cam",
    "harrell_c",
    "image_deletion_test",
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
    "occlusion",
    "odds_ratios",
    "outcome_summary",
    "overlay_png",
    "plot_attribution",
    "plot_evaluation",
    "plot_explanation",
    "plot_training_curves",
    "prepare",
    "read_image_split",
    "read_image_splits",
    "read_long_csv",
    "read_physionet",
    "read_sequences",
    "read_table",
    "read_ucr",
    "read_ucr_table",
    "reference_values",
    "regression_metrics",
    "report_files",
    "resolve_device",
    "run_header",
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

MODEL_KINDS = ("linear", "logistic", "cox", "cnn", "rnn")


def make_estimator(
    kind: str, *, random_state: int | None = None, **params: Any
) -> TabularEstimator | RNNModel | CNNClassifier:
    """A fresh, unfitted estimator of one kind.

    Parameters
    ----------
    kind
        ``linear``, ``logistic``, ``cox``, ``cnn`` or ``rnn``.
    random_state
        Seed, for the kinds that use randomness.
    **params
        Estimator parameters (e.g. ``alpha`` for ridge, ``penalty`` for logistic,
        ``device`` or ``max_epochs`` for cnn and rnn).

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
        if kind == "cnn":
            from medfusion.ml._cnn import CNNClassifier

            return CNNClassifier(random_state=random_state, **params)
        if kind == "rnn":
            return RNNModel(random_state=random_state, **params)
    except TypeError as error:
        raise InvalidRequestError(f"bad parameter for model {kind!r}: {error}") from None
    raise InvalidRequestError(f"unknown model {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
