"""A small, generic PyTorch fit loop: device choice, seeding, early stopping, history.

Kept free of anything sequence-specific (the network and its input tensors come from the
caller) so it can merge with the image models' loop. Tensors are moved to the device
once and batches are drawn by index, with no DataLoader: on small clinical data sets
the loader's per-batch overhead would dominate the step time.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medfusion.errors import InvalidRequestError

__all__ = ["FitResult", "fit_network", "resolve_device", "seed_everything", "torch_threads"]


def resolve_device(device: str) -> str:
    """``auto`` gives ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidRequestError("--device cuda was asked for but no CUDA GPU is available")
        return device
    raise InvalidRequestError(f"--device must be auto, cpu or cuda; got {device!r}")


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (``None``: leave as is), then restore."""
    import torch

    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a reproducible run."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(slots=True)
class FitResult:
    """What a fit produced: the best epoch's weights are already loaded into the network.

    Attributes
    ----------
    history
        One dict per epoch: ``epoch``, ``train_loss``, ``val_loss`` (``nan`` without validation).
    best_epoch
        1-based epoch whose weights were kept.
    samples_per_second
        Training throughput over all epochs (forward, backward and step).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    samples_per_second: float = 0.0


def fit_network(
    network: Any,
    loss: Callable[[Any, Any], Any],
    train: Sequence[Any],
    validation: Sequence[Any] | None = None,
    *,
    max_epochs: int = 100,
    patience: int = 10,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    schedule: str = "constant",
) -> FitResult:
    """Train ``network`` with Adam and early stopping on the validation loss.

    Parameters
    ----------
    network
        A ``torch.nn.Module`` whose ``forward(*inputs)`` returns what ``loss`` takes.
    loss
        ``loss(output, target) -> scalar tensor``.
    train, validation
        Tuples of tensors ``(*inputs, target)`` with the samples on axis 0.
    max_epochs, patience
        Stop after ``patience`` epochs without a better validation loss (no validation:
        run all ``max_epochs`` and keep the last weights).
    seed
        Seeds weight shuffling order for this fit.
    device
        Already resolved (see :func:`resolve_device`).
    on_epoch
        Called after each epoch with its number and history row.
    schedule
        ``constant`` learning rate, or ``cosine``: annealed per step from
        ``learning_rate`` to 0 over ``max_epochs`` (for a fixed schedule, no early stop).
    """
    import time

    import torch

    generator = torch.Generator().manual_seed(seed)
    network.to(device)
    train = [t.to(device) for t in train]
    validation = [t.to(device) for t in validation] if validation is not None else None
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate, weight_decay=weight_decay)
    n = int(train[0].shape[0])
    total_steps = max_epochs * math.ceil(n / batch_size)
    step = 0
    result, best, best_state, waited = FitResult(), math.inf, None, 0
    samples, seconds = 0, 0.0
    for epoch in range(1, max_epochs + 1):
        network.train()
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            if len(index) < 2 and n > 1:
                continue  # batch norm cannot train on one sample
            *inputs, target = (t[index] for t in train)
            if schedule == "cosine":
                for group in optimiser.param_groups:
                    group["lr"] = learning_rate * 0.5 * (1 + math.cos(math.pi * step / total_steps))
                step += 1
            optimiser.zero_grad(set_to_none=True)
            value = loss(network(*inputs), target)
            value.backward()
            optimiser.step()
            total += float(value.detach()) * len(index)
        seconds += time.perf_counter() - started
        samples += n
        row = {"epoch": float(epoch), "train_loss": total / n, "val_loss": math.nan}
        if validation is not None:
            network.eval()
            with torch.no_grad():
                *inputs, target = validation
                row["val_loss"] = float(loss(network(*inputs), target))
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row)
        if validation is None:
            result.best_epoch = epoch
            continue
        if row["val_loss"] < best - 1e-6:
            best, waited, result.best_epoch = row["val_loss"], 0, epoch
            best_state = copy.deepcopy(network.state_dict())
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    network.eval()
    result.samples_per_second = samples / seconds if seconds > 0 else math.inf
    return result
