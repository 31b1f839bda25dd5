"""The streaming eye-signal processor: `Tobii_gaze` chunks in, `eyemotion_gaze` chunks out.

No library offers these steps online (pymovements, for instance, works on whole recordings), so the
streaming core is written here: this module buffers and cuts the stream, and `stages` holds the computation
as loops compiled by numba. `EyeSignalProcessor.push(timestamps, samples)` accepts any
chunk of raw samples and returns every output sample that has become final; each output sample leaves
exactly `delay_samples` accepted input samples after its own (a FIXED delay, also in `delay_s`), and
`flush()` returns the rest at the end of a stream. Offline processing is `process_recording`, which
calls the same object on the whole array, so the output is bit-identical however the input is chunked.

How the fixed delay and the chunk invariance are obtained: every output sample depends only on the
inputs within `history` samples before and `lookahead` samples after it (the bounds are derived from the
parameters in `Timing`), plus a few causal running states (last gaze origin, pupil MAD thresholds per
block, timestamps). Each computation runs the whole pipeline (`stages.run_window`) on a window of the
buffered input that covers that context and keeps only the samples whose context it saw completely; every
value is computed from the samples it reads in a fixed order, so it is identical whatever the window. With
`compute_block_ms` > 0 the node computes only every block (the block is added to the delay), which buys
throughput.

Pipeline (parameters in `eyemotion.config.EyesignalConfig`, Tobii I-VT defaults):
1. Binocular combination: per eye, a value is used when the tracker marks it valid and it is finite,
   on (or near) the display and a plausible pupil; both eyes are averaged, else the one valid eye is
   used, and the validity bits say which. Eyes closed by eye openness count as invalid.
2. Gaps and blinks (002_cbeb04dbce786b8c.txt, Sec. III-A-3): invalid runs shorter than 75 ms are
   gaps, 75-425 ms blinks, longer runs tracking loss. Runs of 75 ms or more are padded by a margin
   (pupil size is distorted around a blink; Kret & Sjak-Shie 2019). Each bad region up to
   blink + 2 margins long is filled by linear interpolation between its valid neighbours (gaze, eye
   position, pupil); longer regions (losses) stay NaN except for their valid margin samples.
3. Geometry: display coordinates -> gaze direction from the eye (gaze origin, else the last one seen,
   else `screen.distance_mm` in front of the display centre) -> angles and unit vectors; velocity by
   Savitzky-Golay differentiation of the angles (Nystrom & Holmqvist 2010).
4. Events (issue 14): saccades from the adaptive peak threshold (Nystrom & Holmqvist 2010, a causal
   per-block state like the pupil thresholds; `adaptive_threshold = false`: Tobii I-VT's fixed 30 deg/s)
   with onsets/offsets walked to local minima, a PSO after each saccade, smooth pursuit from the slow
   velocity between saccades (steady, for `pursuit_min_ms` or more), whole blinks (the eyelid-distorted
   samples around 002's invalid run, eye-openness dips, and gaps inside an eyelid artefact where the gaze
   swings away and back) and losses;
   the rest is fixation. Then Tobii I-VT: a saccade (+ PSO) run of at most `merge_max_gap_ms` between two
   fixation runs is merged into them when the fixations' mean positions (over up to `merge_position_ms`
   next to the gap, a bounded stand-in for Tobii's whole-fixation average) are less than 3 SDs of their
   samples' spread apart (`merge_noise_sd`; Tobii's fixed `merge_max_angle_deg` with 0); fixations shorter
   than `min_fixation_ms` become unclassified. Every decision looks at a bounded neighbourhood (`Timing`).
5. Saccade ("sweep") correction (002, Sec. III-A-3): x/y linearly interpolated across each saccade of
   at most `saccade_correction_max_ms`, as the extra channels `x/y_saccade_corrected`.
6. Pupil (002, footnote 3; Kret & Sjak-Shie 2019): samples whose dilation speed exceeds
   median + 16 MAD of the trailing `pupil_mad_window_s` (thresholds renewed every
   `pupil_mad_update_s`; none in the first block), and samples while the lid covers part of the pupil
   (eye openness below `lid_closing_fraction` of its trailing median, with the blink margins), are removed
   before the interpolation;
   `pupil_fluctuation` is the difference between consecutive blink-corrected pupil samples.

Timestamps: a sample whose timestamp is not finite or not later than every earlier one is dropped (the
count goes out as a `discontinuity` event). A time gap longer than `max(gap_fill_max_ms, 3 periods)`
or 25 consecutive intervals off the nominal period (a rate change) ends the current segment: it is
flushed as at the end of a stream and a new segment starts (at the new rate), marked `segment_start`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eyemotion.inference.eyesignal import stages

from eyemotion import UserError
from eyemotion.config import EyesignalConfig, ScreenConfig
from eyemotion.streams import GAZE_CLEAN, GAZE_RAW, ContractError

log = logging.getLogger(__name__)

# The Tobii_gaze offsets the compiled stages read (one eye's 18-channel block, left block first, then right).
for _off, _label in ((stages.GX, "x.position_on_display_area.gaze_point"),
                     (stages.GY, "y.position_on_display_area.gaze_point"), (stages.GVALID, "valid.gaze_point"),
                     (stages.PUP, "diameter.pupil"),
                     (stages.PVALID, "valid.pupil"), (stages.OX, "x.position_in_user_coordinates.gaze_origin"),
                     (stages.OY, "y.position_in_user_coordinates.gaze_origin"),
                     (stages.OZ, "z.position_in_user_coordinates.gaze_origin"),
                     (stages.OVALID, "valid.gaze_origin"), (stages.OPEN, "diameter.eye_openness"),
                     (stages.OPENVALID, "valid.eye_openness")):
    assert (GAZE_RAW.labels[_off] == f"{_label}.left_eye"
            and GAZE_RAW.labels[stages.EYE + _off] == f"{_label}.right_eye"), _label
assert GAZE_CLEAN.channel_count == stages.NOUT

# Columns of the combined (stage 1) buffer.
_NCOMB = stages.NCOMB
# Columns of the output (eyemotion_gaze).
OUT = {label: i for i, label in enumerate(GAZE_CLEAN.labels)}
_NOUT = GAZE_CLEAN.channel_count

OFFLINE_BLOCK_S = 60.0  # `process_recording` pushes the recording in pieces this long
RATE_CHANGE_INTERVALS = 25  # consecutive off-period intervals that mean a rate change
_KNOWN_RATES = (30.0, 33.0, 40.0, 50.0, 60.0, 90.0, 120.0, 150.0, 250.0, 300.0, 500.0, 600.0, 1200.0)


def _samples(ms: float, rate: float, how: str) -> int:
    """`ms` as a sample count at `rate` (floor, ceil or round), robust to float noise."""
    x = round(ms * rate / 1000.0, 6)
    return int({"floor": math.floor, "ceil": math.ceil, "round": lambda v: math.floor(v + 0.5)}[how](x))


@dataclass(frozen=True)
class Timing:
    """The processing parameters as sample counts at one rate, and the delay they imply."""

    rate: float
    gap_n: int  # invalid runs shorter than this are gaps
    blink_max_n: int  # ... up to this long are blinks, longer is loss
    margin_n: int
    cap_n: int  # longest bad region that is interpolated
    vel_k: int  # velocity from samples i-k and i+k
    merge_gap_n: int
    merge_pos_n: int
    min_fix_n: int
    sacc_max_n: int
    mad_block_n: int
    mad_blocks: int
    block_n: int
    sacc_walk_n: int  # onset/offset walks from a velocity peak (saccade_max_ms)
    min_sacc_n: int  # shortest saccade (10 ms, Nystrom & Holmqvist 2010)
    noise_n: int  # local noise before a saccade onset (40 ms, Nystrom & Holmqvist 2010)
    pso_n: int  # a PSO starts within this many samples of its saccade's offset (pso_max_ms, rounded up)
    pso_cap_n: int  # and lasts at most this many (shorter than pso_max_ms: rounded down)
    pursuit_n: int  # half of the pursuit window
    pursuit_min_n: int  # shortest pursuit run
    blink_ext_n: int
    lookahead: int  # samples after a sample that its output depends on
    history: int  # samples before a sample that its output depends on
    delay: int  # lookahead + block: accepted samples between an input and its output

    @classmethod
    def of(cls, cfg: EyesignalConfig, rate: float) -> Timing:
        gap_n = max(1, _samples(cfg.gap_fill_max_ms, rate, "ceil"))
        blink_max_n = max(gap_n, _samples(cfg.blink_max_ms, rate, "floor"))
        margin_n = _samples(cfg.blink_margin_ms, rate, "round")
        cap_n = blink_max_n + 2 * margin_n
        vel_k = max(1, _samples(cfg.velocity_window_ms / 2, rate, "floor"))
        merge_gap_n = _samples(cfg.merge_max_gap_ms, rate, "floor")
        merge_pos_n = max(1, _samples(cfg.merge_position_ms, rate, "round"))
        min_fix_n = _samples(cfg.min_fixation_ms, rate, "ceil")
        sacc_max_n = _samples(cfg.saccade_correction_max_ms, rate, "floor")
        mad_block_n = max(1, _samples(cfg.pupil_mad_update_s * 1000, rate, "round"))
        mad_blocks = max(1, round(cfg.pupil_mad_window_s / cfg.pupil_mad_update_s))
        block_n = _samples(cfg.compute_block_ms, rate, "round")
        sacc_walk_n = max(2, _samples(cfg.saccade_max_ms, rate, "ceil"))
        min_sacc_n = max(1, _samples(10.0, rate, "floor"))
        noise_n = max(2, _samples(40.0, rate, "round"))
        pso_n = max(1, _samples(cfg.pso_max_ms, rate, "ceil"))
        pso_cap_n = max(1, _samples(cfg.pso_max_ms, rate, "floor"))
        pursuit_n = max(2, _samples(cfg.pursuit_window_ms / 2, rate, "round"))
        pursuit_min_n = _samples(cfg.pursuit_min_ms, rate, "ceil")
        blink_ext_n = _samples(cfg.blink_extension_ms, rate, "round")
        fill = cap_n + 1 + margin_n + gap_n  # region end + the padding decision beyond it
        # event detection: a saccade label needs its peak run (starting up to one walk ahead, at most one
        # walk long) or its offset walk, a PSO label its two walks after the offset; pursuit the saccade
        # labels across half its window; a blink its extension (the velocity's own half window is vel_k below,
        # once: detection reads velocities, gaze angles and their one-sample steps, all fill + vel_k ahead)
        sacc_reach = max(2 * sacc_walk_n, 2 * pso_n) + 2
        detect = max(sacc_reach, pursuit_n + sacc_reach, blink_ext_n)
        ivt = min_fix_n + merge_gap_n + merge_pos_n + 2  # fixation length through merges
        # x/y_saccade_corrected: the saccade being corrected ends within sacc_max_n, and whether it merges reads
        # the merge terms of ivt and the pursuit-run minimum past its end. The event code: pursuit runs shorter
        # than pursuit_min_n become fixation before the merge, so a code reads the pursuit labels up to
        # pursuit_min_n past ivt's reach. This term covers that for both.
        sacc = max(sacc_max_n, pursuit_min_n) + 1
        lookahead = fill + vel_k + detect + ivt + sacc + 1
        # looking back, a saccade or PSO label reaches its run's start (up to two walks and two PSO reaches
        # before) and that run's onset walk and noise window before it: one walk, two PSO reaches and the
        # noise window more than looking ahead; the other stages reach as far back as ahead
        history = lookahead + 2 + sacc_walk_n + 2 * pso_n + noise_n
        return cls(rate, gap_n, blink_max_n, margin_n, cap_n, vel_k, merge_gap_n, merge_pos_n, min_fix_n,
                   sacc_max_n, mad_block_n, mad_blocks, block_n, sacc_walk_n, min_sacc_n, noise_n, pso_n,
                   pso_cap_n, pursuit_n, pursuit_min_n, blink_ext_n, lookahead, history, lookahead + block_n)


@dataclass(frozen=True)
class Geometry:
    """Display geometry in a display-centred frame (mm): x right, y up, z towards the viewer.

    Tobii's user coordinate system has its origin at the tracker, which sits centred under the display
    with the display area `tracker_gap_mm` above it, in the plane z = 0 (display tilt is ignored).
    """

    width_mm: float
    height_mm: float
    distance_mm: float
    centre_y_ucs: float

    @classmethod
    def of(cls, screen: ScreenConfig, cfg: EyesignalConfig) -> Geometry:
        return cls(screen.width_mm, screen.height_mm, screen.distance_mm,
                   cfg.tracker_gap_mm + screen.height_mm / 2)

    def sigma_mm(self, deg: float) -> float:
        return self.distance_mm * math.tan(math.radians(deg))


@dataclass
class EyeSignalOutput:
    """What one `push`/`flush` returns: eyemotion_gaze samples and eye events (JSON-ready dicts)."""

    timestamps: np.ndarray
    samples: np.ndarray  # (n, len(GAZE_CLEAN.channels)) float64
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (LSL timestamp, event)

    @classmethod
    def concat(cls, parts: list[EyeSignalOutput]) -> EyeSignalOutput:
        if not parts:
            return cls(np.zeros(0), np.zeros((0, _NOUT)))
        return cls(np.concatenate([p.timestamps for p in parts]), np.concatenate([p.samples for p in parts]),
                   [e for p in parts for e in p.events])


# -- the compiled stages --------------------------------------------------------------------------------------

def _params(cfg: EyesignalConfig, geo: Geometry, tm: Timing) -> stages.Params:
    return stages.Params(
        float(tm.rate), tm.gap_n, tm.blink_max_n, tm.margin_n, tm.cap_n, tm.vel_k, tm.merge_gap_n, tm.merge_pos_n,
        tm.min_fix_n, tm.sacc_max_n, tm.sacc_walk_n, tm.min_sacc_n, tm.noise_n, tm.pso_n, tm.pso_cap_n, tm.pursuit_n,
        tm.pursuit_min_n, tm.blink_ext_n, tm.mad_block_n, float(geo.width_mm), float(geo.height_mm),
        float(cfg.lid_closing_fraction),
        float(cfg.pursuit_velocity_deg_s), float(cfg.merge_noise_sd), math.cos(math.radians(cfg.merge_max_angle_deg)))


def _combine_params(cfg: EyesignalConfig, geo: Geometry, rate: float) -> stages.CombineParams:
    return stages.CombineParams(float(rate), float(cfg.offscreen_margin), float(cfg.pupil_min_mm),
                                float(cfg.pupil_max_mm), float(cfg.closed_openness_mm),
                                cfg.eye_selection in ("average", "left"), cfg.eye_selection in ("average", "right"),
                                float(geo.centre_y_ucs), float(geo.distance_mm), float(geo.width_mm),
                                float(geo.height_mm))


# -- one segment (constant rate) -------------------------------------------------------------------------

class _Segment:
    """Buffers a segment's input, computes windows, and hands out final output samples."""

    def __init__(self, cfg: EyesignalConfig, geo: Geometry, rate: float) -> None:
        self.cfg, self.geo, self.rate = cfg, geo, rate
        self.tm = Timing.of(cfg, rate)
        self.params = _params(cfg, geo, self.tm)
        self.combine_params = _combine_params(cfg, geo, rate)
        cap = 4 * (self.tm.history + self.tm.delay) + self.tm.mad_block_n * (self.tm.mad_blocks + 1) + 64
        self.raw = np.empty((cap, GAZE_RAW.channel_count))
        self.t = np.empty(cap)
        self.comb = np.empty((cap, _NCOMB))
        self.base = 0  # segment index of buffer row 0
        self.n = 0  # samples received
        self.staged = 0  # samples combined (stage 1)
        self.computed = 0  # outputs computed for [emitted, computed)
        self.emitted = 0
        self.out_t = np.zeros(0)
        self.out = np.zeros((0, _NOUT))
        self.thresholds: list[tuple[float, float, float, float]] = []
        self.block_values: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # the trailing window's, per block
        self.window_values = (np.zeros(0), np.zeros(0), np.zeros(0))  # all of them, each kind sorted
        self.origin: np.ndarray | None = None
        self.prev_t: float | None = None

    def push(self, t: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = len(t)
        if k:
            self._reserve(k)
            r = self.n - self.base
            self.raw[r:r + k] = raw
            self.t[r:r + k] = t
            self.n += k
        due = self.n - self.tm.delay
        if due > self.computed:
            self._compute(end=False)
        return self._emit(due)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n > self.computed:
            self._compute(end=True)
        return self._emit(self.n)

    def _emit(self, upto: int) -> tuple[np.ndarray, np.ndarray]:
        k = max(0, upto - self.emitted)
        if not k:
            return self.out_t[:0], self.out[:0]
        ts, rows = self.out_t[:k], self.out[:k]
        self.out_t, self.out = self.out_t[k:], self.out[k:]
        self.emitted += k
        return ts, rows

    def _reserve(self, k: int) -> None:
        cap = len(self.t)
        if self.n - self.base + k <= cap:
            return
        tm = self.tm
        keep = min(self.staged, self.computed - tm.history,
                   (len(self.thresholds) - 1) * tm.mad_block_n - 1 - 2 * tm.vel_k)
        keep = max(self.base, keep)
        used = self.n - keep
        if used + k > cap:
            grow = max(2 * cap, used + k)
            for name, shape in (("raw", (grow, GAZE_RAW.channel_count)), ("t", (grow,)), ("comb", (grow, _NCOMB))):
                new = np.empty(shape)
                new[:used] = getattr(self, name)[keep - self.base:self.n - self.base]
                setattr(self, name, new)
        else:
            for arr in (self.raw, self.t, self.comb):
                arr[:used] = arr[keep - self.base:self.n - self.base]
        self.base = keep

    def _stage(self) -> None:
        a, b = self.staged - self.base, self.n - self.base
        if b <= a:
            return
        origin = self.origin if self.origin is not None else np.zeros(3)
        self.comb[a:b], eye, seen = stages.combine(self.raw[a:b], self.t[a:b], self.prev_t or 0.0,
                                                   self.prev_t is not None, origin, self.origin is not None,
                                                   self.staged == 0, self.combine_params)
        self.origin = eye if seen else None
        self.prev_t = float(self.t[b - 1])
        self.staged = self.n

    def _threshold(self, block: int) -> tuple[float, float, float, float]:
        """A block's causal thresholds, from the trailing window before it (`stages.window_thresholds`).

        Each block's velocities, dilation speeds and openness values are computed and sorted once (when the next
        block starts) and kept for the `pupil_mad_blocks` blocks of the window: every value has its full context
        then, so the thresholds do not depend on chunking. The window's sorted values slide by one merge."""
        tm = self.tm
        fixed = self.cfg.velocity_threshold_deg_s
        if block == 0:
            return math.inf, fixed, fixed, math.nan
        new = stages.block_values(self.comb, self.t, self.base, (block - 1) * tm.mad_block_n, tm.mad_block_n, tm.vel_k,
                                  self.cfg.adaptive_threshold)
        old = self.block_values.pop(0) if len(self.block_values) == tm.mad_blocks else (np.zeros(0),) * 3
        self.block_values.append(new)
        self.window_values = tuple(stages.slide_sorted(w, a, d) for w, a, d in zip(self.window_values, new, old))
        v, dilation, opn = self.window_values
        return stages.window_thresholds(v, dilation, opn, fixed, self.cfg.adaptive_threshold, 2 * tm.noise_n,
                                        self.cfg.pupil_mad_multiplier)

    def _compute(self, end: bool) -> None:
        self._stage()
        tm = self.tm
        lo = max(self.base, self.computed - tm.history)
        hi = self.n
        upto = hi if end else hi - tm.lookahead
        if upto <= self.computed:
            return
        last_block = (hi - 1) // tm.mad_block_n
        while len(self.thresholds) <= last_block:
            self.thresholds.append(self._threshold(len(self.thresholds)))
        first = lo // tm.mad_block_n  # only this window's blocks (the list grows with the session)
        thresholds = np.array(self.thresholds[first:last_block + 1])  # per block: pupil, peak, onset, openness
        a, b = lo - self.base, hi - self.base
        new = stages.run_window(self.t[a:b], self.comb[a:b], thresholds, lo - first * tm.mad_block_n, end,
                                self.computed - lo, upto - lo, self.params)
        self.out = np.concatenate((self.out, new)) if len(self.out) else new
        new_t = self.t[self.computed - self.base:upto - self.base]
        self.out_t = np.concatenate((self.out_t, new_t)) if len(self.out_t) else new_t.copy()
        self.computed = upto


# -- the public processor ------------------------------------------------------------------------------

class EyeSignalProcessor:
    """Streaming `Tobii_gaze` -> `eyemotion_gaze` (+ eye events), with a fixed delay.

    `push(timestamps, samples)` takes any chunk (n, 37) in GAZE_RAW order and returns the output samples
    that became final; `flush()` ends the stream and returns the rest. A flushed processor starts a new
    stream on the next push.
    """

    def __init__(self, rate: float, config: EyesignalConfig | None = None, screen: ScreenConfig | None = None):
        from eyemotion.inference.eyesignal.events import EventTracker

        if not (rate > 0 and math.isfinite(rate)):
            raise UserError(f"eye-signal processing needs a positive sampling rate, not {rate!r}; "
                            "check the Tobii_gaze stream's nominal rate")
        self.cfg = config or EyesignalConfig()
        self.screen = screen or ScreenConfig()
        self.geo = Geometry.of(self.screen, self.cfg)
        self.nominal_rate = float(rate)
        self.timing = Timing.of(self.cfg, self.nominal_rate)
        self.events = EventTracker()
        self._new_stream(self.nominal_rate)

    # -- public ---------------------------------------------------------------------------------------
    @property
    def delay_samples(self) -> int:
        """Accepted input samples between an input sample and its output sample (at the nominal rate)."""
        return self.timing.delay

    @property
    def delay_s(self) -> float:
        return self.timing.delay / self.nominal_rate

    @property
    def rate(self) -> float:
        """The rate of the current segment (the nominal rate unless a rate change was detected)."""
        return self.segment.rate

    def push(self, timestamps: Any, samples: Any) -> EyeSignalOutput:
        t, raw = self._check(timestamps, samples)
        if self._regular(t):  # the common case: a clean continuation of the stream
            seg = self.segment
            start = seg.emitted
            ts, rows = seg.push(t, raw)
            return self._with_events(start, ts, rows)
        keep = self._accept(t)
        drops = self._drops_before(keep)
        if not keep.all():
            t, raw = t[keep], raw[keep]
        parts: list[EyeSignalOutput] = []
        while len(t):
            cut, new_rate, reason = self._find_break(t)
            if cut is None:
                parts.append(self._run(t, raw, drops))
                break
            if cut:
                parts.append(self._run(t[:cut], raw[:cut], drops[:cut]))
            parts.append(self._finish_segment())
            log.warning("Tobii_gaze %s at t=%.3f: new segment at %.1f Hz", reason, t[cut], new_rate)
            self._start_segment(new_rate, reason, int(drops[cut]))
            t, raw, drops = t[cut:], raw[cut:], drops[cut:]
            drops[0] = 0
        return EyeSignalOutput.concat(parts)

    def flush(self) -> EyeSignalOutput:
        """End of stream: return every remaining output sample and close the open event."""
        out = self._finish_segment()
        if self._dropped:
            out.events.append((self._last_t, {"event": "discontinuity", "reason": "timestamps",
                                              "dropped": self._dropped}))
        self._new_stream(self.nominal_rate)
        return out

    # -- internals ------------------------------------------------------------------------------------
    def _new_stream(self, rate: float) -> None:
        self._last_t = -math.inf  # largest timestamp seen
        self._dropped = 0  # dropped samples not yet attached to an accepted one
        self.segment = _Segment(self.cfg, self.geo, rate)
        self._begin(None)

    def _begin(self, note: dict[str, Any] | None) -> None:
        self._prev_accepted: float | None = None
        self._off_run = 0
        self._recent_dt = np.zeros(0)
        self._notes: dict[int, dict[str, Any]] = {0: note} if note else {}

    def _start_segment(self, rate: float, reason: str, dropped: int) -> None:
        self.segment = _Segment(self.cfg, self.geo, rate)
        note = {"event": "discontinuity", "reason": reason, "rate": rate}
        if dropped:
            note["dropped"] = dropped
        self._begin(note)

    def _drops_before(self, keep: np.ndarray) -> np.ndarray:
        """For each accepted sample, how many dropped samples came right before it (carried over pushes)."""
        kept = np.flatnonzero(keep)
        cum = np.cumsum(~keep)
        before = np.diff(cum[kept], prepend=0) if len(kept) else np.zeros(0, np.int64)
        if len(kept):
            before[0] += self._dropped
            self._dropped = int(cum[-1] - cum[kept[-1]])
        else:
            self._dropped += len(keep)
        return before

    def _check(self, timestamps: Any, samples: Any) -> tuple[np.ndarray, np.ndarray]:
        raw = np.asarray(samples, dtype=np.float64)
        if raw.ndim == 1 and raw.size == GAZE_RAW.channel_count:
            raw = raw.reshape(1, -1)
        if raw.ndim != 2 or raw.shape[1] != GAZE_RAW.channel_count:
            raise ContractError(f"Tobii_gaze samples must have {GAZE_RAW.channel_count} channels (TittaLSL layout), "
                                f"got an array of shape {raw.shape}; publish the tracker with TittaLSL's layout")
        t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if len(t) != len(raw):
            raise UserError(f"{len(t)} timestamps for {len(raw)} Tobii_gaze samples; pass one timestamp per sample")
        return t, raw

    def _regular(self, t: np.ndarray) -> bool:
        """True (and the timing state updated) when every interval is within 0.75-1.33 nominal periods."""
        prev = self._prev_accepted
        if prev is None or self._dropped or not len(t):
            return False
        rate = self.segment.rate
        # the same test as `_find_break` (q = interval * rate); comparisons with NaN are False
        if len(t) <= 64:  # small live chunks: plain Python is faster than numpy here
            before = prev
            for now in t.tolist():
                q = (now - before) * rate
                if not (0.75 <= q <= 1.33):
                    return False
                before = now
        else:
            q = (t - np.concatenate(([prev], t[:-1]))) * rate
            if not ((q >= 0.75) & (q <= 1.33)).all():
                return False
        last = float(t[-1])
        self._prev_accepted = self._last_t = last
        self._off_run = 0
        return True

    def _accept(self, t: np.ndarray) -> np.ndarray:
        """Samples with a finite timestamp later than every earlier one (others are dropped)."""
        finite = np.isfinite(t)
        tt = np.where(finite, t, -np.inf)
        before = np.maximum.accumulate(np.concatenate(([self._last_t], tt[:-1])))
        if len(tt):
            self._last_t = max(self._last_t, float(tt.max()))
        return finite & (t > before)

    def _find_break(self, t: np.ndarray) -> tuple[int | None, float, str]:
        """Index of the first sample that starts a new segment (time gap or rate change), if any."""
        rate = self.segment.rate
        prev = self._prev_accepted
        dt = np.diff(t, prepend=t[0] if prev is None else prev)
        gap_s = max(self.cfg.gap_fill_max_ms / 1000.0, 3.0 / rate)
        q = dt * rate
        off = (q < 0.75) | (q > 1.33)
        if prev is None:
            off[0] = False
        gaps = np.flatnonzero(dt > gap_s)
        cut_gap = int(gaps[0]) if len(gaps) else None
        cut_rate = None
        if off.any():
            idx = np.arange(len(t))
            last_ok = np.maximum.accumulate(np.where(~off, idx, -1))
            run = np.where(last_ok < 0, idx + 1 + self._off_run, idx - last_ok)
            hits = np.flatnonzero(off & (run >= RATE_CHANGE_INTERVALS))
            cut_rate = int(hits[0]) if len(hits) else None
        cut = min(c for c in (cut_gap, cut_rate, len(t)) if c is not None)
        if cut == len(t):
            self._off_run = int(len(t) - 1 - np.flatnonzero(~off)[-1]) if (~off).any() else self._off_run + len(t)
            self._recent_dt = np.concatenate((self._recent_dt, dt))[-RATE_CHANGE_INTERVALS:]
            self._prev_accepted = float(t[-1])
            return None, rate, ""
        self._prev_accepted = float(t[cut])
        if cut == cut_gap:
            return cut, rate, "time_gap"
        recent = np.concatenate((self._recent_dt, dt[:cut + 1]))[-RATE_CHANGE_INTERVALS:]
        measured = 1.0 / float(np.median(recent))
        near = [r for r in _KNOWN_RATES if abs(measured / r - 1) < 0.05]
        return cut, (near[0] if near else round(measured, 1)), "rate_change"

    def _run(self, t: np.ndarray, raw: np.ndarray, drops: np.ndarray) -> EyeSignalOutput:
        seg = self.segment
        for i in np.flatnonzero(drops):
            self._notes[seg.n + int(i)] = {"event": "discontinuity", "reason": "timestamps",
                                           "dropped": int(drops[i])}
        start = seg.emitted
        ts, rows = seg.push(t, raw)
        return self._with_events(start, ts, rows)

    def _finish_segment(self) -> EyeSignalOutput:
        seg = self.segment
        start = seg.emitted
        ts, rows = seg.finish()
        out = self._with_events(start, ts, rows)
        out.events.extend(self.events.close())
        return out

    def _with_events(self, start: int, ts: np.ndarray, rows: np.ndarray) -> EyeSignalOutput:
        notes = {}
        if self._notes:
            for i in [i for i in self._notes if start <= i < start + len(ts)]:
                notes[i - start] = self._notes.pop(i)
        events = self.events.push(ts, rows, self.segment.rate, notes) if len(ts) or notes else []
        return EyeSignalOutput(ts, rows, events)


def ivt(x: np.ndarray, y: np.ndarray, timestamps: np.ndarray, rate: float, config: EyesignalConfig | None = None,
        screen: ScreenConfig | None = None) -> np.ndarray:
    """Our event detection alone with the fixed threshold on whole arrays of normalised display positions (eye at
    `screen.distance_mm` in front of the display centre): per-sample codes (fixation, saccade, PSO, pursuit),
    with the same velocity, merging and discarding as the processor.

    For comparisons with other I-VT implementations (the benchmark, the validation); no gap filling.
    """
    cfg, screen = config or EyesignalConfig(), screen or ScreenConfig()
    geo = Geometry.of(screen, cfg)
    params = _params(cfg, geo, Timing.of(cfg, rate))
    gaze = np.zeros((len(x), 5))
    gaze[:, 0], gaze[:, 1], gaze[:, 4] = x, y, geo.distance_mm
    u, ang = stages.geometry(gaze, np.zeros((len(x), 2)), np.zeros(len(x), bool), params)
    velocity = stages.speed(ang, np.asarray(timestamps, dtype=np.float64), params.vel_k)
    fixed = np.full(len(x), cfg.velocity_threshold_deg_s)
    return stages.classify(velocity, u, ang, fixed, fixed, np.full(len(x), -1, np.int64), params)


def compile_stages() -> float:
    """Compile the numba stages (or load them from numba's cache, next to `stages.py`) by processing 3 s of a
    still gaze, so that the first real chunk does not wait for it; returns the seconds it took. `setup.sh` runs it
    once, so later processes find the cache."""
    start = time.perf_counter()
    rate, n = 250.0, 750
    raw = np.zeros((n, GAZE_RAW.channel_count))
    for eye in (0, stages.EYE):
        raw[:, eye + stages.GX], raw[:, eye + stages.GY], raw[:, eye + stages.PUP] = 0.5, 0.5, 3.0
        raw[:, eye + stages.OZ], raw[:, eye + stages.OPEN] = 650.0, 10.0
        for flag in (stages.GVALID, stages.PVALID, stages.OVALID, stages.OPENVALID):
            raw[:, eye + flag] = 1.0
    raw[300:340, stages.GVALID] = raw[300:340, stages.EYE + stages.GVALID] = 0.0  # a blink
    process_recording(np.arange(n) / rate, raw, rate)
    return time.perf_counter() - start


def process_recording(timestamps: Any, samples: Any, rate: float, config: EyesignalConfig | None = None,
                      screen: ScreenConfig | None = None) -> EyeSignalOutput:
    """Offline: the same processor on a whole recording (one push, then flush)."""
    proc = EyeSignalProcessor(rate, config, screen)
    t, raw = proc._check(timestamps, samples)
    step = max(1, int(rate * OFFLINE_BLOCK_S))  # bounded memory; the output does not depend on it
    parts = [proc.push(t[i:i + step], raw[i:i + step]) for i in range(0, len(t), step)]
    return EyeSignalOutput.concat([*parts, proc.flush()])
