"""Frame timing: markers stamped at the screen flip, in LSL time, and frame pacing without vsync.

Clock mapping. PsychoPy stamps a flip with its core clock (`psychopy.core.getTime()`, on Linux
psychtoolbox's GetSecs, i.e. wall-clock time minus an origin); LSL uses `pylsl.local_clock()` (a
monotonic clock). Rather than trusting one offset measured at start-up (the wall clock can be slewed by
NTP during a session), every flip callback reads both clocks back to back and maps the flip:

    flip_lsl = local_clock_now - (core_now - core_flip_time)

where `core_flip_time` is the time PsychoPy stamped the flip with (obtained through `win.timeOnFlip`,
which runs just before our callback inside the same `win.flip()`). The two clocks are read as a pair
bracketed to under 0.1 ms (`clock_pair`), so the mapping error stays far below 1 ms even when other
threads (the tracker monitor, the audio callback) compete for the interpreter. `to_lsl()` maps other core-clock times (key presses) the same
way at the moment it is called.

Pacing. Under a real display `win.flip()` blocks until the vertical blank. Under Xvfb (tests, CI,
headless demos) there is no vsync and flips return at once; `Pacer` then holds each flip to a nominal
refresh rate (default 60 Hz) so that frame intervals, movie playback and CPU use look like a display's.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pylsl

log = logging.getLogger(__name__)


def core_now() -> float:
    from psychopy import core

    return core.getTime()


def clock_pair() -> tuple[float, float]:
    """(LSL time, PsychoPy core time) read as one instant.

    Reading two clocks is not atomic: a thread switch between the reads (pylsl releases the GIL) can
    put milliseconds between them. So the core clock is read before and after the LSL clock, and the
    read is repeated until the bracket is under 0.1 ms (the tightest of 10 tries is used otherwise).
    """
    from psychopy import core

    best: tuple[float, float, float] | None = None
    for _ in range(10):
        c0 = core.getTime()
        lsl = pylsl.local_clock()
        c1 = core.getTime()
        if best is None or c1 - c0 < best[0]:
            best = (c1 - c0, lsl, 0.5 * (c0 + c1))
        if c1 - c0 < 1e-4:
            break
    return best[1], best[2]


def to_lsl(core_time: float) -> float:
    """Map a PsychoPy core-clock time to LSL time (through a fresh clock pair)."""
    lsl, core = clock_pair()
    return lsl - (core - core_time)


def clock_offset() -> float:
    """LSL time minus PsychoPy core time, now (recorded in session.json for reference)."""
    lsl, core = clock_pair()
    return lsl - core


@dataclass
class PendingMarker:
    event: str
    fields: dict[str, Any]
    on_stamp: Callable[[float], None] | None = None
    fields_at: Callable[[float], dict[str, Any]] | None = None


@dataclass
class FlipStamper:
    """Queues markers for the next flip and pushes them stamped with that flip's LSL time.

    `watch()` also records every flip's LSL time (e.g. during a clip, for frame statistics).
    """

    win: Any
    push: Callable[..., float]  # MarkerOutlet.push
    last_flip_lsl: float = 0.0
    flips: list[float] = field(default_factory=list)
    _pending: list[PendingMarker] = field(default_factory=list)
    _armed: bool = False
    _recording: bool = False
    _core_flip: dict[str, float] = field(default_factory=dict)

    def at_flip(self, event: str, on_stamp: Callable[[float], None] | None = None,
                fields_at: Callable[[float], dict[str, Any]] | None = None, **fields: Any) -> None:
        """Push `event` at the next flip. `on_stamp(lsl_time)` runs first, then `fields_at(lsl_time)` adds
        fields that depend on the flip time. Each marker carries `psychopy_time`, the flip in PsychoPy's
        core clock."""
        self._pending.append(PendingMarker(event, fields, on_stamp, fields_at))
        self._arm()

    def call_at_flip(self, fn: Callable[[float], None]) -> None:
        """Call `fn(flip_lsl)` right after the next flip (no marker)."""
        self._pending.append(PendingMarker("", {}, fn))
        self._arm()

    def watch(self, on: bool) -> None:
        """Record the LSL time of every flip while on (starts a fresh list)."""
        self._recording = on
        if on:
            self.flips = []
            self._arm()

    def before_flip(self) -> None:
        """Call before every `win.flip()` (the runner's flip does): every flip gets stamped."""
        self._arm()

    def _arm(self) -> None:
        if not self._armed:
            self._armed = True
            self.win.timeOnFlip(self._core_flip, "t")
            self.win.callOnFlip(self._on_flip)

    def _on_flip(self) -> None:
        self._armed = False
        flip_lsl = to_lsl(self._core_flip["t"])
        self.last_flip_lsl = flip_lsl
        if self._recording:
            self.flips.append(flip_lsl)
        pending, self._pending = self._pending, []
        for p in pending:
            if p.on_stamp is not None:
                p.on_stamp(flip_lsl)
            if p.event:
                extra = p.fields_at(flip_lsl) if p.fields_at is not None else {}
                self.push(p.event, timestamp=flip_lsl, psychopy_time=round(self._core_flip["t"], 6), **p.fields,
                          **extra)


class Pacer:
    """Holds flips to `rate_hz` when the display has no vsync (Xvfb); does nothing on a real display."""

    def __init__(self, rate_hz: float = 60.0) -> None:
        self.rate_hz = rate_hz
        self.period = 1.0 / rate_hz
        self.active = False
        self._next = 0.0

    def calibrate(self, win: Any, n: int = 12) -> float:
        """Flip `n` times; pace if the median interval is under half the nominal period. Returns the refresh."""
        stamps = []
        for _ in range(n):
            win.flip()
            stamps.append(time.perf_counter())
        median = statistics.median(b - a for a, b in itertools.pairwise(stamps))
        self.active = median < 0.5 * self.period
        if self.active:
            log.info("no vsync (flips every %.2f ms): pacing flips at %.0f Hz", median * 1000, self.rate_hz)
            self._next = time.perf_counter() + self.period
            return self.rate_hz
        return 1.0 / median

    def wait(self) -> None:
        """Sleep until the next nominal frame boundary (only when pacing)."""
        if not self.active:
            return
        now = time.perf_counter()
        if now < self._next:
            time.sleep(self._next - now)
            self._next += self.period
        else:  # late: flip now, next boundary on the grid (a missed frame, as on a real display)
            self._next += self.period * (int((now - self._next) / self.period) + 1)


def frame_stats(flips: list[float], refresh_hz: float) -> dict[str, float]:
    """Frame-interval statistics of flip times (s): mean/sd/max interval (ms) and dropped frames.

    A frame is dropped when an interval exceeds 1.5 refresh periods; an interval of k periods counts
    k - 1 dropped frames.
    """
    if len(flips) < 2:
        return {"n_flips": len(flips), "mean_ms": 0.0, "sd_ms": 0.0, "max_ms": 0.0, "dropped": 0}
    period = 1.0 / refresh_hz
    intervals = [b - a for a, b in itertools.pairwise(flips)]
    dropped = sum(max(round(i / period) - 1, 0) for i in intervals if i > 1.5 * period)
    return {"n_flips": len(flips), "mean_ms": 1000 * statistics.fmean(intervals),
            "sd_ms": 1000 * (statistics.pstdev(intervals) if len(intervals) > 1 else 0.0),
            "max_ms": 1000 * max(intervals), "dropped": int(dropped)}
