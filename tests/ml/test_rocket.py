"""Random convolutional kernels (ROCKET) and the ``kernels`` member of the ``rnn`` model."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from medfusion.ml import RNNModel, integrated_gradients
from medfusion.ml._rocket import RandomKernels, RocketClassifier


def frequency_series(n: int = 120, length: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sines with a random phase and amplitude: period 6 (class 1) or 9 (class 0)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    period = np.where(y == 1, 6.0, 9.0)[:, None]
    t = np.arange(length)[None, :]
    wave = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi, (n, 1))) * rng.uniform(0.5, 1.5, (n, 1))
    return (wave + rng.normal(0, 0.5, (n, length))).astype(np.float32), y


def test_random_kernels_shape_determinism_and_paper_distribution() -> None:
    X, _ = frequency_series(n=10, length=50)
    first = RandomKernels(300, random_state=7).fit(X)
    features = first.transform(X)
    assert features.shape == (10, 600) and features.dtype == np.float32
    np.testing.assert_array_equal(features, RandomKernels(300, random_state=7).fit(X).transform(X))
    assert not np.allclose(features, RandomKernels(300, random_state=8).fit(X).transform(X))
    # Rows are transformed independently of the batch they come in.
    np.testing.assert_allclose(features[3:5], first.transform(X[3:5]), rtol=1e-6)
    ppv, maximum = features[:, :300], features[:, 300:]
    assert ppv.min() >= 0 and ppv.max() <= 1 and not np.allclose(ppv, ppv[:, :1])
    assert (maximum >= -20).all()
    groups = first.groups_
    assert sum(len(g.bias) for g in groups) == 300
    assert {g.length for g in groups} == {7, 9, 11}
    for g in groups:
        np.testing.assert_allclose(g.weights.mean(axis=2), 0, atol=1e-6)  # mean-centred
        assert np.all(np.abs(g.bias) <= 1)
        assert (g.length - 1) * g.dilation <= 49  # the kernel fits the series
        assert g.padding in (0, (g.length - 1) * g.dilation // 2)
    assert max(g.dilation for g in groups) > 1 and {g.padding > 0 for g in groups} == {True, False}


def test_random_kernels_on_short_and_multivariate_series() -> None:
    rng = np.random.default_rng(0)
    short = RandomKernels(50, random_state=0).fit_transform(rng.normal(size=(4, 3)))
    assert short.shape == (4, 100) and np.isfinite(short).all()
    multi = RandomKernels(50, random_state=0).fit(rng.normal(size=(4, 20, 3)))
    assert all(g.weights.shape[1] == 3 for g in multi.groups_)
    with pytest.raises(ValueError, match=r"drawn for \(20, 3\)"):
        multi.transform(rng.normal(size=(4, 20, 2)))
    with pytest.raises(ValueError, match="without NaN"):
        multi.transform(np.full((1, 20, 3), np.nan))


def test_rocket_leave_one_out_outputs_match_refits() -> None:
    X, y = frequency_series(n=30)
    model = RocketClassifier(n_kernels=200, alphas=(10.0,), random_state=0).fit(X, y)
    features = model.kernels_.transform(X).astype(np.float64)
    Z = (features - model.mean_) / model.scale_
    targets = np.where(y[:, None] == np.arange(2)[None, :], 1.0, -1.0)
    for row in (0, 11, 29):
        keep = np.arange(len(y)) != row
        refit = Ridge(alpha=10.0).fit(Z[keep], targets[keep])
        np.testing.assert_allclose(model.loo_decision_[row], refit.predict(Z[row : row + 1])[0], atol=1e-6)
    proba = model.predict_proba(X)
    assert proba.shape == (30, 2) and np.allclose(proba.sum(axis=1), 1)
    assert (model.predict(X) == y).mean() == 1.0


def test_kernel_member_separates_series_the_network_alone_does_not() -> None:
    X, y = frequency_series()
    settings = {"max_epochs": 5, "hidden_size": 8, "conv_width": 8, "n_seeds": 1, "n_kernels": 1000}
    alone = RNNModel(**settings, kernels="off", random_state=0).fit(X[:60], y[:60])
    both = RNNModel(**settings, random_state=0).fit(X[:60], y[:60])
    assert alone.members_ == ("rnn",) and both.members_ == ("rnn", "kernels")
    assert (alone.predict(X[60:]) == y[60:]).mean() < 0.7
    assert (both.predict(X[60:]) == y[60:]).mean() >= 0.9
    # The ensemble's probability mixes the networks' (0.25) and the kernel member's (0.75).
    assert both.kernel_model_ is not None and both.kernel_weight == 0.75
    expected = 0.25 * both._network_proba(X[60:, :, None]) + 0.75 * both.kernel_model_.predict_proba(X[60:])
    np.testing.assert_allclose(both.predict_proba(X[60:]), expected, atol=1e-9)
    # Deterministic per seed, and unchanged through pickling (the registry's format).
    again = RNNModel(**settings, random_state=0).fit(X[:60], y[:60])
    np.testing.assert_array_equal(both.predict_proba(X[60:]), again.predict_proba(X[60:]))
    loaded = pickle.loads(pickle.dumps(both))
    np.testing.assert_array_equal(loaded.predict_proba(X[60:]), both.predict_proba(X[60:]))
    # Integrated gradients explain the networks' part and say what they leave out.
    explanation = integrated_gradients(both, X[60:65], steps=32)
    assert explanation.attributions.shape == (5, 64, 1)
    assert explanation.method.endswith("not explained: kernels")


def test_kernel_member_defaults_and_bad_settings() -> None:
    X, y = frequency_series(n=40, length=24)
    small = {"max_epochs": 2, "hidden_size": 8, "conv_width": 8, "n_seeds": 1, "n_kernels": 100}
    gappy = X.copy()
    gappy[:, ::3] = np.nan
    irregular = RNNModel(**small, random_state=0).fit(gappy, y)
    assert "kernels" not in irregular.members_ and irregular.kernel_model_ is None
    with pytest.raises(ValueError, match="kernels='on' needs regularly sampled series"):
        RNNModel(**small, kernels="on").fit(gappy, y)
    with pytest.raises(ValueError, match="kernels must be one of auto, on, off"):
        RNNModel(**small, kernels="maybe").fit(X, y)
    with pytest.raises(ValueError, match=r"kernel_weight must be in \[0, 1\]"):
        RNNModel(**small, kernel_weight=1.5).fit(X, y)
    with pytest.raises(ValueError, match="n_kernels must be a positive integer"):
        RNNModel(max_epochs=2, n_kernels=0).fit(X, y)
    assert RNNModel().get_params()["kernels"] == "auto"


def test_large_regular_sets_leave_the_kernel_member_out_by_default() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(500, 8)).astype(np.float32), np.tile([0, 1], 250)
    model = RNNModel(max_epochs=1, hidden_size=4, conv_width=4, n_seeds=1, random_state=0).fit(X, y)
    assert model.members_ == ("rnn",) and model.kernel_model_ is None
