"""Performance metrics per task and seeded percentile-bootstrap confidence intervals.

Metrics are computed with numpy rather than through scikit-learn's validating wrappers:
the bootstrap calls them hundreds of times, and the wrappers' input checks were measured
to take 90 % of a binary bootstrap. Tests check every metric against scikit-learn and
lifelines on fixed inputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata

__all__ = [
    "CensoringSurvival",
    "Estimate",
    "auroc",
    "average_precision",
    "binary_metrics",
    "bootstrap",
    "calibration_intercept",
    "calibration_slope",
    "censoring_survival",
    "expected_calibration_error",
    "harrell_c",
    "integrated_brier_score",
    "multiclass_metrics",
    "regression_metrics",
    "survival_metrics",
    "uno_c",
]

_EPS = 1e-7


@dataclass(frozen=True, slots=True)
class Estimate:
    """A metric value with its 95 % bootstrap confidence interval."""

    value: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float]:
        """``{"value", "ci_low", "ci_high"}`` as plain floats (JSON-ready)."""
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and R² of predictions ``pred`` for outcomes ``y``."""
    residual = y - pred
    mse = float(np.mean(residual**2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else float("nan")
    return {"mse": mse, "rmse": mse**0.5, "mae": float(np.mean(np.abs(residual))), "r2": r2}


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties)."""
    positive = y == 1
    n1 = int(positive.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("AUROC is undefined when only one class is present")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision, ``sum_n (R_n - R_{n-1}) P_n`` over distinct thresholds (as scikit-learn)."""
    order = np.argsort(-score, kind="mergesort")
    ranked, hits = score[order], (y[order] == 1).astype(float)
    if hits.sum() == 0:
        raise ValueError("average precision is undefined without positives")
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # end of each tie group
    tp = np.cumsum(hits)[last]
    precision, recall = tp / (last + 1), tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)))


def calibration_slope(y: np.ndarray, p: np.ndarray, *, iterations: int = 50) -> tuple[float, float]:
    """Logistic recalibration ``logit P(y=1) = a + b * logit(p)``: return ``(a, b)``.

    ``b`` is the calibration slope (1 = ideal, < 1 = predictions too extreme).
    Fitted by Newton-Raphson, unpenalised.
    """
    design = np.column_stack([np.ones_like(p, dtype=float), _logit(p)])
    beta = np.array([0.0, 1.0])
    for _ in range(iterations):
        mu = expit(design @ beta)
        weight = np.maximum(mu * (1 - mu), 1e-12)
        step = np.linalg.lstsq(design.T @ (design * weight[:, None]), design.T @ (y - mu), rcond=None)[0]
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def calibration_intercept(y: np.ndarray, p: np.ndarray, *, iterations: int = 50) -> float:
    """Calibration-in-the-large: ``a`` in ``logit P(y=1) = a + logit(p)`` (0 = ideal)."""
    offset, a = _logit(p), 0.0
    for _ in range(iterations):
        mu = expit(a + offset)
        step = float(np.sum(y - mu) / max(np.sum(mu * (1 - mu)), 1e-12))
        a += step
        if abs(step) < 1e-10:
            break
    return a


def expected_calibration_error(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width probability bins."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(
        np.bincount(which, weights=y, minlength=bins) - np.bincount(which, weights=p, minlength=bins)
    )
    return float(np.sum(gap[counts > 0]) / len(y))


def binary_metrics(y: np.ndarray, p: np.ndarray, *, threshold: float = 0.5) -> dict[str, float]:
    """Discrimination, classification at ``threshold`` and calibration for 0/1 ``y``.

    Parameters
    ----------
    y
        0/1 outcomes.
    p
        Predicted probability of outcome 1.
    """
    pred = p >= threshold
    positive = y == 1
    tp, fn = int(np.sum(pred & positive)), int(np.sum(~pred & positive))
    tn, fp = int(np.sum(~pred & ~positive)), int(np.sum(pred & ~positive))
    sensitivity = tp / (tp + fn) if tp + fn else float("nan")
    specificity = tn / (tn + fp) if tn + fp else float("nan")
    intercept = calibration_intercept(y, p)
    return {
        "auroc": auroc(y, p),
        "auprc": average_precision(y, p),
        "accuracy": (tp + tn) / len(y),
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "brier": float(np.mean((p - y) ** 2)),
        "calibration_slope": calibration_slope(y, p)[1],
        "calibration_intercept": intercept,
        "ece": expected_calibration_error(y, p),
    }


def _slug(label: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(label).lower()).strip("_") or "class"


