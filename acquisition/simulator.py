"""The simulated eye tracker: seeded, realistic Tobii Pro Fusion gaze published exactly like TittaLSL.

`GazeModel` is a pure-numpy generator of `Tobii_gaze` samples (the 37 channels of
`eyemotion.streams.GAZE_RAW`, TittaLSL's layout) together with the per-sample ground truth.
`simulate_recording` generates a whole session offline; `SimulatedTracker` is the node that publishes
the same samples live over LSL at the tracker rate.

Viewing behaviour (one event after another; every random draw comes from one seeded generator)
------------------------------------------------------------------------------------------------
* Fixations: duration ~ gamma(shape 3) with a per-emotion mean (below), at least 60 ms. The eye is
  not still: a slow drift (a random walk, i.e. diffusion, so the same at any rate) whose RMS distance
  from the fixation's mean position is the per-emotion `jitter_deg` (0.02-0.05 deg) over a fixation of
  the emotion's mean duration. Tremor (< 0.01 deg) lies below the tracker's noise and is left out.
* Smooth pursuit (`pursuit_share`, default 10 % of viewing events, ~15 % of the time; 0 = static
  images): following a target that moves at 7-30 deg/s for 0.5-2 s, with a pursuit gain of 0.85-0.98
  and a slow velocity scatter (SD 0.5 deg/s), so the eye moves at ~6-30 deg/s and falls behind; when
  the position error exceeds 0.5-1.5 deg a catch-up saccade (main sequence, + PSO) lands where the
  target will be (Komogortsev & Karpov 2013 and Dar et al. 2021 give the classes; the numbers are the
  usual ranges of pursuit gain and velocity). Not in mouse mode or while following calibration targets.
* Saccades follow the main sequence of duration against amplitude, D = 21 ms + 2.2 ms/deg * A
  (Carpenter 1988, Movements of the Eyes, 2nd ed., ch. 4), with +-8 % scatter: ~28 ms at 3 deg,
  ~43 ms at 10 deg, ~65 ms at 20 deg (2-10 deg saccades last 25-45 ms; human coders of real data put
  them at 28-32 ms, issue 14). The trajectory is a minimum-jerk profile, whose peak velocity is
  1.875 A / D: ~150 deg/s at 2 deg, ~290 at 5, ~440 at 10 and ~580 at 20 deg, within the ranges of the
  peak-velocity main sequence (Bahill, Clark & Stark 1975, Math Biosci 24:191; Baloh et al. 1975,
  Neurology 25:1065). Amplitudes ~ gamma with a per-emotion mean; targets stay on the display. Sample
  k of the movement lies at (k+1)/rate after its onset and is labelled saccade until its PSO (below).
* Post-saccadic oscillation (PSO) after every saccade: one damped cycle along the saccade's direction,
  exp(-0.8u) sin(2 pi u) (1 - u^4) with u = (t - D) / T, T = 12-40 ms, peak displacement 0.15-0.5 deg
  whatever the saccade's size (at most a quarter of its amplitude). Its undershoot is half its overshoot,
  as measured on real data: after Zemblys et al. 2018's expert-coded PSOs (EyeLink, lookAtPoint_EL at
  1000 Hz, `inference.eyesignal.zemblys.pso_swings`) the eye swings back past its resting place by a median
  .50 of its overshoot (quartiles .22 and .98, 322 PSOs over 0.05 deg; their overshoot: median 0.32 deg).
  The factor 1 - u^4 brings the eye to rest at the cycle's end (a bare damped cycle would stop with its
  velocity at a step). The earlier exp(-3u) cycle undershot by .22. What pupil-CR trackers record after
  saccades is the pupil moving inside the iris (Nystrom & Holmqvist 2010, Behav Res Methods 42:188), and
  its amplitude does not grow with the saccade, it shrinks (Hooge, Nystrom, Cornelissen & Holmqvist 2015, Vision Res
  112:55 'The art of braking'), so a share of the amplitude (3-10 %, before) made the PSOs of small
  saccades vanish in the noise. It starts in the saccade's own direction (an overshoot).
  The overshoot's outward part belongs to the saccade and the PSO starts where it turns back
  (u = 0.23), as in Nystrom & Holmqvist 2010's definition: the saccade ends at the first velocity
  minimum after its peak and the glissade follows it; the eye does not stop at D (the overshoot leaves
  at full speed), so D itself is no event in the signal. In samples, the PSO label starts at the sampled
  overshoot's extreme (the sample farthest along the saccade, the one nearest the turn), where a human
  expert starts it: Zemblys et al. 2018's expert starts the PSO at that sample (median 0 ms, quartiles
  -3 and +1 ms, over 437 PSOs after saccades above 1 deg in lookAtPoint_EL at 1000 Hz), not at the first
  sample after the continuous turn, which at 60 Hz lies up to a whole sample later. The label lasts to
  D + T: 9-31 ms (each end on the sample grid), 2-9 samples at 250 Hz, 1-5 at 120 Hz, 1-3 at 60 Hz.
* Blinks: a Poisson process with a per-emotion rate (spontaneous blinking is 10-25 per minute).
  A full blink: the lid closes over 50-120 ms (samples still valid, but distorted: the measured gaze
  drops by up to 1.5-5 deg * closure^2, the measured pupil shrinks by 35 % * closure^2, closure =
  1 - openness / 11 mm), the eye is closed (gaze, pupil and gaze origin invalid, openness 0 mm) for
  75-425 ms, the blink durations that 002_cbeb04dbce786b8c.txt (Sec. III-A-3) treats as genuine
  blinks, and reopens over 80-150 ms (valid, distorted), from 2 mm (tracking resumes) to 11 mm. A quarter
  of the blinks are partial: the lid dips to 30-70 % closed and reopens, every sample valid. The whole
  lid event is labelled blink (as human coders mark it), so blinks last ~200-700 ms in the truth.
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
in front of it, with a slow, smooth head sway: per axis a critically damped oscillator driven by white noise
(time constant 1 s, SD 5 mm, velocity SD 5 mm/s), smooth because a head has mass. The eye keeps looking at the
gaze point, so the sway turns the gaze angle seen from the eye (gaze origin to gaze point, as the eye-signal
processor computes it) by under 0.01 deg from sample to sample. (A first-order OU sway, used before, jitters from
sample to sample, 0.26-0.53 mm at 250-60 Hz, and so did the angle: the precision the processor saw on fixations
was 0.051 / 0.061 / 0.077 deg RMS at 250 / 120 / 60 Hz instead of 0.04.) Normalised display coordinates have
(0, 0) at the top-left corner. Each eye's measured gaze point is the true one plus a fixed offset and white noise,
sized to the Tobii Pro Fusion's specification (Tobii Pro Fusion product description / user's manual,
Tobii AB, "Technical specifications": accuracy 0.3 deg and precision 0.04 deg RMS at optimal
conditions; the manual defines precision as the RMS of successive-sample differences and quotes more,
up to ~0.2 deg, for raw data and non-optimal conditions; the document itself could not be retrieved
here, these figures are as quoted in issue 14's brief). Offset: shared by both eyes plus 0.1 deg per
eye and axis, so the binocular offset averages 0.3 deg over participants. Noise: 0.04 / sqrt(2) deg per
eye and axis, so the binocular sample-to-sample RMS on fixations is 0.04 deg at every rate.
Invalid samples follow Tobii: values NaN, validity 0, availability 1. The 37th channel is the device
timestamp in seconds (its own clock: arbitrary origin, 20 ppm drift).

Ground truth (`GroundTruth`, one row per published sample; `.npz`/`.csv` columns timestamp + these)
-----------------------------------------------------------------------------------------------------
  event            eyemotion.streams.EVENT_CODES of the event the sample lies in: 1 fixation,
                   2 saccade, 5 PSO, 6 smooth pursuit (incl. the drift between catch-up saccades),
                   3 blink (the whole lid event: distorted-but-valid closing/opening samples, the
                   invalid closed samples, partial blinks with no invalid sample), 4 tracking loss.
                   Invalid gaze in the samples = loss, or blink with openness_mm == 0.
  pupil_mm         true binocular pupil (the measured one is smaller under a closing lid)
  x, y             true binocular gaze, normalised display coordinates (PSO and pursuit included, the
                   eyelid artefact not: it is a measurement error)
  eye_distance_mm, openness_mm (true lid opening, 0 = closed), luminance, arousal,
  emotion          index into eyemotion.streams.CLASSES, -1 = none

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

FIX, SAC, BLINK, LOSS, PSO, PURSUIT = (EVENT_CODES[k] for k in
                                       ("fixation", "saccade", "blink", "loss", "pso", "pursuit"))
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
SACC_D0_S, SACC_SLOPE_S_PER_DEG, MIN_JERK_PEAK = 0.021, 0.0022, 1.875  # duration main sequence
BLINK_MIN_S, BLINK_MAX_S = 0.075, 0.425
LID_CLOSE_S, LID_OPEN_S = (0.05, 0.12), (0.08, 0.15)  # tracked, distorted lid phases around the closure
LID_LOST_MM = 2.0  # eye openness at which the tracker loses the pupil
LID_DROOP_DEG, LID_PUPIL_LOSS = (1.5, 5.0), 0.35  # gaze artefact at full closure, pupil shrink factor
PARTIAL_BLINK_SHARE, PARTIAL_DEPTH = 0.25, (0.3, 0.7)  # share of blinks that only dip the lid, how far
OPENNESS_MM = 11.0
PSO_S, PSO_DEG, PSO_MAX_FRACTION = (0.012, 0.040), (0.15, 0.5), 0.25  # duration, peak displacement, its cap
PSO_DAMPING, PSO_TAPER = 0.8, 4  # the cycle's undershoot is half its overshoot; it comes to rest at its end


def pso_wave(u: np.ndarray) -> np.ndarray:
    """The PSO's displacement along the saccade over its phase u in [0, 1] (module docstring)."""
    return np.exp(-PSO_DAMPING * u) * np.sin(2 * np.pi * u) * (1 - u**PSO_TAPER)


