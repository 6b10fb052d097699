"""`make bench-explain`: speed, local accuracy and deletion faithfulness of the explainers.

For each data set a model is fitted on a seeded 80/20 split and the first ``--rows`` test
rows are explained one call per row (the latency a user sees for one prediction). The
deletion test replaces each row's top-``k`` attributed features with the training
reference (mean / most frequent level) and compares the change of the explained output
with replacing ``k`` random features (20 draws per row); the margin is in the output's
units, and ``relative`` divides it by the random change.

Prints a Markdown table and writes it to ``bench-out/explain.md``. Timing is reported,
never asserted.

Usage: python benchmarks/bench_explain.py [--rows 50] [--k 3] [--out bench-out/explain.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.io import arff
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from medfusion.config import get_settings
from medfusion.ml import (
    CoxModel,
    Explanation,
    LinearModel,
    LogisticModel,
    background_reference,
    deletion_test,
    explain_linear,
    reference_values,
    shapley_values,
)

Predict = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True, slots=True)
class Case:
    """One model to explain: how to explain a frame, its output, and the "removed" values."""

    data: str
    model: str
    explain: Callable[[pd.DataFrame], Explanation]
    predict: Predict
    reference: dict[str, Any]
    rows: pd.DataFrame


def _split(features: pd.DataFrame, stratify: Any = None) -> tuple[np.ndarray, np.ndarray]:
    train, test = train_test_split(
        np.arange(len(features)), test_size=0.2, random_state=42, stratify=stratify
    )
    return np.asarray(train), np.asarray(test)


def diabetes() -> list[Case]:
    """sklearn diabetes: OLS, exact contributions and exact Shapley values."""
    features, y = load_diabetes(return_X_y=True, as_frame=True)
    train, test = _split(features)
    background, rows = features.iloc[train], features.iloc[test]
    linear = LinearModel().fit(background, y.iloc[train])
    name, reference = "diabetes (442, 10 features)", reference_values(linear)
    return [
        Case(name, "linear", lambda d: explain_linear(linear, d), linear.predict, reference, rows),
        Case(
            name,
            "linear, Shapley exact (10 background rows)",
            lambda d: shapley_values(linear.predict, d, background, output="value"),
            linear.predict,
            reference,
            rows,
        ),
    ]


def breast_cancer() -> list[Case]:
    """sklearn breast_cancer: logistic (exact log-odds, Shapley on probability) and boosting."""
    features, y = load_breast_cancer(return_X_y=True, as_frame=True)
    train, test = _split(features, stratify=y)
    background, rows = features.iloc[train], features.iloc[test]
    logistic = LogisticModel(random_state=42).fit(background, y.iloc[train])
    boosted = GradientBoostingClassifier(random_state=0).fit(background, y.iloc[train])

    def probability(d: pd.DataFrame) -> np.ndarray:
        return np.asarray(logistic.predict_proba(d)[:, 1])

    def boosted_score(d: pd.DataFrame) -> np.ndarray:
        return np.asarray(boosted.decision_function(d), dtype=float)

    name, reference = "breast_cancer (569, 30 features)", reference_values(logistic)
    return [
        Case(
            name,
            "logistic (log-odds)",
            lambda d: explain_linear(logistic, d),
            logistic.pipeline_.decision_function,
            reference,
            rows,
        ),
        Case(
            name,
            "logistic, calibrated probability, Shapley permutation",
            lambda d: shapley_values(probability, d, background, output="probability"),
            probability,
            reference,
            rows,
        ),
        Case(
            name,
            "gradient boosting (log-odds), Shapley permutation",
            lambda d: shapley_values(boosted_score, d, background, output="log_odds"),
            boosted_score,
            background_reference(background),
            rows,
        ),
    ]


def gbsg2(data_dir: Path) -> list[Case]:
    """GBSG2 (when present): Cox, exact log-partial-hazard contributions and exact Shapley."""
    path = data_dir / "tabular/GBSG2.arff"
    if not path.is_file():
        return []
    raw, _ = arff.loadarff(path)
    frame = pd.DataFrame(raw)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].str.decode("utf-8")
    target = np.column_stack([frame.pop("time").astype(float), frame.pop("cens").astype(float)])
    train, test = _split(frame, stratify=target[:, 1])
    background, rows = frame.iloc[train], frame.iloc[test]
    cox = CoxModel().fit(background, target[train])

    def log_hazard(d: pd.DataFrame) -> np.ndarray:
        return np.asarray(np.log(cox.predict(d)), dtype=float)

    name, reference = "GBSG2 (686, 8 features)", reference_values(cox)
    return [
        Case(name, "cox", lambda d: explain_linear(cox, d), log_hazard, reference, rows),
        Case(
            name,
            "cox, Shapley exact (10 background rows)",
            lambda d: shapley_values(log_hazard, d, background, output="log_partial_hazard"),
            log_hazard,
            reference,
            rows,
        ),
    ]


def measure(case: Case, rows: int, k: int) -> str:
    """One Markdown row: median and p95 ms per explained row, local error, deletion margin."""
    frame = case.rows.iloc[:rows]
    case.explain(frame.iloc[[0]])  # warm-up: imports and caches
    timings, parts = [], []
    for i in range(len(frame)):
        started = time.perf_counter()
        parts.append(case.explain(frame.iloc[[i]]))
        timings.append(1000 * (time.perf_counter() - started))
    contributions = np.vstack([p.contributions for p in parts])
    local = max(p.max_local_error() for p in parts)
    result = deletion_test(case.predict, frame, contributions, case.reference, k=k)
    relative = result.margin / result.random_change if result.random_change else float("nan")
    return (
        f"| {case.data} | {case.model} | {parts[0].method} | {parts[0].output} | "
        f"{np.median(timings):.1f} | {np.percentile(timings, 95):.1f} | {local:.1e} | "
        f"{result.top_change:.4g} | {result.random_change:.4g} | {result.margin:.4g} | {relative:+.0%} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-out/explain.md"))
    args = parser.parse_args()
    lines = [
        f"CPU, {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"{args.rows} test rows per model, one call per row; deletion k = {args.k}, 20 random draws per row.",
        "",
        "| data | model | method | output | ms/row (median) | ms/row (p95) | max local error "
        "| top-k change | random-k change | margin | relative |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    every = [*diabetes(), *breast_cancer(), *gbsg2(get_settings().data_dir)]
    lines.extend(measure(case, args.rows, args.k) for case in every)
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)


if __name__ == "__main__":
    main()
