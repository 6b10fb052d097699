"""PyTorch networks for sequences: a GRU-D-style recurrent net with an optional conv front end.

Inputs are ``values`` (normalised, ``0`` where missing), ``mask`` (1 = observed) and
``last`` (index of the last observed step per cell, ``-1`` before the first). From these
the network builds, per step, GRU-D's decayed imputation
``x_hat = m x + (1 - m) gamma x_last`` (the training mean is ``0`` after normalisation),
with ``gamma = exp(-relu(w delta + b))`` learnt per variable, and feeds
``[x_hat, m, log1p(delta)]`` to the recurrent layer. ``x_last`` is gathered from
``values`` so gradients (integrated gradients) flow to the observed cells.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

__all__ = ["SequenceNet"]


class _ConvFront(nn.Module):
    """FCN-style front end: conv-BN-ReLU blocks, kernels 7, 5, 3 (odd: symmetric "same" padding)."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        sizes = (channels, width, 2 * width, width)
        for (inp, out), kernel in zip(pairwise(sizes), (7, 5, 3), strict=True):
            layers += [nn.Conv1d(inp, out, kernel, padding="same"), nn.BatchNorm1d(out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x.transpose(1, 2)).transpose(1, 2)  # (n, T, C) in and out
        return out


class SequenceNet(nn.Module):
    """GRU / LSTM classifier over a sequence grid.

    Parameters
    ----------
    n_variables, n_classes
    cell
        ``gru`` or ``lstm``.
    hidden_size, num_layers, bidirectional, dropout
    decay
        Build GRU-D inputs (decayed imputation, mask, time since last observation).
    conv_width
        Width of the FCN front end; ``0`` for none. With a front end the classifier also
        sees the global average of the conv features (FCN's own head).
    """

    def __init__(
        self,
        n_variables: int,
        n_classes: int,
        *,
        cell: str = "gru",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.2,
        decay: bool = True,
        conv_width: int = 0,
    ) -> None:
        super().__init__()
        self.decay = decay
        if decay:
            self.decay_weight = nn.Parameter(torch.full((n_variables,), 0.1))
            self.decay_bias = nn.Parameter(torch.zeros(n_variables))
        width = n_variables * (3 if decay else 1)
        self.front = _ConvFront(width, conv_width) if conv_width else None
        recurrent_in = self.front.out_channels if self.front is not None else width
        kind = nn.GRU if cell == "gru" else nn.LSTM
        self.recurrent = kind(
            recurrent_in,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        features = hidden_size * (2 if bidirectional else 1) + (conv_width if conv_width else 0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, n_classes))

    def inputs(self, values: torch.Tensor, mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The per-step input the recurrent layer (or front end) sees."""
        if not self.decay:
            return values
        steps = torch.arange(values.shape[1], device=values.device, dtype=values.dtype)[None, :, None]
        seen = (last >= 0).to(values.dtype)
        delta = torch.where(last >= 0, steps - last.to(values.dtype), steps + 1.0)
        x_last = torch.gather(values, 1, last.clamp(min=0)) * seen
        gamma = torch.exp(-torch.relu(self.decay_weight * delta + self.decay_bias))
        x_hat = mask * values + (1 - mask) * gamma * x_last
        return torch.cat([x_hat, mask, torch.log1p(delta)], dim=-1)

    def forward(self, values: torch.Tensor, mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Class logits, shape ``(n, n_classes)``."""
        x = self.inputs(values, mask, last)
        pooled = None
        if self.front is not None:
            x = self.front(x)
            pooled = x.mean(dim=1)
        out, _ = self.recurrent(x)
        size = self.recurrent.hidden_size
        summary = out[:, -1, :size]
        if self.recurrent.bidirectional:
            summary = torch.cat([summary, out[:, 0, size:]], dim=-1)
        if pooled is not None:
            summary = torch.cat([summary, pooled], dim=-1)
        logits: torch.Tensor = self.head(summary)
        return logits
