"""The 103 windowed gaze statistics of 000_e9deb5c9c21c243c.txt (Sec. 3.5.1, Table 1), from eyemotion_gaze.

The paper computes 9 base signals per video frame from OpenFace (4 numerical: gaze angle x/y, pupil
diameter, blink intensity; 5 binary: pupil dilation, pupil constriction, gaze approach, eyes closed, gaze
fixation), adds deltas, and applies Table 1's functionals on 1-s windows. We build the same base signals
per eye-tracker sample from `eyemotion_gaze` (channels read by label, `GAZE_CLEAN.index(...)`):

==========================  ====================================================================
base signal                 from eyemotion_gaze (Tobii Pro Fusion, cleaned by inference.eyesignal)
==========================  ====================================================================
gaze_angle_x / _y           `angle_x` / `angle_y` (binocular gaze direction, deg) in radians, as
                            OpenFace's gaze_angle (both eyes averaged).
delta_gaze_angle_x / _y     change over one video frame, per second (rad/s). SUBSTITUTION: the paper's
                            delta is per OpenFace video frame (29 fps, OMG; Sec. 4.2), so per sample
                            it would scale with the tracker's rate (60/120/250 Hz). We take x(t) -
                            x(t - one frame), one frame = k = round(rate / 29) samples, divided by the
                            time between the two samples: the same signal and, for the same sample
                            noise, the same noise at every rate.
pupil_diameter_mm           `pupil` (mm, blinks interpolated). The tracker measures mm directly; the
                            paper's OpenFace value is an estimate from the left-eye landmarks.
delta_pupil_diameter_mm     the same change over one frame, per second (mm/s); SUBSTITUTION as above.
eye_blink_intensity         OpenFace AU45 intensity (0-5), from the lids as the camera sees them:
                            5 * clip(1 - eye_openness / eye_open_mm, 0, 1); 5 when `validity` has the
                            eyes_closed bit, or in a blink (`event` = blink) whose openness is unknown;
                            NaN if openness is unknown outside blinks. So a blink's closing and opening
                            lid and a partial blink (whole-lid blinks, issue 14) rise and fall as AU45
                            does, rather than jumping to 5 for every sample labelled blink.
pupil_dilation /            1 when the pupil's frame-to-frame change (mean of the last k samples minus
pupil_constriction          the mean of the k before, per second of the frames' mean times) is
                            > +threshold / < -threshold (mm/s), else 0. Averaging over a frame, like a
                            camera's exposure, keeps sample noise from flipping these states at a rate
                            that grows with the sampling rate (as single-sample deltas would). SUBSTITUTION:
                            the paper's sign of the per-frame change (threshold 0) turns measurement
                            noise into half the time "dilating"; the default 1.0 mm/s lies above the
                            noise floor (the frame-to-frame change's SD on the simulator's fixations
                            at constant light, after inference.eyesignal: 0.45/0.42/0.38 mm/s at
                            60/120/250 Hz, from 0.01 mm pupil noise per eye and the pupil's slow
                            drift; ~1.5 % of the time each above it; tests/test_features_gaze.py)
                            and below light-reflex speeds (2-5 mm/s).
gaze_approach               1 when `eye_distance` (eye-to-display depth) decreases from frame to frame,
                            i.e. the head moves towards the screen, else 0. SUBSTITUTION: 000 (Sec.
                            3.5.1) counts "derivative of the eye landmarks' depth above zero" as
                            approach; on OpenFace's camera depth that is moving away, so we follow
                            what the name means (towards the screen/camera), as issue 14 asks.
eyes_closed                 1 when eye_blink_intensity >= 2.5 (lids at least half closed, or hidden).
gaze_fixation               1 when `event` = fixation, else 0. Only fixations: a post-saccadic
                            oscillation (PSO) or smooth pursuit (inference.eyesignal's classes 5 and 6)
                            is neither a fixation here nor the end of one's run being merged (a
                            fixation run is cut by them, as by a saccade); Table 1 has no saccade row,
                            so PSOs are never counted as saccades.
==========================  ====================================================================

The deltas are the same quantity at any rate (tests/test_features_gaze.py: the same signal at 60, 120
and 250 Hz gives the same features within a tolerance). A sample is invalid (all its base signals NaN)
when `event` is loss, or the gaze angles are missing while the eyes are open (neither a blink nor the
eyes_closed bit of `validity`, GAZE_VALIDITY_BITS). Deltas carry the last 2k - 1 samples across chunks,
so the first samples of a stream have none, a frame with an invalid sample has none, and neither has a
delta across a hole (more than 1.5 frame times). Functionals (per window, on the finite values):
quartiles by linear interpolation (`numpy.percentile`), population std, IQR a-b = quartile b - quartile
a (quartile 2 = median), LR = least-squares line of value against time (s) from the window start
(intercept at the window start, slope per second). Binary signals: time ratio = share of valid samples
at 1; durations (s) = lengths of the runs of 1 inside the window (a run cut by the window edge counts
up to the edge), each sample counting 1/rate; with no run all durations are 0.
A window with fewer valid samples than `min_valid_fraction` of its nominal count gives NaN + valid=0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from eyemotion.config import FeaturesConfig
from eyemotion.streams import EVENT_CODES, GAZE_CLEAN, GAZE_VALIDITY_BITS

from .windows import FeatureWindows, SlidingBuffer

log = logging.getLogger(__name__)

NUMERIC_SIGNALS = ("gaze_angle_x", "gaze_angle_y", "delta_gaze_angle_x", "delta_gaze_angle_y",
                   "pupil_diameter_mm", "delta_pupil_diameter_mm", "eye_blink_intensity")
BINARY_SIGNALS = ("pupil_dilation", "pupil_constriction", "gaze_approach", "eyes_closed", "gaze_fixation")
BASE_SIGNALS = NUMERIC_SIGNALS + BINARY_SIGNALS
_VALIDITY_COLUMN = BASE_SIGNALS.index("gaze_fixation")  # finite exactly on valid samples

_ALL_NUMERIC = ("min", "max", "mean", "median", "q1", "q3", "std", "iqr12", "iqr23", "iqr13",
                "lr_intercept", "lr_slope")

#: Table 1 of 000_e9deb5c9c21c243c.txt, row by row: (base signals, functionals).
TABLE_1: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("gaze_angle_x", "gaze_angle_y", "delta_gaze_angle_x", "delta_gaze_angle_y", "pupil_diameter_mm"),
     _ALL_NUMERIC),  # 60
    (("delta_pupil_diameter_mm",),
     ("min", "max", "mean", "q1", "q3", "std", "iqr12", "iqr23", "iqr13", "lr_intercept", "lr_slope")),  # 11
    (("eye_blink_intensity",),
     ("max", "mean", "median", "q3", "std", "iqr12", "iqr23", "iqr13", "lr_intercept", "lr_slope")),  # 10
    (("pupil_dilation", "pupil_constriction"), ("time_ratio", "mean_time", "max_time", "total_time")),  # 8
    (("gaze_approach",), ("time_ratio", "mean_time", "max_time", "median_time")),  # 4
    (("eyes_closed", "gaze_fixation"), ("time_ratio", "min_time", "max_time", "mean_time", "median_time")),  # 10
)

#: The 103 features in order, as (base signal, functional).
FEATURES: tuple[tuple[str, str], ...] = tuple((b, f) for bases, fns in TABLE_1 for b in bases for f in fns)
FEATURE_NAMES: tuple[str, ...] = tuple(f"{b}.{f}" for b, f in FEATURES)
N_FEATURES = 103
assert len(FEATURE_NAMES) == N_FEATURES

_BLINK = EVENT_CODES["blink"]
_FIXATION = EVENT_CODES["fixation"]
_LOSS = EVENT_CODES["loss"]
_CLOSED_BIT = GAZE_VALIDITY_BITS["eyes_closed"]

#: 000's deltas are per video frame of the OMG data (29 fps, 000_e9deb5c9c21c243c.txt Sec. 4.2).
FRAME_S = 1.0 / 29.0


def frame_lag(rate: float) -> int:
    """Samples per "frame" at `rate`: the whole number of samples closest to one video frame."""
    return max(1, round(rate * FRAME_S))


def frame_deltas(values: np.ndarray, times: np.ndarray, k: int, max_dt: float) -> tuple[np.ndarray, np.ndarray]:
    """For each row from row 2k - 1 on, per second: (change over one frame of k samples, change between the
    means of the last two k-sample frames); NaN across a hole longer than `max_dt`."""
    def per_second(now: np.ndarray, before: np.ndarray, t_now: np.ndarray, t_before: np.ndarray) -> np.ndarray:
        span = t_now - t_before
        with np.errstate(invalid="ignore"):
            span[~((span > 0) & (span <= max_dt))] = np.nan
            return (now - before) / span[:, None]

    def frame_means(x: np.ndarray) -> np.ndarray:
        return np.lib.stride_tricks.sliding_window_view(x, k, axis=0).mean(axis=-1)

    means, centres = frame_means(values), frame_means(times)
    lagged = per_second(values[2 * k - 1:], values[k - 1:len(values) - k], times[2 * k - 1:], times[k - 1:len(times) - k])
    return lagged, per_second(means[k:], means[:-k], centres[k:], centres[:-k])


def numeric_functionals(values: np.ndarray, times: np.ndarray) -> dict[str, float]:
    """Table 1's numeric functionals of the finite `values` (times in s from the window start)."""
    ok = np.isfinite(values)
    v, t = values[ok], times[ok]
    if len(v) < 2:
        return dict.fromkeys(_ALL_NUMERIC, np.nan)
    q1, med, q3 = np.percentile(v, (25, 50, 75))
    mean = float(v.mean())
    tc = t - t.mean()
    var_t = float(tc @ tc)
    slope = float(tc @ (v - mean)) / var_t if var_t > 0 else np.nan
    return {
        "min": float(v.min()), "max": float(v.max()), "mean": mean, "median": float(med),
        "q1": float(q1), "q3": float(q3), "std": float(v.std()),
        "iqr12": float(med - q1), "iqr23": float(q3 - med), "iqr13": float(q3 - q1),
        "lr_intercept": mean - slope * float(t.mean()), "lr_slope": slope,
    }


