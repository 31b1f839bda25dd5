"""Small layers shared by the eyemotion models: in-graph input normalisation and a two-layer MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FeatureNorm(nn.Module):
    """Standardise the last axis with training-set statistics; a missing value (NaN) becomes the mean (0).

    The statistics are buffers, so they travel in the checkpoint and are baked into the ONNX graph: a
    consumer feeds raw features and cannot forget the normalisation. All inputs are standardised to the
    training set's mean and variance as in 000_e9deb5c9c21c243c.txt, Sec. 4.1. `dim` = 1 gives one
    scalar mean/std for the whole input (used for fixation maps).
    """

    def __init__(self, dim: int, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim) if mean is None else torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.ones(dim) if std is None else torch.as_tensor(std, dtype=torch.float32))
        if self.mean.shape != (dim,) or self.std.shape != (dim,):
            raise ValueError(f"normalisation statistics must have {dim} values")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        return torch.where(torch.isnan(z), torch.zeros_like(z), z)

    def stats(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


def mlp(d_in: int, d_hidden: int, d_out: int, dropout: float = 0.0) -> nn.Sequential:
    """Two-layer perceptron (Linear, ReLU, Dropout, Linear)."""
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out))
