"""Random convolutional kernels (ROCKET) for regularly sampled series, and a ridge classifier on them.

ROCKET (Dempster, Petitjean & Webb 2020) convolves each series with thousands of random
kernels and keeps, per kernel, the proportion of positive values (PPV) and the maximum
of the output; a linear classifier on those features is a strong baseline on small UCR
sets, where a network has few series to learn from. Kernels follow the paper: lengths
7, 9 or 11, normal weights centred to mean 0 (per variable), bias ``U(-1, 1)``,
dilation ``floor(2^U(0, log2((T - 1) / (length - 1))))`` and, with probability 1/2,
padding that keeps the output length. Kernels sharing (length, dilation, padding) are
applied as one torch ``conv1d``, which keeps 10,000 kernels on 100 series of length 96
to about a second of one CPU thread.

:class:`RocketClassifier` standardises the features and fits ridge regression on
``+-1`` class indicators with the penalty chosen by exact leave-one-out error (the
dual form: cheap when there are far more features than series, as here). The
leave-one-out decision values also calibrate the probabilities (a logistic map fitted
on them), so ``predict_proba`` can be averaged with other models' probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d

__all__ = ["KernelGroup", "RandomKernels", "RocketClassifier"]

KERNEL_LENGTHS = (7, 9, 11)
ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 10))


@dataclass(frozen=True, slots=True)
class KernelGroup:
    """Kernels sharing length, dilation and padding: ``weights`` ``(k, variables, length)``."""

    length: int
    dilation: int
    padding: int
    weights: np.ndarray
    bias: np.ndarray


def _as_regular(X: Any) -> np.ndarray:
    """``X`` as float32 ``(n, variables, steps)`` for conv1d (2-D input is one variable)."""
    array = np.asarray(X, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"series must be 2-D or 3-D, got an array of {array.ndim} dimensions")
    if not np.isfinite(array).all():
        raise ValueError("random kernels need regularly sampled series without NaN or infinity")
    return np.ascontiguousarray(array.transpose(0, 2, 1))


class RandomKernels(TransformerMixin, BaseEstimator):
    """ROCKET features: PPV and maximum of ``n_kernels`` random convolutions per series.

    Parameters
    ----------
    n_kernels
        Number of random kernels; the output has ``2 * n_kernels`` columns (all PPVs, then
        all maxima, in kernel order).
    batch_size
        Series convolved at once (bounds memory: ``batch_size x n_kernels x steps`` floats
        per group at most).
    random_state
        Seed of the kernels; the same seed and series length give the same kernels.

    Attributes
    ----------
    groups_ : list of KernelGroup
    n_steps_, n_variables_ : int
    """

    def __init__(
        self, n_kernels: int = 10_000, batch_size: int = 256, random_state: int | None = None
    ) -> None:
        self.n_kernels = n_kernels
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> RandomKernels:
        """Draw the kernels for series shaped like ``X`` ``(n, steps[, variables])``."""
        del y
        if not isinstance(self.n_kernels, int) or self.n_kernels < 1:
            raise ValueError(f"n_kernels must be a positive integer; got {self.n_kernels!r}")
        array = _as_regular(X)
        self.n_variables_, self.n_steps_ = int(array.shape[1]), int(array.shape[2])
        rng = np.random.default_rng(self.random_state)
        n, steps, width = self.n_kernels, self.n_steps_, self.n_variables_
        lengths = rng.choice(KERNEL_LENGTHS, size=n)
        drawn: dict[tuple[int, int, int], tuple[list[np.ndarray], list[float]]] = {}
        order: list[tuple[int, int, int]] = []
        for length in lengths.tolist():
            weights = rng.normal(size=(width, length))
            weights -= weights.mean(axis=1, keepdims=True)
            bias = float(rng.uniform(-1.0, 1.0))
            top = math.log2((steps - 1) / (length - 1)) if steps > length else 0.0
            dilation = int(2 ** rng.uniform(0.0, top))
            span = (length - 1) * dilation
            # A kernel longer than the series must pad, or its output would be empty.
            padding = span // 2 if rng.integers(2) == 1 or span >= steps else 0
            key = (length, dilation, padding)
            if key not in drawn:
                drawn[key] = ([], [])
            drawn[key][0].append(weights)
            drawn[key][1].append(bias)
            order.append(key)
        self.groups_ = [
            KernelGroup(*key, np.stack(w).astype(np.float32), np.asarray(b, dtype=np.float32))
            for key, (w, b) in drawn.items()
        ]
        # Output column of every kernel, so features come out in the order kernels were drawn.
        position: dict[tuple[int, int, int], list[int]] = {key: [] for key in drawn}
        for index, key in enumerate(order):
            position[key].append(index)
        self.columns_ = [np.asarray(position[g.length, g.dilation, g.padding]) for g in self.groups_]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Features ``(n, 2 * n_kernels)``: PPV of every kernel, then its maximum."""
        import torch

        check_is_fitted(self)
        array = _as_regular(X)
        if array.shape[1:] != (self.n_variables_, self.n_steps_):
            raise ValueError(
                f"series have shape {array.shape[2], array.shape[1]} (steps, variables) but the kernels "
                f"were drawn for ({self.n_steps_}, {self.n_variables_})"
            )
        out = np.empty((len(array), 2 * self.n_kernels), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(array), self.batch_size):
                rows = slice(start, start + self.batch_size)
                x = torch.from_numpy(array[rows])
                for group, columns in zip(self.groups_, self.columns_, strict=True):
                    z = torch.nn.functional.conv1d(
                        x,
                        torch.from_numpy(group.weights),
                        torch.from_numpy(group.bias),
                        padding=group.padding,
                        dilation=group.dilation,
                    )
                    out[rows, columns] = (z > 0).float().mean(dim=-1).numpy()
                    out[rows, columns + self.n_kernels] = z.amax(dim=-1).numpy()
        return out


