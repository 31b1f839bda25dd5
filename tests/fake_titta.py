"""A fake Tobii SDK one level below `eyemotion.acquisition.tobii`: module objects named like TittaPy_v2 and
TittaLSLPy_v2, with the same functions and classes the adapter uses, backed by the gaze simulator.

The fake Sender publishes real LSL samples (`Tobii_gaze`, TittaLSL's layout and source id, plus the test's
`#namespace`) from `GazeModel`, stamped with the fake Tobii system clock. `FakeTobii.disconnect(s)` emits
TittaPy's `connection_lost` notification, stops the gaze subscription (no samples), and after `s` seconds
emits `connection_restored`; the gaze only flows again when the adapter restarts it.

Used in-process (`FakeTobii(...)`) and by the CLI tests through `EYEMOTION_TITTA_MODULE=fake_titta`, with
`FAKE_TITTA_TRACKERS` (JSON list of tracker dicts), `FAKE_TITTA_CLOCK_OFFSET_S` and `FAKE_TITTA_NAMESPACE`.
"""

from __future__ import annotations

import enum
import json
import os
import threading
import time
import types

import numpy as np
import pylsl
from eyemotion.acquisition.simulator import GazeModel

from eyemotion.config import ScreenConfig
from eyemotion.streams import GAZE_RAW, stream_info


class notification_type(enum.Enum):
    connection_lost = 0
    connection_restored = 1
    calibration_mode_entered = 2
    device_faults = 8


def fusion(serial: str = "TPFC2-010203040506", address: str | None = None,
           frequencies: tuple[float, ...] = (60.0, 120.0, 250.0)) -> dict:
    """A tracker dict as TittaPy.find_all_eye_trackers() reports it."""
    return {"device_name": f"Fusion {serial[-4:]}", "serial_number": serial, "model": "Tobii Pro Fusion",
            "firmware_version": "2.4.1", "runtime_version": "2.4.1",
            "address": address or f"tobii-prp://{serial}", "frequency": frequencies[-1],
            "tracking_mode": "human", "capabilities": [], "supported_frequencies": list(frequencies),
            "supported_modes": ["human"]}


