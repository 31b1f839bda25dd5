"""The simulated eye tracker: seeded, realistic Tobii Pro Fusion gaze published exactly like TittaLSL.

`GazeModel` is a pure-numpy generator of `Tobii_gaze` samples (the 37 channels of
`eyemotion.streams.GAZE_RAW`, TittaLSL's layout) together with the per-sample ground truth.
`simulate_recording` generates a whole session offline; `SimulatedTracker` is the node that publishes
the same samples live over LSL at the tracker rate.

Viewing behaviour (one event after another; every random draw comes from one seeded generator)
------------------------------------------------------------------------------------------------
* Fixations: duration ~ gamma(shape 3) with a per-emotion mean (below), at least 60 ms. The eye is
  not still: a slow drift (random walk) plus tremor (white noise) gives a positional jitter of
  0.02-0.05 deg RMS (the per-emotion `jitter_deg`), the range usually quoted for fixational eye
  movements.
* Saccades follow the main sequence, peak velocity against amplitude
  Vpeak = Vmax * (1 - exp(-A / C)), Vmax = 600 deg/s, C = 14 deg (the exponential fit of Baloh et
  al. 1975, Neurology 25:1065; cf. Bahill, Clark & Stark 1975), with +-8 % scatter. The trajectory is a
  minimum-jerk profile, whose peak velocity is 1.875 A / D, so D = 1.875 A / Vpeak (about 30 ms at
  3 deg, 50 ms at 10 deg, 75 ms at 20 deg). Amplitudes ~ gamma with a per-emotion mean; targets stay
  on the display.
* Blinks: a Poisson process with a per-emotion rate (spontaneous blinking is 10-25 per minute).
  The eye is closed (gaze, pupil and gaze origin invalid) for 75-425 ms, the blink durations that
  002_cbeb04dbce786b8c.txt (Sec. III-A-3) treats as genuine blinks; the eye-openness channel shows the
  lid closing (~40 ms) to 0 mm and reopening (~80 ms) around that invalid run.
* Tracking loss: rare (default 0.3 per minute) runs of 0.4-2 s in which every channel is invalid,
  eye openness included (head turned away, eyes outside the track box).

Pupil (true diameter in mm, defined in blinks and losses too)
-------------------------------------------------------------
  pupil = 4.6 mm baseline - light response + arousal dilation + slow drift + per-eye offset
* light response: 2.2 mm between a dark (0) and a bright (1) scene, first order with tau 0.25 s for
  constriction and 1.0 s for redilation (constriction is faster than dilation). Unless the luminance is
  set (`set_luminance`), the scene luminance changes at random cuts (every ~4 s) to a level in 0.2-0.8.
* arousal dilation: +0.5 mm at arousal 1 (emotional arousal dilates the pupil by a few tenths of a mm,
  Bradley et al. 2008, Psychophysiology 45:602), first order with tau 1.5 s.
* drift: an Ornstein-Uhlenbeck process, SD 0.15 mm, tau 6 s; the right eye is 0.05 mm larger.
* measurement noise 0.01 mm per eye.

Geometry (Tobii user coordinate system: origin at the centre of the tracker's front panel, x to the
user's right, y up, z towards the user; mm)
-----------------------------------------------------------------------------------------------------
The tracker sits centred under the display; the display area is the vertical rectangle
x in [-W/2, W/2], y in [15, 15 + H] mm, z = 0, with W, H = `screen.width_mm/height_mm`. The eyes are
63 mm apart, centred at x = 0, at the height of the upper third of the display, `screen.distance_mm`
in front of it, with a slow head sway (OU, SD 5 mm). Normalised display coordinates have (0, 0) at the
top-left corner. Each eye's measured gaze point is the true one plus a fixed per-eye offset (0.3 deg
RMS accuracy) and per-eye noise (0.03 deg RMS precision, about the Fusion's specification).
Invalid samples follow Tobii: values NaN, validity 0, availability 1. The 37th channel is the device
timestamp in seconds (its own clock: arbitrary origin, 20 ppm drift).

Conditioning (`set_condition`, live from `clip_onset` markers)
----------------------------------------------------------------
The per-emotion table below is a *synthetic design*, so that simulated sessions carry a learnable
signal with overlap between classes. Its directions follow the observation of 002_cbeb04dbce786b8c.txt
(Sec. V, Fig. 9) that emotions differ in where people look, how often they blink and how they regulate
pupil size; the magnitudes are ours, not measured values. An explicit `arousal` overrides the
emotion's default arousal (Russell's circumplex placement).

  emotion    arousal  blinks/min  fixation ms  jitter deg  saccade deg
  neutral     0.20       17          280         0.030        6.0
  happiness   0.60       21          230         0.035        7.5
  sadness     0.30       11          370         0.025        4.5
  anger       0.80       25          210         0.045        8.0
  disgust     0.60       27          310         0.040        5.0
  fear        0.90       14          190         0.050        9.5
  surprise    0.85        8          330         0.035       11.0

`None` (no clip) uses the neutral row at arousal 0.1.

Mouse mode (`[simulator] mode = "mouse"`): each new fixation lands on the mouse pointer (read with
python-xlib from $DISPLAY), reached with a main-sequence saccade, so protocols can be tested by hand.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from eyemotion import UserError
from eyemotion.config import Config, ScreenConfig
from eyemotion.nodes import Node
from eyemotion.streams import CLASSES, EVENT_CODES, GAZE_RAW, MARKERS

log = logging.getLogger(__name__)

#: Tobii Pro Fusion gaze output frequencies (Hz).
FUSION_FREQUENCIES: tuple[float, ...] = (60.0, 120.0, 250.0)
MODEL = "Tobii Pro Fusion"
FIRMWARE = "simulated-1.0"
TRACKING_MODE = "human"

FIX, SAC, BLINK, LOSS = (EVENT_CODES[k] for k in ("fixation", "saccade", "blink", "loss"))
NO_EMOTION = -1


@dataclass(frozen=True)
class EmotionProfile:
    arousal: float
    blinks_per_min: float
    fixation_ms: float
    jitter_deg: float
    saccade_deg: float


#: The conditioning table (see the module docstring; synthetic magnitudes).
PROFILES: dict[str, EmotionProfile] = {
    "neutral": EmotionProfile(0.20, 17, 280, 0.030, 6.0),
    "happiness": EmotionProfile(0.60, 21, 230, 0.035, 7.5),
    "sadness": EmotionProfile(0.30, 11, 370, 0.025, 4.5),
    "anger": EmotionProfile(0.80, 25, 210, 0.045, 8.0),
    "disgust": EmotionProfile(0.60, 27, 310, 0.040, 5.0),
    "fear": EmotionProfile(0.90, 14, 190, 0.050, 9.5),
    "surprise": EmotionProfile(0.85, 8, 330, 0.035, 11.0),
}
BASELINE_AROUSAL = 0.1

# physiology constants (sources in the module docstring)
VMAX_DEG_S, MAIN_SEQ_C_DEG, MIN_JERK_PEAK = 600.0, 14.0, 1.875
BLINK_MIN_S, BLINK_MAX_S = 0.075, 0.425
LID_CLOSE_S, LID_OPEN_S = 0.04, 0.08
OPENNESS_MM = 11.0
PUPIL_BASE_MM, LIGHT_RANGE_MM, AROUSAL_MM = 4.6, 2.2, 0.5
TAU_CONSTRICT_S, TAU_DILATE_S, TAU_AROUSAL_S = 0.25, 1.0, 1.5
DRIFT_SD_MM, DRIFT_TAU_S = 0.15, 6.0
IPD_MM, TRACKER_GAP_MM = 63.0, 15.0


@dataclass
class GroundTruth:
    """The truth behind each published sample (arrays of equal length)."""

    event: np.ndarray  # int, eyemotion.streams.EVENT_CODES
    pupil_mm: np.ndarray  # true binocular pupil diameter, also inside blinks and losses
    x: np.ndarray  # true binocular gaze, normalised display coordinates (0, 0) = top-left
    y: np.ndarray
    eye_distance_mm: np.ndarray  # distance from the cyclopean eye to the display plane
    openness_mm: np.ndarray  # true eyelid opening
    luminance: np.ndarray  # scene luminance 0..1 driving the light response
    arousal: np.ndarray  # arousal driving the pupil dilation
    emotion: np.ndarray  # index into eyemotion.streams.CLASSES, -1 = no condition

    @classmethod
    def empty(cls) -> GroundTruth:
        return cls(**{f.name: np.zeros(0) for f in fields(cls)})

    @classmethod
    def concat(cls, parts: list[GroundTruth]) -> GroundTruth:
        if not parts:
            return cls.empty()
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def __len__(self) -> int:
        return len(self.event)

    def save(self, path: str | Path, timestamps: np.ndarray) -> Path:
        """Write `timestamps` + every field to `.npz` (or `.csv` by suffix)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cols = {"timestamp": np.asarray(timestamps, float), **{f.name: getattr(self, f.name) for f in fields(self)}}
        if path.suffix == ".csv":
            header = ",".join(cols)
            np.savetxt(path, np.column_stack(list(cols.values())), delimiter=",", header=header, comments="",
                       fmt="%.9g")
        else:
            np.savez_compressed(path, **cols)
        return path

    @staticmethod
    def load(path: str | Path) -> tuple[np.ndarray, GroundTruth]:
        """(timestamps, truth) from a file written by `save`."""
        path = Path(path)
        if path.suffix == ".csv":
            data = np.genfromtxt(path, delimiter=",", names=True)
            cols = {n: data[n] for n in data.dtype.names}
        else:
            with np.load(path) as data:
                cols = {k: data[k] for k in data.files}
        truth = GroundTruth(**{f.name: cols[f.name] for f in fields(GroundTruth)})
        truth.event = truth.event.astype(int)
        truth.emotion = truth.emotion.astype(int)
        return cols["timestamp"], truth


