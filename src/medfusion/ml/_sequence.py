"""The ``rnn`` model: a scikit-learn classifier over sequences, GRU-D style for clinical series.

``X`` is a float array ``(n, n_steps, n_variables)`` with ``NaN`` for unobserved cells
(a 2-D ``(n, n_steps)`` array is one variable). Per seed, a :class:`SequenceNet` is
trained with early stopping on a stratified validation split of the training rows.
For irregular series (any ``NaN``) it may be ensembled with logistic regression and
gradient boosting on per-variable summaries: each combination is scored on the same
validation rows and the best one is kept (``members_``), so the ensemble is only used
where it generalises better than the network alone. Small regularly sampled sets (UCR
style) add a random-convolutional-kernel member (ROCKET, :mod:`medfusion.ml._rocket`)
whose probabilities get weight ``kernel_weight`` (0.75) against the networks' 0.25:
chosen by cross-validation on ECG200's training split, where the networks alone reached
0.84 accuracy and the kernel member 0.92 (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

if TYPE_CHECKING:  # torch loads on first fit or prediction, not with medfusion.ml
    from medfusion.ml._torch import EpochRecord, History

__all__ = ["SUMMARY_STATISTICS", "RNNModel", "as_sequences", "summary_features"]

SUMMARY_STATISTICS = ("first", "last", "min", "max", "mean", "count", "std", "slope", "last_time")
BASIC_STATISTICS = ("first", "last", "min", "max", "mean", "count")


def as_sequences(X: Any) -> np.ndarray:
    """``X`` as a float32 ``(n, n_steps, n_variables)`` array (2-D input is one variable).

    Raises
    ------
    ValueError
        Not numeric, infinite values, wrong number of dimensions, or no rows.
    """
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    try:
        array = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError("sequence input must be numeric (NaN marks a missing value)") from None
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"sequence input must be 2-D or 3-D, got an array of {array.ndim} dimensions")
    if array.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={array.shape}) while a minimum of 1 is required."
        )
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"sequence input has no steps or no variables (shape={array.shape})")
    if np.isinf(array).any():
        raise ValueError("Input X contains infinity or a value too large for dtype('float32').")
    return array


def summary_features(X: np.ndarray, statistics: tuple[str, ...] = SUMMARY_STATISTICS) -> np.ndarray:
    """Per-variable summaries of a sequence grid, shape ``(n, n_variables * len(statistics))``.

    ``count`` is the number of observed steps, ``slope`` ``(last - first) / span`` and
    ``last_time`` the step of the last observation; the others ignore ``NaN`` and are
    ``NaN`` for a variable never observed.
    """
    observed = ~np.isnan(X)
    steps = np.arange(X.shape[1], dtype=np.float32)[None, :, None]
    count = observed.sum(axis=1).astype(np.float32)
    any_seen = count > 0
    first_i = np.where(any_seen, observed.argmax(axis=1), 0)
    last_i = np.where(any_seen, X.shape[1] - 1 - observed[:, ::-1].argmax(axis=1), 0)
    first = np.take_along_axis(X, first_i[:, None, :], axis=1)[:, 0]
    last = np.take_along_axis(X, last_i[:, None, :], axis=1)[:, 0]
    first, last = np.where(any_seen, first, np.nan), np.where(any_seen, last, np.nan)
    filled = np.where(observed, X, 0.0)
    mean = np.where(any_seen, filled.sum(axis=1) / np.maximum(count, 1), np.nan)
    columns: dict[str, np.ndarray] = {"first": first, "last": last, "mean": mean, "count": count}
    if "min" in statistics or "max" in statistics:
        columns["min"] = np.where(any_seen, np.where(observed, X, np.inf).min(axis=1), np.nan)
        columns["max"] = np.where(any_seen, np.where(observed, X, -np.inf).max(axis=1), np.nan)
    if "std" in statistics:
        square = np.where(observed, (X - mean[:, None, :]) ** 2, 0.0).sum(axis=1)
        columns["std"] = np.where(count > 1, np.sqrt(square / np.maximum(count - 1, 1)), np.nan)
    if "slope" in statistics:
        span = (last_i - first_i).astype(np.float32)
        columns["slope"] = np.where(span > 0, (last - first) / np.maximum(span, 1), np.nan)
    if "last_time" in statistics:
        columns["last_time"] = np.where(any_seen, last_i + 0.0 * steps[0, 0, 0], np.nan)
    return np.concatenate([columns[s] for s in statistics], axis=1).astype(np.float32)


def _last_observed(mask: np.ndarray) -> np.ndarray:
    """Per cell, the index of the latest observed step at or before it (``-1`` if none)."""
    steps = np.arange(mask.shape[1])[None, :, None]
    return np.maximum.accumulate(np.where(mask, steps, -1), axis=1).astype(np.int64)


Member = Literal["rnn", "logistic", "boosting", "kernels"]


class RNNModel(ClassifierMixin, BaseEstimator):
    """LSTM / GRU classifier for regular (UCR) and irregular clinical series.

    Parameters
    ----------
    cell
        ``gru`` or ``lstm``.
    hidden_size, num_layers, bidirectional, dropout
        Recurrent layer shape; ``hidden_size=None`` gives 32 units for small sets (under
        500 series) and 64 otherwise.
    front
        ``auto`` (an FCN-style conv front end for regular series, none for irregular),
        ``conv`` or ``none``.
    conv_width
        Channels of the conv front end.
    decay
        ``auto`` (GRU-D inputs when ``X`` has missing values), ``on`` or ``off``.
    summaries
        ``auto`` (for irregular series, consider logistic regression and gradient
        boosting on per-variable summaries as ensemble members, kept only if they
        improve the validation score), ``on`` (always use all three) or ``off``.
    kernels
        ``auto`` (for small regular sets, under 500 series without ``NaN``, average the
        networks' probabilities with a ROCKET member: ridge regression on the PPV and
        maximum of ``n_kernels`` random convolutions, probabilities calibrated on its
        leave-one-out outputs), ``on`` (any regular set; its features take
        ``n x 2 n_kernels`` floats of memory) or ``off``.
    n_kernels
        Random kernels of the ROCKET member.
    kernel_weight
        Weight of the ROCKET member's probabilities in the ensemble; the networks (and
        any summary members, averaged) share the rest.
    n_seeds
        Networks trained with seeds ``random_state + k`` and their probabilities
        averaged. ``None``: 5 for small regular sets (under 500 series, UCR style), where
        one network's accuracy swings by several points from seed to seed; else 1.
    max_epochs, patience, batch_size, learning_rate, weight_decay
        Training loop. ``None`` adapts to the data: the fixed schedule (see
        ``early_stopping``) runs 60 epochs in batches of 32; with early stopping, small
        sets get batches of 16 and a patience of 30 epochs, since their few validation
        rows give a noisy loss, larger ones batches of 64 and a patience of 10 (up to 100
        epochs).
    validation_fraction
        Share of the training rows held out for early stopping and member selection.
    early_stopping
        ``True``: stop on the validation loss. ``False``: a fixed schedule, training on
        all rows for ``max_epochs`` with the learning rate annealed to 0 on a cosine (the
        validation rows still choose ensemble members). ``None``: the fixed schedule for
        small regular sets, whose 20-series validation split makes early stopping a coin
        toss, and early stopping otherwise.
    n_threads
        CPU threads torch, gradient boosting and BLAS use while fitting and predicting
        (``None``: their defaults).
        One thread is the fastest for these small networks on a busy machine, and a
        fixed count keeps CPU results reproducible.
    device
        ``auto``, ``cpu`` or ``cuda``.
    random_state
        Seed; on the CPU two fits with the same seed give identical predictions.

    Attributes
    ----------
    classes_ : ndarray
    networks_ : list of SequenceNet
        Trained networks (on the CPU).
    histories_ : list of History
        Training curves per network (validation score: the negative loss).
    members_ : tuple of str
        Ensemble members kept (``rnn`` always; ``kernels`` for the ROCKET member).
    kernel_model_ : RocketClassifier or None
        The ROCKET member, when ``kernels`` is in ``members_``.
    validation_scores_ : dict
        Validation score (AUROC, or negative log loss for multiclass) of each candidate.
    samples_per_second_ : float
        Training throughput of the networks.
    training_ : dict
        The training settings used, ``None`` defaults resolved (``hidden_size``,
        ``n_seeds``, ``max_epochs``, ``batch_size``, ``early_stopping``, ``schedule``).
    """

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int | None = None,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.2,
        front: str = "auto",
        conv_width: int = 64,
        decay: str = "auto",
        summaries: str = "auto",
        kernels: str = "auto",
        n_kernels: int = 10_000,
        kernel_weight: float = 0.75,
        n_seeds: int | None = None,
        max_epochs: int | None = None,
        patience: int | None = None,
        batch_size: int | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        validation_fraction: float = 0.2,
        early_stopping: bool | None = None,
        n_threads: int | None = 1,
        device: str = "auto",
        random_state: int | None = None,
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.front = front
        self.conv_width = conv_width
        self.decay = decay
        self.summaries = summaries
        self.kernels = kernels
        self.n_kernels = n_kernels
        self.kernel_weight = kernel_weight
        self.n_seeds = n_seeds
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_threads = n_threads
        self.device = device
        self.random_state = random_state

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing observations are model inputs
        tags.non_deterministic = False
        return tags

    # -- parameters and inputs -------------------------------------------------------

    def _check_params(self) -> None:
        choices = {
            "cell": ("gru", "lstm"),
            "front": ("auto", "conv", "none"),
            "decay": ("auto", "on", "off"),
            "summaries": ("auto", "on", "off"),
            "kernels": ("auto", "on", "off"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        positive = (
            "hidden_size",
            "num_layers",
            "n_kernels",
            "n_seeds",
            "max_epochs",
            "patience",
            "batch_size",
        )
        for name in positive:
            if getattr(self, name) is None and name not in ("num_layers", "n_kernels"):
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1); got {self.validation_fraction!r}")
        if not 0 <= self.kernel_weight <= 1:
            raise ValueError(f"kernel_weight must be in [0, 1]; got {self.kernel_weight!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout!r}")

    def _tensors(self, X: np.ndarray) -> tuple[Any, Any, Any]:
        import torch

        mask = ~np.isnan(X)
        values = np.where(mask, (X - self.mean_) / self.scale_, 0.0).astype(np.float32)
        return (
            torch.from_numpy(values),
            torch.from_numpy(mask.astype(np.float32)),
            torch.from_numpy(_last_observed(mask)),
        )

    def _validate(self, X: Any, *, reset: bool) -> np.ndarray:
        if getattr(X, "ndim", None) == 3:
            array = as_sequences(
                check_array(X, allow_nd=True, ensure_all_finite="allow-nan", dtype=np.float32)
            )
        else:
            # A table is one variable over time: scikit-learn's own checks and messages.
            table = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype=np.float32)
            array = as_sequences(table)
        if reset:
            self.n_steps_, self.n_variables_ = int(array.shape[1]), int(array.shape[2])
            self.n_features_in_ = self.n_steps_ * self.n_variables_
        elif array.shape[2] != self.n_variables_ or array.shape[1] != self.n_steps_:
            raise ValueError(
                f"X has shape {array.shape[1:]} (steps, variables) but {type(self).__name__} was "
                f"fitted on ({self.n_steps_}, {self.n_variables_}); X has {array.shape[1] * array.shape[2]} "
                f"features, but {type(self).__name__} is expecting {self.n_features_in_} features as input."
            )
        return array

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X: Any, y: Any, *, progress: Callable[[int, EpochRecord], None] | None = None) -> RNNModel:
        """Fit on ``X`` ``(n, n_steps[, n_variables])`` and class labels ``y``; return self.

        ``progress(seed_index, epoch_record)`` is called after every epoch.
        """
        from medfusion.ml._torch import torch_threads

        with torch_threads(self.n_threads), _native_threads(self.n_threads):
            return self._fit(X, y, progress)

    def _fit(self, X: Any, y: Any, progress: Callable[[int, EpochRecord], None] | None) -> RNNModel:
        import torch

        from medfusion.ml._sequence_nets import SequenceNet
        from medfusion.ml._torch import FitConfig, fit_loop, resolve_device, seeded

        self._check_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        X = self._validate(X, reset=True)
        y = column_or_1d(np.asarray(y), warn=True)
        if y.dtype.kind in "fc" and not np.isfinite(y).all():
            raise ValueError("Input y contains NaN or infinity.")
        if len(y) != len(X):
            raise ValueError(f"y must be one label per series; got shape {y.shape} for {len(X)} series")
        check_classification_targets(y)
        self.classes_ = unique_labels(y)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two classes; got 1 class")
        encoded = np.searchsorted(self.classes_, y)
        device = resolve_device(self.device)
        seed = 0 if self.random_state is None else int(self.random_state)
        self.irregular_ = bool(np.isnan(X).any())
        if self.kernels == "on" and self.irregular_:
            raise ValueError("kernels='on' needs regularly sampled series: X has missing values (NaN)")
        use_decay = self.decay == "on" or (self.decay == "auto" and self.irregular_)
        use_conv = self.front == "conv" or (self.front == "auto" and not self.irregular_)
        with np.errstate(all="ignore"):
            self.mean_ = np.nan_to_num(np.nanmean(X, axis=(0, 1))).astype(np.float32)
            scale = np.nan_to_num(np.nanstd(X, axis=(0, 1)))
        self.scale_ = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
        train, valid = self._split(encoded, seed)
        values, mask, last = self._tensors(X)
        tensors = (values, mask, last, torch.from_numpy(encoded.astype(np.int64)))
        small = len(X) < 500
        fixed = not self.early_stopping if self.early_stopping is not None else small and not self.irregular_
        stop = not fixed and len(valid) > 0
        self.training_: dict[str, Any] = {
            "hidden_size": self.hidden_size or (32 if small else 64),
            "n_seeds": self.n_seeds or (5 if small and not self.irregular_ else 1),
            "max_epochs": self.max_epochs or (60 if fixed else 100),
            "batch_size": self.batch_size or (32 if fixed else 16 if small else 64),
            "early_stopping": stop,
            "schedule": "cosine" if fixed else "constant",
        }
        self.networks_: list[SequenceNet] = []
        self.histories_: list[History] = []
        rows = torch.from_numpy(train if stop else np.arange(len(X)))
        config = FitConfig(
            max_epochs=self.training_["max_epochs"],
            batch_size=self.training_["batch_size"],
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            patience=self.patience or (30 if small else 10),
            optimizer="adam",
            schedule=self.training_["schedule"],
            min_delta=1e-6,
        )
        for k in range(self.training_["n_seeds"]):
            with seeded(seed + k, device) as generator:
                network = SequenceNet(
                    self.n_variables_,
                    len(self.classes_),
                    cell=self.cell,
                    hidden_size=self.training_["hidden_size"],
                    num_layers=self.num_layers,
                    bidirectional=self.bidirectional,
                    dropout=self.dropout,
                    decay=use_decay,
                    conv_width=self.conv_width if use_conv else 0,
                )
                history = fit_loop(
                    network,
                    [t[rows] for t in tensors],
                    loss=torch.nn.functional.cross_entropy,
                    config=config,
                    generator=generator,
                    device=device,
                    validation=[t[torch.from_numpy(valid)] for t in tensors] if stop else None,
                    progress=None if progress is None else partial(progress, k),
                )
            self.networks_.append(network.cpu())
            self.histories_.append(history)
        self.samples_per_second_ = float(np.mean([h.samples_per_second for h in self.histories_]))
        self._fit_members(X, encoded, train, valid, seed)
        self._fit_kernels(X, encoded, seed, small)
        return self

    def _split(self, encoded: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(len(encoded))
        n_valid = math.ceil(len(rows) * self.validation_fraction)
        counts = np.bincount(encoded)
        if len(rows) - n_valid < 2 or n_valid < len(counts) or counts.min() < 2:
            return rows, rows[:0]  # too small to hold rows out: train on all, no early stopping
        train, valid = train_test_split(
            rows, test_size=n_valid, random_state=seed, stratify=encoded, shuffle=True
        )
        return np.sort(train), np.sort(valid)

    def _fit_members(
        self, X: np.ndarray, encoded: np.ndarray, train: np.ndarray, valid: np.ndarray, seed: int
    ) -> None:
        """Choose the ensemble on the validation rows, then refit the summary models on all rows."""
        self.members_: tuple[Member, ...] = ("rnn",)
        self.validation_scores_: dict[str, float] = {}
        self.summary_models_: dict[str, Any] = {}
        if self.summaries == "off" or (self.summaries == "auto" and not self.irregular_):
            return
        features = summary_features(X)
        makers: dict[str, Callable[[], Any]] = {
            "logistic": lambda: _logistic(seed),
            "boosting": lambda: _boosting(seed),
        }
        candidates: list[tuple[Member, ...]] = [
            ("rnn",),
            ("rnn", "logistic"),
            ("rnn", "boosting"),
            ("rnn", "logistic", "boosting"),
        ]
        if self.summaries == "on" or len(valid) == 0 or len(np.unique(encoded[valid])) < len(self.classes_):
            chosen: tuple[Member, ...] = candidates[-1]
        else:
            proba = {"rnn": self._network_proba(X[valid])}
            # Boosting cannot bin a column with no value (a variable never seen in these rows).
            keep = ~np.isnan(features[train]).all(axis=0)
            part, held = features[train][:, keep], features[valid][:, keep]
            for name, make in makers.items():
                proba[name] = make().fit(part, encoded[train]).predict_proba(held)
            for members in candidates:
                average = np.mean([proba[m] for m in members], axis=0)
                self.validation_scores_["+".join(members)] = _score(encoded[valid], average)
            best = max(self.validation_scores_.values())
            # The first (simplest) candidate within rounding of the best wins.
            chosen = next(m for m in candidates if self.validation_scores_["+".join(m)] >= best - 1e-9)
        self.members_ = chosen
        self.summary_columns_ = ~np.isnan(features).all(axis=0)
        for name in chosen[1:]:
            self.summary_models_[name] = makers[name]().fit(features[:, self.summary_columns_], encoded)

    def _fit_kernels(self, X: np.ndarray, encoded: np.ndarray, seed: int, small: bool) -> None:
        """The ROCKET member on all rows (regular series only; its kernels see raw values)."""
        from medfusion.ml._rocket import RocketClassifier

        self.kernel_model_: RocketClassifier | None = None
        if self.kernels == "off" or self.irregular_ or (self.kernels == "auto" and not small):
            return
        self.kernel_model_ = RocketClassifier(self.n_kernels, random_state=seed).fit(X, encoded)
        self.members_ = (*self.members_, "kernels")

    # -- prediction ------------------------------------------------------------------

    def _network_proba(self, X: np.ndarray, batch: int = 512) -> np.ndarray:
        import torch

        from medfusion.ml._torch import torch_threads

        values, mask, last = self._tensors(X)
        out = []
        with torch.no_grad(), torch_threads(self.n_threads):
            for start in range(0, len(values), batch):
                part = slice(start, start + batch)
                logits = [net(values[part], mask[part], last[part]) for net in self.networks_]
                out.append(torch.stack([torch.softmax(z, dim=-1) for z in logits]).mean(0).numpy())
        return np.concatenate(out).astype(float)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order.

        The mean over the networks and summary members, mixed with the ROCKET member's
        probabilities at ``kernel_weight`` when it is a member.
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        parts = [self._network_proba(X)]
        summaries = [m for m in self.members_ if m in self.summary_models_]
        with _native_threads(self.n_threads):
            if summaries:
                features = summary_features(X)[:, self.summary_columns_]
                parts += [self.summary_models_[m].predict_proba(features) for m in summaries]
            average = np.mean(parts, axis=0)
            if getattr(self, "kernel_model_", None) is not None:  # absent in models saved before it
                weight = float(self.kernel_weight)
                average = (1 - weight) * average + weight * self._kernel_proba(X)
        return np.asarray(average, dtype=float)

    def _kernel_proba(self, X: np.ndarray) -> np.ndarray:
        from medfusion.ml._torch import torch_threads

        assert self.kernel_model_ is not None
        with torch_threads(self.n_threads):
            return self.kernel_model_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per series."""
        check_is_fitted(self)
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


@contextmanager
def _native_threads(count: int | None) -> Iterator[None]:
    """Limit OpenMP / BLAS threads (gradient boosting, logistic regression) to ``count``.

    On a busy machine gradient boosting's OpenMP threads wait for each other at every
    barrier: on the shared 2-core benchmark machine one PhysioNet fit took 70 CPU seconds
    with 2 threads and 3.7 with 1.
    """
    if count is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count):
        yield


def _score(y: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return -float(log_loss(y, proba, labels=np.arange(proba.shape[1])))


def _logistic(seed: int) -> Pipeline:
    steps = [
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True, add_indicator=True)),
        ("scale", StandardScaler()),
        ("model", LogisticRegression(C=0.1, max_iter=2000, random_state=seed)),
    ]
    return Pipeline(steps)


def _boosting(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=0.05, max_iter=300, max_leaf_nodes=15, l2_regularization=1.0, random_state=seed
    )