def run_lengths(binary: np.ndarray) -> np.ndarray:
    """Lengths (in samples) of the runs of 1 in a 0/1/NaN array; NaN ends a run."""
    on = np.concatenate([[0], (binary == 1).astype(np.int8), [0]])
    edges = np.diff(on)
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def binary_functionals(binary: np.ndarray, sample_s: float) -> dict[str, float]:
    """Time ratio and run durations (s) of a 0/1/NaN signal; NaN when it has no valid sample."""
    valid = np.isfinite(binary)
    if not valid.any():
        return dict.fromkeys(("time_ratio", "min_time", "max_time", "mean_time", "median_time", "total_time"),
                             np.nan)
    durations = run_lengths(binary) * sample_s
    if len(durations) == 0:
        durations = np.zeros(1)
    return {
        "time_ratio": float(binary[valid].mean()),
        "min_time": float(durations.min()), "max_time": float(durations.max()),
        "mean_time": float(durations.mean()), "median_time": float(np.median(durations)),
        "total_time": float(durations.sum()),
    }


class BaseSignals:
    """eyemotion_gaze samples -> the 12 base-signal columns (BASE_SIGNALS), streaming (see module doc)."""

    def __init__(self, rate: float, *, eye_open_mm: float = 11.0, pupil_change_threshold_mm_s: float = 1.0,
                 labels: list[str] | None = None) -> None:
        labels = labels or GAZE_CLEAN.labels
        self._col = {name: labels.index(name) for name in
                     ("angle_x", "angle_y", "pupil", "event", "eye_openness", "eye_distance", "validity")}
        self.eye_open_mm = eye_open_mm
        self.threshold = pupil_change_threshold_mm_s
        self.frame = frame_lag(rate)
        self._max_dt = 1.5 * self.frame / rate  # frames further apart span a hole: no delta
        # the last 2k - 1 samples: angle_x, angle_y, pupil, eye_distance (rad, rad, mm, mm) and their times
        self._prev = np.full((2 * self.frame - 1, 4), np.nan)
        self._prev_t = np.full(2 * self.frame - 1, np.nan)

    def push(self, samples: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, float)
        timestamps = np.asarray(timestamps, float)
        c = self._col
        event = samples[:, c["event"]]
        gx, gy = np.deg2rad(samples[:, c["angle_x"]]), np.deg2rad(samples[:, c["angle_y"]])
        pupil, distance = samples[:, c["pupil"]], samples[:, c["eye_distance"]]
        validity = np.nan_to_num(samples[:, c["validity"]]).astype(np.int64)
        blink = (event == _BLINK) | ((validity & _CLOSED_BIT) != 0)
        valid = (event != _LOSS) & ((np.isfinite(gx) & np.isfinite(gy)) | blink)
        current = np.column_stack([gx, gy, pupil, distance])
        current[~valid] = np.nan
        history, history_t = np.vstack([self._prev, current]), np.concatenate([self._prev_t, timestamps])
        keep = len(self._prev_t)
        self._prev, self._prev_t = history[-keep:].copy(), history_t[-keep:].copy()
        delta, frame_delta = frame_deltas(history, history_t, self.frame, self._max_dt)  # one row per sample
        openness = samples[:, c["eye_openness"]]
        hidden = ((validity & _CLOSED_BIT) != 0) | ((event == _BLINK) & ~np.isfinite(openness))
        intensity = np.where(hidden, 5.0, 5.0 * np.clip(1.0 - openness / self.eye_open_mm, 0.0, 1.0))
        intensity[~valid] = np.nan

        def binary(condition: np.ndarray, defined: np.ndarray) -> np.ndarray:
            return np.where(defined & valid, condition.astype(float), np.nan)

        with np.errstate(invalid="ignore"):
            d_pupil, d_distance = frame_delta[:, 2], frame_delta[:, 3]
            out = np.column_stack([
                current[:, 0], current[:, 1], delta[:, 0], delta[:, 1], current[:, 2], delta[:, 2], intensity,
                binary(d_pupil > self.threshold, np.isfinite(d_pupil)),
                binary(d_pupil < -self.threshold, np.isfinite(d_pupil)),
                binary(d_distance < 0, np.isfinite(d_distance)),  # towards the screen
                binary(intensity >= 2.5, np.isfinite(intensity)),
                binary(event == _FIXATION, np.ones(len(event), bool)),
            ])
        return out


