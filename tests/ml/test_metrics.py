"""Metric functions agree with scikit-learn and lifelines; bootstrap CIs behave."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import concordance_index
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from medfusion.ml import (
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
    uno_c,
)

RNG = np.random.default_rng(7)
Y_BIN = RNG.integers(0, 2, 300)
P_BIN = np.clip(0.3 * Y_BIN + RNG.uniform(0, 0.7, 300), 0.001, 0.999)


def test_regression_metrics_match_sklearn() -> None:
    y, pred = RNG.normal(size=50), RNG.normal(size=50)
    ours = regression_metrics(y, pred)
    assert ours["mse"] == pytest.approx(skm.mean_squared_error(y, pred))
    assert ours["rmse"] == pytest.approx(skm.root_mean_squared_error(y, pred))
    assert ours["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert ours["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_binary_metrics_match_sklearn() -> None:
    ours = binary_metrics(Y_BIN, P_BIN)
    pred = (P_BIN >= 0.5).astype(int)
    assert ours["auroc"] == pytest.approx(skm.roc_auc_score(Y_BIN, P_BIN))
    assert ours["auprc"] == pytest.approx(skm.average_precision_score(Y_BIN, P_BIN))
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(Y_BIN, pred))
    assert ours["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(Y_BIN, pred))
    assert ours["sensitivity"] == pytest.approx(skm.recall_score(Y_BIN, pred))
    assert ours["specificity"] == pytest.approx(skm.recall_score(Y_BIN, pred, pos_label=0))
    assert ours["f1"] == pytest.approx(skm.f1_score(Y_BIN, pred))
    assert ours["brier"] == pytest.approx(skm.brier_score_loss(Y_BIN, P_BIN))


def test_calibration_slope_matches_unpenalised_logistic_fit() -> None:
    logit = np.log(P_BIN / (1 - P_BIN))
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit[:, None], Y_BIN)
    intercept, slope = calibration_slope(Y_BIN, P_BIN)
    assert slope == pytest.approx(reference.coef_[0, 0], rel=1e-4)
    assert intercept == pytest.approx(reference.intercept_[0], rel=1e-4, abs=1e-6)


def test_perfect_calibration_gives_slope_one_intercept_zero() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 20000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert calibration_slope(y, p)[1] == pytest.approx(1.0, abs=0.05)
    assert calibration_intercept(y, p) == pytest.approx(0.0, abs=0.05)
    assert expected_calibration_error(y, p) < 0.02


def test_ece_by_hand() -> None:
    y = np.array([0, 1, 1, 1])
    p = np.array([0.05, 0.15, 0.95, 0.85])
    # bin 0: |0 - 0.05|; bin 1: |1 - 0.15|; bin 8: |1 - 0.85|; bin 9: |1 - 0.95|
    assert expected_calibration_error(y, p) == pytest.approx((0.05 + 0.85 + 0.15 + 0.05) / 4)


def test_multiclass_metrics_match_sklearn() -> None:
    y = RNG.integers(0, 3, 90)
    proba = RNG.dirichlet([1, 1, 1], 90) + np.eye(3)[y] * 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    ours = multiclass_metrics(y, proba, np.array(["Low", "mid", "HIGH"]))
    assert ours["auroc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, proba.argmax(axis=1)))
    recall = skm.recall_score(y, proba.argmax(axis=1), average=None)
    assert [ours["recall_low"], ours["recall_mid"], ours["recall_high"]] == pytest.approx(list(recall))


def _survival(n: int, censor: bool, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    time = rng.exponential(1 / np.exp(risk))
    event = np.ones(n) if not censor else (rng.uniform(size=n) < 0.7).astype(float)
    return time, event, risk + rng.normal(scale=0.5, size=n)


def test_harrell_c_matches_lifelines() -> None:
    time, event, risk = _survival(150, censor=True)
    assert harrell_c(time, event, risk) == pytest.approx(concordance_index(time, -risk, event))


def test_uno_c_equals_harrell_without_censoring() -> None:
    time, event, risk = _survival(150, censor=False)
    censoring = censoring_survival(time, event)
    assert uno_c(time, event, risk, censoring) == pytest.approx(harrell_c(time, event, risk), abs=1e-12)


def test_uno_c_under_censoring_is_near_harrell() -> None:
    time, event, risk = _survival(400, censor=True)
    value = uno_c(time, event, risk, censoring_survival(time, event))
    assert 0.5 < value < 1 and value == pytest.approx(harrell_c(time, event, risk), abs=0.05)


def test_censoring_survival_matches_lifelines_km_left_limit() -> None:
    time, event, _ = _survival(80, censor=True)
    fitter = KaplanMeierFitter().fit(time, 1 - event)
    probe = np.sort(time)[5:60:5]
    expected = fitter.survival_function_at_times(np.nextafter(probe, -np.inf)).to_numpy()
    np.testing.assert_allclose(censoring_survival(time, event)(probe), expected)


def test_ibs_without_censoring_is_mean_squared_error_integrated() -> None:
    time = np.array([1.0, 2.0, 3.0, 4.0])
    event = np.ones(4)
    times = np.array([1.5, 2.5, 3.5])
    survival = np.full((4, 3), 0.5)
    censoring = censoring_survival(time, event)
    # Each Brier score is 0.25 (every subject's status is 0 or 1, prediction 0.5).
    assert integrated_brier_score(time, event, survival, times, censoring) == pytest.approx(0.25)
    perfect = (time[:, None] > times[None, :]).astype(float)
    assert integrated_brier_score(time, event, perfect, times, censoring) == pytest.approx(0.0)


def _mean(rows: np.ndarray, data: np.ndarray) -> dict[str, float]:
    return {"mean": float(data[rows].mean())}


def test_bootstrap_contains_point_narrows_with_n_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=100), rng.normal(size=2000)
    a = bootstrap(lambda r: _mean(r, small), 100, n_boot=300, seed=1)["mean"]
    b = bootstrap(lambda r: _mean(r, large), 2000, n_boot=300, seed=1)["mean"]
    assert a.ci_low <= a.value <= a.ci_high and b.ci_low <= b.value <= b.ci_high
    assert (b.ci_high - b.ci_low) < (a.ci_high - a.ci_low) / 2
    assert bootstrap(lambda r: _mean(r, small), 100, n_boot=300, seed=1)["mean"] == a


def test_bootstrap_of_binary_metrics_contains_points() -> None:
    estimates = bootstrap(lambda r: binary_metrics(Y_BIN[r], P_BIN[r]), len(Y_BIN), n_boot=200, seed=3)
    for name, estimate in estimates.items():
        assert estimate.ci_low <= estimate.value <= estimate.ci_high, name


def test_ranking_metrics_match_sklearn_with_ties() -> None:
    from medfusion.ml import auroc, average_precision

    y = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0])
    score = np.array([0.1, 0.4, 0.4, 0.4, 0.9, 0.2, 0.9, 0.5, 0.3, 0.1])
    assert auroc(y, score) == pytest.approx(skm.roc_auc_score(y, score))
    assert average_precision(y, score) == pytest.approx(skm.average_precision_score(y, score))
    with pytest.raises(ValueError, match="one class"):
        auroc(np.ones(4), score[:4])


def test_evaluate_on_one_class_is_a_data_error() -> None:
    import pandas as pd

    from medfusion.errors import DataError
    from medfusion.ml import LogisticModel, evaluate

    X = pd.DataFrame({"x": np.arange(20.0)})
    model = LogisticModel(calibration="none").fit(X, np.arange(20) % 2)
    with pytest.raises(DataError, match="metrics cannot be computed"):
        evaluate(model, X, np.ones(20, dtype=int), task="binary", n_boot=5)