_PHASE = np.linspace(0.0, 0.5, 50001)
PSO_TURN = float(_PHASE[np.argmax(pso_wave(_PHASE))])  # u = 0.229 at the overshoot's extreme
PSO_PEAK = float(pso_wave(_PHASE).max())
PURSUIT_SHARE = 0.1  # share of viewing events that follow a moving target (free viewing of video)
PURSUIT_S, PURSUIT_TARGET_DEG_S, PURSUIT_GAIN = (0.5, 2.0), (7.0, 30.0), (0.85, 0.98)
PURSUIT_WOBBLE, CATCH_UP_DEG = 0.5, (0.5, 1.5)  # eye-velocity scatter SD (deg/s), position error at catch-up
ACCURACY_DEG, PRECISION_RMS_DEG = 0.3, 0.04  # Tobii Pro Fusion specification (module docstring)
NOISE_SD_DEG = PRECISION_RMS_DEG / math.sqrt(2)  # per eye and axis: binocular RMS-S2S = sqrt(2) * this
BIAS_EYE_SD_DEG = 0.1  # per eye and axis
BIAS_COMMON_SD_DEG = math.sqrt((ACCURACY_DEG / math.sqrt(math.pi / 2)) ** 2 - BIAS_EYE_SD_DEG**2 / 2)
HEAD_SWAY_MM, HEAD_SWAY_S = 5.0, 1.0  # head sway SD per axis, its time constant (velocity SD 5 mm/s)
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
    droop: np.ndarray  # eyelid artefact: the measured gaze lies this far (deg) below the true one
    pupil_scale: np.ndarray  # eyelid artefact: measured / true pupil diameter

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
        return _Segment(np.zeros(0, int), *(np.zeros(0) for _ in _SEGMENT_FIELDS[1:]))


