"""Score a fitted model on a test set or by k-fold cross-validation, with bootstrap CIs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold, StratifiedKFold

from medfusion.errors import DataError
from medfusion.ml._data import Task
from medfusion.ml._metrics import (
    CensoringSurvival,
    Estimate,
    binary_metrics,
    bootstrap,
    censoring_survival,
    multiclass_metrics,
    regression_metrics,
    survival_metrics,
)

__all__ = ["Evaluation", "cross_validate", "evaluate", "survival_grid"]


@dataclass(slots=True)
class Evaluation:
    """Metrics of one model on one data set, and what the plots need.

    Attributes
    ----------
    task
    metrics
        Name to value with 95 % bootstrap CI.
    y
        Regression: outcomes; binary: 0/1; multiclass: class indices; survival: ``(n, 2)``.
    score
        Regression: predictions; binary: P(class 1); multiclass: probabilities per class;
        survival: risk scores.
    classes
        Class labels (classification), else empty.
    """

    task: Task
    metrics: dict[str, Estimate]
    y: np.ndarray
    score: np.ndarray
    classes: list[str] = field(default_factory=list)


def survival_grid(time: np.ndarray, *, limit: float | None = None) -> np.ndarray:
    """Time points for the integrated Brier score: the 5th-81st percentiles of ``time``.

    The grid of the scikit-survival user guide's GBSG2 example, so our IBS compares
    with its published one; ``limit`` (the training follow-up) keeps the grid where
    the censoring weights are defined.
    """
    grid = np.unique(np.percentile(time, np.linspace(5, 81, 15)))
    if limit is not None:
        grid = grid[grid < limit]
    if len(grid) == 0:
        raise DataError("the survival times leave no time points to evaluate the Brier score at")
    return grid


def _class_index(model: Any, y: np.ndarray) -> np.ndarray:
    lookup = {str(c): i for i, c in enumerate(model.classes_)}
    try:
        return np.array([lookup[str(v)] for v in y], dtype=int)
    except KeyError as missing:
        raise DataError(f"the target holds class {missing} that the model was not trained on") from None


def _scores(model: Any, X: Any, task: Task, grid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    if task == "regression":
        return np.asarray(model.predict(X), dtype=float), None
    if task == "binary":
        return np.asarray(model.predict_proba(X))[:, 1], None
    if task == "multiclass":
        return np.asarray(model.predict_proba(X)), None
    return np.asarray(model.predict(X)), np.asarray(model.predict_survival_function(X, grid))


def _compute(
    task: Task,
    y: np.ndarray,
    score: np.ndarray,
    curves: np.ndarray | None,
    grid: np.ndarray | None,
    classes: list[str],
    censoring: CensoringSurvival | None,
) -> Callable[[np.ndarray], dict[str, float]]:
    def compute(rows: np.ndarray) -> dict[str, float]:
        if task == "regression":
            return regression_metrics(y[rows], score[rows])
        if task == "binary":
            return binary_metrics(y[rows], score[rows])
        if task == "multiclass":
            return multiclass_metrics(y[rows], score[rows], np.asarray(classes))
        assert curves is not None and grid is not None and censoring is not None
        return survival_metrics(y[rows, 0], y[rows, 1], score[rows], curves[rows], grid, censoring)

    return compute


def _bootstrap(
    compute: Callable[[np.ndarray], dict[str, float]], n: int, n_boot: int, seed: int
) -> dict[str, Estimate]:
    try:
        return bootstrap(compute, n, n_boot=n_boot, seed=seed)
    except ValueError as error:  # e.g. one class in the evaluation data: AUROC is undefined
        raise DataError(f"metrics cannot be computed on this data: {error}") from None


def _rows(X: Any, rows: np.ndarray) -> Any:
    """Rows of a DataFrame or of an array (sequence models take 3-D arrays)."""
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def _encode(model: Any, y: np.ndarray, task: Task) -> tuple[np.ndarray, list[str]]:
    if task in ("binary", "multiclass"):
        return _class_index(model, y), [str(c) for c in model.classes_]
    return np.asarray(y, dtype=float), []


def evaluate(
    model: Any, X: Any, y: np.ndarray, *, task: Task, n_boot: int = 500, seed: int = 42
) -> Evaluation:
    """Metrics of a fitted ``model`` on ``X``, ``y`` with seeded bootstrap CIs.

    Raises
    ------
    DataError
        The outcome holds a class the model does not know.
    """
    encoded, classes = _encode(model, y, task)
    grid = censoring = None
    if task == "survival":
        censoring = model.censoring_
        grid = survival_grid(encoded[:, 0], limit=censoring.limit)
    score, curves = _scores(model, X, task, grid)
    compute = _compute(task, encoded, score, curves, grid, classes, censoring)
    return Evaluation(task, _bootstrap(compute, len(encoded), n_boot, seed), encoded, score, classes)


def cross_validate(
    estimator: BaseEstimator,
    X: Any,
    y: np.ndarray,
    *,
    task: Task,
    folds: int,
    seed: int = 42,
    n_boot: int = 500,
    progress: Callable[[], None] | None = None,
) -> Evaluation:
    """K-fold cross-validation: metrics of the pooled out-of-fold predictions.

    Folds are stratified by class (classification) or event (survival). Pooled
    accuracy equals the fold-size-weighted mean of the per-fold accuracies.
    """
    if folds < 2:
        raise DataError(f"--cv must be at least 2, got {folds}")
    stratify = y[:, 1] if task == "survival" else y if task != "regression" else None
    splitter: Any = (
        KFold(folds, shuffle=True, random_state=seed)
        if stratify is None
        else StratifiedKFold(folds, shuffle=True, random_state=seed)
    )
    if stratify is not None and np.unique(stratify, return_counts=True)[1].min() < folds:
        raise DataError(f"--cv {folds} needs at least {folds} rows of every class (or of events)")
    censoring = grid = None
    if task == "survival":
        censoring = censoring_survival(y[:, 0], y[:, 1])
        grid = survival_grid(y[:, 0], limit=float(y[:, 0].max()))
    encoded = np.zeros(len(y), dtype=int if task in ("binary", "multiclass") else float)
    score: np.ndarray | None = None
    curves = np.zeros((len(y), len(grid))) if grid is not None else None
    classes: list[str] = []
    for train, test in splitter.split(np.zeros(len(y)), stratify if stratify is not None else None):
        model = clone(estimator).fit(_rows(X, train), y[train])
        fold_y, classes = _encode(model, y[test], task)
        fold_score, fold_curves = _scores(model, _rows(X, test), task, grid)
        if score is None:
            score = np.zeros((len(y), *fold_score.shape[1:]))
            encoded = np.zeros((len(y), *fold_y.shape[1:]), dtype=fold_y.dtype)
        score[test], encoded[test] = fold_score, fold_y
        if curves is not None and fold_curves is not None:
            curves[test] = fold_curves
        if progress is not None:
            progress()
    assert score is not None
    compute = _compute(task, encoded, score, curves, grid, classes, censoring)
    return Evaluation(task, _bootstrap(compute, len(y), n_boot, seed), encoded, score, classes)
