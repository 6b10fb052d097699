"""The ``rnn`` model against published results: ECG200 and PhysioNet 2012, plus throughput.

Run through ``benchmarks/ml_published.py`` (``make bench-ml``), or alone:
``python benchmarks/bench_sequence.py [--only ecg200|physionet|throughput|faithfulness]``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from medfusion.config import get_settings
from medfusion.ml import (
    Estimate,
    RNNModel,
    bootstrap,
    evaluate,
    integrated_gradients,
    read_physionet,
    read_ucr,
    sequence_deletion_test,
    summary_features,
)
from medfusion.ml._sequence import BASIC_STATISTICS, _logistic

Row = tuple[str, str, Estimate, str, str]


def ecg200(data: Path, seeds: tuple[int, ...] = (42, 43, 44)) -> list[Row]:
    """ECG200 official split, ``rnn`` with default settings, one fit per seed.

    Rows: accuracy per seed (95 % bootstrap CI) with that fit's wall and CPU seconds
    (fit and prediction), the mean accuracy over the seeds, and the first seed's AUROC.
    """
    train = read_ucr(data / "ucr/ECG200_TRAIN.tsv")
    test = read_ucr(data / "ucr/ECG200_TEST.tsv")
    assert train.y is not None and test.y is not None
    label = "ECG200 (100/100 official split)"
    published = "1-NN 0.880, FCN 0.889, InceptionTime 0.91 (target >= 0.90)"
    rows: list[Row] = []
    accuracies = []
    for seed in seeds:
        started, cpu_started = time.perf_counter(), time.process_time()
        model = RNNModel(random_state=seed).fit(train.X, train.y)
        ev = evaluate(model, test.X, test.y, task="binary", seed=42)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        accuracies.append(ev.metrics["accuracy"].value)
        note = f"seed {seed}: {seconds:.1f} s wall, {cpu:.1f} CPU s (fit + test)"
        rows.append((label, f"accuracy, seed {seed}", ev.metrics["accuracy"], published, note))
        if seed == seeds[0]:
            auroc = (label, f"AUROC, seed {seed}", ev.metrics["auroc"], "n/a", "")
    mean = float(np.mean(accuracies))
    seeds_text = "/".join(map(str, seeds))
    rows.append((label, f"accuracy, mean of seeds {seeds_text}", Estimate(mean, mean, mean), published, ""))
    return [*rows, auroc]


@functools.cache
def _physionet(data: Path) -> Any:
    """The dev half on its grid, read once per process (about 6 s) for every bench here."""
    folder = data / "physionet2012"
    return read_physionet(folder / "set-a-dev.tar.gz", labels=folder / "Outcomes-dev.txt")


def _pooled(y: np.ndarray, score: np.ndarray) -> Estimate:
    return bootstrap(lambda rows: {"auroc": float(roc_auc_score(y[rows], score[rows]))}, len(y), seed=42)[
        "auroc"
    ]


def physionet(data: Path) -> list[Row]:
    """PhysioNet 2012 dev half, in-hospital death, 5-fold stratified CV (seed 42).

    ``rnn`` with default settings against logistic regression on per-variable
    (first, last, min, max, mean, count) on the same folds. Reported: the mean of the
    fold AUROCs (the issue's figure) with the pooled out-of-fold AUROC's bootstrap CI.
    """
    sequences = _physionet(data)
    series, y = sequences.X, sequences.y.astype(int)
    basic = summary_features(series, BASIC_STATISTICS)
    rnn_score, lr_score = np.zeros(len(y)), np.zeros(len(y))
    rnn_folds, lr_folds, members, fold_cpu = [], [], [], []
    started, cpu_started = time.perf_counter(), time.process_time()
    for train, test in StratifiedKFold(5, shuffle=True, random_state=42).split(basic, y):
        cpu = time.process_time()
        model = RNNModel(random_state=42).fit(series[train], y[train])
        rnn_score[test] = model.predict_proba(series[test])[:, 1]
        members.append("+".join(model.members_))
        lr = _logistic(42).fit(basic[train], y[train])
        lr_score[test] = lr.predict_proba(basic[test])[:, 1]
        rnn_folds.append(roc_auc_score(y[test], rnn_score[test]))
        lr_folds.append(roc_auc_score(y[test], lr_score[test]))
        fold_cpu.append(time.process_time() - cpu)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    label = "PhysioNet 2012 dev half (2,000 stays, 5-fold CV)"
    rnn_ci, lr_ci = _pooled(y, rnn_score), _pooled(y, lr_score)
    print(f"physionet: fold AUROCs rnn {np.round(rnn_folds, 3)}, logistic {np.round(lr_folds, 3)}; "
          f"members per fold {members}; {seconds:.0f} s wall, {cpu_seconds:.0f} CPU s "
          f"(per fold {np.round(fold_cpu).astype(int).tolist()})", file=sys.stderr)  # fmt: skip
    return [
        (
            label,
            "AUROC rnn, mean of folds (pooled CI)",
            Estimate(float(np.mean(rnn_folds)), rnn_ci.ci_low, rnn_ci.ci_high),
            "GRU-D / IP-Nets / mTAN 0.84-0.86 (target >= 0.85)",
            f"members chosen: {', '.join(sorted(set(members)))}; 5 folds {seconds:.0f} s wall, "
            f"{cpu_seconds:.0f} s CPU",
        ),
        (
            label,
            "AUROC logistic on summaries, mean of folds (pooled CI)",
            Estimate(float(np.mean(lr_folds)), lr_ci.ci_low, lr_ci.ci_high),
            "about 0.83 here (the rnn must beat it)",
            "",
        ),
    ]


def throughput(data: Path, epochs: int = 3, repeats: int = 2) -> list[Row]:
    """Training samples/s of the shared ``fit_loop`` vs a plain PyTorch loop, same network and data."""
    import torch

    from medfusion.ml._sequence_nets import SequenceNet
    from medfusion.ml._torch import FitConfig, fit_loop, torch_threads

    sequences = _physionet(data)
    model = RNNModel(random_state=0)
    model._validate(sequences.X, reset=True)
    model.mean_ = np.nan_to_num(np.nanmean(sequences.X, axis=(0, 1))).astype(np.float32)
    model.scale_ = np.ones_like(model.mean_)
    tensors = [*model._tensors(sequences.X), torch.from_numpy(sequences.y.astype(np.int64))]
    loss = torch.nn.functional.cross_entropy

    def network() -> SequenceNet:
        torch.manual_seed(0)
        return SequenceNet(model.n_variables_, 2, decay=True)

    def plain() -> float:
        net = network()
        optimiser = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
        generator = torch.Generator().manual_seed(0)
        n = len(tensors[0])
        started = time.perf_counter()
        for _ in range(epochs):
            net.train()
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, 64):
                index = order[start : start + 64]
                *inputs, target = (t[index] for t in tensors)
                optimiser.zero_grad()
                value = loss(net(*inputs), target)
                value.backward()
                optimiser.step()
        return n * epochs / (time.perf_counter() - started)

    def ours() -> float:
        config = FitConfig(
            max_epochs=epochs,
            batch_size=64,
            lr=1e-3,
            weight_decay=1e-4,
            optimizer="adam",
            schedule="constant",
        )
        generator = torch.Generator().manual_seed(0)
        history = fit_loop(
            network(), tensors, loss=loss, config=config, generator=generator, device=torch.device("cpu")
        )
        return history.samples_per_second

    speeds: dict[str, list[float]] = {"plain": [], "ours": []}
    with torch_threads(1):
        for _ in range(repeats):  # interleaved, best of each: the machine is shared
            speeds["plain"].append(plain())
            speeds["ours"].append(ours())
    best_plain, best_ours = max(speeds["plain"]), max(speeds["ours"])
    ratio = best_plain / best_ours
    label = "PhysioNet 2012 training throughput (2,000 stays, 1 thread)"
    return [
        (label, "samples/s, medfusion fit loop", Estimate(best_ours, best_ours, best_ours), "", ""),
        (label, "samples/s, plain PyTorch loop", Estimate(best_plain, best_plain, best_plain), "", ""),
        (label, "overhead ratio plain/ours", Estimate(ratio, ratio, ratio), "target <= 1.10", ""),
    ]


def faithfulness(data: Path, k: int = 10, rows: int = 200) -> list[Row]:
    """IG deletion test on PhysioNet: top-k attributed cells made missing vs k random observed ones."""
    sequences = _physionet(data)
    series, y = sequences.X, sequences.y.astype(int)
    train, test = next(StratifiedKFold(5, shuffle=True, random_state=42).split(series[:, 0, 0], y))
    model = RNNModel(random_state=42, summaries="off").fit(series[train], y[train])
    explained = series[test[:rows]]
    explanation = integrated_gradients(model, explained, steps=32)
    deletion = sequence_deletion_test(model, explained, explanation, k=k, repeats=5, seed=0)
    error = float(explanation.completeness_error().max())
    label = f"PhysioNet 2012 IG deletion ({rows} test stays, k={k})"

    def exact(value: float) -> Estimate:
        return Estimate(value, value, value)

    return [
        (label, "mean abs change of p, top-k deleted", exact(deletion.top_change), "", ""),
        (label, "mean abs change of p, random k deleted", exact(deletion.random_change), "", ""),
        (label, "margin (top - random)", exact(deletion.margin), "> 0", f"completeness error {error:.1e}"),
    ]


BENCHES = {"ecg200": ecg200, "physionet": physionet, "throughput": throughput, "faithfulness": faithfulness}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHES), action="append")
    args = parser.parse_args()
    data = get_settings().data_dir
    print("| data | metric | ours (95% CI) | published / target | seconds (CPU s) |\n|---|---|---|---|---|")
    for name in args.only or list(BENCHES):
        started, cpu_started = time.perf_counter(), time.process_time()
        rows = BENCHES[name](data)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        for d, m, e, p, note in rows:
            value = (
                f"{e.value:.3f}"
                if e.ci_low == e.ci_high
                else f"{e.value:.3f} ({e.ci_low:.3f}-{e.ci_high:.3f})"
            )
            extra = f"; {note}" if note else ""
            print(f"| {d} | {m} | {value} | {p}{extra} | {seconds:.1f} ({cpu:.1f}) |", flush=True)


if __name__ == "__main__":
    main()
