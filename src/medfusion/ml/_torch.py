"""What every PyTorch model of medfusion shares: device choice, seeding, a fit loop, history.

Image (CNN) and sequence (RNN) estimators subclass :class:`TorchEstimator` and supply a
network and their input checks; this module owns the training loop so that early
stopping, learning-rate schedules, batching and the recorded training curves behave the
same for every model kind.

Determinism: on the CPU a fit is a pure function of the data, the parameters and
``random_state``. The loop draws every random number (initial weights, shuffling,
dropout, augmentation) inside :func:`seeded`, which forks the global torch generator
so that fitting neither depends on nor disturbs the caller's random state.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

__all__ = [
    "Device",
    "EpochRecord",
    "FitConfig",
    "History",
    "TorchEstimator",
    "batches",
    "fit_loop",
    "resolve_device",
    "seeded",
]

Device = Literal["auto", "cpu", "cuda"]


def resolve_device(device: str) -> torch.device:
    """The torch device for ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.

    Raises
    ------
    ValueError
        Unknown name, or ``cuda`` asked for on a machine without a CUDA device.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA device is available")
        return torch.device("cuda")
    raise ValueError(f"device must be auto, cpu or cuda; got {device!r}")


@contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[torch.Generator]:
    """Run a block with torch's global generator(s) seeded, restoring them afterwards.

    Yields a separate CPU generator for data order and augmentation, so that those
    draws do not depend on how many numbers the network's layers consumed.
    """
    seed = int(np.random.SeedSequence(seed).generate_state(1)[0]) if seed is None else int(seed)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed + 1)


def batches(n: int, batch_size: int, *, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Index batches over ``n`` rows: shuffled with ``generator``, in order without one.

    A last batch of a single row is merged into the previous one, because batch
    normalisation cannot be trained on one example.
    """
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    parts = list(torch.split(order, batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        last = parts.pop()
        parts[-1] = torch.cat([parts[-1], last])
    return parts


@dataclass(slots=True)
class EpochRecord:
    """One epoch of training: losses, the validation score, learning rate and time."""

    epoch: int
    train_loss: float
    val_loss: float | None
    val_score: float | None
    lr: float
    seconds: float


@dataclass(slots=True)
class History:
    """The training curves of a fit and which epoch's weights were kept.

    Attributes
    ----------
    epochs
        One record per epoch run.
    best_epoch
        The epoch (1-based) whose weights the model keeps: the best validation score,
        or the last epoch without validation data.
    score_name
        What ``val_score`` measures (e.g. ``auroc``); higher is better.
    stopped_early
        Whether patience ran out before ``max_epochs``.
    """

    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    score_name: str = "score"
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form for metadata and reports."""
        return {
            "best_epoch": self.best_epoch,
            "score_name": self.score_name,
            "stopped_early": self.stopped_early,
            "epochs": [asdict(e) for e in self.epochs],
        }

    @property
    def seconds(self) -> float:
        """Wall time of all epochs."""
        return sum(e.seconds for e in self.epochs)


@dataclass(frozen=True, slots=True)
class FitConfig:
    """How :func:`fit_loop` trains.

    Attributes
    ----------
    max_epochs
        Upper bound on passes over the training data.
    batch_size
    lr
        Peak learning rate of the one-cycle schedule (AdamW).
    weight_decay
        AdamW decoupled weight decay.
    patience
        Stop after this many epochs without a better validation score (``None``: never).
    warmup
        Share of the steps spent raising the learning rate (one-cycle ``pct_start``).
    """

    max_epochs: int = 50
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int | None = 15
    warmup: float = 0.2


Tensors = tuple[torch.Tensor, torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Scorer = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[float, float]]
Progress = Callable[[EpochRecord], None]


def fit_loop(
    module: nn.Module,
    train: Tensors,
    *,
    loss: Loss,
    config: FitConfig,
    generator: torch.Generator,
    device: torch.device,
    validation: Tensors | None = None,
    score: Scorer | None = None,
    score_name: str = "score",
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    progress: Progress | None = None,
) -> History:
    """Train ``module`` in place with AdamW and a one-cycle schedule; keep its best weights.

    Parameters
    ----------
    module
        The network, already on ``device``.
    train
        ``(inputs, targets)`` on the CPU; batches are moved to ``device`` as they are used.
    loss
        ``loss(outputs, targets)`` to minimise.
    config
        Epochs, batch size, learning rate, weight decay, patience.
    generator
        Draws the batch order and the augmentation.
    validation
        ``(inputs, targets)`` for early stopping; without it every epoch runs and the
        last weights are kept.
    score
        ``score(module, inputs, targets) -> (score, loss)`` on the validation data, module
        in eval mode; higher scores are better. Default: the negative validation loss.
    augment
        Applied to each training batch (on ``device``) before the forward pass.
    progress
        Called after every epoch with its record.

    Returns
    -------
    History
        The training curves; ``module`` holds the weights of ``history.best_epoch``.
    """
    inputs, targets = train
    steps_per_epoch = len(batches(len(inputs), config.batch_size))
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config.lr,
        total_steps=max(config.max_epochs * steps_per_epoch, 2),
        pct_start=config.warmup,
    )
    history = History(score_name=score_name)
    best_score, best_state = -math.inf, None
    stale = 0
    for epoch in range(1, config.max_epochs + 1):
        started = time.perf_counter()
        module.train()
        total, seen = 0.0, 0
        lr = float(optimizer.param_groups[0]["lr"])
        for rows in batches(len(inputs), config.batch_size, generator=generator):
            xb, yb = inputs[rows].to(device), targets[rows].to(device)
            if augment is not None:
                xb = augment(xb, generator)
            batch_loss = loss(module(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            total += float(batch_loss.detach()) * len(rows)
            seen += len(rows)
        val_score = val_loss = None
        if validation is not None:
            module.eval()
            with torch.no_grad():
                if score is None:
                    val_loss = float(loss(module(validation[0].to(device)), validation[1].to(device)))
                    val_score = -val_loss
                else:
                    val_score, val_loss = score(module, *validation)
        record = EpochRecord(
            epoch, total / max(seen, 1), val_loss, val_score, lr, time.perf_counter() - started
        )
        history.epochs.append(record)
        if progress is not None:
            progress(record)
        if val_score is None or val_score >= best_score:
            # ">=": among equal scores the later (more trained) weights win.
            best_score, stale, history.best_epoch = (val_score or 0.0), 0, epoch
            best_state = copy.deepcopy(module.state_dict()) if validation is not None else None
        else:
            stale += 1
            if config.patience is not None and stale >= config.patience:
                history.stopped_early = True
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return history


class TorchEstimator(BaseEstimator):
    """Base class of the PyTorch estimators: device handling, and pickling for CPU use.

    Subclasses keep their trained network(s) in attributes ending in ``_`` (an
    ``nn.Module`` or a list of them). When pickled, those are copied to the CPU, so that
    a model trained on a GPU loads and predicts on a machine without one.
    """

    device: str

    def _device(self) -> torch.device:
        return resolve_device(self.device)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        for key, value in state.items():
            if isinstance(value, nn.Module):
                state[key] = copy.deepcopy(value).to("cpu")
            elif isinstance(value, list) and value and all(isinstance(v, nn.Module) for v in value):
                state[key] = [copy.deepcopy(v).to("cpu") for v in value]
        return state