def window_features(times: np.ndarray, base: np.ndarray, window_start: float, rate: float) -> np.ndarray:
    """The 103 features of one window of base signals (times in LSL s)."""
    t = times - window_start
    stats: dict[str, dict[str, float]] = {}
    for i, name in enumerate(BASE_SIGNALS):
        col = base[:, i]
        stats[name] = numeric_functionals(col, t) if name in NUMERIC_SIGNALS else binary_functionals(col, 1 / rate)
    return np.array([stats[b][f] for b, f in FEATURES])


@dataclass(frozen=True)
class GazeStatsSettings:
    rate: float  # the eyemotion_gaze nominal rate (Hz)
    window_s: float = 1.0
    hop_s: float = 0.1
    min_valid_fraction: float = 0.5
    eye_open_mm: float = 11.0
    pupil_change_threshold_mm_s: float = 1.0

    @classmethod
    def from_config(cls, cfg: FeaturesConfig, rate: float) -> GazeStatsSettings:
        return cls(rate, cfg.gaze_window_s, cfg.gaze_hop_s, cfg.gaze_min_valid_fraction, cfg.eye_open_mm,
                   cfg.pupil_change_threshold_mm_s)


class GazeStatistics:
    """Streaming extractor: push eyemotion_gaze chunks, get the 103 statistics of each completed window."""

    names = FEATURE_NAMES

    def __init__(self, settings: GazeStatsSettings, labels: list[str] | None = None) -> None:
        if settings.rate <= 0:
            raise ValueError("gaze statistics need the stream's positive nominal rate")
        self.settings = settings
        self._base = BaseSignals(settings.rate, eye_open_mm=settings.eye_open_mm,
                                 pupil_change_threshold_mm_s=settings.pupil_change_threshold_mm_s, labels=labels)
        self._buffer = SlidingBuffer(settings.window_s, settings.hop_s, len(BASE_SIGNALS))
        self._min_valid = max(2, int(np.ceil(settings.min_valid_fraction * settings.window_s * settings.rate)))

    def push(self, timestamps: np.ndarray, samples: np.ndarray) -> FeatureWindows:
        samples = np.asarray(samples, float)
        if samples.ndim != 2 or len(samples) != len(timestamps):
            raise ValueError(f"expected (n, channels) samples for {len(timestamps)} timestamps, "
                             f"got shape {samples.shape}")
        base = self._base.push(samples, timestamps)
        ends, rows, valid = [], [], []
        for end, times, window in self._buffer.push(timestamps, base):
            ok = int(np.isfinite(window[:, _VALIDITY_COLUMN]).sum()) >= self._min_valid
            ends.append(end)
            valid.append(ok)
            rows.append(window_features(times, window, end - self.settings.window_s, self.settings.rate)
                        if ok else np.full(N_FEATURES, np.nan))
        if not ends:
            return FeatureWindows.empty(self.names)
        return FeatureWindows(self.names, np.array(ends), np.vstack(rows), np.array(valid))


def gaze_statistics(timestamps: np.ndarray, samples: np.ndarray, settings: GazeStatsSettings,
                    labels: list[str] | None = None) -> FeatureWindows:
    """Offline: the same streaming object on a whole recording."""
    return GazeStatistics(settings, labels).push(timestamps, samples)
