"""A reusable "contract stream publisher" for tests and benchmarks.

`ContractPublisher(spec, namespace=...)` publishes any stream of the contract (`eyemotion.streams`) as a
real pylsl outlet, built by `stream_info(...)`, with plausible synthetic data pushed in chunks from a
thread at the stream's rate. Every channel is filled by label, so channels added to the contract later
are published too (as zeros unless a generator knows them).

    with ContractPublisher(GAZE_RAW, namespace=ns, rate=250) as pub:
        ...            # pub.pause() / pub.resume() make it stale; pub.stop() / pub.start() remove/return it

The synthetic viewing behaviour is a deterministic function of time (fixations of ~0.3 s at
pseudo-random places, 40 ms saccades, a 150 ms blink every 4 s), so the raw and the cleaned gaze
streams published side by side agree with each other.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Callable

import numpy as np
import pylsl

from eyemotion.streams import (
    AUDIO,
    CAMERA,
    CLASSES,
    EMOTION,
    EVENT_CODES,
    EYE_EVENTS,
    FACE,
    GAZE_CLEAN,
    GAZE_RAW,
    IRREGULAR,
    MARKERS,
    PREVIEW,
    StreamSpec,
    stream_info,
)

FIX_S, SACCADE_S, BLINK_EVERY_S, BLINK_S = 0.35, 0.04, 4.0, 0.15
#: Events per second of the irregular streams.
EVENT_RATES = {EYE_EVENTS.key: 3.0, FACE.key: 12.0, MARKERS.key: 1 / 1.5, EMOTION.key: 2.0, PREVIEW.key: 5.0}
DEFAULT_RATES = {GAZE_RAW.key: 250.0, GAZE_CLEAN.key: 250.0, CAMERA.key: 30.0}


def _hash01(k: np.ndarray, salt: float) -> np.ndarray:
    return np.modf(np.abs(np.sin(k * 12.9898 + salt) * 43758.5453))[0]


def viewing(t: np.ndarray) -> dict[str, np.ndarray]:
    """Gaze x/y (normalised), event code, pupil (mm) and blink flag at LSL times `t`."""
    k = np.floor(t / FIX_S)
    phase = t - k * FIX_S
    target = np.stack([0.1 + 0.8 * _hash01(k, 1.0), 0.1 + 0.8 * _hash01(k, 7.0)], axis=1)
    previous = np.stack([0.1 + 0.8 * _hash01(k - 1, 1.0), 0.1 + 0.8 * _hash01(k - 1, 7.0)], axis=1)
    in_saccade = phase < SACCADE_S
    a = np.clip(phase / SACCADE_S, 0, 1)[:, None]
    xy = np.where(in_saccade[:, None], previous + (target - previous) * a, target)
    xy = xy + 0.004 * np.stack([np.sin(t * 53.0), np.cos(t * 47.0)], axis=1)  # fixational jitter
    blink = (t % BLINK_EVERY_S) < BLINK_S
    event = np.where(
        blink, EVENT_CODES["blink"], np.where(in_saccade, EVENT_CODES["saccade"], EVENT_CODES["fixation"])
    )
    pupil = 3.6 + 0.35 * np.sin(2 * np.pi * t / 7.0) + 0.05 * np.sin(t * 11.0)
    return {"xy": xy, "event": event.astype(float), "pupil": pupil, "blink": blink, "saccade": in_saccade}


def _fill(spec: StreamSpec, n: int, values: dict[str, np.ndarray | float]) -> np.ndarray:
    out = np.zeros((n, spec.channel_count))
    for lab, value in values.items():
        if lab in spec.labels:
            out[:, spec.index(lab)] = value
    return out


def gaze_raw(t: np.ndarray, spec: StreamSpec = GAZE_RAW) -> np.ndarray:
    v = viewing(t)
    ok = (~v["blink"]).astype(float)
    nan_if_blink = np.where(v["blink"], np.nan, 1.0)
    values: dict[str, np.ndarray | float] = {"device_time_stamp": t}
    for eye, dx in (("left", -0.003), ("right", 0.003)):
        e = f"{eye}_eye"
        values |= {
            f"x.position_on_display_area.gaze_point.{e}": (v["xy"][:, 0] + dx) * nan_if_blink,
            f"y.position_on_display_area.gaze_point.{e}": v["xy"][:, 1] * nan_if_blink,
            f"x.position_in_user_coordinates.gaze_point.{e}": (v["xy"][:, 0] - 0.5) * 531 * nan_if_blink,
            f"y.position_in_user_coordinates.gaze_point.{e}": (0.5 - v["xy"][:, 1]) * 299 * nan_if_blink,
            f"z.position_in_user_coordinates.gaze_point.{e}": 0.0 * nan_if_blink,
            f"valid.gaze_point.{e}": ok,
            f"available.gaze_point.{e}": 1.0,
            f"diameter.pupil.{e}": v["pupil"] * nan_if_blink,
            f"valid.pupil.{e}": ok,
            f"available.pupil.{e}": 1.0,
            f"x.position_in_user_coordinates.gaze_origin.{e}": 32.0 if eye == "right" else -32.0,
            f"y.position_in_user_coordinates.gaze_origin.{e}": 0.0,
            f"z.position_in_user_coordinates.gaze_origin.{e}": 650.0,
            f"valid.gaze_origin.{e}": ok,
            f"available.gaze_origin.{e}": 1.0,
            f"diameter.eye_openness.{e}": 11.0 * ok,
            f"valid.eye_openness.{e}": 1.0,
            f"available.eye_openness.{e}": 1.0,
        }
    return _fill(spec, len(t), values)


def gaze_clean(t: np.ndarray, spec: StreamSpec = GAZE_CLEAN) -> np.ndarray:
    v = viewing(t)
    blink = v["blink"]
    validity = np.where(blink, 16 | 32, 1 | 2 | 4 | 8).astype(float)
    values = {
        "x": v["xy"][:, 0],
        "y": v["xy"][:, 1],
        "angle_x": np.degrees(np.arctan((v["xy"][:, 0] - 0.5) * 531 / 650)),
        "angle_y": np.degrees(np.arctan((0.5 - v["xy"][:, 1]) * 299 / 650)),
        "pupil": v["pupil"],
        "pupil_raw": np.where(blink, np.nan, v["pupil"] + 0.03 * np.sin(t * 90.0)),
        "pupil_fluctuation": 0.35 * 2 * np.pi / 7.0 * np.cos(2 * np.pi * t / 7.0) / 250,
        "velocity": np.where(v["saccade"], 300.0, 5.0),
        "event": v["event"],
        "eye_openness": np.where(blink, 1.0, 11.0),
        "eye_distance": 650.0,
        "validity": validity,
        "x_saccade_corrected": v["xy"][:, 0],
        "y_saccade_corrected": v["xy"][:, 1],
    }
    return _fill(spec, len(t), values)


def audio(t: np.ndarray, spec: StreamSpec = AUDIO) -> np.ndarray:
    voiced = (t % 2.0) < 1.0
    tone = 0.25 * np.sin(2 * np.pi * 180 * t) + 0.1 * np.sin(2 * np.pi * 360 * t)
    noise = 0.003 * np.sin(t * 7919.0)
    return _fill(spec, len(t), {"audio": np.where(voiced, tone, 0.0) + noise})


def camera(t: np.ndarray, spec: StreamSpec = CAMERA) -> np.ndarray:
    return _fill(spec, len(t), {"frame_index": np.round(t * 30.0)})


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _probs(t: np.ndarray, period: float, shift: float) -> np.ndarray:
    k = np.arange(len(CLASSES))
    return _softmax(3.0 * np.cos(2 * np.pi * (t[:, None] / period + k / len(CLASSES) + shift)))


def face(t: np.ndarray, spec: StreamSpec = FACE) -> np.ndarray:
    fer = _probs(t, 20.0, 0.0)
    values: dict[str, np.ndarray | float] = {
        "face_present": 1.0,
        "box_x": 0.33 + 0.02 * np.sin(t),
        "box_y": 0.2,
        "box_w": 0.34,
        "box_h": 0.5,
    }
    values |= {f"fer_{c}": fer[:, i] for i, c in enumerate(CLASSES)}
    out = _fill(spec, len(t), values)
    emb = [i for i, lab in enumerate(spec.labels) if lab.startswith("embedding_")]
    out[:, emb] = np.sin(np.outer(t, np.arange(1, len(emb) + 1) * 0.1))
    return out


def emotion(t: np.ndarray, spec: StreamSpec = EMOTION) -> np.ndarray:
    er, fer = _probs(t, 20.0, 0.25), _probs(t, 20.0, 0.0)
    values: dict[str, np.ndarray | float] = {f"er_{c}": er[:, i] for i, c in enumerate(CLASSES)}
    values |= {f"fer_{c}": fer[:, i] for i, c in enumerate(CLASSES)}
    values |= {
        "valence": 0.7 * np.cos(t / 3.0),
        "arousal": 0.6 * np.sin(t / 2.0),
        "uses_face": 1.0,
        "uses_gaze": 1.0,
        "uses_audio": (t % 10.0 < 5).astype(float),
    }
    return _fill(spec, len(t), values)


_PREVIEWS: list[str] = []


def preview_frames() -> list[str]:
    """A few 160x120 base64 JPEG camera previews of a drawn face (made once)."""
    if not _PREVIEWS:
        import cv2

        for i in range(8):
            img = np.zeros((120, 160, 3), np.uint8)
            img[:] = (60 + 4 * np.arange(160)[None, :] // 8).astype(np.uint8)[..., None] * np.array(
                [1, 1, 1], np.uint8
            )
            cx = 80 + int(3 * math.sin(i))
            cv2.ellipse(img, (cx, 60), (26, 34), 0, 0, 360, (150, 180, 220), -1)
            cv2.circle(img, (cx - 10, 52), 4, (40, 40, 40), -1)
            cv2.circle(img, (cx + 10, 52), 4, (40, 40, 40), -1)
            cv2.ellipse(img, (cx, 74), (10, 5 + i % 3), 0, 0, 180, (60, 60, 160), 2)
            ok, jpg = cv2.imencode(".jpg", img)
            _PREVIEWS.append(base64.b64encode(jpg.tobytes()).decode("ascii"))
    return _PREVIEWS


def preview(t: np.ndarray, spec: StreamSpec = PREVIEW) -> list[list[str]]:
    frames = preview_frames()
    return [[frames[int(x * 5) % len(frames)]] for x in t]


def eye_events(t: np.ndarray, spec: StreamSpec = EYE_EVENTS) -> list[list[str]]:
    v = viewing(t)
    return [
        [
            json.dumps(
                {
                    "event": "fixation",
                    "phase": "offset",
                    "onset": float(x - 0.3),
                    "offset": float(x),
                    "duration_ms": 300.0,
                    "x": float(v["xy"][i, 0]),
                    "y": float(v["xy"][i, 1]),
                    "samples": 75,
                }
            )
        ]
        for i, x in enumerate(t)
    ]


EMOTION_CYCLE = ("happiness", "sadness", "fear", "anger", "disgust", "surprise", "neutral")


def markers(
    t: np.ndarray, spec: StreamSpec = MARKERS, n_trials: int = 7, step_s: float = 1.5
) -> list[list[str]]:
    """A runner-like protocol: trial_start, clip_onset, clip_offset, rating_response, one every `step_s`."""
    out = []
    for x in t:
        trial, phase = int(x // (4 * step_s)), x % (4 * step_s)
        emo = EMOTION_CYCLE[trial % len(EMOTION_CYCLE)]
        step = min(3, int(phase // step_s))
        event = [
            {"event": "trial_start", "trial": trial % n_trials + 1, "n_trials": n_trials},
            {"event": "clip_onset", "clip": f"{emo}_01", "emotion": emo},
            {"event": "clip_offset", "clip": f"{emo}_01"},
            {"event": "rating_response", "valence": 5, "arousal": 6},
        ][step]
        out.append([json.dumps({"source": "runner", **event})])
    return out


GENERATORS: dict[str, Callable[..., np.ndarray | list[list[str]]]] = {
    GAZE_RAW.key: gaze_raw,
    GAZE_CLEAN.key: gaze_clean,
    AUDIO.key: audio,
    CAMERA.key: camera,
    FACE.key: face,
    EMOTION.key: emotion,
    PREVIEW.key: preview,
    EYE_EVENTS.key: eye_events,
    MARKERS.key: markers,
}


class ContractPublisher:
    """Publishes one contract stream with synthetic data from a thread (see the module docstring)."""

    def __init__(
        self,
        spec: StreamSpec,
        *,
        namespace: str,
        rate: float | None = None,
        generator: Callable | None = None,
        chunk_s: float = 0.02,
        info: pylsl.StreamInfo | None = None,
        device: str = "",
        event_rate: float | None = None,
    ) -> None:
        self.spec = spec
        self.namespace = namespace
        self.rate = rate if rate is not None else DEFAULT_RATES.get(spec.key, spec.nominal_rate)
        self.generator = generator or GENERATORS[spec.key]
        self.chunk_s = chunk_s
        self.event_rate = event_rate or EVENT_RATES.get(spec.key, 2.0)  # irregular streams only
        self._info = info
        self.device = device or ("SIM-GEN" if spec is GAZE_RAW else "")
        self.pushed = 0
        self.outlet: pylsl.StreamOutlet | None = None
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def make_info(self) -> pylsl.StreamInfo:
        if self._info is not None:
            return self._info
        rate = self.rate if self.spec.nominal_rate != IRREGULAR else None
        return stream_info(self.spec, namespace=self.namespace, rate=rate, device=self.device)

    def start(self) -> ContractPublisher:
        if self._thread is not None:
            return self
        self.outlet = pylsl.StreamOutlet(self.make_info(), chunk_size=0, max_buffered=60)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"publish-{self.spec.key}")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop pushing and destroy the outlet: the stream disappears from the network."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None
        self.outlet = None

    def pause(self) -> None:
        """Keep the outlet but push nothing (the stream goes stale)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def __enter__(self) -> ContractPublisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        regular = self.spec.nominal_rate != IRREGULAR
        rate = self.rate if regular else self.event_rate
        period = 1.0 / rate
        next_t = pylsl.local_clock()
        while not self._stop.wait(self.chunk_s):
            now = pylsl.local_clock()
            n = int((now - next_t) / period) + 1 if now >= next_t else 0
            if n <= 0:
                continue
            stamps = next_t + period * np.arange(n)
            next_t = stamps[-1] + period
            if self._paused.is_set():
                continue
            values = self.generator(stamps, self.spec)
            if isinstance(values, np.ndarray):
                values = np.ascontiguousarray(
                    values, dtype=np.float32 if self.spec.channel_format == "float32" else np.float64
                )
            assert self.outlet is not None
            self.outlet.push_chunk(values, stamps.tolist())
            self.pushed += n


def publish_all(
    namespace: str, keys: tuple[str, ...] | None = None, **rates: float
) -> list[ContractPublisher]:
    """Start a publisher for every contract stream (or `keys`); rates by key override the defaults."""
    from eyemotion.streams import ALL

    pubs = [
        ContractPublisher(s, namespace=namespace, rate=rates.get(s.key))
        for s in ALL
        if keys is None or s.key in keys
    ]
    return [p.start() for p in pubs]
