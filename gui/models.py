"""What the panels show, computed from the feeds without Qt, so tests can check it directly.

Channels are always read by label through the contract (`SPEC.index(label)`), never by position.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eyemotion.streams import CLASSES, EMOTION, EVENT_CODES, FACE, GAZE_CLEAN, GAZE_RAW

FIXATION, SACCADE, BLINK, LOSS = (EVENT_CODES[k] for k in ("fixation", "saccade", "blink", "loss"))


@dataclass(frozen=True)
class Segment:
    """One run of equal event codes in eyemotion_gaze (a fixation, saccade, blink or loss)."""

    code: int
    onset: float
    offset: float
    x: float  # mean position (normalised display coordinates)
    y: float
    start: tuple[float, float]
    end: tuple[float, float]

    @property
    def duration(self) -> float:
        return self.offset - self.onset


class EventSegmenter:
    """Turns the per-sample event codes of eyemotion_gaze into segments, chunk by chunk.

    The result does not depend on how the samples were chunked (a run is closed only when the code changes).
    """

    def __init__(self, keep: int = 400) -> None:
        self.segments: deque[Segment] = deque(maxlen=keep)
        self.closed = 0  # segments closed so far (a change counter)
        self._code: int | None = None
        self._onset = self._last_t = 0.0
        self._sum = np.zeros(2)
        self._n = 0
        self._start = self._end = (math.nan, math.nan)

    def push(self, stamps: np.ndarray, codes: np.ndarray, xy: np.ndarray) -> None:
        codes = np.nan_to_num(codes, nan=EVENT_CODES["unclassified"]).astype(int)
        for t, code, (x, y) in zip(stamps, codes, xy):
            if code != self._code:
                self._close()
                self._code, self._onset, self._sum[:] = int(code), float(t), 0.0
                self._n, self._start = 0, (float(x), float(y))
            if math.isfinite(x) and math.isfinite(y):
                self._sum += (x, y)
                self._n += 1
                self._end = (float(x), float(y))
                if not math.isfinite(self._start[0]):
                    self._start = self._end
            self._last_t = float(t)

    def _close(self) -> None:
        if self._code is None:
            return
        mean = self._sum / self._n if self._n else np.array([math.nan, math.nan])
        self.segments.append(
            Segment(
                self._code, self._onset, self._last_t, float(mean[0]), float(mean[1]), self._start, self._end
            )
        )
        self.closed += 1

    def recent(self, code: int, n: int) -> list[Segment]:
        return [s for s in self.segments if s.code == code][-n:]


def gaze_point(raw_or_clean: np.ndarray, clean: bool) -> np.ndarray:
    """(n, 2) gaze positions in normalised display coordinates; NaN where no eye is valid.

    The raw Tobii stream gives both eyes: their valid positions are averaged.
    """
    if raw_or_clean.size == 0:
        return np.empty((0, 2))
    if clean:
        return raw_or_clean[:, [GAZE_CLEAN.index("x"), GAZE_CLEAN.index("y")]]
    eyes = []
    for eye in ("left", "right"):
        xy = raw_or_clean[
            :,
            [
                GAZE_RAW.index(f"x.position_on_display_area.gaze_point.{eye}_eye"),
                GAZE_RAW.index(f"y.position_on_display_area.gaze_point.{eye}_eye"),
            ],
        ]
        valid = raw_or_clean[:, GAZE_RAW.index(f"valid.gaze_point.{eye}_eye")] > 0.5
        eyes.append(np.where(valid[:, None], xy, np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no valid eye: NaN
        return np.nanmean(np.stack(eyes), axis=0)


@dataclass(frozen=True)
class EyeQuality:
    valid_share: float  # share of samples with a valid gaze
    loss_share: float  # share of samples in tracking loss (event code "loss", or no valid eye)


def eye_quality(clean: np.ndarray) -> EyeQuality:
    if len(clean) == 0:
        return EyeQuality(math.nan, math.nan)
    validity = np.nan_to_num(clean[:, GAZE_CLEAN.index("validity")])
    event = clean[:, GAZE_CLEAN.index("event")]
    return EyeQuality(float(np.mean(validity > 0)), float(np.mean((event == LOSS) | (validity <= 0))))


def raw_quality(raw: np.ndarray) -> EyeQuality:
    if len(raw) == 0:
        return EyeQuality(math.nan, math.nan)
    valid = np.zeros(len(raw), bool)
    for eye in ("left", "right"):
        valid |= np.nan_to_num(raw[:, GAZE_RAW.index(f"valid.gaze_point.{eye}_eye")]) > 0.5
    return EyeQuality(float(valid.mean()), float(1 - valid.mean()))


def audio_level_db(samples: np.ndarray) -> float:
    """RMS level in dBFS of the finite samples (-120 for silence or nothing)."""
    x = samples[np.isfinite(samples)]
    if x.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=float))))
    return max(-120.0, 20 * math.log10(rms)) if rms > 0 else -120.0


@dataclass(frozen=True)
class FaceState:
    present: bool
    box: tuple[float, float, float, float]  # normalised x, y, w, h
    fer: np.ndarray  # 7 probabilities, CLASSES order


def face_state(sample: np.ndarray) -> FaceState:
    box = tuple(float(sample[FACE.index(f"box_{k}")]) for k in ("x", "y", "w", "h"))
    fer = np.array([sample[FACE.index(f"fer_{c}")] for c in CLASSES], float)
    return FaceState(bool(np.nan_to_num(sample[FACE.index("face_present")]) > 0.5), box, np.nan_to_num(fer))


@dataclass(frozen=True)
class Prediction:
    """One eyemotion_emotion sample, with the emotion gap between felt emotion (ER) and face (FER) (002)."""

    er: np.ndarray
    fer: np.ndarray
    valence: float
    arousal: float
    modalities: tuple[str, ...]

    @property
    def er_class(self) -> str:
        return CLASSES[int(np.argmax(self.er))]

    @property
    def fer_class(self) -> str:
        return CLASSES[int(np.argmax(self.fer))]

    @property
    def gap(self) -> bool:
        """The face shows another emotion than the one felt: EMERT's emotion gap (002, Sec. I and V-E)."""
        return bool(self.er.any() and self.fer.any() and self.er_class != self.fer_class)

    @property
    def gap_size(self) -> float:
        """Total-variation distance between ER and FER probabilities (0 = same, 1 = disjoint)."""
        return float(0.5 * np.abs(self.er - self.fer).sum())