def multiclass_metrics(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """Macro one-vs-rest AUROC, accuracy and recall per class (``recall_<class>``).

    ``y`` holds class indices into ``classes``; ``proba`` has one column per class.
    """
    pred = np.argmax(proba, axis=1)
    out = {
        # Macro one-vs-rest: the unweighted mean of each class's AUROC against the rest.
        "auroc": float(np.mean([auroc((y == k).astype(int), proba[:, k]) for k in range(len(classes))])),
        "accuracy": float(np.mean(pred == y)),
    }
    for index, label in enumerate(classes):
        members = y == index
        out[f"recall_{_slug(label)}"] = (
            float(np.mean(pred[members] == index)) if members.any() else float("nan")
        )
    return out


@dataclass(frozen=True, slots=True)
class CensoringSurvival:
    """Kaplan-Meier estimate of the censoring survival ``G``; calling it gives ``G(t-)``.

    The left limit is what inverse-probability-of-censoring weights need: a subject
    with an event at ``t`` was still uncensored just before ``t``. It is a plain
    picklable object so a saved model can carry its training censoring distribution;
    ``limit`` is the training follow-up, beyond which ``G`` is not estimated.
    """

    points: np.ndarray
    steps: np.ndarray
    limit: float

    def __call__(self, t: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.points, np.asarray(t, dtype=float), side="left")
        return np.asarray(np.concatenate([[1.0], self.steps])[index])


def censoring_survival(time: np.ndarray, event: np.ndarray) -> CensoringSurvival:
    """Estimate the censoring distribution ``G`` from training ``time`` and ``event``."""
    censored = ~event.astype(bool)
    points = np.unique(time[censored])
    at_risk = np.array([np.sum(time >= t) for t in points], dtype=float)
    drops = np.array([np.sum((time == t) & censored) for t in points], dtype=float)
    steps = np.cumprod(1 - drops / np.maximum(at_risk, 1))
    return CensoringSurvival(points, steps, float(np.max(time)))


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's concordance index: share of comparable pairs ordered by ``risk``."""
    from lifelines.utils import concordance_index

    return float(concordance_index(time, -risk, event))


def uno_c(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    censoring: Callable[[np.ndarray], np.ndarray],
    *,
    tau: float | None = None,
) -> float:
    """Uno's IPCW concordance index, truncated at ``tau`` (default: largest time).

    Pairs ``(i, j)`` with an event for ``i`` at ``T_i < T_j`` and ``T_i < tau`` are
    weighted by ``G(T_i-)^-2``; tied risks count one half (Uno et al., 2011).
    """
    tau = float(np.max(time)) if tau is None else tau
    g = censoring(time)
    keep = event.astype(bool) & (time < tau) & (g > 0)
    weights = np.where(keep, 1.0 / np.maximum(g, 1e-12) ** 2, 0.0)
    numerator = denominator = 0.0
    for start in range(0, len(time), 512):  # chunks bound the pairwise matrix's memory
        rows = slice(start, start + 512)
        comparable = time[rows, None] < time[None, :]
        w = weights[rows, None] * comparable
        order = (risk[rows, None] > risk[None, :]) + 0.5 * (risk[rows, None] == risk[None, :])
        numerator += float(np.sum(w * order))
        denominator += float(np.sum(w))
    return numerator / denominator if denominator > 0 else float("nan")


def integrated_brier_score(
    time: np.ndarray,
    event: np.ndarray,
    survival: np.ndarray,
    times: np.ndarray,
    censoring: Callable[[np.ndarray], np.ndarray],
) -> float:
    """IPCW integrated Brier score (Graf et al., 1999) over the grid ``times``.

    ``survival[i, k]`` is the predicted survival of subject ``i`` at ``times[k]``; the
    Brier scores are integrated by the trapezoid rule and divided by the span.
    """
    died = (time[:, None] <= times[None, :]) & event.astype(bool)[:, None]
    alive = time[:, None] > times[None, :]
    g_event = np.maximum(censoring(time), 1e-12)[:, None]
    g_time = np.maximum(censoring(np.nextafter(times, np.inf)), 1e-12)[None, :]
    scores = np.mean(survival**2 * died / g_event + (1 - survival) ** 2 * alive / g_time, axis=0)
    if len(times) < 2:
        return float(scores[0])
    return float(np.trapezoid(scores, times) / (times[-1] - times[0]))


def survival_metrics(
    time: np.ndarray,
    event: np.ndarray,
    risk: np.ndarray,
    survival: np.ndarray,
    times: np.ndarray,
    censoring: Callable[[np.ndarray], np.ndarray],
) -> dict[str, float]:
    """Harrell's C, Uno's C and the integrated Brier score on one test set."""
    return {
        "c_index": harrell_c(time, event, risk),
        "uno_c": uno_c(time, event, risk, censoring, tau=float(times[-1])),
        "ibs": integrated_brier_score(time, event, survival, times, censoring),
    }


def bootstrap(
    compute: Callable[[np.ndarray], dict[str, float]],
    n: int,
    *,
    n_boot: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Estimate]:
    """Point estimates and percentile-bootstrap confidence intervals.

    Parameters
    ----------
    compute
        Maps an index array (rows of the test set) to named metric values.
    n
        Number of rows.
    n_boot
        Bootstrap resamples; a resample where a metric is undefined (one class left)
        is dropped for that metric.
    seed
        Seed of the resampling, so two runs give the same intervals.
    level
        Confidence level.
    """
    point = compute(np.arange(n))
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in point}
    for _ in range(n_boot):
        try:
            values = compute(rng.integers(0, n, n))
        except ValueError:  # e.g. a resample holding a single class
            continue
        for name, value in values.items():
            if name in draws and np.isfinite(value):
                draws[name].append(value)
    tail = 100 * (1 - level) / 2
    out: dict[str, Estimate] = {}
    for name, value in point.items():
        sample = np.asarray(draws[name])
        if len(sample) == 0:
            out[name] = Estimate(float(value), float("nan"), float("nan"))
            continue
        low, high = np.percentile(sample, [tail, 100 - tail])
        out[name] = Estimate(float(value), float(low), float(high))
    return out