class TruthLog:
    """The live simulator's ground truth, appended to `<path>.part` as raw float64 rows while it runs, so
    memory stays flat over a long session; `close()` writes `path` (GroundTruth.save) and removes the part.
    A tracker that was killed leaves its rows behind and its restarted successor appends to them, so the
    truth covers every run."""

    COLUMNS = ("timestamp", *(f.name for f in fields(GroundTruth)))

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.part = self.path.with_name(self.path.name + ".part")
        if self.part.exists() and self.part.stat().st_size % (8 * len(self.COLUMNS)):  # a kill mid-row
            with open(self.part, "r+b") as f:
                f.truncate(self.part.stat().st_size // (8 * len(self.COLUMNS)) * 8 * len(self.COLUMNS))
        # unbuffered: rows of samples already published must survive a SIGKILL (one write per chunk)
        self._file = open(self.part, "ab", buffering=0)  # noqa: SIM115 - open for the tracker's lifetime

    def append(self, stamps: np.ndarray, truth: GroundTruth) -> None:
        columns = [stamps, *(getattr(truth, f.name) for f in fields(GroundTruth))]
        self._file.write(np.column_stack(columns).astype(np.float64).tobytes())

    def read(self) -> tuple[np.ndarray, GroundTruth]:
        rows = np.fromfile(self.part, np.float64)
        rows = rows[: len(rows) // len(self.COLUMNS) * len(self.COLUMNS)].reshape(-1, len(self.COLUMNS))
        truth = GroundTruth(**{name: rows[:, k + 1] for k, name in enumerate(self.COLUMNS[1:])})
        truth.event, truth.emotion = truth.event.astype(int), truth.emotion.astype(int)
        return rows[:, 0], truth

    def close(self) -> int:
        """Write the truth file; returns its number of samples."""
        stamps, truth = self.read()
        self._file.close()
        if len(stamps):
            truth.save(self.path, stamps)
        self.part.unlink(missing_ok=True)
        return len(stamps)


@dataclass
class _Segment:
    """Pre-generated samples of one or more events, waiting to be emitted."""

    event: np.ndarray
    ax: np.ndarray  # true gaze angle (deg) from the display centre, x right
    ay: np.ndarray  # y down
    openness: np.ndarray

    def __len__(self) -> int:
        return len(self.event)

    def split(self, n: int) -> tuple[_Segment, _Segment]:
        return (_Segment(*(getattr(self, k)[:n] for k in _SEGMENT_FIELDS)),
                _Segment(*(getattr(self, k)[n:] for k in _SEGMENT_FIELDS)))

    @staticmethod
    def join(parts: list[_Segment]) -> _Segment:
        return _Segment(*(np.concatenate([getattr(p, k) for p in parts]) for k in _SEGMENT_FIELDS))

    @staticmethod
    def none() -> _Segment:
        return _Segment(np.zeros(0, int), np.zeros(0), np.zeros(0), np.zeros(0))


_SEGMENT_FIELDS = ("event", "ax", "ay", "openness")


def check_frequency(rate: float) -> float:
    if float(rate) not in FUSION_FREQUENCIES:
        raise UserError(f"the simulated {MODEL} cannot run at {rate:g} Hz; "
                        f"set [tracker] frequency to one of {', '.join(f'{f:g}' for f in FUSION_FREQUENCIES)}")
    return float(rate)


class GazeModel:
    """Seeded, pure-numpy generator of TittaLSL Tobii_gaze samples (no LSL)."""

    def __init__(self, screen: ScreenConfig, rate: float, seed: int = 0, *,
                 loss_per_min: float = 0.3, target: Callable[[], tuple[float, float]] | None = None,
                 device_clock_origin_s: float | None = None) -> None:
        """`target` (mouse mode) returns the normalised point each new fixation lands on."""
        self.screen = screen
        self.rate = float(rate)
        self.dt = 1.0 / self.rate
        # independent streams, so the output does not depend on how generate() calls are chunked
        events, light, drift, head, noise = np.random.SeedSequence(seed).spawn(5)
        self.rng = np.random.default_rng(events)
        self._rng_light = np.random.default_rng(light)
        self._rng_drift = np.random.default_rng(drift)
        self._rng_head = np.random.default_rng(head)
        self._rng_noise = np.random.default_rng(noise)
        self.loss_per_min = loss_per_min
        self.target = target
        self._half_w = math.degrees(math.atan(screen.width_mm / 2 / screen.distance_mm))
        self._half_h = math.degrees(math.atan(screen.height_mm / 2 / screen.distance_mm))
        self._emotion: str | None = None
        self._profile = PROFILES["neutral"]
        self._arousal = BASELINE_AROUSAL
        self._ax, self._ay = 0.0, 0.0
        self._pending = _Segment.none()
        self._to_blink = self._draw_blink_wait()
        self._to_loss = self._draw_loss_wait()
        # slow states
        self._light = 0.5
        self._light_fixed: float | None = None
        self._to_cut = self._rng_light.exponential(4.0)
        self._p_light = LIGHT_RANGE_MM * 0.5
        self._p_arousal = AROUSAL_MM * BASELINE_AROUSAL
        self._p_drift = 0.0
        self._head = np.zeros(3)
        self._eye_bias = self.rng.normal(0.0, 0.3 / math.sqrt(2), size=(2, 2))  # deg, per eye x/y
        self._n = 0
        self._device_t0 = self.rng.uniform(1e3, 1e5) if device_clock_origin_s is None else device_clock_origin_s

    # -- conditioning -------------------------------------------------------------------------------
    def set_condition(self, emotion: str | None = None, arousal: float | None = None) -> None:
        """Condition on a clip's emotion (one of CLASSES, or None) and/or an arousal in 0..1."""
        if emotion is not None and emotion not in PROFILES:
            raise UserError(f"unknown emotion {emotion!r}; use one of {', '.join(CLASSES)}")
        if arousal is not None and not 0.0 <= arousal <= 1.0:
            raise UserError(f"arousal {arousal} is outside 0..1")
        self._emotion = emotion
        self._profile = PROFILES[emotion or "neutral"]
        if arousal is not None:
            self._arousal = float(arousal)
        else:
            self._arousal = self._profile.arousal if emotion else BASELINE_AROUSAL

    def set_luminance(self, level: float | None) -> None:
        """Fix the scene luminance (0 dark .. 1 bright); None returns to random scene cuts."""
        self._light_fixed = None if level is None else float(np.clip(level, 0.0, 1.0))

    @property
    def emotion(self) -> str | None:
        return self._emotion

    @property
    def samples_generated(self) -> int:
        return self._n

    # -- generation ---------------------------------------------------------------------------------
    def generate(self, n: int) -> tuple[np.ndarray, GroundTruth]:
        """The next `n` samples, (n, 37) float64 in GAZE_RAW order, and their truth."""
        while len(self._pending.event) < n:
            self._extend()
        seg, self._pending = self._pending.split(n)
        pupil, light, arousal = self._pupil(n)
        head = self._head_positions(n)
        samples, truth = self._render(seg, pupil, head)
        truth.luminance, truth.arousal = light, arousal
        truth.emotion = np.full(n, CLASSES.index(self._emotion) if self._emotion else NO_EMOTION)
        self._n += n
        return samples, truth

    def _draw_blink_wait(self) -> float:
        return self.rng.exponential(60.0 / self._profile.blinks_per_min)

    def _draw_loss_wait(self) -> float:
        return self.rng.exponential(60.0 / self.loss_per_min) if self.loss_per_min > 0 else math.inf

    def _samples(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.rate)))

    def _extend(self) -> None:
        """Append one event (fixation, then maybe a blink or loss, then a saccade) to the pending buffer."""
        parts = [self._fixation()]
        elapsed = len(parts[0].event) * self.dt
        self._to_blink -= elapsed
        self._to_loss -= elapsed
        if self._to_loss <= 0:
            parts.append(self._loss())
            self._to_loss = self._draw_loss_wait()
        elif self._to_blink <= 0:
            parts.append(self._blink())
            self._to_blink = self._draw_blink_wait()
        parts.append(self._saccade())
        self._pending = _Segment.join([self._pending, *parts])

    def _fixation(self) -> _Segment:
        prof = self._profile
        dur = max(0.06, self.rng.gamma(3.0, prof.fixation_ms / 1000 / 3.0))
        n = self._samples(dur)
        # drift: random walk (half the variance), tremor: white noise (the other half)
        sd = prof.jitter_deg / math.sqrt(2)
        steps = self.rng.normal(0, sd / math.sqrt(max(n, 1)), size=(n, 2))
        drift = np.cumsum(steps, axis=0)
        tremor = self.rng.normal(0, sd, size=(n, 2))
        ax = self._ax + drift[:, 0] + tremor[:, 0]
        ay = self._ay + drift[:, 1] + tremor[:, 1]
        self._ax, self._ay = self._clamp(self._ax + drift[-1, 0], self._ay + drift[-1, 1])
        return _Segment(np.full(n, FIX), ax, ay, OPENNESS_MM + self.rng.normal(0, 0.15, n))

    def _saccade(self) -> _Segment:
        if self.target is not None:
            nx, ny = self.target()
            tx = math.degrees(math.atan((float(np.clip(nx, 0, 1)) - 0.5) * self.screen.width_mm / self.screen.distance_mm))
            ty = math.degrees(math.atan((float(np.clip(ny, 0, 1)) - 0.5) * self.screen.height_mm / self.screen.distance_mm))
        else:
            for _ in range(20):
                amp = max(0.5, self.rng.gamma(2.0, self._profile.saccade_deg / 2.0))
                ang = self.rng.uniform(0, 2 * math.pi)
                tx, ty = self._ax + amp * math.cos(ang), self._ay + amp * math.sin(ang)
                if abs(tx) < self._half_w * 0.95 and abs(ty) < self._half_h * 0.95:
                    break
            else:
                tx, ty = self._clamp(self._ax * 0.5, self._ay * 0.5)
        amp = math.hypot(tx - self._ax, ty - self._ay)
        if amp < 0.3:  # no saccade needed (mouse mode: pointer still); the fixation goes on
            return _Segment.none()
        vpeak = VMAX_DEG_S * (1 - math.exp(-amp / MAIN_SEQ_C_DEG)) * self.rng.uniform(0.92, 1.08)
        dur = MIN_JERK_PEAK * amp / vpeak
        n = max(2, int(math.ceil(dur * self.rate)))
        s = np.clip((np.arange(n) + 1) * self.dt / dur, 0, 1)
        prof = 10 * s**3 - 15 * s**4 + 6 * s**5
        ax = self._ax + (tx - self._ax) * prof
        ay = self._ay + (ty - self._ay) * prof
        self._ax, self._ay = tx, ty
        return _Segment(np.full(n, SAC), ax, ay, OPENNESS_MM + self.rng.normal(0, 0.15, n))

    def _blink(self) -> _Segment:
        closed = self._samples(self.rng.uniform(BLINK_MIN_S, BLINK_MAX_S))
        closed = min(max(closed, int(math.ceil(BLINK_MIN_S * self.rate))), int(BLINK_MAX_S * self.rate))
        n_close, n_open = self._samples(LID_CLOSE_S), self._samples(LID_OPEN_S)
        openness = np.concatenate([
            np.linspace(OPENNESS_MM, 2.0, n_close + 1)[1:],  # lid closing, still tracked
            np.zeros(closed),
            np.linspace(2.0, OPENNESS_MM, n_open + 1)[:-1],  # reopening
        ])
        n = len(openness)
        event = np.full(n, FIX)
        event[n_close:n_close + closed] = BLINK
        return _Segment(event, np.full(n, self._ax), np.full(n, self._ay), openness)

    def _loss(self) -> _Segment:
        n = self._samples(self.rng.uniform(0.4, 2.0))
        return _Segment(np.full(n, LOSS), np.full(n, self._ax), np.full(n, self._ay), np.full(n, OPENNESS_MM))

    def _clamp(self, ax: float, ay: float) -> tuple[float, float]:
        return (float(np.clip(ax, -self._half_w, self._half_w)), float(np.clip(ay, -self._half_h, self._half_h)))

    def _pupil(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True pupil (mm), luminance and arousal for the next n samples (first-order dynamics)."""
        dt = self.dt
        light = np.empty(n)
        for i in range(n):  # scene cuts
            if self._light_fixed is not None:
                self._light = self._light_fixed
            else:
                self._to_cut -= dt
                if self._to_cut <= 0:
                    self._light = self._rng_light.uniform(0.2, 0.8)
                    self._to_cut = self._rng_light.exponential(4.0)
            light[i] = self._light
        a_con, a_dil = math.exp(-dt / TAU_CONSTRICT_S), math.exp(-dt / TAU_DILATE_S)
        a_ar, a_dr = math.exp(-dt / TAU_AROUSAL_S), math.exp(-dt / DRIFT_TAU_S)
        drift_noise = self._rng_drift.normal(0, DRIFT_SD_MM * math.sqrt(1 - a_dr**2), n)
        target_ar = AROUSAL_MM * self._arousal
        out = np.empty(n)
        pl, pa, pd = self._p_light, self._p_arousal, self._p_drift
        for i in range(n):
            target_l = LIGHT_RANGE_MM * light[i]
            a = a_con if target_l > pl else a_dil  # constricting (more light) is faster
            pl = target_l + (pl - target_l) * a
            pa = target_ar + (pa - target_ar) * a_ar
            pd = pd * a_dr + drift_noise[i]
            out[i] = PUPIL_BASE_MM - pl + pa + pd
        self._p_light, self._p_arousal, self._p_drift = pl, pa, pd
        return out, light, np.full(n, self._arousal)

    def _head_positions(self, n: int) -> np.ndarray:
        """Cyclopean eye position (n, 3) in UCS mm: slow OU sway around the nominal position."""
        a = math.exp(-self.dt / 3.0)
        noise = self._rng_head.normal(0, 5.0 * math.sqrt(1 - a * a), size=(n, 3))
        out = np.empty((n, 3))
        h = self._head
        for i in range(n):
            h = h * a + noise[i]
            out[i] = h
        self._head = h
        base = np.array([0.0, TRACKER_GAP_MM + self.screen.height_mm * 2 / 3, self.screen.distance_mm])
        return out + base

    def _render(self, seg: _Segment, pupil: np.ndarray, head: np.ndarray) -> tuple[np.ndarray, GroundTruth]:
        n = len(seg.event)
        sc = self.screen
        W, H = sc.width_mm, sc.height_mm
        # true gaze point on the display (UCS mm), seen from the nominal eye position
        gx = sc.distance_mm * np.tan(np.radians(seg.ax))
        gy_down = sc.distance_mm * np.tan(np.radians(seg.ay))
        true_x = 0.5 + gx / W
        true_y = 0.5 + gy_down / H
        out = np.full((n, GAZE_RAW.channel_count), np.nan)
        valid_gaze = seg.event != BLINK
        valid_gaze &= seg.event != LOSS
        valid_open = seg.event != LOSS
        # sensor noise: one draw of (n, 8) per call keeps the stream independent of chunking
        sensor = self._rng_noise.standard_normal(size=(n, 8))
        for e, sign in ((0, -1.0), (1, 1.0)):
            base = 18 * e
            eye = head + np.array([sign * IPD_MM / 2, 0.0, 0.0])
            noise = 0.03 * sensor[:, 4 * e:4 * e + 2] + self._eye_bias[e]
            dist = np.sqrt((eye[:, 2]) ** 2 + (gx - eye[:, 0]) ** 2)
            mx = true_x + np.tan(np.radians(noise[:, 0])) * dist / W
            my = true_y + np.tan(np.radians(noise[:, 1])) * dist / H
            ucs_x = -W / 2 + mx * W
            ucs_y = TRACKER_GAP_MM + (1 - my) * H
            diam = pupil + (0.05 if e else 0.0) + 0.01 * sensor[:, 4 * e + 2]
            openness = seg.openness + 0.05 * sensor[:, 4 * e + 3] * (seg.openness > 0)
            cols = [mx, my, ucs_x, ucs_y, np.zeros(n)]
            for k, col in enumerate(cols):
                out[:, base + k] = np.where(valid_gaze, col, np.nan)
            out[:, base + 5], out[:, base + 6] = valid_gaze, 1.0
            out[:, base + 7] = np.where(valid_gaze, diam, np.nan)
            out[:, base + 8], out[:, base + 9] = valid_gaze, 1.0
            for k in range(3):
                out[:, base + 10 + k] = np.where(valid_gaze, eye[:, k], np.nan)
            out[:, base + 13], out[:, base + 14] = valid_gaze, 1.0
            out[:, base + 15] = np.where(valid_open, np.maximum(openness, 0.0), np.nan)
            out[:, base + 16], out[:, base + 17] = valid_open, 1.0
        idx = self._n + np.arange(n)
        out[:, 36] = self._device_t0 + idx * self.dt * (1 + 20e-6)
        truth = GroundTruth(
            event=seg.event.astype(int), pupil_mm=pupil + 0.025, x=true_x, y=true_y,
            eye_distance_mm=head[:, 2].copy(), openness_mm=seg.openness.copy(),
            luminance=np.zeros(n), arousal=np.zeros(n), emotion=np.zeros(n, int),
        )
        return out, truth


def simulate_recording(duration_s: float, rate: float = 250.0, seed: int = 0,
                       screen: ScreenConfig | None = None,
                       conditions: list[tuple[float, str | None]] | None = None,
                       ) -> tuple[np.ndarray, np.ndarray, GroundTruth]:
    """A whole simulated session offline: (timestamps_s, samples (n, 37), truth).

    `conditions` is a list of (start_s, emotion) switching the condition at those times (sorted).
    Timestamps start at 0 and are exactly 1/rate apart (Tobii system time of a perfect tracker).
    """
    model = GazeModel(screen or ScreenConfig(), rate, seed)
    n_total = int(round(duration_s * rate))
    switches = sorted(conditions or [], key=lambda c: c[0])
    bounds = [int(round(t * rate)) for t, _ in switches] + [n_total]
    chunks, truths = [], []
    done = 0
    if bounds[0] > 0:
        s, t = model.generate(min(bounds[0], n_total))
        chunks.append(s), truths.append(t)
        done = len(s)
    for (_, emotion), end in zip(switches, bounds[1:]):
        model.set_condition(emotion)
        count = min(end, n_total) - done
        if count > 0:
            s, t = model.generate(count)
            chunks.append(s), truths.append(t)
            done += count
    samples = np.concatenate(chunks) if chunks else np.zeros((0, GAZE_RAW.channel_count))
    return np.arange(done) / rate, samples, GroundTruth.concat(truths)


class MousePointer:
    """The mouse position on the stimulus screen, normalised 0..1, read with python-xlib."""

    def __init__(self, display: str | None = None) -> None:
        import os

        name = display or os.environ.get("DISPLAY")
        if not name:
            raise UserError("simulator mode 'mouse' needs a display: set $DISPLAY (or use mode = 'random')")
        try:
            from Xlib import display as xdisplay
            from Xlib.error import DisplayError

            try:
                self._display = xdisplay.Display(name)
            except DisplayError as exc:
                raise UserError(f"simulator mode 'mouse' cannot open display {name!r} ({exc}); "
                                "check $DISPLAY or use mode = 'random'") from None
        except ImportError:
            raise UserError("simulator mode 'mouse' needs python-xlib; pip install python-xlib") from None
        self._root = self._display.screen().root
        geom = self._root.get_geometry()
        self._size = (geom.width, geom.height)

    def __call__(self) -> tuple[float, float]:
        ptr = self._root.query_pointer()
        return ptr.root_x / max(self._size[0] - 1, 1), ptr.root_y / max(self._size[1] - 1, 1)


class SimulatedTracker(Node):
    """Publishes simulated `Tobii_gaze` over LSL at the live rate, like TittaLSL's Sender.

    Samples are stamped on a steady schedule t0 + i/rate in LSL time (= Tobii system time) and pushed
    every `chunk_ms`. When a markers stream is present, `clip_onset` markers with an `emotion` (and/or
    `arousal`) condition the model, `clip_offset` clears it, and a `simulate_disconnect` marker with
    `seconds` drops the connection (as does `disconnect()`), bracketed by `device_lost` /
    `device_restored` markers.
    """

    name = "simulated_tracker"

    def __init__(self, config: Config, *, truth_path: str | Path | None = None, seed: int | None = None,
                 follow_markers: bool = True) -> None:
        super().__init__(config)
        self.rate = check_frequency(config.tracker.frequency)
        sim = config.simulator
        self.serial = sim.serial
        self.seed = sim.seed if seed is None else seed
        self.chunk_s = sim.chunk_ms / 1000.0
        self.truth_path = Path(truth_path) if truth_path else (Path(sim.truth_path) if sim.truth_path else None)
        self.follow_markers = follow_markers
        self.model: GazeModel | None = None
        self.outlet = None
        self.markers = None
        self._resolver = None
        self._inlets: dict[str, object] = {}
        self._next_scan = 0.0
        self._lock = threading.Lock()
        self._down_until: float | None = None
        self._down_since = 0.0
        self._t0 = 0.0
        self._i = 0
        self._truth_log: TruthLog | None = None
        self.published = 0

    # -- control ------------------------------------------------------------------------------------
    def set_condition(self, emotion: str | None = None, arousal: float | None = None) -> None:
        with self._lock:
            self.model.set_condition(emotion, arousal)

    def disconnect(self, seconds: float) -> None:
        """Drop the connection for `seconds`: no samples, `device_lost` now, `device_restored` after."""
        with self._lock:
            now = self._clock()
            if self._down_until is None:
                self._down_since = now
                self.markers.push("device_lost", timestamp=now, device="tracker", serial=self.serial,
                                  reason="simulated disconnect")
                log.warning("simulated tracker %s disconnected for %.1f s", self.serial, seconds)
            self._down_until = max(self._down_until or now, now + float(seconds))

    @property
    def connected(self) -> bool:
        return self._down_until is None

    # -- node ---------------------------------------------------------------------------------------
    @staticmethod
    def _clock() -> float:
        import pylsl

        return pylsl.local_clock()

    def acquisition(self) -> dict[str, str]:
        return {"manufacturer": "Tobii", "model": MODEL, "serial_number": self.serial,
                "firmware_version": FIRMWARE, "tracking_mode": TRACKING_MODE}

    def open(self) -> None:
        import pylsl
        from eyemotion.acquisition.markers import MarkerOutlet

        from eyemotion.streams import stream_info

        ns = self.config.lsl.namespace
        target = MousePointer() if self.config.simulator.mode == "mouse" else None
        self._free_target = target
        self.model = GazeModel(self.config.screen, self.rate, self.seed,
                               loss_per_min=self.config.simulator.loss_per_min, target=target)
        info = stream_info(GAZE_RAW, namespace=ns, rate=self.rate, device=self.serial,
                           acquisition=self.acquisition(),
                           extra={"simulated": "true", "seed": str(self.seed), "mode": self.config.simulator.mode})
        chunk = max(1, int(round(self.chunk_s * self.rate)))
        self.outlet = pylsl.StreamOutlet(info, chunk_size=chunk, max_buffered=360)
        self.markers = MarkerOutlet("tracker", namespace=ns, device=f"{socket.gethostname()}/tracker-{self.serial}")
        if self.follow_markers:
            pred = f"name='{MARKERS.name}'" + (f" and contains(source_id,'#{ns}')" if ns else "")
            self._resolver = pylsl.ContinuousResolver(pred=pred, forget_after=5.0)
        if self.truth_path is not None:
            self._truth_log = TruthLog(self.truth_path)
        self._t0 = self._clock()
        self._i = 0

    def step(self) -> None:
        now = self._clock()
        self._poll_markers(now)
        with self._lock:
            due = int(math.floor((now - self._t0) * self.rate)) + 1
            if self._down_until is not None:
                if now < self._down_until:
                    self._i = due  # the device sends nothing while disconnected
                else:
                    self._restore(now)
            if due > self._i:
                n = due - self._i
                samples, truth = self.model.generate(n)
                stamps = self._t0 + (self._i + np.arange(n)) / self.rate
                self.outlet.push_chunk(samples, stamps.tolist())
                if self._truth_log is not None:
                    self._truth_log.append(stamps, truth)
                self._i = due
                self.published += n
        wake = self._t0 + self._i / self.rate + self.chunk_s
        time.sleep(min(max(wake - self._clock(), 0.0), 0.05))

    def _restore(self, now: float) -> None:
        self.markers.push("device_restored", timestamp=now, device="tracker", serial=self.serial,
                          gap_s=round(now - self._down_since, 4), gap_start=self._down_since)
        log.warning("simulated tracker %s restored after %.1f s", self.serial, now - self._down_since)
        self._down_until = None

    def _poll_markers(self, now: float) -> None:
        if self._resolver is None:
            return
        import pylsl
        from eyemotion.acquisition.markers import parse_marker

        from eyemotion.streams import check_info

        if now >= self._next_scan:
            self._next_scan = now + 1.0
            for info in self._resolver.results():
                uid = info.source_id()
                if uid in self._inlets or uid == self.markers.outlet.get_info().source_id():
                    continue
                if check_info(MARKERS, info, check_desc=False):
                    continue
                self._inlets[uid] = pylsl.StreamInlet(info, max_buflen=60)
        for uid, inlet in list(self._inlets.items()):
            try:
                texts, _ = inlet.pull_chunk(timeout=0.0)
            except pylsl.util.LostError:
                del self._inlets[uid]
                continue
            for (text,) in texts:
                try:
                    self.handle_marker(parse_marker(text))
                except UserError as exc:
                    log.warning("ignored marker: %s", exc)

    def handle_marker(self, marker: dict) -> None:
        """React to one marker: clip_onset/clip_offset condition the model; simulate_disconnect drops."""
        event = marker["event"]
        if event == "clip_onset" and ("emotion" in marker or "arousal" in marker):
            emotion = marker.get("emotion")
            arousal = marker.get("arousal")
            self.set_condition(emotion if emotion in PROFILES else None,
                               float(arousal) if isinstance(arousal, (int, float)) else None)
            log.info("simulated tracker conditioned on %s", emotion)
        elif event == "clip_offset":
            self.set_condition(None)
        elif event == "calibration_point" and isinstance(marker.get("x"), (int, float)) \
                and isinstance(marker.get("y"), (int, float)):
            self.look_at((float(marker["x"]), float(marker["y"])))
        elif event in ("calibration", "validation") and marker.get("phase") in ("accepted", "end", "skipped"):
            self.look_at(None)
        elif event == "simulate_disconnect" and marker.get("serial", self.serial) == self.serial:
            self.disconnect(float(marker.get("seconds", 3.0)))

    def look_at(self, point: tuple[float, float] | None) -> None:
        """Make the simulated participant look at a display point (normalised, (0, 0) top left), as a real
        one follows calibration targets; None returns to free viewing (or to the mouse in mouse mode)."""
        with self._lock:
            if point is None:
                self.model.target = self._free_target
            else:
                self.model.target = lambda: point

    def truth(self) -> tuple[np.ndarray, GroundTruth]:
        """Timestamps and truth of every published sample so far (if a truth path was given)."""
        return self._truth_log.read() if self._truth_log is not None else (np.zeros(0), GroundTruth.empty())

    def close(self) -> None:
        if self._truth_log is not None:
            n = self._truth_log.close()
            self._truth_log = None
            log.info("ground truth of %d samples written to %s", n, self.truth_path)
        self._inlets.clear()
        self._resolver = None
        self.outlet = None
        self.markers = None
