"""The estimators keep the scikit-learn contract and fit what they claim to fit."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    parametrize_with_checks,
)

from medfusion.ml import CoxModel, LinearModel, LogisticModel, harrell_c, make_estimator
from tests.ml.conftest import binary_frame, regression_frame, survival_frame

# Recalibrating on held-out folds re-estimates probabilities from the data, which undoes
# class weights by design; without calibration the check passes (see the test below).
_EXPECTED = {
    "check_class_weight_classifiers": "calibration re-estimates probabilities, undoing class weights"
}


@parametrize_with_checks(
    [
        LinearModel(),
        LinearModel(alpha=1.0),
        LogisticModel(calibration_cv=3),
        LogisticModel(calibration="none"),
    ],
    expected_failed_checks=lambda est: (
        _EXPECTED if isinstance(est, LogisticModel) and est.calibration != "none" else {}
    ),
)
def test_sklearn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def test_cox_passes_the_applicable_checks() -> None:
    # check_estimator feeds 1-D targets; a Cox model needs (time, event), so the
    # structural checks are run directly and fitting is tested on survival data.
    name = "CoxModel"
    check_parameters_default_constructible(name, CoxModel())
    check_no_attributes_set_in_init(name, CoxModel())
    check_get_params_invariance(name, CoxModel())
    check_set_params(name, CoxModel())
    frame = survival_frame()
    X, y = frame[["x1", "x2", "stage"]], frame[["time", "event"]].to_numpy()
    model = CoxModel()
    with pytest.raises(NotFittedError):
        model.predict(X)
    assert model.fit(X, y) is model
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), clone(model).fit(X, y).predict(X))


def test_linear_matches_ols_and_ridge_shrinks() -> None:
    frame = regression_frame()
    X, y = frame[["age", "dose"]].fillna(0), frame["target"]
    ours = LinearModel().fit(X, y)
    reference = LinearRegression().fit((X - X.mean()) / X.std(ddof=0), y)
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-8)
    ridge = LinearModel(alpha=50.0).fit(X, y)
    assert np.linalg.norm(ridge.coef_) < np.linalg.norm(ours.coef_)


def test_linear_one_hot_encodes_and_imputes() -> None:
    frame = regression_frame()
    model = LinearModel().fit(frame.drop(columns="target"), frame["target"])
    assert set(model.feature_names_out_) == {"age", "dose", "site_a", "site_b", "site_c"}
    unseen = frame.drop(columns="target").head(3).assign(site="zzz", dose=np.nan)
    assert np.isfinite(model.predict(unseen)).all()


@pytest.mark.parametrize("penalty", ["l2", "l1", "elasticnet", "none"])
def test_logistic_penalties_give_calibrated_probabilities(penalty: str) -> None:
    frame = binary_frame()
    X, y = frame.drop(columns="target"), frame["target"]
    model = LogisticModel(penalty=penalty, C=0.1, random_state=0).fit(X, y)  # type: ignore[arg-type]
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.calibrated_ and model.calibration_method_ == "sigmoid"
    assert (model.predict(X) == y).mean() > 0.8
    if penalty == "l1":
        assert np.sum(model.coef_ == 0) >= 1  # the uninformative 'sex' dummy drops out


def test_logistic_multiclass_uses_temperature_scaling() -> None:
    frame = binary_frame(classes=3)
    model = LogisticModel(random_state=0).fit(frame.drop(columns="target"), frame["target"].map(str))
    assert list(model.classes_) == ["0", "1", "2"]
    assert model.calibration_method_ == "temperature"
    assert model.predict_proba(frame.drop(columns="target")).shape == (len(frame), 3)


def test_logistic_class_weight_without_calibration_shifts_predictions() -> None:
    frame = binary_frame()
    X, y = frame.drop(columns="target"), frame["target"]
    plain = LogisticModel(calibration="none").fit(X, y).predict(X)
    weighted = LogisticModel(calibration="none", class_weight={0: 1.0, 1: 20.0}).fit(X, y).predict(X)
    assert weighted.sum() > plain.sum()


def test_cox_hazard_ratios_survival_curves_and_ph_check() -> None:
    frame = survival_frame(n=400)
    X, y = frame[["x1", "x2", "stage"]], frame[["time", "event"]].to_numpy()
    model = CoxModel().fit(X, y)
    hr = model.hazard_ratios_
    assert list(hr.columns) == ["hazard_ratio", "ci_low", "ci_high", "p"]
    true_per_sd = np.exp(0.8 * X["x1"].std(ddof=0))
    assert hr.loc["x1", "ci_low"] < true_per_sd < hr.loc["x1", "ci_high"]
    assert hr.loc["x2", "ci_low"] < 1 < hr.loc["x2", "ci_high"]
    assert set(model.ph_test_.index) == {"x1", "x2", "stage_II"}
    curves = model.predict_survival_function(X.head(5), [1.0, 5.0, 20.0])
    assert (
        curves.shape == (5, 3)
        and (np.diff(curves, axis=1) <= 0).all()
        and ((curves >= 0) & (curves <= 1)).all()
    )
    assert model.score(X, y) == pytest.approx(harrell_c(y[:, 0], y[:, 1], model.predict(X)))
    assert model.score(X, y) > 0.65


def test_make_estimator_rejects_unknown_kind_and_parameter() -> None:
    assert isinstance(make_estimator("cox"), CoxModel)
    with pytest.raises(ValueError, match="unknown model 'svm'"):
        make_estimator("svm")
    with pytest.raises(ValueError, match="bad parameter"):
        make_estimator("linear", depth=3)


def test_dataframe_columns_are_checked_at_predict() -> None:
    frame = regression_frame()
    model = LinearModel().fit(frame[["age", "dose"]], frame["target"])
    with pytest.raises(ValueError, match="feature names"):
        model.predict(pd.DataFrame({"dose": [1.0], "age": [50.0]}))


def test_cox_logs_skewed_non_negative_columns() -> None:
    frame = survival_frame(n=300)
    rng = np.random.default_rng(1)
    # A count whose hazard effect is linear on the log scale, as lymph-node counts are.
    frame["nodes"] = np.round(rng.lognormal(1.0, 1.0, len(frame)))
    frame["time"] = frame["time"] / np.exp(0.7 * np.log1p(frame["nodes"]))
    X, y = frame[["x1", "x2", "stage", "nodes"]], frame[["time", "event"]].to_numpy()
    model = CoxModel().fit(X, y)
    assert model.log_columns_ == ["nodes"]  # x1, x2 take negative values: left linear
    assert "log1p(nodes)" in model.hazard_ratios_.index and "nodes" not in model.hazard_ratios_.index
    assert model.hazard_ratios_.loc["log1p(nodes)", "ci_low"] > 1
    unseen = X.head(3).assign(nodes=[-5.0, np.nan, 1e6])  # negative, missing, huge: all usable
    assert np.isfinite(model.predict(unseen)).all()
    plain = CoxModel(penalizer=0.0, log_skewed=False).fit(X, y)
    assert plain.log_columns_ == [] and "nodes" in plain.hazard_ratios_.index
    assert model.score(X, y) > plain.score(X, y)


def test_skewed_columns_rule() -> None:
    from medfusion.ml._estimators import skewed_columns

    frame = pd.DataFrame(
        {
            "constant": [1.0] * 10,
            "count": np.r_[np.zeros(9), 100.0],
            "text": ["x"] * 10,
            "signed": np.r_[np.zeros(9), 100.0] - 1,
            "even": np.arange(10.0),
        }
    )
    assert skewed_columns(frame) == ["count"]  # not constant, text, negative or symmetric
    assert skewed_columns(frame[["constant", "count"]].to_numpy()) == [1]