class RocketClassifier(ClassifierMixin, BaseEstimator):
    """Ridge classifier on :class:`RandomKernels` features with calibrated probabilities.

    Parameters
    ----------
    n_kernels
        Random kernels (``2 * n_kernels`` features).
    alphas
        Ridge penalties tried; the one with the smallest leave-one-out squared error wins.
    random_state
        Seed of the kernels.

    Attributes
    ----------
    classes_ : ndarray
    kernels_ : RandomKernels
    alpha_ : float
        The chosen penalty.
    loo_decision_ : ndarray
        Leave-one-out ridge outputs ``(n, n_classes)`` at ``alpha_`` (each row from the fit
        on the other rows), on which the probabilities are calibrated.
    loo_accuracy_ : float
        Leave-one-out accuracy of the ridge classifier at ``alpha_``.
    """

    def __init__(
        self, n_kernels: int = 10_000, alphas: tuple[float, ...] = ALPHAS, random_state: int | None = None
    ) -> None:
        self.n_kernels = n_kernels
        self.alphas = alphas
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> RocketClassifier:
        """Draw kernels, standardise their features and fit the ridge and its calibration."""
        y = column_or_1d(np.asarray(y))
        check_classification_targets(y)
        self.classes_ = unique_labels(y)
        if len(self.classes_) < 2:
            raise ValueError("RocketClassifier needs at least two classes; got 1 class")
        encoded = np.searchsorted(self.classes_, y)
        self.kernels_ = RandomKernels(self.n_kernels, random_state=self.random_state).fit(X)
        features = self.kernels_.transform(X).astype(np.float64)
        self.mean_ = features.mean(axis=0)
        scale = features.std(axis=0)
        self.scale_ = np.where(scale > 1e-8, scale, 1.0)
        Z = (features - self.mean_) / self.scale_
        targets = np.where(np.arange(len(self.classes_))[None, :] == encoded[:, None], 1.0, -1.0)
        self.target_mean_ = targets.mean(axis=0)
        centred = targets - self.target_mean_
        # Dual ridge: K = Z Z^T (n x n), eigen-decomposed once for every alpha.
        eigenvalues, Q = np.linalg.eigh(Z @ Z.T)
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        projected = Q.T @ centred
        best: tuple[float, float, np.ndarray] | None = None
        for alpha in self.alphas:
            shrink = eigenvalues / (eigenvalues + alpha)
            fitted = Q @ (shrink[:, None] * projected)
            hat = (Q**2) @ shrink + 1.0 / len(Z)  # diagonal of the hat matrix, intercept included
            residual = (centred - fitted) / np.maximum(1.0 - hat, 1e-12)[:, None]
            error = float(np.mean(residual**2))
            if best is None or error < best[0] - 1e-12:
                best = (error, float(alpha), targets - residual)
        assert best is not None
        _, self.alpha_, self.loo_decision_ = best
        self.dual_coef_ = Q @ (projected / (eigenvalues + self.alpha_)[:, None])
        self.coef_ = Z.T @ self.dual_coef_  # (features, classes)
        self.loo_accuracy_ = float(np.mean(np.argmax(self.loo_decision_, axis=1) == encoded))
        self.calibration_ = LogisticRegression(C=1.0, max_iter=1000).fit(self.loo_decision_, encoded)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Ridge outputs per class, ``(n, n_classes)``."""
        check_is_fitted(self)
        Z = (self.kernels_.transform(X).astype(np.float64) - self.mean_) / self.scale_
        return np.asarray(Z @ self.coef_ + self.target_mean_)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities from the logistic map fitted on the leave-one-out decision values."""
        return np.asarray(self.calibration_.predict_proba(self.decision_function(X)), dtype=float)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the largest ridge output."""
        return np.asarray(self.classes_[np.argmax(self.decision_function(X), axis=1)])