def prediction(sample: np.ndarray) -> Prediction:
    er = np.nan_to_num(np.array([sample[EMOTION.index(f"er_{c}")] for c in CLASSES], float))
    fer = np.nan_to_num(np.array([sample[EMOTION.index(f"fer_{c}")] for c in CLASSES], float))
    used = tuple(
        m for m in ("face", "gaze", "audio") if np.nan_to_num(sample[EMOTION.index(f"uses_{m}")]) > 0.5
    )
    return Prediction(
        er, fer, float(sample[EMOTION.index("valence")]), float(sample[EMOTION.index("arousal")]), used
    )


HEALTH_EVENTS = {
    "node_restart": "restarted",
    "node_gap": "gap",
    "device_lost": "lost",
    "device_restored": "ok",
    "node_started": "ok",
    "node_stopped": "stopped",
}


@dataclass
class SessionState:
    """The session as told by the markers: current trial and clip, progress, node health, recent events."""

    trial: int | None = None
    n_trials: int | None = None
    clip: str = ""
    clip_emotion: str = ""
    clip_playing: bool = False
    protocol: str = ""
    last_event: str = ""
    health: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # node -> (state, detail, time)
    timeline: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=200))
    clip_onsets: int = 0
    errors: int = 0
    reports: dict[int, dict[str, Any]] = field(default_factory=dict)  # trial -> self-report by scale
    t0: float | None = None  # stamp of the first marker seen (readable marker times count from it)

    def self_report(self, trial: int | None = None) -> dict[str, Any]:
        """The participant's self-report of `trial` (default: the current one, else the last rated)."""
        trial = self.trial if trial is None else trial
        if trial in self.reports:
            return self.reports[trial]
        return self.reports[max(self.reports)] if self.reports and trial is None else {}

    @property
    def progress(self) -> float:
        if self.trial is None or not self.n_trials:
            return math.nan
        return min(1.0, max(0.0, self.trial / self.n_trials))

    def push(self, stamp: float, text: str) -> None:
        try:
            marker = json.loads(text)
            event = marker["event"]
            assert isinstance(marker, dict) and isinstance(event, str)
        except Exception:  # noqa: BLE001 - a malformed marker is counted, never fatal
            self.errors += 1
            return
        self.last_event = event
        get = marker.get
        if self.t0 is None:
            self.t0 = stamp
        if event == "session_start":
            self.protocol = str(get("protocol", self.protocol))
            self.n_trials = _int(get("n_trials", get("trials")), self.n_trials)
        elif event == "trial_start":
            self.trial = _int(get("trial", get("trial_index", get("index"))), self.trial)
            self.n_trials = _int(get("n_trials", get("total")), self.n_trials)
            # the trial's own clip (the runner names it in trial_start), not the previous trial's
            self.clip, self.clip_emotion, self.clip_playing = str(get("clip", "")), str(get("emotion", "")), False
            self.timeline.append((stamp, f"trial {self.trial if self.trial is not None else ''}".strip()))
        elif event == "clip_onset":
            self.clip, self.clip_emotion, self.clip_playing = (
                str(get("clip", "")),
                str(get("emotion", "")),
                True,
            )
            self.clip_onsets += 1
            self.timeline.append((stamp, f"clip {self.clip}"))
        elif event == "clip_offset":
            self.clip_playing = False
            self.timeline.append((stamp, "clip end"))
        elif event == "rating_response" and get("scale"):
            trial = _int(get("trial"), self.trial)
            value = get("label") if get("scale") == "emotion" else get("value")
            if trial is not None and value not in (None, ""):
                self.reports.setdefault(trial, {})[str(get("scale"))] = value
                while len(self.reports) > 500:
                    self.reports.pop(next(iter(self.reports)))
        elif event == "annotation":
            self.timeline.append((stamp, f"note: {get('label', '')}"))
        elif event in HEALTH_EVENTS:
            who = str(get("node", get("device", get("source", "?"))))
            detail = ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in marker.items()
                if k not in ("event", "source", "node", "device", "start", "end", "streams", "timestamp")
            )
            self.health[who] = (HEALTH_EVENTS[event], detail, stamp)


