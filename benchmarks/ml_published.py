"""`make bench-ml`: the models against published results on the same data and split.

The CNN rows (BreastMNIST, mean of 3 seeds) and its training-throughput comparison come
from ``benchmarks/bench_cnn.py``; the sequence rows (ECG200, PhysioNet 2012, rnn throughput
and IG faithfulness) from ``benchmarks/bench_sequence.py``. ``--skip-sequence`` and
``--skip-cnn`` leave them out (they take minutes).

Prints a Markdown table and writes it to ``bench-out/ml_published.md``. Every model runs
with default settings; CIs are 95 % seeded bootstrap intervals (500 resamples).

Usage: python benchmarks/ml_published.py [--out bench-out/ml_published.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.io import arff
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_sequence import ecg200, faithfulness, physionet, throughput
from medfusion.config import get_settings
from medfusion.ml import (
    CoxModel,
    Estimate,
    LinearModel,
    LogisticModel,
    cross_validate,
    evaluate,
    load_cleveland,
)

Row = tuple[str, str, Estimate, str, str]


def _ci(e: Estimate) -> str:
    return f"{e.value:.3f} ({e.ci_low:.3f}-{e.ci_high:.3f})"


def cleveland(data: Path) -> list[Row]:
    """UCI Cleveland, ``num > 0``, logistic, 10-fold stratified CV (pooled out-of-fold)."""
    frame = load_cleveland(data / "tabular/processed.cleveland.data")
    y = frame.pop("target").to_numpy()
    # Nominal codes (chest-pain type, ECG, slope, thallium) are categories, not quantities.
    for column in ("cp", "restecg", "slope", "thal"):
        frame[column] = frame[column].map(lambda v: "missing" if pd.isna(v) else str(int(v)))
    ev = cross_validate(LogisticModel(random_state=42), frame, y, task="binary", folds=10, seed=42)
    return [
        (
            "UCI Cleveland (303, 10-fold CV)",
            "accuracy",
            ev.metrics["accuracy"],
            "0.77-0.79 (target >= 0.80)",
            "",
        ),
        ("UCI Cleveland (303, 10-fold CV)", "AUROC", ev.metrics["auroc"], "n/a", ""),
    ]


def gbsg2(data: Path) -> list[Row]:
    """GBSG2, Cox, ``train_test_split(stratify=cens, random_state=1)`` as in scikit-survival's guide."""
    raw, _ = arff.loadarff(data / "tabular/GBSG2.arff")
    frame = pd.DataFrame(raw)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].str.decode("utf-8")
    y = np.column_stack([frame.pop("time").astype(float), frame.pop("cens").astype(float)])
    train, test = train_test_split(np.arange(len(y)), stratify=y[:, 1], random_state=1)
    model = CoxModel().fit(frame.iloc[train], y[train])
    ev = evaluate(model, frame.iloc[test], y[test], task="survival", seed=42)
    return [
        (
            "GBSG2 (686; 514/172 split)",
            "Harrell's C",
            ev.metrics["c_index"],
            "0.688 Coxnet, 0.692 RSF (target >= 0.68)",
            "",
        ),
        ("GBSG2 (686; 514/172 split)", "Uno's C", ev.metrics["uno_c"], "n/a", ""),
        ("GBSG2 (686; 514/172 split)", "integrated Brier", ev.metrics["ibs"], "0.189 Coxnet, 0.192 RSF", ""),
    ]


def diabetes(_: Path) -> list[Row]:
    """sklearn diabetes, OLS on all 10 features: 80/20 split (seed 42) and in-sample."""
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42)
    model = LinearModel().fit(X.iloc[train], y.iloc[train])
    held_out = evaluate(model, X.iloc[test], y.to_numpy()[test], task="regression", seed=42)
    full = LinearModel().fit(X, y)
    in_sample = evaluate(full, X, y.to_numpy(), task="regression", seed=42)
    return [
        (
            "sklearn diabetes (442; 80/20, seed 42)",
            "test R²",
            held_out.metrics["r2"],
            "0.47 (one-feature example)",
            "",
        ),
        ("sklearn diabetes (442, in-sample)", "R²", in_sample.metrics["r2"], "0.518 (Efron et al. 2004)", ""),
    ]


def breast_cancer(_: Path) -> list[Row]:
    """sklearn breast_cancer, logistic, stratified 80/20 split (seed 42)."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42, stratify=y)
    model = LogisticModel(random_state=42).fit(X.iloc[train], y.iloc[train])
    ev = evaluate(model, X.iloc[test], y.to_numpy()[test], task="binary", seed=42)
    return [
        ("sklearn breast_cancer (569; 80/20, seed 42)", "AUROC", ev.metrics["auroc"], "target >= 0.99", ""),
        (
            "sklearn breast_cancer (569; 80/20, seed 42)",
            "calibration slope",
            ev.metrics["calibration_slope"],
            "1 = ideal",
            "",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench-out/ml_published.md"))
    parser.add_argument("--skip-sequence", action="store_true", help="Leave out the rnn rows.")
    parser.add_argument("--skip-cnn", action="store_true", help="Leave out the cnn rows.")
    args = parser.parse_args()
    data = get_settings().data_dir
    lines = [
        f"CPU, {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        "95 % bootstrap CIs (500 resamples, seed 42).",
        "",
        "| data | metric | ours (95% CI) | published / target | seconds (CPU s) |",
        "|---|---|---|---|---|",
    ]
    benches: list[Callable[[Path], list[Row]]] = [cleveland, gbsg2, diabetes, breast_cancer]
    if not args.skip_sequence:
        benches += [ecg200, physionet, throughput, faithfulness]
    folders = {cleveland: "tabular", gbsg2: "tabular", ecg200: "ucr", physionet: "physionet2012"}
    folders.update({throughput: "physionet2012", faithfulness: "physionet2012"})
    for bench in benches:
        folder = folders.get(bench)
        if folder is not None and not (data / folder).is_dir():
            lines.append(f"| {bench.__name__} | skipped: {data / folder} is absent | | | |")
            continue
        started, cpu_started = time.perf_counter(), time.process_time()
        rows = bench(data)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        lines.extend(
            f"| {d} | {m} | {_ci(e)} | {p}{'; ' + n if n else ''} | {seconds:.1f} ({cpu:.1f}) |"
            for d, m, e, p, n in rows
        )
    notes: list[str] = []
    if args.skip_cnn:
        pass
    elif (data / "medmnist/breastmnist.npz").is_file():
        from benchmarks.bench_cnn import breastmnist
        from benchmarks.bench_cnn import throughput as cnn_throughput

        cnn_rows, notes = breastmnist(data)
        lines.extend(f"| {d} | {m} | {_ci(e)} | {p} | {s} |" for d, m, e, p, s in cnn_rows)
        notes += cnn_throughput(data)
    else:
        lines.append(f"| breastmnist | skipped: {data / 'medmnist'} is absent | | | |")
    table = "\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)


if __name__ == "__main__":
    main()
