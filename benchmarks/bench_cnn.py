"""The CNN on BreastMNIST (official test split, mean of 3 seeds) and its training throughput.

Used by ``ml_published.py`` (``make bench-ml``); runnable alone:

    python benchmarks/bench_cnn.py [--seeds 0 1 2] [--part all|seeds|throughput] [--out bench-out/cnn.md]

Each seed trains ``CNNClassifier`` with its default settings on ``train`` (early stopping
on ``val``) and is scored on ``test`` with 95 % bootstrap CIs. Throughput compares the
framework's training loop (``fit`` without validation data) with a plain PyTorch loop
over the same network, data, batches, optimiser and augmentation, alternating the two
and keeping each one's best of three, because the machine is shared.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from medfusion.config import get_settings
from medfusion.ml import CNNClassifier, Estimate, evaluate, read_image_splits
from medfusion.ml._cnn import ResNetSmall, _augmenter

Row = tuple[str, str, Estimate, str, str]
NAME = "BreastMNIST (546/78/156, test split)"


def _mean(estimates: list[Estimate]) -> Estimate:
    """Mean of per-seed estimates; the CI is the mean of the per-seed CIs."""
    return Estimate(
        float(np.mean([e.value for e in estimates])),
        float(np.mean([e.ci_low for e in estimates])),
        float(np.mean([e.ci_high for e in estimates])),
    )


def breastmnist(data: Path, seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[list[Row], list[str]]:
    """Rows for the published-results table, and one line per seed."""
    splits = read_image_splits(data / "medmnist/breastmnist.npz")
    train, val, test = splits["train"], splits["val"], splits["test"]
    aucs, accs, lines = [], [], []
    slowest = 0.0
    for seed in seeds:
        started, cpu = time.perf_counter(), time.process_time()
        model = CNNClassifier(random_state=seed).fit(
            train.images, train.labels, validation_data=(val.images, val.labels)
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        slowest = max(slowest, seconds)
        assert test.labels is not None
        ev = evaluate(model, test.images, test.labels, task="binary", seed=42)  # type: ignore[arg-type]
        aucs.append(ev.metrics["auroc"])
        accs.append(ev.metrics["accuracy"])
        kept = ", ".join(str(h.best_epoch) for h in model.histories_)
        lines.append(
            f"seed {seed}: AUROC {_ci(ev.metrics['auroc'])}, accuracy {_ci(ev.metrics['accuracy'])}, "
            f"{seconds:.0f} s wall, {cpu:.0f} s CPU over {torch.get_num_threads()} threads "
            f"(kept epochs {kept})"
        )
        print(lines[-1], flush=True)
    per_seed = f"{slowest:.0f} max per seed"
    return [
        (
            NAME,
            "AUROC, mean of 3 seeds",
            _mean(aucs),
            "ResNet-18 (28) 0.901, AutoML 0.919 (target >= 0.91)",
            per_seed,
        ),
        (NAME, "accuracy, mean of 3 seeds", _mean(accs), "ResNet-18 (28) 0.863 (target >= 0.87)", per_seed),
    ], lines


def _ci(e: Estimate) -> str:
    return f"{e.value:.3f} ({e.ci_low:.3f}-{e.ci_high:.3f})"


def _plain_loop(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int) -> float:
    """The same training written as a bare PyTorch loop; returns images per second."""
    defaults: dict[str, Any] = CNNClassifier().get_params()
    x = torch.from_numpy(images.astype(np.float32)[:, None] / 255.0)
    x = (x - x.mean()) / x.std()
    y = torch.from_numpy(labels.astype(np.int64))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = ResNetSmall(1, 2, width=defaults["width"], side=28, dropout=defaults["dropout"])
    optimiser = torch.optim.AdamW(net.parameters(), lr=defaults["lr"], weight_decay=defaults["weight_decay"])
    steps = epochs * math.ceil(len(x) / defaults["batch_size"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=defaults["lr"], total_steps=steps)
    loss = nn.CrossEntropyLoss(label_smoothing=defaults["label_smoothing"])
    augment = _augmenter(True, defaults["rotate"], defaults["shift"], defaults["scale"])
    started = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for rows in torch.split(torch.randperm(len(x), generator=generator), defaults["batch_size"]):
            out = loss(net(augment(x[rows], generator)), y[rows])
            optimiser.zero_grad()
            out.backward()
            optimiser.step()
            schedule.step()
    return epochs * len(x) / (time.perf_counter() - started)


def _framework(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int) -> float:
    model = CNNClassifier(
        n_members=1, max_epochs=epochs, validation_fraction=0.0, patience=None, random_state=seed
    )
    model.fit(images, labels)
    return epochs * len(images) / model.history_.seconds


def throughput(data: Path, epochs: int = 3, repeats: int = 3) -> list[str]:
    """Training images per second: framework vs plain loop, best of ``repeats`` alternated runs."""
    train = read_image_splits(data / "medmnist/breastmnist.npz")["train"]
    assert train.labels is not None
    framework, plain = [], []
    for repeat in range(repeats):
        framework.append(_framework(train.images, train.labels, epochs, repeat))
        plain.append(_plain_loop(train.images, train.labels, epochs, repeat))
    ratio = max(plain) / max(framework)
    return [
        f"training throughput ({epochs} epochs of {len(train.labels)} images, best of {repeats} alternated "
        f"runs): framework {max(framework):.0f} img/s, plain PyTorch loop {max(plain):.0f} img/s; "
        f"overhead ratio {ratio:.3f} (target <= 1.10)"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("bench-out/cnn.md"))
    parser.add_argument("--part", choices=["all", "seeds", "throughput"], default="all")
    args = parser.parse_args()
    data = get_settings().data_dir
    rows: list[Row] = []
    lines: list[str] = []
    if args.part in ("all", "seeds"):
        rows, lines = breastmnist(data, tuple(args.seeds))
    if args.part in ("all", "throughput"):
        lines += throughput(data)
    table = [f"| {d} | {m} | {_ci(e)} | {p} | {s} |" for d, m, e, p, s in rows]
    text = "\n".join(table + [""] + [f"- {line}" for line in lines]) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
