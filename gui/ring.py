"""Thread-safe buffers that the LSL reader threads fill and the GUI thread reads.

`RingBuffer` keeps the last `capacity` numeric samples with their timestamps in preallocated numpy arrays
(no allocation per chunk); `EventLog` keeps the last string samples (markers, JSON events, previews).
Both count every sample ever written (`total`), so a reader can ask for "what is new since I last looked"
and a panel can skip a redraw when nothing changed.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


class RingBuffer:
    """The last `capacity` samples of an `n_channels` stream (float64), oldest first when read."""

    def __init__(self, capacity: int, n_channels: int) -> None:
        self.capacity = max(1, int(capacity))
        self.n_channels = n_channels
        self._data = np.full((self.capacity, n_channels), np.nan)
        self._stamps = np.full(self.capacity, np.nan)
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """Number of samples ever written (also a cheap change counter)."""
        return self._total

    def clear(self) -> None:
        with self._lock:
            self._data.fill(np.nan)
            self._stamps.fill(np.nan)
            self._total = 0

    def extend(self, samples: np.ndarray, stamps: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=float).reshape(-1, self.n_channels)
        stamps = np.asarray(stamps, dtype=float).reshape(-1)
        n = len(stamps)
        if n == 0:
            return
        if n > self.capacity:
            samples, stamps, n = samples[-self.capacity :], stamps[-self.capacity :], self.capacity
        with self._lock:
            start = self._total % self.capacity
            first = min(n, self.capacity - start)
            self._data[start : start + first] = samples[:first]
            self._stamps[start : start + first] = stamps[:first]
            if first < n:
                self._data[: n - first] = samples[first:]
                self._stamps[: n - first] = stamps[first:]
            self._total += n

    def last(self, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The last `n` (default: all kept) samples and timestamps, oldest first (copies)."""
        with self._lock:
            kept = min(self._total, self.capacity)
            n = kept if n is None else max(0, min(int(n), kept))
            end = self._total % self.capacity
            idx = (np.arange(end - n, end)) % self.capacity
            return self._data[idx].copy(), self._stamps[idx].copy()

    def since(self, total: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Samples written after the reader saw `total` samples (at most the kept ones), and the new total."""
        now = self._total
        data, stamps = self.last(now - total)
        return data, stamps, now

    def window(self, seconds: float, until: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The samples stamped within `seconds` before `until` (default: the newest stamp), copied alone.

        Timestamps are searched by bisection, assuming they increase (LSL stamps do; a replay seek clears
        the buffer first).
        """
        with self._lock:
            kept = min(self._total, self.capacity)
            end = self._total % self.capacity
            if kept == 0:
                return self._data[:0].copy(), self._stamps[:0].copy()
            stamps = (
                self._stamps[:kept]
                if kept < self.capacity
                else np.concatenate((self._stamps[end:], self._stamps[:end]))
            )
            stop = stamps[-1] if until is None else until
            first = int(np.searchsorted(stamps, stop - seconds, side="left"))
            idx = (np.arange(end - (kept - first), end)) % self.capacity
            return self._data[idx], self._stamps[idx]


@dataclass(frozen=True)
class Event:
    timestamp: float
    text: str


class EventLog:
    """The last `capacity` string samples of an irregular stream (markers, JSON events, previews)."""

    def __init__(self, capacity: int = 1000) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return self._total

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self._total = 0

    def extend(self, texts: list[str], stamps: list[float]) -> None:
        with self._lock:
            for text, stamp in zip(texts, stamps):
                self._events.append(Event(float(stamp), text))
            self._total += len(texts)

    def since(self, total: int) -> tuple[list[Event], int]:
        with self._lock:
            new = min(self._total - total, len(self._events))
            events = list(self._events)[len(self._events) - new :] if new > 0 else []
            return events, self._total

    def last(self, n: int | None = None) -> list[Event]:
        with self._lock:
            events = list(self._events)
        return events if n is None else events[-n:] if n > 0 else []
