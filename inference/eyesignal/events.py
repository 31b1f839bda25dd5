"""Eye events from the per-sample codes of eyemotion_gaze: onsets, offsets and summaries.

`EventTracker` follows the `event` channel of the processor's final output samples. When a fixation,
saccade, blink or tracking loss starts it emits an `onset` event; when it ends, an `offset` event with
its summary (duration, mean position, saccade amplitude, peak velocity). Summaries are computed once, on
all of the event's samples together, so they do not depend on chunking either. Unclassified samples
end an event without starting one. The JSON layout is documented at `eyemotion.streams.EYE_EVENTS`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from eyemotion.streams import EVENT_CODES

NAMES = {code: name for name, code in EVENT_CODES.items()}
_SUMMARISED = (EVENT_CODES["fixation"], EVENT_CODES["saccade"], EVENT_CODES["pursuit"])


def _num(value: float, digits: int = 4) -> float | None:
    """A JSON-safe rounded float (None for NaN/inf)."""
    return round(float(value), digits) if math.isfinite(value) else None


def direction(angle_x: np.ndarray, angle_y: np.ndarray) -> np.ndarray:
    """Unit gaze vectors (n, 3) from the gaze angles of eyemotion_gaze."""
    v = np.stack((np.tan(np.radians(angle_x)), np.tan(np.radians(angle_y)), np.ones_like(angle_x)), axis=-1)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def angle_deg(ax0: float, ay0: float, ax1: float, ay1: float) -> float:
    """Angle (deg) between two gaze directions given as eyemotion_gaze angles."""
    tx0, ty0, tx1, ty1 = (math.tan(math.radians(v)) for v in (ax0, ay0, ax1, ay1))
    dot = (tx0 * tx1 + ty0 * ty1 + 1.0) / math.sqrt((tx0 * tx0 + ty0 * ty0 + 1.0) * (tx1 * tx1 + ty1 * ty1 + 1.0))
    return math.degrees(math.acos(min(1.0, max(-1.0, dot))))


class EventTracker:
    """Turns final eyemotion_gaze samples into (timestamp, event dict) pairs."""

    def __init__(self) -> None:
        from eyemotion.inference.eyesignal.processor import OUT

        # the summaries need x, y, angle_x, angle_y (columns 0-3) and the velocity
        assert [OUT[c] for c in ("x", "y", "angle_x", "angle_y")] == [0, 1, 2, 3]
        self._width = OUT["velocity"] + 1
        self._v = OUT["velocity"]
        self._event = OUT["event"]
        self._code = EVENT_CODES["unclassified"]
        self._onset = 0.0
        self._last = 0.0
        self._count = 0
        self._rate = 0.0
        self._parts: list[np.ndarray] = []
        self._prev: np.ndarray | None = None  # the last sample (x, y, angles) before the current event
        self._last_row: np.ndarray | None = None  # the last sample seen in this segment

    def push(self, timestamps: np.ndarray, samples: np.ndarray, rate: float,
             notes: dict[int, dict[str, Any]] | None = None) -> list[tuple[float, dict[str, Any]]]:
        """Events completed or started by these samples; `notes` are extra events at given rows."""
        self._rate = rate
        n = len(timestamps)
        codes = samples[:, self._event].tolist()
        if not notes and n and codes[0] == self._code and codes.count(self._code) == n:
            self._extend(timestamps, samples)  # the common case: the current event goes on
            self._last_row = samples[-1, :4]
            return []
        events: list[tuple[float, dict[str, Any]]] = []
        cuts = {i for i in range(1, n) if codes[i] != codes[i - 1]}
        cuts |= {i for i in (notes or {}) if i < n}
        bounds = [0, *sorted(c for c in cuts if c > 0), n]
        for a, b in itertools.pairwise(bounds):
            if notes and a in notes:
                events.extend(self.close())
                events.append((float(timestamps[a]) if a < n else self._last, notes[a]))
                self._last_row = None  # a new segment: the sample before lies across a discontinuity
            if a >= b:
                continue
            code = int(codes[a]) if math.isfinite(codes[a]) else EVENT_CODES["unclassified"]
            if code != self._code:
                events.extend(self.close(samples[a, :4]))
                self._prev = self._last_row
                events.extend(self._start(code, float(timestamps[a])))
            self._extend(timestamps[a:b], samples[a:b])
            self._last_row = samples[b - 1, :4]
        return events

    def close(self, after: np.ndarray | None = None) -> list[tuple[float, dict[str, Any]]]:
        """End the current event (at a code change, a discontinuity or the end of the stream); `after` is the
        first sample after it (x, y, angles), when known."""
        if self._code == EVENT_CODES["unclassified"] or not self._count:
            self._code = EVENT_CODES["unclassified"]
            if after is None:
                self._last_row = None
            return []
        event = {"event": NAMES[self._code], "phase": "offset", "onset": self._onset, "offset": self._last,
                 "duration_ms": _num(self._count * 1000.0 / self._rate, 2), "samples": self._count}
        if self._code in _SUMMARISED:  # fixation and saccade samples always have a position and velocity
            data = np.concatenate(self._parts)  # always a fresh contiguous array: same sums for any chunking
            mean = data[:, :2].sum(axis=0) / len(data)  # (numpy's mean, without its overhead)
            event["x"], event["y"] = _num(mean[0]), _num(mean[1])
            event["peak_velocity_deg_s"] = _num(data[:, self._v].max(), 2)
            if self._code == EVENT_CODES["saccade"]:
                # from the sample before the onset to the first after the offset (the eye moved between them;
                # the event's own samples are all in flight), else its first/last sample
                first = self._prev if self._prev is not None and np.isfinite(self._prev).all() else data[0, :4]
                end = after if after is not None and np.isfinite(after).all() else data[-1, :4]
                (x0, y0, ax0, ay0), (x1, y1, ax1, ay1) = first.tolist(), end.tolist()
                event["amplitude_deg"] = _num(angle_deg(ax0, ay0, ax1, ay1), 3)
                event["start_x"], event["start_y"] = _num(x0), _num(y0)
                event["end_x"], event["end_y"] = _num(x1), _num(y1)
        self._code = EVENT_CODES["unclassified"]
        self._parts = []
        self._count = 0
        if after is None:  # the end of a stream or segment
            self._last_row = None
        return [(self._last, event)]

    def _start(self, code: int, t: float) -> list[tuple[float, dict[str, Any]]]:
        self._code, self._onset, self._count, self._parts = code, t, 0, []
        if code == EVENT_CODES["unclassified"]:
            return []
        return [(t, {"event": NAMES[code], "phase": "onset", "onset": t})]

    def _extend(self, timestamps: np.ndarray, samples: np.ndarray) -> None:
        if self._code == EVENT_CODES["unclassified"]:
            return
        self._count += len(timestamps)
        self._last = float(timestamps[-1])
        if self._code in _SUMMARISED:
            self._parts.append(samples[:, :self._width])