class FakeTobii:
    """The fake world: some trackers, a system clock, and the two fake SDK modules."""

    def __init__(self, trackers: list[dict] | None = None, *, namespace: str = "", clock_offset_s: float = 0.0,
                 seed: int = 0) -> None:
        self.trackers = {t["address"]: dict(t) for t in (trackers if trackers is not None else [fusion()])}
        self.namespace = namespace
        self.clock_offset_s = clock_offset_s
        self.seed = seed
        self.connected = True
        self.notifications: list[tuple[notification_type, int]] = []
        self.senders: list = []  # the fake Senders created
        self.lock = threading.Lock()
        self.TittaPy = self._titta_py()
        self.TittaLSLPy = self._titta_lsl_py()

    def system_us(self) -> int:
        return int(round((pylsl.local_clock() + self.clock_offset_s) * 1e6))

    def notify(self, kind: notification_type) -> None:
        with self.lock:
            self.notifications.append((kind, self.system_us()))

    def disconnect(self, seconds: float) -> None:
        """Cable out for `seconds`: connection_lost now, connection_restored afterwards."""
        self.connected = False
        for s in self.senders:
            s.streaming = False  # the SDK drops the gaze subscription
        self.notify(notification_type.connection_lost)

        def restore() -> None:
            time.sleep(seconds)
            self.connected = True
            self.notify(notification_type.connection_restored)

        threading.Thread(target=restore, daemon=True).start()

    def _tracker(self, address: str) -> dict:
        if address not in self.trackers:
            raise RuntimeError(f"Titta::cpp: Cannot get eye tracker \"{address}\"")
        return self.trackers[address]

    def _titta_py(self) -> types.ModuleType:
        world = self
        mod = types.ModuleType("TittaPy_v2")

        class EyeTracker:
            def __init__(self, address: str) -> None:
                self._d = world._tracker(address)
                self._notifying = False

            @property
            def supported_frequencies(self) -> list[float]:
                return list(self._d["supported_frequencies"])

            @property
            def frequency(self) -> float:
                return self._d["frequency"]

            @frequency.setter
            def frequency(self, value: float) -> None:
                if value not in self._d["supported_frequencies"]:
                    raise RuntimeError("TOBII_RESEARCH_STATUS_SE_INVALID_PARAMETER")
                self._d["frequency"] = float(value)

            @property
            def serial_number(self) -> str:
                return self._d["serial_number"]

            def start(self, stream: str) -> bool:
                assert stream == "notification", stream
                self._notifying = True
                return True

            def stop(self, stream: str) -> bool:
                self._notifying = False
                return True

            def consume_N(self, stream: str) -> dict:
                assert stream == "notification" and self._notifying
                with world.lock:
                    items, world.notifications = world.notifications, []
                return {"notification_type": [k for k, _ in items],
                        "system_time_stamp": np.array([t for _, t in items], dtype=np.int64)}

        mod.EyeTracker = EyeTracker
        mod.notification_type = notification_type
        mod.find_all_eye_trackers = lambda: [dict(t) for t in world.trackers.values()]
        mod.get_system_timestamp = world.system_us
        return mod

    def _titta_lsl_py(self) -> types.ModuleType:
        world = self
        mod = types.ModuleType("TittaLSLPy_v2")

        class Sender:
            def __init__(self, address: str) -> None:
                self._d = world._tracker(address)
                self.streaming = False
                self.openness = False
                self.outlet = None
                self._thread = None
                self._stop = threading.Event()
                self.published = 0
                world.senders.append(self)

            def get_stream_source_id(self, stream: str) -> str:
                return f"TittaLSL:Tobii_{stream}@{self._d['serial_number']}"

            def set_include_eye_openness_in_gaze(self, include: bool) -> None:
                self.openness = include

            def create(self, stream: str, do_start_sending: bool | None = None) -> bool:
                assert stream == "gaze"
                if self.outlet is not None:
                    return False
                d = self._d
                acq = {"manufacturer": "Tobii", "model": d["model"], "serial_number": d["serial_number"],
                       "firmware_version": d["firmware_version"], "tracking_mode": d["tracking_mode"]}
                info = stream_info(GAZE_RAW, namespace=world.namespace, rate=d["frequency"],
                                   device=d["serial_number"], acquisition=acq)
                self.outlet = pylsl.StreamOutlet(info)
                self._thread = threading.Thread(target=self._pump, daemon=True)
                self._thread.start()
                if do_start_sending is None or do_start_sending:
                    self.start("gaze")
                return True

            def start(self, stream: str) -> None:
                if not world.connected:
                    raise RuntimeError("TOBII_RESEARCH_STATUS_SE_CONNECTION_FAILED")
                self.streaming = True

            def is_streaming(self, stream: str) -> bool:
                return self.streaming

            def stop(self, stream: str) -> None:
                self.streaming = False

            def destroy(self, stream: str) -> None:
                self._stop.set()
                if self._thread is not None:
                    self._thread.join(2)
                self.outlet = None
                self.streaming = False

            def _pump(self) -> None:
                rate = float(self._d["frequency"])
                model = GazeModel(ScreenConfig(), rate, world.seed)
                t_next = None
                while not self._stop.is_set():
                    now = world.system_us() / 1e6
                    if t_next is None:
                        t_next = now
                    n = int((now - t_next) * rate) + 1
                    if n > 0:
                        samples, _ = model.generate(n)
                        if not self.openness:
                            samples[:, [15, 16, 33, 34]] = np.nan, 0, np.nan, 0
                        stamps = t_next + np.arange(n) / rate
                        t_next = stamps[-1] + 1 / rate
                        if self.streaming and world.connected:
                            self.outlet.push_chunk(samples, stamps.tolist())
                            self.published += n
                    time.sleep(0.01)

        mod.Sender = Sender
        return mod


def _from_env() -> FakeTobii:
    trackers = json.loads(os.environ.get("FAKE_TITTA_TRACKERS", "null"))
    if trackers is not None:
        trackers = [fusion(**t) if "serial" in t else t for t in trackers]
    return FakeTobii(trackers, namespace=os.environ.get("FAKE_TITTA_NAMESPACE", ""),
                     clock_offset_s=float(os.environ.get("FAKE_TITTA_CLOCK_OFFSET_S", "0")))


_world = _from_env()
TittaPy = _world.TittaPy
TittaLSLPy = _world.TittaLSLPy
