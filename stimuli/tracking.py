"""The runner's view of the eye tracker: is `Tobii_gaze` flowing, and what gaze did it send.

A background thread pulls `Tobii_gaze` (resolved through the stream contract) and keeps the last few
seconds of binocular gaze for calibration/validation. The tracker counts as *lost* when no sample has
arrived for `lost_after_s`, or between a `device_lost` and `device_restored` marker from the tracker node
(seen on any `eyemotion_markers` stream of the namespace). Loss episodes are kept so a trial can be
marked when one overlaps it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
import pylsl

from eyemotion import UserError
from eyemotion.streams import GAZE_RAW, MARKERS, StreamNotFound, check_info, open_inlet

log = logging.getLogger(__name__)

_CH = {k: GAZE_RAW.index(label) for k, label in {
    "lx": "x.position_on_display_area.gaze_point.left_eye", "ly": "y.position_on_display_area.gaze_point.left_eye",
    "lv": "valid.gaze_point.left_eye", "lz": "z.position_in_user_coordinates.gaze_origin.left_eye",
    "rx": "x.position_on_display_area.gaze_point.right_eye",
    "ry": "y.position_on_display_area.gaze_point.right_eye",
    "rv": "valid.gaze_point.right_eye", "rz": "z.position_in_user_coordinates.gaze_origin.right_eye",
}.items()}
GAZE_COLUMNS = ("t", "lx", "ly", "lv", "lz", "rx", "ry", "rv", "rz")


@dataclass
class LossEpisode:
    start: float
    end: float | None = None  # None while ongoing
    reason: str = "no samples"

    def overlaps(self, t0: float, t1: float) -> bool:
        return self.start <= t1 and (self.end is None or self.end >= t0)


class TrackerMonitor:
    """Watches `Tobii_gaze` and tracker markers in a thread; all times are LSL times."""

    def __init__(self, namespace: str, lost_after_s: float, *, own_marker_source: str = "",
                 keep_s: float = 10.0) -> None:
        self.namespace = namespace
        self.lost_after_s = lost_after_s
        self.own_marker_source = own_marker_source
        self.keep_s = keep_s
        self.inlet: pylsl.StreamInlet | None = None
        self.rate = 0.0
        self.simulated = False
        self.last_sample = 0.0
        self.episodes: list[LossEpisode] = []
        self._marker_lost: LossEpisode | None = None
        self._buffer: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resolver: pylsl.ContinuousResolver | None = None
        self._marker_inlets: dict[str, pylsl.StreamInlet] = {}
        self._announced: set[int] = set()

    @property
    def present(self) -> bool:
        return self.inlet is not None

    def start(self, timeout: float, required: bool) -> bool:
        """Find the gaze stream; False (and a warning) when absent and not required."""
        try:
            self.inlet = open_inlet(GAZE_RAW, namespace=self.namespace, timeout=timeout, max_buflen=30)
        except StreamNotFound as exc:
            if required:
                raise UserError(f"{exc} (the protocol sets tracking.required = true)") from None
            log.warning("no Tobii_gaze stream: running without eye tracker checks (%s)", exc)
            return False
        info = self.inlet.info()
        self.rate = info.nominal_srate()
        self.simulated = info.desc().child("eyemotion").child_value("simulated") == "true"
        self.last_sample = pylsl.local_clock()
        pred = f"name='{MARKERS.name}'" + (f" and contains(source_id,'#{self.namespace}')" if self.namespace else "")
        self._resolver = pylsl.ContinuousResolver(pred=pred, forget_after=5.0)
        self._thread = threading.Thread(target=self._run, name="tracker-monitor", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self._marker_inlets.clear()
        self._resolver = None

    # -- thread -------------------------------------------------------------------------------------
    def _run(self) -> None:
        next_scan = 0.0
        while not self._stop.is_set():
            try:
                data, stamps = self.inlet.pull_chunk(timeout=0.05, max_samples=1024)
            except pylsl.util.LostError:
                data, stamps = [], []
            now = pylsl.local_clock()
            with self._lock:
                if stamps:
                    arr = np.asarray(data, dtype=float)
                    cols = np.column_stack([np.asarray(stamps)] + [arr[:, _CH[c]] for c in GAZE_COLUMNS[1:]])
                    self._buffer.append(cols)
                    while self._buffer and self._buffer[0][-1, 0] < now - self.keep_s:
                        self._buffer.popleft()
                    self.last_sample = now
                    open_ep = self._open_episode()
                    if open_ep is not None and open_ep.reason == "no samples":
                        open_ep.end = now
                elif now - self.last_sample > self.lost_after_s and self._open_episode() is None:
                    self.episodes.append(LossEpisode(self.last_sample, None, "no samples"))
            if now >= next_scan:
                next_scan = now + 1.0
                self._scan_markers()
            self._pull_markers()

    def _open_episode(self) -> LossEpisode | None:
        return self.episodes[-1] if self.episodes and self.episodes[-1].end is None else None

    def _scan_markers(self) -> None:
        if self._resolver is None:
            return
        for info in self._resolver.results():
            uid = info.source_id()
            if uid in self._marker_inlets or uid == self.own_marker_source or check_info(MARKERS, info, check_desc=False):
                continue
            self._marker_inlets[uid] = pylsl.StreamInlet(info, max_buflen=30)

    def _pull_markers(self) -> None:
        from eyemotion.acquisition.markers import MarkerError, parse_marker

        for uid, inlet in list(self._marker_inlets.items()):
            try:
                texts, stamps = inlet.pull_chunk(timeout=0.0)
            except pylsl.util.LostError:
                del self._marker_inlets[uid]
                continue
            for (text,), stamp in zip(texts, stamps):
                try:
                    m = parse_marker(text)
                except MarkerError:
                    continue
                if m.get("device") != "tracker":
                    continue
                with self._lock:
                    if m["event"] == "device_lost" and self._open_episode() is None:
                        self.episodes.append(LossEpisode(stamp, None, str(m.get("reason", "device_lost"))))
                    elif m["event"] == "device_restored" and self._open_episode() is not None:
                        self._open_episode().end = stamp

    # -- queries (runner thread) ----------------------------------------------------------------------
    def lost(self) -> bool:
        with self._lock:
            return self.present and self._open_episode() is not None

    def new_transitions(self) -> list[tuple[str, LossEpisode]]:
        """Loss starts/ends not reported yet: [("device_lost"|"device_restored", episode)]."""
        out = []
        with self._lock:
            for i, ep in enumerate(self.episodes):
                if i not in self._announced:
                    self._announced.add(i)
                    out.append(("device_lost", ep))
                if ep.end is not None and -(i + 1) not in self._announced:
                    self._announced.add(-(i + 1))
                    out.append(("device_restored", ep))
        return out

    def lost_during(self, t0: float, t1: float) -> float:
        """Seconds of tracker loss within [t0, t1] (0 when none)."""
        with self._lock:
            total = 0.0
            for ep in self.episodes:
                if ep.overlaps(t0, t1):
                    total += min(ep.end if ep.end is not None else t1, t1) - max(ep.start, t0)
            return max(total, 0.0)

    def gaze(self, t0: float, t1: float) -> np.ndarray:
        """Gaze samples with t0 <= t <= t1, columns GAZE_COLUMNS."""
        with self._lock:
            if not self._buffer:
                return np.zeros((0, len(GAZE_COLUMNS)))
            allg = np.concatenate(list(self._buffer))
        return allg[(allg[:, 0] >= t0) & (allg[:, 0] <= t1)]
