"""Integrated gradients over time x variable for the ``rnn`` model, heat maps, deletion test.

Attributions explain the networks' averaged probability of the explained class. The
baseline is the training mean of every observed cell (``0`` after normalisation) with
the same missingness pattern, so for irregular series only observed cells get
attribution, and completeness reads: the attributions sum to the output minus the
output at the baseline (up to the Riemann-sum error, which shrinks with ``steps``).
The other ensemble members (summary models, the ROCKET member, whose PPV features are
step functions with zero gradient) are not differentiable and are not part of the
explained output; ``SequenceExplanation.method`` names them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from medfusion.ml._sequence import RNNModel

__all__ = [
    "SequenceDeletion",
    "SequenceExplanation",
    "integrated_gradients",
    "plot_attribution",
    "sequence_deletion_test",
]


@dataclass(frozen=True, slots=True)
class SequenceExplanation:
    """Integrated-gradients attributions of a batch of series.

    Attributes
    ----------
    method
        ``integrated-gradients`` with the number of steps, and the ensemble members left
        out of the explained output, if any.
    target
        Per series, the class whose probability is explained.
    predictions
        That probability, from the network members.
    baselines
        The probability at the baseline input.
    attributions
        ``(n, n_steps, n_variables)``; each series' cells sum to ``prediction - baseline``.
    variables
        Variable names (the last axis).
    """

    method: str
    target: np.ndarray
    predictions: np.ndarray
    baselines: np.ndarray
    attributions: np.ndarray
    variables: tuple[str, ...]

    def completeness_error(self) -> np.ndarray:
        """Per series ``|sum(attributions) - (prediction - baseline)|``."""
        total = self.attributions.reshape(len(self.attributions), -1).sum(axis=1)
        return np.asarray(np.abs(total - (self.predictions - self.baselines)))

    def global_importance(self) -> dict[str, float]:
        """Mean absolute attribution per variable, summed over time."""
        values = np.abs(self.attributions).sum(axis=1).mean(axis=0)
        return {name: float(v) for name, v in zip(self.variables, values, strict=True)}


def _network_output(model: RNNModel, values: Any, mask: Any, last: Any, target: Any) -> Any:
    import torch

    probabilities = torch.stack([torch.softmax(n(values, mask, last), -1) for n in model.networks_]).mean(0)
    return probabilities.gather(1, target[:, None])[:, 0]


def integrated_gradients(
    model: RNNModel,
    X: Any,
    *,
    target: np.ndarray | None = None,
    steps: int = 64,
    variables: tuple[str, ...] | None = None,
) -> SequenceExplanation:
    """Integrated gradients of the explained class probability, per time step and variable.

    Parameters
    ----------
    model
        A fitted :class:`RNNModel`.
    X
        Series as for ``predict``.
    target
        Class index per series (default: the networks' predicted class).
    steps
        Points of the trapezoid rule along the straight path from the baseline.
    variables
        Names for the last axis (default ``x0, x1, ...``).
    """
    import torch

    X = model._validate(X, reset=False)
    values, mask, last = model._tensors(X)
    for network in model.networks_:
        network.eval()
    with torch.no_grad():
        proba = np.mean([torch.softmax(n(values, mask, last), -1).numpy() for n in model.networks_], axis=0)
    chosen = np.argmax(proba, axis=1) if target is None else np.asarray(target, dtype=int)
    target_t = torch.from_numpy(chosen.astype(np.int64))
    # Trapezoid rule on alpha in [0, 1]: end points weigh half.
    alphas = np.linspace(0.0, 1.0, steps + 1)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2
    total = torch.zeros_like(values)
    for alpha, weight in zip(alphas, weights, strict=True):
        point = (values * float(alpha)).requires_grad_(True)
        output = _network_output(model, point, mask, last, target_t)
        (gradient,) = torch.autograd.grad(output.sum(), point)
        total += gradient * float(weight)
    attributions = (total * values).numpy().astype(float)
    with torch.no_grad():
        baseline = _network_output(model, torch.zeros_like(values), mask, last, target_t).numpy()
        prediction = _network_output(model, values, mask, last, target_t).numpy()
    names = variables or tuple(f"x{i}" for i in range(X.shape[2]))
    others = [m for m in model.members_ if m != "rnn"]
    left_out = f" of the networks' probability; not explained: {', '.join(others)}" if others else ""
    return SequenceExplanation(
        f"integrated-gradients ({steps} steps){left_out}",
        chosen,
        prediction.astype(float),
        baseline.astype(float),
        attributions,
        tuple(names),
    )


@dataclass(frozen=True, slots=True)
class SequenceDeletion:
    """Deletion test: output change when the top-k attributed cells become missing vs k random.

    Attributes
    ----------
    k
    top_change, random_change
        Mean absolute change of the explained probability over the series.
    margin
        ``top_change - random_change``; positive means the attributions are faithful.
    """

    k: int
    top_change: float
    random_change: float

    @property
    def margin(self) -> float:
        """How much more deleting the top-k cells moved the output than deleting random ones."""
        return self.top_change - self.random_change


def sequence_deletion_test(
    model: RNNModel, X: Any, explanation: SequenceExplanation, *, k: int = 10, repeats: int = 5, seed: int = 0
) -> SequenceDeletion:
    """Make the ``k`` cells with the largest ``|attribution|`` missing (or, for regular series,
    set them to the training mean) and compare the output change with ``k`` random observed
    cells, averaged over ``repeats`` random draws."""
    import torch

    X = model._validate(X, reset=False)
    rng = np.random.default_rng(seed)
    target = torch.from_numpy(explanation.target.astype(np.int64))

    def output(array: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            result = _network_output(model, *model._tensors(array), target)
        return np.asarray(result.numpy(), dtype=float)

    def delete(cells: list[np.ndarray]) -> np.ndarray:
        out: np.ndarray = X.copy()
        flat = out.reshape(len(out), -1)
        for row, chosen in enumerate(cells):
            # Regular series have no missingness input: the training mean is "no information".
            flat[row, chosen] = np.nan if model.irregular_ else np.tile(model.mean_, X.shape[1])[chosen]
        return out

    base = output(X)
    observed = ~np.isnan(X.reshape(len(X), -1))
    scores = np.abs(explanation.attributions.reshape(len(X), -1))
    top = [np.argsort(-np.where(observed[i], scores[i], -1.0), kind="stable")[:k] for i in range(len(X))]
    top_change = float(np.mean(np.abs(output(delete(top)) - base)))
    random_changes = []
    for _ in range(repeats):
        draws = [
            rng.choice(np.flatnonzero(observed[i]), size=min(k, int(observed[i].sum())), replace=False)
            for i in range(len(X))
        ]
        random_changes.append(float(np.mean(np.abs(output(delete(draws)) - base))))
    return SequenceDeletion(k, top_change, float(np.mean(random_changes)))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def plot_attribution(
    attribution: np.ndarray,
    variables: tuple[str, ...],
    *,
    title: str = "Integrated gradients",
    step_label: str = "time step",
    max_variables: int = 20,
) -> bytes:
    """A time x variable heat map (PNG) of one series' attributions, strongest variables first.

    A single-variable (regular) series is drawn as the signal coloured by attribution.
    """
    plt = _pyplot()
    limit = float(np.abs(attribution).max()) or 1.0
    if attribution.shape[1] == 1:
        fig, ax = plt.subplots(figsize=(7, 2.6), dpi=100)
        image = ax.imshow(attribution.T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set(yticks=[0], yticklabels=list(variables), xlabel=step_label, title=title)
    else:
        order = np.argsort(-np.abs(attribution).sum(axis=0), kind="stable")[:max_variables]
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(order) + 1.6), dpi=100)
        image = ax.imshow(attribution[:, order].T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set(yticks=range(len(order)), yticklabels=[variables[i] for i in order])
        ax.set(xlabel=step_label, title=title)
    fig.colorbar(image, ax=ax, label="attribution (probability)")
    return _png(fig)
