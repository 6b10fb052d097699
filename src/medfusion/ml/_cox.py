"""Cox proportional hazards (lifelines) as a scikit-learn estimator."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from medfusion.ml._estimators import TabularEstimator, make_preprocessor, skewed_columns
from medfusion.ml._metrics import censoring_survival

__all__ = ["CoxModel", "survival_target"]

_TIME, _EVENT = "__time__", "__event__"


def survival_target(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split a survival outcome of shape ``(n, 2)`` into ``time`` and boolean ``event``.

    Raises
    ------
    ValueError
        ``y`` is not two columns of finite numbers with times >= 0 and events in {0, 1}.
    """
    array = np.asarray(y, dtype=float)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"a survival target must have shape (n, 2) as (time, event); got {array.shape}")
    time, event = array[:, 0], array[:, 1]
    if not np.isfinite(array).all() or (time < 0).any() or not np.isin(event, [0.0, 1.0]).all():
        raise ValueError("survival times must be finite and >= 0, events 0 or 1")
    return time, event.astype(bool)


class CoxModel(TabularEstimator):
    """Cox proportional hazards regression with preprocessing, fitted by lifelines.

    ``fit`` takes ``y`` as an ``(n, 2)`` array of ``(time, event)``. Categorical columns are
    one-hot encoded with the first level dropped (the baseline hazard plays the intercept).
    By default numeric columns that are never negative and strongly right-skewed (counts,
    lab values, receptor levels) enter as ``log1p``, and a small ridge penalty stabilises
    the fit; ``penalizer=0, log_skewed=False`` gives the classical unpenalised model.

    Parameters
    ----------
    penalizer
        Penalty strength on the (standardised) coefficients; 0 = unpenalised partial
        likelihood. The default 0.1 was chosen by cross-validation on training data (see
        docs/benchmarks.md); a penalty shrinks the hazard ratios towards 1, so their
        intervals are not the classical Wald intervals unless ``penalizer=0``.
    l1_ratio
        Share of the penalty that is L1.
    alpha
        1 - confidence level of the hazard-ratio intervals.
    log_skewed
        Enter numeric columns with no negative value and a training skewness above 1 as
        ``log1p`` (named ``log1p(<column>)`` in the outputs).

    Attributes
    ----------
    pipeline_ : Pipeline
        Fitted preprocessing.
    lifelines_ : lifelines.CoxPHFitter
    hazard_ratios_ : DataFrame
        Per feature: ``hazard_ratio``, ``ci_low``, ``ci_high``, ``p`` (per standard deviation
        for numeric features, since they are scaled; of ``log1p(x)`` for logged ones).
    ph_test_ : DataFrame
        Schoenfeld-residual test of proportional hazards per feature (rank time
        transform): ``statistic``, ``p``; small ``p`` flags a violation.
    censoring_ : CensoringSurvival
        Kaplan-Meier censoring distribution of the training data (for Uno's C and the
        integrated Brier score on new data).
    feature_names_out_ : ndarray of str
    log_columns_ : list
        Input columns entered as ``log1p``.
    """

    def __init__(
        self, penalizer: float = 0.1, l1_ratio: float = 0.0, alpha: float = 0.05, log_skewed: bool = True
    ) -> None:
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio
        self.alpha = alpha
        self.log_skewed = log_skewed

    def _frame(self, X: Any) -> pd.DataFrame:
        return pd.DataFrame(self.pipeline_.transform(X), columns=list(self.feature_names_out_))

    def fit(self, X: Any, y: Any) -> CoxModel:
        """Fit preprocessing and the Cox model; return self."""
        from lifelines import CoxPHFitter
        from lifelines.exceptions import ConvergenceError, ConvergenceWarning
        from lifelines.statistics import proportional_hazard_test

        X = self._validate_X(X, reset=True)
        time, event = survival_target(y)
        if len(time) != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {len(time)}")
        if not event.any():
            raise ValueError("a Cox model needs at least one event")
        self.log_columns_ = skewed_columns(X) if self.log_skewed else []
        pre = make_preprocessor(X, drop_first=True, log_columns=self.log_columns_)
        self.pipeline_ = Pipeline([("pre", pre)]).fit(X)
        self.feature_names_out_ = np.asarray(self.pipeline_.get_feature_names_out(), dtype=object)
        frame = self._frame(X)
        frame[_TIME], frame[_EVENT] = time, event.astype(int)
        fitter = CoxPHFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio, alpha=self.alpha)
        try:
            with warnings.catch_warnings():
                # lifelines warns instead of failing on a near-singular fit; make it fail.
                warnings.simplefilter("error", ConvergenceWarning)
                fitter.fit(frame, duration_col=_TIME, event_col=_EVENT)
        except (ConvergenceError, ConvergenceWarning) as error:
            raise ValueError(f"the Cox model did not converge ({str(error).splitlines()[0]})") from None
        self.lifelines_ = fitter
        self.censoring_ = censoring_survival(time, event)
        summary = fitter.summary
        level = round(100 * (1 - self.alpha))
        self.hazard_ratios_ = pd.DataFrame(
            {
                "hazard_ratio": summary["exp(coef)"],
                "ci_low": summary[f"exp(coef) lower {level}%"],
                "ci_high": summary[f"exp(coef) upper {level}%"],
                "p": summary["p"],
            }
        )
        test = proportional_hazard_test(fitter, frame, time_transform="rank").summary
        self.ph_test_ = pd.DataFrame({"statistic": test["test_statistic"], "p": test["p"]})
        self.ph_test_.index = [str(i[0]) if isinstance(i, tuple) else str(i) for i in self.ph_test_.index]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Risk score per row: the partial hazard ``exp(x'b)`` (higher = earlier event)."""
        check_is_fitted(self)
        frame = self._frame(self._validate_X(X, reset=False))
        return np.asarray(self.lifelines_.predict_partial_hazard(frame), dtype=float).ravel()

    def predict_survival_function(self, X: Any, times: Any) -> np.ndarray:
        """Survival probability per row (axis 0) at each of ``times`` (axis 1)."""
        check_is_fitted(self)
        frame = self._frame(self._validate_X(X, reset=False))
        curves = self.lifelines_.predict_survival_function(frame, times=np.asarray(times, dtype=float))
        return np.asarray(curves, dtype=float).T

    def score(self, X: Any, y: Any) -> float:
        """Harrell's concordance index of the risk score on ``(time, event)``."""
        from lifelines.utils import concordance_index

        time, event = survival_target(y)
        return float(concordance_index(time, -self.predict(X), event))
