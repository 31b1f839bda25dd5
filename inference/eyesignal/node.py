"""The eye-signal node: `Tobii_gaze` in, `eyemotion_gaze` and `eyemotion_eye_events` out (LSL).

It resolves exactly one `Tobii_gaze` stream through the contract (a stream with another layout is refused
with a message naming each difference), runs `EyeSignalProcessor` on every pulled chunk and publishes
the cleaned samples with the raw samples' own timestamps. Its fixed delay is in the outlet's
`desc/eyemotion/delay_samples` and `delay_s`. Bad samples inside the stream (NaN/inf, off-display gaze,
negative pupils, repeated or backward timestamps, a rate change, a time gap) are handled by the
processor and marked in the validity bits and as `discontinuity` events; they never stop the node.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from eyemotion.config import Config, ScreenConfig
from eyemotion.nodes import Node, beating

log = logging.getLogger(__name__)

FINAL_SEND_S = 0.5  # wait after the last push before the outlets close


def screen_from_session(folder: str | Path, default: ScreenConfig) -> ScreenConfig:
    """The screen geometry stored in a session's `session.json` (`screen` object), else `default`."""
    from eyemotion.session import read_session_json

    screen = read_session_json(folder).get("screen")
    if not isinstance(screen, dict):
        return default
    fields = {k: screen[k] for k in ("width_px", "height_px", "width_mm", "height_mm", "distance_mm") if k in screen}
    values = {**default.__dict__, **fields}
    result = ScreenConfig(**values)
    result.validate()
    return result


class EyeSignalNode(Node):
    """Reads Tobii_gaze, publishes eyemotion_gaze and eyemotion_eye_events."""

    name = "eyesignal"

    def __init__(self, config: Config, *, screen: ScreenConfig | None = None, source_id: str = "") -> None:
        super().__init__(config)
        self.screen = screen or config.screen
        self.source_id = source_id
        self.processor = None
        self.inlet = None
        self.gaze_outlet = None
        self.events_outlet = None
        self.samples_in = 0
        self.samples_out = 0
        self.events_out = 0
        self.errors = 0

    def open(self) -> None:
        import pylsl
        from eyemotion.inference.eyesignal.processor import EyeSignalProcessor, compile_stages

        with beating():  # seconds from numba's cache (written by setup.sh); ~20 s where it has to compile
            compile_stages()

        from eyemotion.streams import EYE_EVENTS, GAZE_CLEAN, GAZE_RAW, open_inlet, stream_info

        lsl = self.config.lsl
        self.inlet = open_inlet(GAZE_RAW, namespace=lsl.namespace, hostname=lsl.hostname, source_id=self.source_id,
                                timeout=lsl.resolve_timeout_s)
        info = self.inlet.info()
        rate = info.nominal_srate()
        self.processor = EyeSignalProcessor(rate, self.config.eyesignal, self.screen)
        extra = {"delay_samples": str(self.processor.delay_samples), "delay_s": f"{self.processor.delay_s:.4f}",
                 "source": info.source_id(), "screen": json.dumps(self.screen.__dict__)}
        self.gaze_outlet = pylsl.StreamOutlet(
            stream_info(GAZE_CLEAN, namespace=lsl.namespace, rate=rate, extra=extra),
            chunk_size=max(1, round(rate * 0.04)))
        self.events_outlet = pylsl.StreamOutlet(stream_info(EYE_EVENTS, namespace=lsl.namespace, extra=extra))
        log.info("eyesignal: %s at %g Hz -> %s, delay %d samples (%.3f s)", info.source_id(), rate, GAZE_CLEAN.name,
                 self.processor.delay_samples, self.processor.delay_s)

    def step(self) -> None:
        data, stamps = self.inlet.pull_chunk(timeout=0.05, max_samples=4096)
        if not stamps:
            return
        self.samples_in += len(stamps)
        try:
            out = self.processor.push(np.asarray(stamps), np.asarray(data, dtype=np.float64))
        except Exception as exc:  # never let one bad chunk stop the node: mark it and start afresh
            self.errors += 1
            log.exception("eyesignal: a chunk of %d samples could not be processed; restarting the processor",
                          len(stamps))
            out = self.processor.flush()
            out.events.append((float(stamps[-1]), {"event": "discontinuity", "reason": "processing_error",
                                                   "error": str(exc)[:200]}))
        self._publish(out)

    def _publish(self, out: Any) -> None:
        if len(out.timestamps):
            self.gaze_outlet.push_chunk(np.ascontiguousarray(out.samples), out.timestamps.tolist())
            self.samples_out += len(out.timestamps)
        for stamp, event in out.events:
            self.events_outlet.push_sample([json.dumps(event, allow_nan=False)], stamp)
            self.events_out += 1

    def close(self) -> None:
        if self.processor is not None and self.gaze_outlet is not None:
            self._publish(self.processor.flush())
            # liblsl sends asynchronously: give connected consumers a moment to receive the last samples
            if self.gaze_outlet.have_consumers() or self.events_outlet.have_consumers():
                time.sleep(FINAL_SEND_S)
        log.info("eyesignal: %d samples in, %d out, %d events, %d errors", self.samples_in, self.samples_out,
                 self.events_out, self.errors)
        self.inlet = self.gaze_outlet = self.events_outlet = None
