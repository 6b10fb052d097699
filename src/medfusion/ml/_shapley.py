"""Model-agnostic Shapley values and the deletion faithfulness test (numpy only).

The value of a coalition ``S`` of features for a row ``x`` is the interventional
expectation ``v(S) = mean_b f(x_S, b_rest)`` over a small background sample ``b``.
With up to ``max_exact`` features every coalition is enumerated and the Shapley
formula is applied exactly; with more, ``n_permutations`` random feature orders
(each paired with its reverse, antithetic sampling, which halves the variance for
near-additive models) are walked and marginal contributions averaged. Each walked
order telescopes from ``v({})`` to ``v(all)``, so local accuracy holds exactly for the
sampled explainer too; only the split between features is an estimate.

All coalitions of one row are scored in a single ``predict`` call, which is what
keeps one explanation within tens of milliseconds for pipeline models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import factorial
from typing import Any

import numpy as np
import pandas as pd

from medfusion.ml._explain import Explanation, Output

__all__ = ["DeletionResult", "background_reference", "deletion_test", "shapley_values"]

Predict = Callable[[pd.DataFrame], np.ndarray]


def _compose(row: pd.DataFrame, background: pd.DataFrame, masks: np.ndarray) -> pd.DataFrame:
    """One frame with, for each mask and background row, ``x`` where masked else ``b``."""
    n_masks, n_background = masks.shape[0], len(background)
    columns = {}
    for j, name in enumerate(background.columns):
        keep = np.repeat(masks[:, j], n_background)
        base = np.tile(background[name].to_numpy(), n_masks)
        value = row[name].to_numpy()[0]
        # np.where would promote mixed types; assigning into a copy keeps the dtype
        # (integers become floats so a fractional value is not truncated).
        column = base.astype(float) if base.dtype.kind in "iub" else base.copy()
        column[keep] = value
        columns[name] = column
    return pd.DataFrame(columns, columns=background.columns)


def _values(predict: Predict, row: pd.DataFrame, background: pd.DataFrame, masks: np.ndarray) -> np.ndarray:
    scores = np.asarray(predict(_compose(row, background, masks)), dtype=float).ravel()
    return np.asarray(scores.reshape(masks.shape[0], len(background)).mean(axis=1), dtype=float)


def _exact(predict: Predict, row: pd.DataFrame, background: pd.DataFrame) -> tuple[np.ndarray, float]:
    m = background.shape[1]
    codes = np.arange(2**m)
    masks = ((codes[:, None] >> np.arange(m)) & 1).astype(bool)
    value = _values(predict, row, background, masks)
    sizes = masks.sum(axis=1)
    weight = np.array([factorial(s) * factorial(m - s - 1) / factorial(m) for s in range(m)])
    phi = np.empty(m)
    for j in range(m):
        without = codes[~masks[:, j]]
        phi[j] = np.sum(weight[sizes[without]] * (value[without | (1 << j)] - value[without]))
    return phi, float(value[0])


def _sampled(
    predict: Predict,
    row: pd.DataFrame,
    background: pd.DataFrame,
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    m = background.shape[1]
    half = max(1, n_permutations // 2)
    orders = [rng.permutation(m) for _ in range(half)]
    orders += [order[::-1] for order in orders]
    masks = np.zeros((len(orders) * (m + 1), m), dtype=bool)
    for p, order in enumerate(orders):
        for step in range(1, m + 1):
            masks[p * (m + 1) + step, order[:step]] = True
    value = _values(predict, row, background, masks).reshape(len(orders), m + 1)
    phi = np.zeros(m)
    for p, order in enumerate(orders):
        phi[order] += np.diff(value[p])
    return phi / len(orders), float(value[0, 0])


def shapley_values(
    predict: Predict,
    X: pd.DataFrame,
    background: pd.DataFrame,
    *,
    output: Output = "value",
    max_exact: int = 10,
    n_permutations: int = 10,
    max_background: int = 10,
    seed: int = 0,
) -> Explanation:
    """Shapley values of any model that scores a DataFrame, keyed by column name.

    Parameters
    ----------
    predict
        Maps a DataFrame with the columns of ``X`` to one number per row (e.g.
        ``lambda d: model.predict_proba(d)[:, 1]``).
    X
        Rows to explain.
    background
        Reference rows standing in for "feature unknown" (usually training rows);
        at most ``max_background`` of them are used, drawn with ``seed``.
    output
        Units of ``predict``'s output, recorded in the explanation.
    max_exact
        Enumerate all ``2**n_features`` coalitions up to this many features.
    n_permutations
        Feature orders walked per row by the sampled explainer (rounded down to even).
    seed
        Seeds the background draw and the permutations; same seed, same values.

    Returns
    -------
    Explanation
        ``base_value`` is the mean prediction over the background sample.
    """
    if list(background.columns) != list(X.columns):
        raise ValueError("background must have the same columns as X, in the same order")
    if len(background) == 0:
        raise ValueError("background needs at least one row")
    rng = np.random.default_rng(seed)
    if len(background) > max_background:
        background = background.iloc[np.sort(rng.choice(len(background), max_background, replace=False))]
    background = background.reset_index(drop=True)
    exact = X.shape[1] <= max_exact
    rows, bases = [], []
    for i in range(len(X)):
        row = X.iloc[[i]]
        phi, base = (
            _exact(predict, row, background)
            if exact
            else _sampled(predict, row, background, n_permutations, rng)
        )
        rows.append(phi)
        bases.append(base)
    contributions = np.array(rows).reshape(len(X), X.shape[1])
    predictions = np.asarray(predict(X), dtype=float).ravel()
    method = "shapley-exact" if exact else f"shapley-permutation ({2 * max(1, n_permutations // 2)} orders)"
    base_value = float(bases[0]) if bases else float(np.mean(np.asarray(predict(background), dtype=float)))
    return Explanation(
        method, output, base_value, tuple(str(c) for c in X.columns), predictions, contributions
    )


def background_reference(frame: pd.DataFrame) -> dict[str, Any]:
    """Mean of each numeric column and most frequent value of the others."""
    reference: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            reference[str(name)] = float(column.mean())
        else:
            reference[str(name)] = column.mode(dropna=True).iloc[0]
    return reference


@dataclass(frozen=True, slots=True)
class DeletionResult:
    """Outcome of the deletion test, in the explained output's units.

    Attributes
    ----------
    k
        Features removed per row.
    top_change
        Mean ``|f(x) - f(x without its top-k attributed features)|``.
    random_change
        Mean of the same change over random sets of ``k`` features.
    margin
        ``top_change - random_change``: positive when the attributions point at the
        features the model actually relies on.
    """

    k: int
    top_change: float
    random_change: float
    margin: float


def deletion_test(
    predict: Predict,
    X: pd.DataFrame,
    contributions: np.ndarray,
    reference: Mapping[str, Any],
    *,
    k: int = 3,
    n_random: int = 20,
    seed: int = 0,
) -> DeletionResult:
    """Replace the top-``k`` attributed features with their reference and measure the change.

    Parameters
    ----------
    predict
        The explained output as a function of a DataFrame.
    X
        Explained rows; ``contributions`` has one row per row of ``X`` and one column
        per column of ``X``.
    reference
        The "removed" value per feature (training mean / most frequent level).
    k
        Features removed per row (capped at the number of features).
    n_random
        Random ``k``-sets per row to compare against.
    """
    names = list(X.columns)
    m, n = len(names), len(X)
    k = max(1, min(k, m))
    rng = np.random.default_rng(seed)
    per_row = 2 + n_random
    masks = np.zeros((n * per_row, m), dtype=bool)
    for i in range(n):
        masks[i * per_row + 1, np.argsort(-np.abs(contributions[i]), kind="stable")[:k]] = True
        for r in range(n_random):
            masks[i * per_row + 2 + r, rng.choice(m, k, replace=False)] = True
    frame = X.iloc[np.repeat(np.arange(n), per_row)].reset_index(drop=True)
    for j, name in enumerate(names):
        if masks[:, j].any():
            column = frame[name].to_numpy().copy()
            if column.dtype.kind in "iub":  # an integer column may take a fractional mean
                column = column.astype(float)
            column[masks[:, j]] = reference[name]
            frame[name] = column
    scores = np.asarray(predict(frame), dtype=float).ravel().reshape(n, per_row)
    change = np.abs(scores[:, 1:] - scores[:, :1])
    top, random = float(change[:, 0].mean()), float(change[:, 1:].mean())
    return DeletionResult(k, top, random, top - random)
