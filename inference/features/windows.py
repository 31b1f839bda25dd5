"""Sliding windows shared by the feature extractors: a fixed time grid, a sample buffer, a result record.

Windows end on the absolute grid `k * hop` (LSL seconds) and cover `[end - length, end)`. A window is
emitted once a sample at or after its end has arrived, so it is complete; its content therefore depends
only on the samples, never on how they were chunked (online equals offline, ARCHITECTURE.md, principle 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FeatureWindows:
    """Feature vectors of consecutive windows: `values[i]` belongs to the window ending at `times[i]`."""

    names: tuple[str, ...]
    times: np.ndarray  # (n,) window end times, LSL seconds
    values: np.ndarray  # (n, len(names)); NaN where a feature cannot be computed
    valid: np.ndarray  # (n,) bool: enough valid samples in the window
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # per-window side columns (e.g. speech)

    @classmethod
    def empty(cls, names: tuple[str, ...], extra: tuple[str, ...] = ()) -> FeatureWindows:
        return cls(names, np.zeros(0), np.zeros((0, len(names))), np.zeros(0, bool),
                   {k: np.zeros(0) for k in extra})

    def __len__(self) -> int:
        return len(self.times)

    @classmethod
    def concat(cls, parts: list[FeatureWindows], names: tuple[str, ...],
               extra: tuple[str, ...] = ()) -> FeatureWindows:
        parts = [p for p in parts if len(p)] or [cls.empty(names, extra)]
        return cls(names, np.concatenate([p.times for p in parts]), np.concatenate([p.values for p in parts]),
                   np.concatenate([p.valid for p in parts]),
                   {k: np.concatenate([p.extra[k] for p in parts]) for k in parts[0].extra})

    def table(self) -> tuple[list[str], np.ndarray]:
        """Column names and a 2-D array: time, valid, the side columns, then the features."""
        cols = ["time", "valid", *self.extra, *self.names]
        data = np.column_stack([self.times, self.valid.astype(float), *self.extra.values(), self.values]) \
            if len(self) else np.zeros((0, len(cols)))
        return cols, data


class SlidingBuffer:
    """Samples (timestamps + rows) kept until no future window needs them; yields complete windows."""

    def __init__(self, length_s: float, hop_s: float, width: int) -> None:
        self.length_s = length_s
        self.hop_s = hop_s
        self.times = np.zeros(0)
        self.rows = np.zeros((0, width))
        self._next_k: int | None = None  # grid index of the next window end

    def push(self, timestamps: np.ndarray, rows: np.ndarray) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """Add samples; return (end, times, rows) of every window completed by them."""
        timestamps = np.asarray(timestamps, float).reshape(-1)
        if len(timestamps) == 0:
            return []
        if self._next_k is None:
            self._next_k = math.ceil((timestamps[0] + self.length_s) / self.hop_s - 1e-9)
        self.times = np.concatenate([self.times, timestamps])
        self.rows = np.concatenate([self.rows, np.asarray(rows, float).reshape(len(timestamps), -1)])
        out = []
        last = self.times[-1]
        while self._next_k * self.hop_s <= last:
            end = self._next_k * self.hop_s
            lo, hi = np.searchsorted(self.times, [end - self.length_s, end], side="left")
            out.append((end, self.times[lo:hi], self.rows[lo:hi]))
            self._next_k += 1
        keep_from = np.searchsorted(self.times, self._next_k * self.hop_s - self.length_s, side="left")
        if keep_from:
            self.times, self.rows = self.times[keep_from:], self.rows[keep_from:]
        return out
