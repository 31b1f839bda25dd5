"""The real Tobii eye tracker: TittaPy finds and configures it, TittaLSLPy's Sender streams its gaze.

`TobiiTracker` is a node. On `open()` it
1. finds the trackers (`TittaPy.find_all_eye_trackers()`) and selects one by `[tracker] address` or
   `serial` (the only one when neither is set); not found -> UserError listing the trackers found;
2. checks `[tracker] frequency` against the device's `supported_frequencies` (unsupported ->
   UserError listing them) and sets it;
3. checks that the Tobii system clock is the LSL clock, as TittaLSL's `Sender::CheckClocks` does
   (Titta, LSL_streamer/src/TittaLSL.cpp): 20 paired readings in both call orders, refused when the
   mean offset exceeds 1 ms (ARCHITECTURE.md, "The streams");
4. creates TittaLSLPy's `Sender` on the tracker's address and its `gaze` outlet (with eye openness),
   so the `Tobii_gaze` stream is TittaLSL's own;
5. subscribes to TittaPy's `notification` stream. `step()` consumes it: `connection_lost` publishes a
   `device_lost` marker; `connection_restored` restarts the gaze stream if it stopped and publishes
   `device_restored` with the gap. While the connection is lost the node also looks for the tracker
   (by serial) every few seconds and, if it comes back on a new address, reconnects to it.

The SDK modules are looked up once, lazily: `TittaPy_v2` / `TittaLSLPy_v2` (Tobii Pro SDK 2.x).
Tests pass their own module objects (`titta=..., titta_lsl=...`); `EYEMOTION_TITTA_MODULE` names a
module with `TittaPy` and `TittaLSLPy` attributes to use instead (for the CLI tests without a tracker).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from eyemotion import UserError
from eyemotion.config import Config
from eyemotion.nodes import Node

log = logging.getLogger(__name__)

TITTA_MODULE_ENV = "EYEMOTION_TITTA_MODULE"
CLOCK_TOLERANCE_S = 0.001
CLOCK_PAIRS = 20
RESCAN_S = 3.0


class TrackerError(UserError):
    """A tracker that cannot be found, configured or trusted."""


def sdk_modules() -> tuple[ModuleType, ModuleType]:
    """(TittaPy, TittaLSLPy): the installed v2 modules, or the override named by EYEMOTION_TITTA_MODULE."""
    override = os.environ.get(TITTA_MODULE_ENV)
    try:
        if override:
            mod = importlib.import_module(override)
            return mod.TittaPy, mod.TittaLSLPy
        return importlib.import_module("TittaPy_v2"), importlib.import_module("TittaLSLPy_v2")
    except ImportError as exc:
        raise TrackerError(f"the Tobii SDK wrappers cannot be loaded ({exc}); "
                           "pip install TittaPy TittaLSLPy (see README), or use --simulate") from None


@dataclass(frozen=True)
class TrackerInfo:
    """One tracker as `find_all_eye_trackers` reports it."""

    address: str
    serial: str
    model: str
    name: str
    firmware: str
    frequency: float
    frequencies: tuple[float, ...]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrackerInfo:
        return cls(address=str(d.get("address", "")), serial=str(d.get("serial_number", "")),
                   model=str(d.get("model", "")), name=str(d.get("device_name", "")),
                   firmware=str(d.get("firmware_version", "")), frequency=float(d.get("frequency", 0) or 0),
                   frequencies=tuple(float(f) for f in d.get("supported_frequencies", ()) or ()))

    def describe(self) -> str:
        return f"{self.model or 'Tobii'} {self.serial} at {self.address}"


def find_trackers(titta: ModuleType | None = None) -> list[TrackerInfo]:
    """Every Tobii tracker the SDK can see (takes about 2 s)."""
    titta = titta or sdk_modules()[0]
    return [TrackerInfo.from_dict(d) for d in titta.find_all_eye_trackers()]


def select_tracker(found: list[TrackerInfo], address: str = "", serial: str = "") -> TrackerInfo:
    """The tracker with `address` or `serial` (the only one when both are empty); TrackerError if none."""
    listing = "; ".join(t.describe() for t in found) or "none"
    if address or serial:
        for t in found:
            if (address and t.address == address) or (serial and t.serial == serial):
                return t
        wanted = f"address {address!r}" if address else f"serial {serial!r}"
        raise TrackerError(f"no Tobii eye tracker with {wanted}; found: {listing}. "
                           "Set [tracker] address or serial to one of these, or use --simulate")
    if not found:
        raise TrackerError("no Tobii eye tracker found; connect and power it (and install Tobii Pro Eye "
                           "Tracker Manager's drivers), or use --simulate")
    if len(found) > 1:
        log.warning("%d trackers found (%s); using the first. Set [tracker] serial to choose.", len(found), listing)
    return found[0]


def check_frequency(wanted: float, supported: tuple[float, ...] | list[float], device: str) -> float:
    """`wanted` if the device supports it (to 0.01 Hz), else TrackerError listing the supported ones."""
    for f in supported:
        if abs(float(f) - float(wanted)) < 0.01:
            return float(f)
    rates = ", ".join(f"{float(f):g}" for f in supported) or "none reported"
    raise TrackerError(f"{device} does not support {wanted:g} Hz; supported: {rates}. "
                       "Set [tracker] frequency to one of these")


def clock_offset(tobii_us: Callable[[], int], lsl_s: Callable[[], float], pairs: int = CLOCK_PAIRS) -> float:
    """Mean (Tobii system time - LSL time) in seconds over `pairs` readings, half in each call order."""
    tobii_us(), lsl_s()  # warm up both
    diffs = []
    for i in range(pairs):
        if i < pairs // 2:
            t = tobii_us() / 1e6
            lsl = lsl_s()
        else:
            lsl = lsl_s()
            t = tobii_us() / 1e6
        diffs.append(t - lsl)
    return sum(diffs) / len(diffs)


def check_clocks(tobii_us: Callable[[], int], lsl_s: Callable[[], float] | None = None) -> float:
    """Refuse to run when the Tobii system clock is not the LSL clock (|offset| > 1 ms)."""
    if lsl_s is None:
        import pylsl

        lsl_s = pylsl.local_clock
    offset = clock_offset(tobii_us, lsl_s)
    if abs(offset) > CLOCK_TOLERANCE_S:
        raise TrackerError(f"the Tobii system clock and the LSL clock differ by {offset * 1000:.1f} ms "
                           f"(more than {CLOCK_TOLERANCE_S * 1000:g} ms), so gaze timestamps would be wrong; "
                           "run the tracker software and eyemotion on the same computer")
    return offset


class TobiiTracker(Node):
    """A Tobii eye tracker streamed to LSL by TittaLSL (see the module docstring)."""

    name = "tobii"

    def __init__(self, config: Config, *, titta: ModuleType | None = None, titta_lsl: ModuleType | None = None,
                 lsl_clock: Callable[[], float] | None = None) -> None:
        super().__init__(config)
        self._titta, self._titta_lsl = titta, titta_lsl
        self._lsl_clock = lsl_clock
        self.info: TrackerInfo | None = None
        self.tracker = None  # TittaPy.EyeTracker
        self.sender = None  # TittaLSLPy.Sender
        self.markers = None
        self.lost_since: float | None = None
        self._next_rescan = 0.0
        self.gaps: list[tuple[float, float]] = []

    def _modules(self) -> tuple[ModuleType, ModuleType]:
        if self._titta is None or self._titta_lsl is None:
            titta, titta_lsl = sdk_modules()
            self._titta = self._titta or titta
            self._titta_lsl = self._titta_lsl or titta_lsl
        return self._titta, self._titta_lsl

    def _now(self) -> float:
        if self._lsl_clock is not None:
            return self._lsl_clock()
        import pylsl

        return pylsl.local_clock()

    @property
    def source_id(self) -> str:
        """TittaLSL's source id of the gaze stream (`TittaLSL:Tobii_gaze@<serial>`)."""
        return self.sender.get_stream_source_id("gaze")

    def open(self) -> None:
        from eyemotion.acquisition.markers import MarkerOutlet

        titta, _ = self._modules()
        cfg = self.config.tracker
        self.info = select_tracker(find_trackers(titta), cfg.address, cfg.serial)
        check_clocks(titta.get_system_timestamp, self._now)
        self.markers = MarkerOutlet("tracker", namespace=self.config.lsl.namespace,
                                    device=f"{socket.gethostname()}/tracker-{self.info.serial}")
        self._connect(self.info.address)
        log.info("streaming %s at %g Hz as %s", self.info.describe(), cfg.frequency, self.source_id)

    def _connect(self, address: str) -> None:
        """Open the tracker at `address`, set its frequency, start notifications and the LSL gaze outlet."""
        titta, titta_lsl = self._modules()
        cfg = self.config.tracker
        tracker = titta.EyeTracker(address)
        freq = check_frequency(cfg.frequency, list(tracker.supported_frequencies), self.info.describe())
        if abs(float(tracker.frequency) - freq) >= 0.01:
            tracker.frequency = freq
        tracker.start("notification")
        sender = titta_lsl.Sender(address)
        sender.set_include_eye_openness_in_gaze(cfg.eye_openness)
        sender.create("gaze")  # starts sending
        self.tracker, self.sender = tracker, sender

    def step(self) -> None:
        for kind, stamp in self._notifications():
            if kind == "connection_lost":
                self._lost(stamp)
            elif kind == "connection_restored":
                self._restored(stamp)
            elif kind in ("device_faults", "device_warnings", "stream_buffer_overflow"):
                self.markers.push("device_warning", device="tracker", serial=self.info.serial, kind=kind)
                log.warning("tracker %s: %s", self.info.serial, kind)
        if self.lost_since is not None:
            self._watch_lost()
        time.sleep(0.05)

    def _notifications(self) -> list[tuple[str, float]]:
        data = self.tracker.consume_N("notification")
        kinds = data.get("notification_type", []) if data else []
        stamps = data.get("system_time_stamp", []) if data else []
        out = []
        for kind, stamp in zip(kinds, stamps):
            name = getattr(kind, "name", str(kind)).split(".")[-1]
            out.append((name, float(stamp) / 1e6))
        return out

    def _lost(self, stamp: float) -> None:
        if self.lost_since is not None:
            return
        self.lost_since = stamp
        self._next_rescan = time.monotonic() + RESCAN_S
        self.markers.push("device_lost", timestamp=stamp, device="tracker", serial=self.info.serial,
                          address=self.info.address)
        log.warning("tracker %s: connection lost", self.info.serial)

    def _restored(self, stamp: float) -> None:
        if self.lost_since is None:
            return
        if not self.sender.is_streaming("gaze"):
            self.sender.start("gaze")
        gap = stamp - self.lost_since
        self.gaps.append((self.lost_since, stamp))
        self.markers.push("device_restored", timestamp=stamp, device="tracker", serial=self.info.serial,
                          gap_s=round(gap, 4), gap_start=self.lost_since)
        log.warning("tracker %s: connection restored after %.1f s", self.info.serial, gap)
        self.lost_since = None

    def _watch_lost(self) -> None:
        """While lost: give up after reconnect_timeout_s; look for the tracker on a new address."""
        timeout = self.config.tracker.reconnect_timeout_s
        if timeout and self._now() - self.lost_since > timeout:
            raise TrackerError(f"tracker {self.info.serial} has been lost for more than {timeout:g} s; "
                               "check its cable and power, then restart the stream")
        if time.monotonic() < self._next_rescan:
            return
        self._next_rescan = time.monotonic() + RESCAN_S
        titta, _ = self._modules()
        found = [t for t in find_trackers(titta) if t.serial == self.info.serial]
        if found and found[0].address != self.info.address:
            log.warning("tracker %s is back at %s; reconnecting", self.info.serial, found[0].address)
            self._release()
            self.info = found[0]
            self._connect(self.info.address)
            self._restored(self._now())

    def _release(self) -> None:
        if self.sender is not None:
            try:
                self.sender.destroy("gaze")
            except Exception:
                log.debug("sender.destroy failed", exc_info=True)
        if self.tracker is not None:
            try:
                self.tracker.stop("notification")
            except Exception:
                log.debug("tracker.stop failed", exc_info=True)
        self.sender = self.tracker = None

    def close(self) -> None:
        self._release()
        self.markers = None