def _int(value: Any, default: int | None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class LevelMeter:
    """Audio level in dBFS per block (e.g. 50 ms), computed incrementally: chunking does not change it."""

    def __init__(self, block: int, keep: int = 400) -> None:
        self.block = max(1, block)
        self.levels: deque[tuple[float, float]] = deque(maxlen=keep)  # (stamp of the block's end, dBFS)
        self._rest = np.empty(0)
        self._rest_stamps = np.empty(0)

    def push(self, samples: np.ndarray, stamps: np.ndarray) -> None:
        x = np.concatenate((self._rest, np.asarray(samples, float).ravel()))
        t = np.concatenate((self._rest_stamps, np.asarray(stamps, float).ravel()))
        n = len(x) // self.block
        if n:
            blocks = x[: n * self.block].reshape(n, self.block)
            for i, b in enumerate(blocks):
                self.levels.append((float(t[(i + 1) * self.block - 1]), audio_level_db(b)))
        self._rest, self._rest_stamps = x[n * self.block :], t[n * self.block :]

    @property
    def level_db(self) -> float:
        return self.levels[-1][1] if self.levels else -120.0


#: Marker fields left out of the readable row (bookkeeping, shown by other panels or too long).
_QUIET_FIELDS = {"event", "source", "psychopy_time", "delays_ms", "time_lsl", "timestamp"}


def readable_marker(stamp: float, text: str, t0: float | None = None) -> str:
    """One marker as a readable row: `+01:23.4  runner  trial start  trial 3 · clip demo_fear · emotion fear`."""
    rel = stamp - t0 if t0 is not None else stamp
    sign = "-" if rel < 0 else "+"
    rel = abs(rel)
    when = f"{sign}{int(rel // 60):02d}:{rel % 60:04.1f}"
    try:
        marker = json.loads(text)
        event = str(marker["event"])
    except Exception:  # noqa: BLE001 - a malformed marker is shown as it came
        return f"{when}  (malformed) {text[:100]}"
    parts = []
    for key, value in marker.items():
        if key in _QUIET_FIELDS:
            continue
        if isinstance(value, float):
            value = f"{value:.3g}"
        elif isinstance(value, (list, dict)):
            value = f"[{len(value)}]"
        parts.append(f"{key.replace('_', ' ')} {value}")
    source = str(marker.get("source", ""))
    return f"{when}  {source}  {event.replace('_', ' ')}" + (f"  {' · '.join(parts)}" if parts else "")


def trained_on_simulated(card: dict[str, Any]) -> bool:
    """Whether a model card says its model was trained on simulated data."""
    training = card.get("training_data", {})
    text = " ".join(str(card.get(k, "")) for k in ("intended_use", "notes")).lower()
    participants = training.get("participants", []) if isinstance(training, dict) else []
    simulated = isinstance(training, dict) and bool(training.get("simulated"))
    return simulated or "simulated" in text or any(str(p).startswith("SIM") for p in participants)


def model_cards(config) -> dict[str, dict[str, Any]]:
    """The cards of the models the inference node loads with `config` (name -> card; unreadable ones left out)."""
    from pathlib import Path

    from eyemotion.inference.live import SHIPPED_CROSSMODAL, SHIPPED_EMERT, crossmodal_paths

    inf = config.inference
    paths = {"emert": Path(inf.emert_model or SHIPPED_EMERT)}
    paths.update({f"crossmodal-{k}": v for k, v in crossmodal_paths(inf.crossmodal_model or SHIPPED_CROSSMODAL).items()})
    cards = {}
    for name, path in paths.items():
        try:
            cards[name] = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError):
            continue
    return cards
