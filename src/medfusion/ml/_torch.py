"""What every PyTorch model of medfusion shares: device choice, seeding, threads, one fit loop.

Image (``cnn``) and sequence (``rnn``) estimators build their network and tensors and
hand them to :func:`fit_loop`, so early stopping, learning-rate schedules, batching and
the recorded training curves behave the same for every model kind. Tensors are moved to
the device once and batches are drawn by index, with no DataLoader: on small clinical
data sets the loader's per-batch overhead would dominate the step time.

Determinism: on the CPU a fit is a pure function of the data, the parameters and the
seed. Every random number (initial weights, shuffling, dropout, augmentation) is drawn
inside :func:`seeded`, which forks the global torch generator so that fitting neither
depends on nor disturbs the caller's random state.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

from medfusion.errors import InvalidRequestError

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
    "torch_threads",
]

Device = Literal["auto", "cpu", "cuda"]


def resolve_device(device: str) -> torch.device:
    """The torch device for ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda[:N]``.

    Raises
    ------
    InvalidRequestError
        Unknown name, or ``cuda`` asked for on a machine without a CUDA device.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InvalidRequestError(f"device {device!r} was asked for but no CUDA GPU is available")
        return torch.device(device)
    raise InvalidRequestError(f"device must be auto, cpu or cuda; got {device!r}")


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (``None``: leave as is), then restore."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[torch.Generator]:
    """Run a block with torch's global generator(s) seeded, restoring them afterwards.

    Yields a separate CPU generator, seeded alike, for data order and augmentation, so
    that those draws do not depend on how many numbers the network's layers consumed.
    """
    seed = int(np.random.SeedSequence(seed).generate_state(1)[0]) if seed is None else int(seed)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


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
    """One epoch: losses, the validation score, learning rate, rows seen and training time.

    ``seconds`` is the training pass alone (forward, backward, step), without validation.
    """

    epoch: int
    train_loss: float
    val_loss: float | None
    val_score: float | None
    lr: float
    seconds: float
    samples: int = 0


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
        What ``val_score`` measures (e.g. ``auroc``, ``-loss``); higher is better.
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
        """Training time of all epochs (validation excluded)."""
        return sum(e.seconds for e in self.epochs)

    @property
    def samples_per_second(self) -> float:
        """Training throughput over all epochs."""
        seconds = self.seconds
        return sum(e.samples for e in self.epochs) / seconds if seconds > 0 else math.inf


@dataclass(frozen=True, slots=True)
class FitConfig:
    """How :func:`fit_loop` trains.

    Attributes
    ----------
    max_epochs
        Upper bound on passes over the training data.
    batch_size
    lr
        Learning rate (the peak of the one-cycle schedule).
    weight_decay
        Decoupled (``adamw``) or L2 (``adam``) weight decay.
    patience
        Stop after this many epochs without a better validation score (``None``: never).
    optimizer
        ``adamw`` or ``adam``.
    schedule
        ``onecycle`` (warm up, then cosine annealing to near zero), ``cosine`` (annealed
        per step from ``lr`` to 0 with no warm-up: a fixed schedule for training without
        early stopping) or ``constant``.
    warmup
        Share of the steps spent raising the learning rate (one-cycle ``pct_start``).
    min_delta
        A validation score counts as better when it exceeds the kept one by more than
        this; a tiny negative value lets later epochs win ties (small validation sets).
    """

    max_epochs: int = 50
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int | None = 15
    optimizer: Literal["adamw", "adam"] = "adamw"
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup: float = 0.2
    min_delta: float = 0.0


Tensors = Sequence[torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Scorer = Callable[[nn.Module, Tensors], tuple[float, float]]
Progress = Callable[[EpochRecord], None]


def _optimizer(module: nn.Module, config: FitConfig, steps: int) -> tuple[Any, Any]:
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = kind(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None
    if config.schedule == "onecycle":
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=max(steps, 2), pct_start=config.warmup
        )
    elif config.schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    return optimizer, schedule


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
    score_name: str = "-loss",
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    progress: Progress | None = None,
) -> History:
    """Train ``module`` in place; keep the weights of its best validation epoch.

    Parameters
    ----------
    module
        The network; ``module(*inputs)`` gives what ``loss`` takes. Moved to ``device``.
    train
        ``(*inputs, target)`` tensors with the rows on axis 0.
    loss
        ``loss(outputs, targets)`` to minimise.
    config
        Optimiser, schedule, epochs, batch size, patience.
    generator
        Draws the batch order and the augmentation.
    validation
        ``(*inputs, target)`` for early stopping; without it every epoch runs and the
        last weights are kept.
    score
        ``score(module, validation) -> (score, loss)``, module in eval mode, no
        gradients; higher scores are better. Default: the negative validation loss.
    augment
        Applied to the first input of each training batch before the forward pass.
    progress
        Called after every epoch with its record.

    Returns
    -------
    History
        The training curves; ``module`` holds the weights of ``history.best_epoch``.
    """
    module.to(device)
    train = [t.to(device) for t in train]
    held = [t.to(device) for t in validation] if validation is not None else None
    n = int(train[0].shape[0])
    optimizer, schedule = _optimizer(module, config, config.max_epochs * len(batches(n, config.batch_size)))
    history = History(score_name=score_name)
    best_score, best_state, stale = -math.inf, None, 0
    for epoch in range(1, config.max_epochs + 1):
        started = time.perf_counter()
        module.train()
        total = 0.0
        lr = float(optimizer.param_groups[0]["lr"])
        for rows in batches(n, config.batch_size, generator=generator):
            rows = rows.to(device)
            *inputs, target = (t[rows] for t in train)
            if augment is not None:
                inputs[0] = augment(inputs[0], generator)
            batch_loss = loss(module(*inputs), target)
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total += float(batch_loss.detach()) * len(rows)
        seconds = time.perf_counter() - started
        val_score = val_loss = None
        if held is not None:
            module.eval()
            with torch.no_grad():
                if score is None:
                    val_loss = float(loss(module(*held[:-1]), held[-1]))
                    val_score = -val_loss
                else:
                    val_score, val_loss = score(module, held)
        record = EpochRecord(epoch, total / n, val_loss, val_score, lr, seconds, n)
        history.epochs.append(record)
        if progress is not None:
            progress(record)
        if val_score is None:
            history.best_epoch = epoch
        elif val_score > best_score + config.min_delta:
            best_score, stale, history.best_epoch = val_score, 0, epoch
            best_state = copy.deepcopy(module.state_dict())
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
