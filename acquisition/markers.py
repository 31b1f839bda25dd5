"""The `eyemotion_markers` stream: one JSON object per session event.

Every marker is an object with at least `"event"` (a short snake_case name) and `"source"` (who sent it:
`runner`, `dashboard`, `supervisor`, `tracker`, `camera`, `microphone`, `cli`, ...). Other keys depend on
the event. The LSL timestamp of the sample is the time of the event (for the runner: the screen flip).

Events used across eyemotion (other producers may add more):
  runner: session_start, session_end, trial_start, baseline_onset, clip_onset, clip_offset, rating_onset,
    rating_response, calibration, calibration_point, validation, pause, resume, abort
  dashboard / cli: annotation
  supervisor: node_restart, node_gap, node_died
  inference: inference_latency
  sources: stream_start, stream_stop, device_lost, device_restored, device_warning, audio_overflow
  recorder: recording_start, recording_stop, recording_stall, recording_resumed, recorder_died, disk_low
"""

from __future__ import annotations

import json
import math
import socket
from typing import Any

import pylsl

from eyemotion import UserError
from eyemotion.streams import MARKERS, stream_info


class MarkerError(UserError):
    """A marker that is not a JSON object with a string `event`."""


def encode_marker(event: str, source: str, **fields: Any) -> str:
    """The JSON text of one marker (keys sorted, NaN refused)."""
    if not isinstance(event, str) or not event:
        raise MarkerError("a marker needs a non-empty string event name")
    payload = {"event": event, "source": source, **fields}
    try:
        return json.dumps(payload, sort_keys=True, allow_nan=False, default=_jsonable)
    except (TypeError, ValueError, RecursionError) as exc:
        raise MarkerError(f"marker {event!r} cannot be encoded as JSON ({exc}); pass plain numbers/strings") from None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def parse_marker(text: str) -> dict[str, Any]:
    """Decode one marker sample; MarkerError if it is not a JSON object with a string `event`."""
    if not isinstance(text, str):
        raise MarkerError(f"a marker must be a string, not {type(text).__name__}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # bad JSON, huge integers, deep nesting
        raise MarkerError(f"marker is not valid JSON ({exc}): {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise MarkerError(f"marker must be a JSON object, not {type(value).__name__}: {text[:80]!r}")
    if not isinstance(value.get("event"), str) or not value["event"]:
        raise MarkerError(f"marker has no string 'event' key: {text[:80]!r}")
    return value


class MarkerOutlet:
    """Pushes JSON markers onto `eyemotion_markers`.

    >>> markers = MarkerOutlet("runner", namespace=cfg.lsl.namespace)
    >>> markers.push("clip_onset", timestamp=flip_time, clip="happy_01", emotion="happiness")
    """

    def __init__(self, source: str, *, namespace: str = "", device: str = "") -> None:
        self.source = source
        # one markers outlet per sender: the sender is part of the source_id, so ids stay unique
        info = stream_info(MARKERS, namespace=namespace, device=device or f"{socket.gethostname()}/{source}",
                           extra={"sender": source})
        self.outlet = pylsl.StreamOutlet(info)

    def push(self, event: str, *, timestamp: float | None = None, **fields: Any) -> float:
        """Push one marker stamped `timestamp` (LSL time; default: now). Returns the stamp used."""
        stamp = pylsl.local_clock() if timestamp is None else float(timestamp)
        self.outlet.push_sample([encode_marker(event, self.source, **fields)], stamp)
        return stamp

    def have_consumers(self) -> bool:
        return self.outlet.have_consumers()
