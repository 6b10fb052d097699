"""The CNN on BreastMNIST: test-split metrics per seed, training throughput, Grad-CAM speed.

Used by ``ml_published.py`` (``make bench-ml``); runnable alone, in parts:

    python benchmarks/bench_cnn.py --part seeds [--seeds 0 1 2]   # one JSON per seed in --dir
    python benchmarks/bench_cnn.py --part table                   # mean of the saved seeds
    python benchmarks/bench_cnn.py --part explain                 # Grad-CAM / occlusion on seed 0's model
    python benchmarks/bench_cnn.py --part throughput
    python benchmarks/bench_cnn.py                                # all of it, in that order

Each seed trains ``CNNClassifier`` with its default settings on ``train`` (early stopping
and calibration on ``val``) and is scored on ``test`` with 95 % bootstrap CIs; wall and
process CPU seconds are both recorded, because the machine may be shared. Seeds can run
as separate processes (``--seeds 1``) and are put together by ``--part table``.
Throughput compares the shared fit loop (``fit`` without validation data) with a plain
PyTorch loop over the same network, data, batches, optimiser and augmentation,
alternating the two and keeping each one's best of three.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from medfusion.config import get_settings
from medfusion.ml import (
    CNNClassifier,
    Estimate,
    evaluate,
    grad_cam,
    image_deletion_test,
    occlusion,
    overlay_png,
    read_image_splits,
)
from medfusion.ml._cnn import ResNetSmall, _augmenter

Row = tuple[str, str, Estimate, str, str]
NAME = "BreastMNIST (546/78/156, test split)"
FILE = "medmnist/breastmnist.npz"


def _ci(e: Estimate) -> str:
    return f"{e.value:.3f} ({e.ci_low:.3f}-{e.ci_high:.3f})"


def run_seed(data: Path, seed: int, out: Path) -> dict[str, Any]:
    """Train and score one seed; write ``cnn_seed_<seed>.json`` and the pickled model to ``out``."""
    splits = read_image_splits(data / FILE)
    train, val, test = splits["train"], splits["val"], splits["test"]
    started, cpu = time.perf_counter(), time.process_time()
    model = CNNClassifier(random_state=seed).fit(
        train.images, train.labels, validation_data=(val.images, val.labels)
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert test.labels is not None
    ev = evaluate(model, test.images, test.labels, task="binary", seed=42)  # type: ignore[arg-type]
    result = {
        "seed": seed,
        "wall_seconds": seconds,
        "cpu_seconds": cpu,
        "torch_threads": model.n_threads,
        "kept_epochs": [h.best_epoch for h in model.histories_],
        "calibration": model.calibration_,
        "metrics": {
            name: {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high}
            for name, e in ev.metrics.items()
            if name in ("auroc", "accuracy", "auprc", "balanced_accuracy", "brier", "ece")
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"cnn_seed_{seed}.json").write_text(json.dumps(result, indent=1))
    (out / f"cnn_seed_{seed}.pkl").write_bytes(pickle.dumps(model))
    print(_seed_line(result), flush=True)
    return result


def _estimate(result: dict[str, Any], name: str) -> Estimate:
    return Estimate(**result["metrics"][name])


def _seed_line(result: dict[str, Any]) -> str:
    return (
        f"seed {result['seed']}: AUROC {_ci(_estimate(result, 'auroc'))}, accuracy "
        f"{_ci(_estimate(result, 'accuracy'))}; {result['wall_seconds']:.0f} s wall, "
        f"{result['cpu_seconds']:.0f} s process CPU ({result['torch_threads']} torch thread(s)); "
        f"kept epochs {result['kept_epochs']}"
    )


def table(out: Path, seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[list[Row], list[str]]:
    """Rows for the published-results table (mean of the seeds) and one line per seed."""
    results = [json.loads((out / f"cnn_seed_{seed}.json").read_text()) for seed in seeds]

    def mean(name: str) -> Estimate:
        # The CI shown is the mean of the per-seed bootstrap CIs.
        parts = [_estimate(r, name) for r in results]
        return Estimate(
            *(float(np.mean([getattr(e, f) for e in parts])) for f in ("value", "ci_low", "ci_high"))
        )

    wall, cpu = (max(r[key] for r in results) for key in ("wall_seconds", "cpu_seconds"))
    slowest = f"{wall:.0f} wall / {cpu:.0f} CPU, max per seed"
    label = f"mean of {len(results)} seeds"
    rows = [
        (
            NAME,
            f"AUROC, {label}",
            mean("auroc"),
            "ResNet-18 (28) 0.901, AutoML 0.919 (target >= 0.91)",
            slowest,
        ),
        (NAME, f"accuracy, {label}", mean("accuracy"), "ResNet-18 (28) 0.863 (target >= 0.87)", slowest),
    ]
    return rows, [_seed_line(r) for r in results]


def breastmnist(data: Path, seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[list[Row], list[str]]:
    """Train every seed in this process, then the table (for ``ml_published.py``)."""
    out = Path("bench-out")
    for seed in seeds:
        run_seed(data, seed, out)
    return table(out, seeds)


def explain(out: Path, data: Path, rows: int = 50, fraction: float = 0.1) -> list[str]:
    """Grad-CAM and occlusion on seed 0's model: ms per image (one call each) and the deletion test.

    The deletion test masks each image's top ``fraction`` of pixels (the training mean) and
    compares the drop of the explained class's probability with as many random pixels
    (10 draws).
    """
    model: CNNClassifier = pickle.loads((out / "cnn_seed_0.pkl").read_bytes())
    torch.set_num_threads(model.n_threads or torch.get_num_threads())  # as in fitting and predict_proba
    images = read_image_splits(data / FILE)["test"].images[:rows]
    lines = [
        f"Seed 0's model ({model.n_members} networks, flip TTA), {len(images)} test images, one call per "
        f"image, {torch.get_num_threads()} torch thread(s); deletion masks the top {fraction:.0%} of pixels "
        "vs as many random ones (10 draws); output = calibrated probability of the predicted class.",
        "",
        "| method | ms/image wall (median) | wall (p95) | CPU ms/image (median) | with PNG (median wall ms) "
        "| top-k drop | random-k drop | margin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, method in (("Grad-CAM", grad_cam), ("occlusion", occlusion)):
        method(model, images[:1])  # warm-up
        timings, cpu, with_png, maps, targets = [], [], [], [], []
        for i in range(len(images)):
            started, cpu_started = time.perf_counter(), time.process_time()
            result = method(model, images[i : i + 1])
            timings.append(1000 * (time.perf_counter() - started))
            cpu.append(1000 * (time.process_time() - cpu_started))
            overlay_png(images[i], {name: result.maps[0]})
            with_png.append(1000 * (time.perf_counter() - started))
            maps.append(result.maps[0])
            targets.append(result.targets[0])
        deletion = image_deletion_test(model, images, np.stack(maps), np.array(targets), fraction=fraction)
        lines.append(
            f"| {name} | {np.median(timings):.1f} | {np.percentile(timings, 95):.1f} | {np.median(cpu):.1f} "
            f"| {np.median(with_png):.1f} | {deletion.top_drop:.4f} | {deletion.random_drop:.4f} "
            f"| {deletion.margin:+.4f} |"
        )
        print(lines[-1], flush=True)
    return lines


def _plain_loop(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int) -> float:
    """The same training written as a bare PyTorch loop; returns images per second."""
    defaults: dict[str, Any] = CNNClassifier().get_params()
    x = torch.from_numpy(images.astype(np.float32)[:, None] / 255.0)
    x = (x - x.mean()) / x.std()
    y = torch.from_numpy(labels.astype(np.int64))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = ResNetSmall(
        1, 2, width=defaults["width"], side=28, dropout=defaults["dropout"], upsample=defaults["upsample"]
    )
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
        n_members=1,
        max_epochs=epochs,
        validation_fraction=0.0,
        patience=None,
        kernels="off",  # the fit loop is what is compared
        random_state=seed,
    )
    model.fit(images, labels)
    return epochs * len(images) / model.history_.seconds


def throughput(data: Path, epochs: int = 3, repeats: int = 3) -> list[str]:
    """Training images per second: framework vs plain loop, best of ``repeats`` alternated runs."""
    train = read_image_splits(data / FILE)["train"]
    assert train.labels is not None
    torch.set_num_threads(CNNClassifier().n_threads or torch.get_num_threads())  # the plain loop alike
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
    parser.add_argument("--dir", type=Path, default=Path("bench-out"), help="Per-seed JSON and models.")
    parser.add_argument("--part", choices=["all", "seeds", "table", "explain", "throughput"], default="all")
    parser.add_argument("--rows", type=int, default=50, help="Test images explained (--part explain).")
    args = parser.parse_args()
    data = get_settings().data_dir
    seeds = tuple(args.seeds)
    if args.part in ("all", "seeds"):
        for seed in seeds:
            run_seed(data, seed, args.dir)
    lines: list[str] = []
    if args.part in ("all", "table"):
        rows, notes = table(args.dir, seeds)
        lines += [f"| {d} | {m} | {_ci(e)} | {p} | {s} |" for d, m, e, p, s in rows]
        lines += ["", *(f"- {note}" for note in notes)]
    if args.part in ("all", "explain"):
        lines += ["", *explain(args.dir, data, rows=args.rows)]
    if args.part in ("all", "throughput"):
        lines += ["", *(f"- {note}" for note in throughput(data))]
    if lines:
        text = "\n".join(lines) + "\n"
        print(text)
        (args.dir / f"cnn_{args.part}.md").write_text(text)


if __name__ == "__main__":
    main()