_SEGMENT_FIELDS = ("event", "ax", "ay", "openness", "droop", "pupil_scale")


def check_frequency(rate: float) -> float:
    if float(rate) not in FUSION_FREQUENCIES:
        raise UserError(f"the simulated {MODEL} cannot run at {rate:g} Hz; "
                        f"set [tracker] frequency to one of {', '.join(f'{f:g}' for f in FUSION_FREQUENCIES)}")
    return float(rate)


class GazeModel:
    """Seeded, pure-numpy generator of TittaLSL Tobii_gaze samples (no LSL)."""

    def __init__(self, screen: ScreenConfig, rate: float, seed: int = 0, *,
                 loss_per_min: float = 0.3, target: Callable[[], tuple[float, float]] | None = None,
                 device_clock_origin_s: float | None = None, pursuit_share: float = PURSUIT_SHARE) -> None:
        """`target` (mouse mode) returns the normalised point each new fixation lands on; `pursuit_share` is
        the share of viewing events spent following a moving target (0 for static images)."""
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
        self.pursuit_share = pursuit_share
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
        self._head, self._head_v = np.zeros(3), np.zeros(3)  # position (mm), velocity (mm/s)
        # accuracy: a calibration offset shared by both eyes plus a smaller one per eye (deg, x/y)
        self._eye_bias = self.rng.normal(0.0, BIAS_COMMON_SD_DEG, size=2) \
            + self.rng.normal(0.0, BIAS_EYE_SD_DEG, size=(2, 2))
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
        return max(1, round(seconds * self.rate))

    def _extend(self) -> None:
        """Append one event (fixation or pursuit, then maybe a blink or loss, then a saccade + PSO)."""
        pursue = self.target is None and self.rng.uniform() < self.pursuit_share
        parts = [self._pursuit() if pursue else self._fixation()]
        elapsed = len(parts[0].event) * self.dt
        self._to_blink -= elapsed
        self._to_loss -= elapsed
        if self._to_loss <= 0:
            parts.append(self._loss())
            self._to_loss = self._draw_loss_wait()
        elif self._to_blink <= 0:
            parts.append(self._blink(partial=self.rng.uniform() < PARTIAL_BLINK_SHARE))
            self._to_blink = self._draw_blink_wait()
        parts.append(self._saccade())
        self._pending = _Segment.join([self._pending, *parts])

    def _steady(self, event: int, n: int) -> _Segment:
        """n samples of `event` with the eye at its current position, lids open."""
        return _Segment(np.full(n, event), np.full(n, self._ax), np.full(n, self._ay),
                        OPENNESS_MM + self.rng.normal(0, 0.15, n), np.zeros(n), np.ones(n))

    def _fixation(self) -> _Segment:
        prof = self._profile
        dur = max(0.06, self.rng.gamma(3.0, prof.fixation_ms / 1000 / 3.0))
        n = self._samples(dur)
        # drift: a random walk (diffusion, the same at any rate) whose RMS distance from its mean position over a
        # fixation of the emotion's mean duration is jitter_deg (a Brownian path's variance about its mean is 1/6
        # of its end variance, per axis: 2 * 3 * sigma_end^2 / 6 = jitter^2 for sigma_end^2 = 3 jitter^2 / 2)
        step_sd = prof.jitter_deg * math.sqrt(1.5 * self.dt / (prof.fixation_ms / 1000))
        steps = self.rng.normal(0, step_sd, size=(n, 2))
        drift = np.cumsum(steps, axis=0)
        seg = self._steady(FIX, n)
        seg.ax, seg.ay = self._ax + drift[:, 0], self._ay + drift[:, 1]
        self._ax, self._ay = self._clamp(self._ax + drift[-1, 0], self._ay + drift[-1, 1])
        return seg

    def _pursuit(self) -> _Segment:
        """Following a moving target: gain < 1, so the eye falls behind and catch-up saccades close the gap."""
        dur = self.rng.uniform(*PURSUIT_S)
        speed = self.rng.uniform(*PURSUIT_TARGET_DEG_S)
        for _ in range(20):  # a direction that keeps the target on the display
            ang = self.rng.uniform(0, 2 * math.pi)
            vx, vy = speed * math.cos(ang), speed * math.sin(ang)
            if abs(self._ax + vx * dur) < self._half_w * 0.9 and abs(self._ay + vy * dur) < self._half_h * 0.9:
                break
        else:
            return self._fixation()
        gain = self.rng.uniform(*PURSUIT_GAIN)
        wobble = self.rng.normal(0, PURSUIT_WOBBLE, 2)  # slow velocity variation (deg/s), one per episode
        px, py = self._ax, self._ay  # the target, starting where the eye looks
        n_left = self._samples(dur)
        parts: list[_Segment] = []
        while n_left > 0:
            k = np.arange(1, n_left + 1) * self.dt
            ex, ey = self._ax + (gain * vx + wobble[0]) * k, self._ay + (gain * vy + wobble[1]) * k
            err = np.hypot(px + vx * k - ex, py + vy * k - ey)
            over = np.flatnonzero(err > self.rng.uniform(*CATCH_UP_DEG))
            m = int(over[0]) + 1 if len(over) else n_left
            seg = self._steady(PURSUIT, m)
            seg.ax, seg.ay = ex[:m], ey[:m]
            parts.append(seg)
            self._ax, self._ay, px, py = float(ex[m - 1]), float(ey[m - 1]), px + vx * k[m - 1], py + vy * k[m - 1]
            n_left -= m
            if n_left > 0:  # catch-up saccade to where the target will be when it lands (+ its PSO)
                lead = self._duration(err[m - 1], draw=False)
                sac = self._saccade_to(px + vx * lead, py + vy * lead)
                parts.append(sac)
                px, py = px + vx * len(sac) * self.dt, py + vy * len(sac) * self.dt
                n_left -= len(sac)
        self._ax, self._ay = self._clamp(self._ax, self._ay)
        return _Segment.join(parts)

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
        if math.hypot(tx - self._ax, ty - self._ay) < 0.3:  # no saccade needed (mouse mode: pointer still)
            return _Segment.none()
        return self._saccade_to(tx, ty)

    def _duration(self, amp: float, draw: bool = True) -> float:
        """Main-sequence saccade duration (s) of an amplitude (deg), with its +-8 % scatter when `draw`."""
        return (SACC_D0_S + SACC_SLOPE_S_PER_DEG * amp) * (self.rng.uniform(0.92, 1.08) if draw else 1.0)

    def _saccade_to(self, tx: float, ty: float) -> _Segment:
        """A minimum-jerk saccade to (tx, ty), then its post-saccadic oscillation, sampled at (k+1)/rate:
        a sample is labelled saccade while the eye is in flight, PSO from the sampled overshoot's extreme."""
        dx, dy = tx - self._ax, ty - self._ay
        amp = math.hypot(dx, dy)
        dur = self._duration(amp)
        pso_s = self.rng.uniform(*PSO_S)
        pso_amp = min(self.rng.uniform(*PSO_DEG), PSO_MAX_FRACTION * amp)
        t = (np.arange(max(1, math.floor((dur + pso_s) * self.rate))) + 1) * self.dt
        s = np.clip(t / dur, 0, 1)
        path = 10 * s**3 - 15 * s**4 + 6 * s**5
        u = np.clip((t - dur) / pso_s, 0, 1)  # PSO phase: one damped cycle, zero at its start and its end
        wobble = pso_amp / amp * pso_wave(u) / PSO_PEAK * (t > dur)
        seg = self._steady(SAC, len(t))
        seg.event[int(np.argmax(path + wobble)):] = PSO  # from the sampled overshoot's extreme (module docstring)
        seg.ax, seg.ay = self._ax + dx * (path + wobble), self._ay + dy * (path + wobble)
        self._ax, self._ay = tx, ty
        return seg

    def _blink(self, partial: bool = False) -> _Segment:
        """The whole eyelid event, labelled blink: the lid closing (tracked, distorted), closed (invalid,
        full blinks only) and reopening (tracked, distorted). A partial blink only dips the lid."""
        n_close = self._samples(self.rng.uniform(*LID_CLOSE_S))
        n_open = self._samples(self.rng.uniform(*LID_OPEN_S))
        if partial:
            closed, edge = 0, OPENNESS_MM * (1 - self.rng.uniform(*PARTIAL_DEPTH))
        else:
            closed = self._samples(self.rng.uniform(BLINK_MIN_S, BLINK_MAX_S))
            closed = min(max(closed, math.ceil(BLINK_MIN_S * self.rate)), int(BLINK_MAX_S * self.rate))
            edge = LID_LOST_MM

        def ease(n: int) -> np.ndarray:  # 0 -> 1 over n samples, cosine shaped (the lid accelerates, brakes)
            return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 1) / (n + 1))

        openness = np.concatenate([OPENNESS_MM - (OPENNESS_MM - edge) * ease(n_close), np.zeros(closed),
                                   edge + (OPENNESS_MM - edge) * ease(n_open)])
        seg = self._steady(BLINK, len(openness))
        seg.openness = openness
        closure = np.clip(1 - openness / OPENNESS_MM, 0, 1)
        seg.droop = self.rng.uniform(*LID_DROOP_DEG) * closure**2
        seg.pupil_scale = 1 - LID_PUPIL_LOSS * closure**2
        return seg

    def _loss(self) -> _Segment:
        seg = self._steady(LOSS, self._samples(self.rng.uniform(0.4, 2.0)))
        seg.openness = np.full(len(seg), OPENNESS_MM)
        return seg

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
        """Cyclopean eye position (n, 3) in UCS mm: a smooth sway around the nominal position, a critically damped
        oscillator driven by white noise (module docstring), stepped semi-implicitly."""
        w, dt = 1.0 / HEAD_SWAY_S, self.dt
        drive = self._rng_head.normal(0, HEAD_SWAY_MM * 2 * math.sqrt(w**3 * dt), size=(n, 3))
        out = np.empty((n, 3))
        h, v = self._head, self._head_v
        for i in range(n):
            v = v + (-w * w * h - 2 * w * v) * dt + drive[i]
            h = h + v * dt
            out[i] = h
        self._head, self._head_v = h, v
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
        seen_y = 0.5 + sc.distance_mm * np.tan(np.radians(seg.ay + seg.droop)) / H  # the lid's artefact
        out = np.full((n, GAZE_RAW.channel_count), np.nan)
        valid_gaze = (seg.event != LOSS) & ~((seg.event == BLINK) & (seg.openness <= 0))  # lid closed: no pupil
        valid_open = seg.event != LOSS
        # sensor noise: one draw of (n, 8) per call keeps the stream independent of chunking
        sensor = self._rng_noise.standard_normal(size=(n, 8))
        for e, sign in ((0, -1.0), (1, 1.0)):
            base = 18 * e
            eye = head + np.array([sign * IPD_MM / 2, 0.0, 0.0])
            noise = NOISE_SD_DEG * sensor[:, 4 * e:4 * e + 2] + self._eye_bias[e]
            dist = np.sqrt((eye[:, 2]) ** 2 + (gx - eye[:, 0]) ** 2)
            mx = true_x + np.tan(np.radians(noise[:, 0])) * dist / W
            my = seen_y + np.tan(np.radians(noise[:, 1])) * dist / H
            ucs_x = -W / 2 + mx * W
            ucs_y = TRACKER_GAP_MM + (1 - my) * H
            diam = (pupil + (0.05 if e else 0.0)) * seg.pupil_scale + 0.01 * sensor[:, 4 * e + 2]
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
                       pursuit_share: float = PURSUIT_SHARE) -> tuple[np.ndarray, np.ndarray, GroundTruth]:
    """A whole simulated session offline: (timestamps_s, samples (n, 37), truth).

    `conditions` is a list of (start_s, emotion) switching the condition at those times (sorted).
    Timestamps start at 0 and are exactly 1/rate apart (Tobii system time of a perfect tracker).
    `pursuit_share` = 0 simulates static-image viewing (no smooth pursuit).
    """
    model = GazeModel(screen or ScreenConfig(), rate, seed, pursuit_share=pursuit_share)
    n_total = round(duration_s * rate)
    switches = sorted(conditions or [], key=lambda c: c[0])
    bounds = [round(t * rate) for t, _ in switches] + [n_total]
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
        self.model = GazeModel(self.config.screen, self.rate, self.seed, loss_per_min=self.config.simulator.loss_per_min,
                               target=target, pursuit_share=self.config.simulator.pursuit_share)
        info = stream_info(GAZE_RAW, namespace=ns, rate=self.rate, device=self.serial,
                           acquisition=self.acquisition(),
                           extra={"simulated": "true", "seed": str(self.seed), "mode": self.config.simulator.mode})
        chunk = max(1, round(self.chunk_s * self.rate))
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
            due = math.floor((now - self._t0) * self.rate) + 1
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
