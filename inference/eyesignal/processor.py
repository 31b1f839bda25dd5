"""The streaming eye-signal processor: `Tobii_gaze` chunks in, `eyemotion_gaze` chunks out.

No library offers these steps online (pymovements, for instance, works on whole recordings), so the
streaming core is written here with numpy. `EyeSignalProcessor.push(timestamps, samples)` accepts any
chunk of raw samples and returns every output sample that has become final; each output sample leaves
exactly `delay_samples` accepted input samples after its own (a FIXED delay, also in `delay_s`), and
`flush()` returns the rest at the end of a stream. Offline processing is `process_recording`, which
calls the same object on the whole array, so the output is bit-identical however the input is chunked.

How the fixed delay and the chunk invariance are obtained: every output sample depends only on the
inputs within `history` samples before and `lookahead` samples after it (the bounds are derived from the
parameters in `Timing`), plus a few causal running states (last gaze origin, pupil MAD thresholds per
block, timestamps). Each computation runs the whole vectorised pipeline on a window of the buffered
input that covers that context and keeps only the samples whose context it saw completely; numpy's
element-wise operations then give identical values whatever the window. With `compute_block_ms` > 0 the
node computes only every block (the block is added to the delay), which buys throughput.

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
   velocity between saccades, whole blinks (the eyelid-distorted samples around 002's invalid run,
   eye-openness dips, and gaps inside an eyelid artefact where the gaze swings away and back) and losses;
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

import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eyemotion import UserError
from eyemotion.config import EyesignalConfig, ScreenConfig
from eyemotion.streams import EVENT_CODES, GAZE_CLEAN, GAZE_RAW, GAZE_VALIDITY_BITS, ContractError

log = logging.getLogger(__name__)

FIXATION, SACCADE, BLINK, LOSS, UNCLASSIFIED, PSO, PURSUIT = (
    EVENT_CODES[k] for k in ("fixation", "saccade", "blink", "loss", "unclassified", "pso", "pursuit"))
BIT = GAZE_VALIDITY_BITS

# Offsets inside one eye's 18-channel block of Tobii_gaze (left block first, then right).
_EYE = 18
_GX, _GY, _GVALID, _PUP, _PVALID, _OX, _OY, _OZ, _OVALID, _OPEN, _OPENVALID = 0, 1, 5, 7, 8, 10, 11, 12, 13, 15, 16
for _off, _label in ((_GX, "x.position_on_display_area.gaze_point"), (_GVALID, "valid.gaze_point"),
                     (_PUP, "diameter.pupil"), (_OZ, "z.position_in_user_coordinates.gaze_origin"),
                     (_OPEN, "diameter.eye_openness"), (_OPENVALID, "valid.eye_openness")):
    assert GAZE_RAW.labels[_off] == f"{_label}.left_eye" and GAZE_RAW.labels[_EYE + _off] == f"{_label}.right_eye"

# Columns of the combined (stage 1) buffer.
_X, _Y, _EX, _EY, _EZ, _P, _OPN, _FLAGS, _GOK, _POK = range(10)
_NCOMB = 10
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
    pso_n: int
    pursuit_n: int  # half of the pursuit window
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
        pursuit_n = max(2, _samples(cfg.pursuit_window_ms / 2, rate, "round"))
        blink_ext_n = _samples(cfg.blink_extension_ms, rate, "round")
        fill = cap_n + 1 + margin_n + gap_n  # region end + the padding decision beyond it
        # event detection: a saccade label needs its peak run (starting up to one walk ahead, at most one
        # walk long) or its offset walk, a PSO label its two walks after the offset; pursuit the saccade
        # labels across half its window; a blink its extension (the velocity's own half window is vel_k below,
        # once: detection reads velocities, gaze angles and their one-sample steps, all fill + vel_k ahead)
        sacc_reach = max(2 * sacc_walk_n, 2 * pso_n) + 2
        detect = max(sacc_reach, pursuit_n + sacc_reach, blink_ext_n)
        ivt = min_fix_n + merge_gap_n + merge_pos_n + 2  # fixation length through merges
        sacc = sacc_max_n + 1  # end of the saccade being corrected
        lookahead = fill + vel_k + detect + ivt + sacc + 1
        # looking back, a saccade or PSO label reaches its run's start (up to two walks and two PSO reaches
        # before) and that run's onset walk and noise window before it: one walk, two PSO reaches and the
        # noise window more than looking ahead; the other stages reach as far back as ahead
        history = lookahead + 2 + sacc_walk_n + 2 * pso_n + noise_n
        return cls(rate, gap_n, blink_max_n, margin_n, cap_n, vel_k, merge_gap_n, merge_pos_n, min_fix_n,
                   sacc_max_n, mad_block_n, mad_blocks, block_n, sacc_walk_n, min_sacc_n, noise_n, pso_n,
                   pursuit_n, blink_ext_n, lookahead, history, lookahead + block_n)


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


# -- stage 1: binocular combination ---------------------------------------------------------------------

# Tobii_gaze columns gathered for stage 1, in pairs (left, right): gaze x, gaze y, pupil, openness, their
# validity flags (gaze, pupil, origin, openness), then the two gaze origins (x, y, z each).
_GATHER = np.array([_EYE * e + off for off in (_GX, _GY, _PUP, _OPEN, _GVALID, _PVALID, _OVALID, _OPENVALID)
                    for e in (0, 1)] + [_EYE * e + off for e in (0, 1) for off in (_OX, _OY, _OZ)])
# validity bits of the boolean columns stacked in `_combine`
_BITS = np.array([BIT["left_gaze"], BIT["right_gaze"], BIT["left_pupil"], BIT["right_pupil"], BIT["bad_input"],
                  BIT["eyes_closed"], BIT["pupil_outlier"], BIT["distance_default"], BIT["time_irregular"]])


def _combine(raw: np.ndarray, t: np.ndarray, prev_t: float | None, origin: np.ndarray | None,
             first: bool, cfg: EyesignalConfig, geo: Geometry, rate: float
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sample combination of both eyes -> (n, _NCOMB) columns; returns the last gaze origin seen.

    Must run under `np.errstate(invalid="ignore", divide="ignore")`. Comparisons are False for NaN, so
    a NaN or infinite value never passes a range check.
    """
    n = len(raw)
    a = raw[:, _GATHER]
    claimed = a[:, 8:16] == 1  # gaze L R, pupil L R, origin L R, openness L R
    sane = np.abs(a[:, 0:4] - 0.5) <= 0.5 + cfg.offscreen_margin  # x L R, y L R on or near the display
    sane = sane[:, 0:2] & sane[:, 2:4]
    pd, op = a[:, 4:6], a[:, 6:8]
    p_real = (pd > 0) & (pd < np.inf)
    p_range = (pd >= cfg.pupil_min_mm) & (pd <= cfg.pupil_max_mm)
    o_ok = claimed[:, 6:8] & (op >= 0) & (op < np.inf)
    o_max = np.where(o_ok, op, -np.inf)
    closed = (np.maximum(o_max[:, 0], o_max[:, 1]) < cfg.closed_openness_mm) & (o_ok[:, 0] | o_ok[:, 1])
    open_ = ~closed[:, None]
    g_ok = claimed[:, 0:2] & sane & open_
    p_ok = claimed[:, 2:4] & p_range & open_
    if cfg.eye_selection != "average":
        keep = np.array([cfg.eye_selection == "left", cfg.eye_selection == "right"])
        g_ok &= keep
        p_ok &= keep
    bad = (claimed[:, 0:2] & ~sane) | (claimed[:, 2:4] & ~p_real)
    bad = bad[:, 0] | bad[:, 1]
    implausible = claimed[:, 2:4] & p_real & ~p_range
    implausible = implausible[:, 0] | implausible[:, 1]

    # (sums over the two eyes are written out: numpy reduces tiny axes slowly)
    w = np.concatenate((g_ok, g_ok, p_ok, o_ok), axis=1)  # x L R, y L R, pupil L R, openness L R
    v = np.where(w, a[:, 0:8], 0.0)
    means = (v[:, 0::2] + v[:, 1::2]) / (w[:, 0::2].view(np.int8) + w[:, 1::2].view(np.int8))
    orig = a[:, 16:22]  # x y z left, x y z right
    finite = np.abs(orig) < 1e4
    o_valid = claimed[:, 4:6] & (orig[:, 2::3] > 0) & finite[:, 0::3] & finite[:, 1::3] & finite[:, 2::3]
    no = o_valid[:, 0].view(np.int8) + o_valid[:, 1].view(np.int8)
    ov = np.where(np.repeat(o_valid, 3, axis=1), orig, 0.0)
    eye = (ov[:, 0:3] + ov[:, 3:6]) / no[:, None]  # (n, 3) UCS
    # eye position: this sample's gaze origin, else the last one seen, else in front of the centre
    last = np.maximum.accumulate(np.where(no > 0, np.arange(n), -1))
    fallback = np.array([0.0, geo.centre_y_ucs, geo.distance_mm]) if origin is None else origin
    eye = np.where((last >= 0)[:, None], eye[np.maximum(last, 0)], fallback)
    default = (last < 0) if origin is None else np.zeros(n, bool)
    new_origin = eye[-1].copy() if last[-1] >= 0 else origin

    before = t[0] - 1.0 / rate if prev_t is None else prev_t  # the first sample of a segment is regular
    q = (t - np.concatenate(([before], t[:-1]))) * rate
    irregular = (q < 0.5) | (q > 1.5)

    out = np.empty((n, _NCOMB))
    out[:, [_X, _Y, _P, _OPN]] = means
    out[:, _EX] = eye[:, 0]
    out[:, _EY] = eye[:, 1] - geo.centre_y_ucs
    out[:, _EZ] = eye[:, 2]
    out[:, _GOK] = g_ok[:, 0] | g_ok[:, 1]
    out[:, _POK] = p_ok[:, 0] | p_ok[:, 1]
    bits = np.concatenate((g_ok, p_ok, np.stack((bad, closed, implausible, default, irregular), axis=1)), axis=1)
    flags = bits @ _BITS
    if first:
        flags[0] |= BIT["segment_start"]
    out[:, _FLAGS] = flags
    return out, new_origin


def _sg_derivative(x: np.ndarray, t: np.ndarray, h: int) -> np.ndarray:
    """Savitzky-Golay first derivative (2nd-order polynomial, 2h+1 samples) of x per second; NaN at the
    edges. The weighted sum is written out term by term, so it gives the same floats in any window."""
    m = len(x)
    out = np.full(m, np.nan)
    if m <= 2 * h:
        return out
    acc = np.zeros(m - 2 * h)
    for j in range(1, h + 1):
        acc += j * (x[h + j:m - h + j] - x[h - j:m - h - j])
    norm = h * (h + 1) * (2 * h + 1) / 3  # sum of j^2 over -h..h
    out[h:m - h] = acc / norm / ((t[2 * h:] - t[:-2 * h]) / (2 * h))
    return out


def _median(x: np.ndarray) -> float:
    """Median of a non-empty 1-D array (one partition)."""
    k = len(x) // 2
    if len(x) % 2:
        return float(np.partition(x, k)[k])
    part = np.partition(x, (k - 1, k))
    return 0.5 * (float(part[k - 1]) + float(part[k]))


# -- helpers for runs -----------------------------------------------------------------------------------

def _true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in a bool array."""
    edges = np.nonzero(mask[1:] != mask[:-1])[0] + 1
    if mask[0]:
        edges = np.concatenate(([0], edges))
    if mask[-1]:
        edges = np.concatenate((edges, [len(mask)]))
    return edges[0::2], edges[1::2]


def _code_runs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of the runs of equal values."""
    change = np.nonzero(codes[1:] != codes[:-1])[0] + 1
    return np.concatenate(([0], change)), np.concatenate((change, [len(codes)]))


def _cover(starts: np.ndarray, ends: np.ndarray, m: int) -> np.ndarray:
    """Bool mask of length m covering the union of [starts, ends) (clipped to the array)."""
    mask = np.zeros(m, bool)
    if len(starts) <= 16:
        for a, b in zip(starts.tolist(), ends.tolist()):
            mask[max(a, 0):max(b, 0)] = True
        return mask
    s, e = np.clip(starts, 0, m), np.clip(ends, 0, m)
    delta = np.bincount(s, minlength=m + 1)[:m + 1] - np.bincount(e, minlength=m + 1)[:m + 1]
    return np.cumsum(delta[:m]) > 0


def _positions(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """All indices of the runs [starts, ends), concatenated."""
    lens = ends - starts
    offsets = np.repeat(np.cumsum(lens) - lens - starts, lens)
    return np.arange(len(offsets)) - offsets


def _interpolate_runs(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Linear interpolation of `values` (m,) or (m, c) across each run, between samples start-1 and end."""
    out = values.copy()
    if not len(starts):
        return out
    lens = ends - starts
    pos = _positions(starts, ends)
    left = np.repeat(starts - 1, lens)
    right = np.repeat(ends, lens)
    w = (pos - left) / (right - left)
    if values.ndim == 2:
        w = w[:, None]
    lv = values[left]
    out[pos] = lv + w * (values[right] - lv)
    return out


def _fill(bad: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """The runs of `bad` that are interpolated: at most `cap` long, with a good sample on both sides."""
    s, e = _true_runs(bad)
    ok = (e - s <= cap) & (s > 0) & (e < len(bad))
    return s[ok], e[ok]


# -- the window computation ------------------------------------------------------------------------------

class _Pipeline:
    """The vectorised computation on one window of combined samples (see the module docstring)."""

    def __init__(self, cfg: EyesignalConfig, geo: Geometry, tm: Timing) -> None:
        self.cfg, self.geo, self.tm = cfg, geo, tm
        self.cos_merge = math.cos(math.radians(cfg.merge_max_angle_deg))
        self.saccade_cache: dict[tuple[int, int], tuple[int, int, int, int, float]] = {}  # see `_saccades`

    def run(self, t: np.ndarray, c: np.ndarray, threshold: np.ndarray, bos: bool, eos: bool,
            rows: slice, origin: int | None = None) -> np.ndarray:
        """Output samples for the window rows `rows`, whose context the window covers completely (`origin`:
        the segment index of the window's first row, for the saccade cache).

        Must run under `np.errstate(invalid="ignore", divide="ignore")` (NaN marks missing values).
        """
        tm = self.tm
        m = len(t)
        flags = c[:, _FLAGS].astype(np.int64)
        g_ok = c[:, _GOK] > 0
        gaze = c[:, _X:_EZ + 1].copy()  # x, y, eye x, eye y, eye z

        # 2. gaps, blinks, loss: classify invalid runs, pad long ones, fill short bad regions
        if g_ok.all():
            bad = g_ok == False
            blinks = losses = gaps = None
        else:
            s, e = _true_runs(~g_ok)
            lens = e - s
            long_run = lens >= tm.gap_n
            bad = ~g_ok
            if long_run.any():
                bad |= _cover(s[long_run] - tm.margin_n, e[long_run] + tm.margin_n, m)
            blink = long_run & (lens <= tm.blink_max_n) & ((e < m) | eos)
            loss = lens > tm.blink_max_n
            blinks, losses, gaps = (s[blink], e[blink]), (s[loss], e[loss]), (s[~long_run], e[~long_run])
            bs, be = _fill(bad, tm.cap_n)
            gaze = _interpolate_runs(gaze, bs, be)
            filled = _cover(bs, be, m)
            gaze[~g_ok & ~filled] = np.nan
            flags |= filled * BIT["gaze_interpolated"]

        # 6 (first half). pupil: outliers by dilation speed, then the same filling. While the lid covers part
        # of the pupil (eye openness low, a partial blink or the closing/opening phase of a blink) the measured
        # diameter shrinks with it: those samples and the same margins are removed too (Kret & Sjak-Shie 2019;
        # Hershman et al. 2018)
        p = np.where(c[:, _POK] > 0, c[:, _P], np.nan)
        dp = np.abs(p[1:] - p[:-1]) / (t[1:] - t[:-1])
        speed = np.fmax(np.concatenate(([np.nan], dp)), np.concatenate((dp, [np.nan])))
        outlier = speed > threshold[:, 0]
        lid_low = c[:, _OPN] < self.cfg.lid_closing_fraction * threshold[:, 3]  # NaN: False
        p_good = ~np.isnan(p) & ~outlier & ~bad
        if lid_low.any():
            ls, le = _true_runs(lid_low)
            p_good &= ~_cover(ls - tm.margin_n, le + tm.margin_n, m)
        if p_good.all():
            pupil = p
        else:
            flags |= outlier * BIT["pupil_outlier"]
            ps, pe = _fill(~p_good, tm.cap_n)
            pupil = _interpolate_runs(np.where(p_good, p, np.nan), ps, pe)
            flags |= _cover(ps, pe, m) * BIT["pupil_interpolated"]

        # 3. geometry and velocity; 4. events
        d, u, velocity, ang = self.velocity(gaze, t)
        peak, onset = threshold[:, 1], threshold[:, 2]
        overrides = None
        if blinks is not None or lid_low.any():
            # the invalid run with its interpolated margins (the lid is moving there too), then the extension
            seeds = (_cover(blinks[0] - tm.margin_n, blinks[1] + tm.margin_n, m) if blinks is not None
                     else np.zeros(m, bool))
            lost = _cover(*losses, m) if losses is not None else np.zeros(m, bool)
            vy = np.abs(_sg_derivative(ang[:, 1], t, tm.vel_k))
            distorted = lid_low | (vy >= onset) | ~g_ok
            if gaps is not None and len(gaps[0]):
                seeds |= self._gap_blinks(*gaps, distorted & ~lost, ang)
            blink = self._whole_blinks(seeds | (lid_low & ~lost), distorted & ~lost)
            overrides = [(np.isnan(gaze[:, 0]), UNCLASSIFIED), (blink, BLINK), (lost, LOSS)]
        code, rs, re = self.classify(velocity, u, ang, peak, onset, overrides, (origin, bos, eos))

        # 5. saccade correction
        sac = (code[rs] == SACCADE) & (re - rs <= tm.sacc_max_n) & (rs > 0) & (re < m)
        xy = gaze[:, :2]
        corrected = _interpolate_runs(xy, rs[sac], re[sac])[rows]
        corrected = np.where(np.isnan(corrected), xy[rows], corrected)

        # the output rows only
        r0 = rows.start
        n = rows.stop - r0
        out = np.empty((n, _NOUT))
        dr = d[rows]
        out[:, OUT["angle_x"]] = np.degrees(np.arctan2(dr[:, 0], dr[:, 2]))
        out[:, OUT["angle_y"]] = np.degrees(np.arctan2(dr[:, 1], dr[:, 2]))
        out[:, OUT["x"]] = gaze[rows, 0]
        out[:, OUT["y"]] = gaze[rows, 1]
        out[:, OUT["pupil"]] = pupil[rows]
        out[:, OUT["pupil_raw"]] = p[rows]
        out[:, OUT["pupil_fluctuation"]] = pupil[rows] - (pupil[r0 - 1:rows.stop - 1] if r0 else
                                                           np.concatenate(([np.nan], pupil[:rows.stop - 1])))
        out[:, OUT["velocity"]] = velocity[rows]
        out[:, OUT["event"]] = code[rows]
        out[:, OUT["eye_openness"]] = c[rows, _OPN]
        out[:, OUT["eye_distance"]] = gaze[rows, 4]
        out[:, OUT["validity"]] = flags[rows]
        out[:, OUT["x_saccade_corrected"]] = corrected[:, 0]
        out[:, OUT["y_saccade_corrected"]] = corrected[:, 1]
        return out

    def velocity(self, gaze: np.ndarray, t: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Gaze vectors (display frame, mm), unit vectors, angular velocity (deg/s) and the gaze angles (m, 2)
        (deg) from columns x, y (normalised display), eye x, eye y (display-centred mm), eye distance (mm).

        Velocity: Savitzky-Golay differentiation (2nd-order polynomial over `velocity_window_ms`) of the
        horizontal and vertical gaze angles, as Nystrom & Holmqvist 2010 (Behav Res Methods 42:188), Sec.
        "Calculating velocity"; speed = their Euclidean norm.
        """
        geo, k, m = self.geo, self.tm.vel_k, len(t)
        d = np.empty((m, 3))
        d[:, 0] = (gaze[:, 0] - 0.5) * geo.width_mm - gaze[:, 2]
        d[:, 1] = (0.5 - gaze[:, 1]) * geo.height_mm - gaze[:, 3]
        d[:, 2] = gaze[:, 4]
        sq = d * d
        u = d / np.sqrt(sq[:, 0] + sq[:, 1] + sq[:, 2])[:, None]  # (tiny-axis sums written out: faster)
        ang = np.degrees(np.arctan2(d[:, :2], d[:, 2:3]))
        vx, vy = _sg_derivative(ang[:, 0], t, k), _sg_derivative(ang[:, 1], t, k)
        return d, u, np.sqrt(vx * vx + vy * vy), ang

    def classify(self, velocity: np.ndarray, u: np.ndarray, ang: np.ndarray, peak: np.ndarray,
                 onset: np.ndarray, overrides: list[tuple[np.ndarray, int]] | None = None,
                 window: tuple[int | None, bool, bool] = (None, True, True)
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-sample codes: saccades and PSOs (`_saccades`), smooth pursuit (`_pursuit`), the rest fixation;
        `overrides` set codes (blink, loss) before Tobii I-VT's merging and discarding of short fixations.
        A PSO neither is a saccade nor stops a merge (Nystrom & Holmqvist 2010)."""
        tm, m = self.tm, len(velocity)
        code = np.where(np.isnan(velocity), UNCLASSIFIED, FIXATION)
        d = ang[1:] - ang[:-1]
        step = np.concatenate(([np.nan], np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]) * tm.rate))
        for a, b, c in self._saccades(velocity, ang, step, peak, onset, window):
            code[a:b] = SACCADE
            code[b:c] = PSO
        if math.isfinite(self.cfg.pursuit_velocity_deg_s):  # inf: no pursuit class (classic I-VT)
            code[(code == FIXATION) & self._pursuit(ang, code != FIXATION)] = PURSUIT
        for mask, value in overrides or ():
            code[mask] = value
        rs, re = _code_runs(code)
        short = (code[rs] == PURSUIT) & (re - rs < tm.min_fix_n)  # too short to tell from drift
        if short.any():
            code[_cover(rs[short], re[short], m)] = FIXATION
            rs, re = _code_runs(code)
        if tm.merge_gap_n:
            code, rs, re = self._merge(code, u, rs, re)
        # Tobii I-VT's minimum applies to what it calls a fixation: with the PSO before it (it has no PSO class)
        length = re - rs
        length[1:] += np.where(code[rs[:-1]] == PSO, length[:-1], 0)
        short = (code[rs] == FIXATION) & (length < tm.min_fix_n)
        if short.any():
            code[_cover(rs[short], re[short], m)] = UNCLASSIFIED
            rs, re = _code_runs(code)
        return code, rs, re

    def _saccades(self, v: np.ndarray, ang: np.ndarray, step: np.ndarray, peak: np.ndarray, onset: np.ndarray,
                  window: tuple[int | None, bool, bool] = (None, True, True)) -> list[tuple[int, int, int]]:
        """(start, end, PSO end) of each saccade, Nystrom & Holmqvist 2010 (Sec. "Saccade detection" and
        "Glissade detection"; glissade = PSO, Larsson et al. 2013): a run above the peak threshold; the
        onset is the first sample, walking back, below the onset threshold at a local velocity minimum; the
        offset threshold is 0.7 onset threshold + 0.3 (mean + 3 SD of the 40 ms before the onset) (local
        noise), and the offset the first local minimum below it walking forward from the peak. A PSO is a
        return above the offset threshold within `pso_max_ms` of the offset; it ends at the next local
        minimum below it. Walks are bounded by `saccade_max_ms`, which keeps every decision within a bounded
        context; a run above the peak threshold longer than that (e.g. the linear ramp across a filled gap in
        which the eye moved) is a saccade as in Tobii I-VT, every sample above the threshold, with no PSO.

        Edges to the sample: the centred differentiation window attributes the movement between two samples
        to both, so the velocity minimum the walks stop at lies up to its half width outside the movement
        (issue 14 measured saccades starting ~4 ms early, 36 ms long against the experts' 28-32 ms), and
        the local-minimum rule can stop a noise sample or two earlier still. So the onset moves forward
        (up to the peak) while the step into it, one sample's displacement per sample period (`step`), is
        below the onset threshold and the steps' local noise (mean + 3 SD over the 40 ms before): the eye
        had not moved yet. Likewise the offset (the velocity minimum, where with a PSO the eye turns back,
        N&H 2010's saccade end) moves back while the step out of the last saccade sample is below the offset
        threshold: a sample is in flight when the eye moves into it and out of it. Where the eye turns back
        before N&H's offset (the overshoot's turning point: the next step points against the saccade), the
        saccade ends there and the PSO begins (Larsson et al. 2013's PSO onset; with the smeared velocity,
        N&H's offset there lies up to the window's half width into the PSO). The samples between the two
        offsets are PSO when the eye turned back into them (the overshoot's return, which at 60 Hz is
        often a single step, too short for a velocity peak of its own), else fixation (it arrived). The PSO's
        own end, the velocity minimum after its last return above the PSO threshold, moves back by the window's
        half width (not before that return's last sample): the smear again, which put the PSO end 7 ms after the
        expert's (Zemblys et al. 2018) and the fixation onset of Hooge et al.'s coders inside our PSO.

        The walks are short (a few samples), so they run on Python floats: one conversion per window
        instead of a dozen numpy calls per saccade (the same comparisons, NaN compares False). A streaming
        window (`window` = (segment index of its first row, segment start, segment end)) keeps the walks of
        each run whose whole context it holds with final values (the gap filling around that context seen
        too): any later window would find the same where the result matters, so it reuses them instead of
        walking again (the result does not depend on the chunking)."""
        tm, m = self.tm, len(v)
        above = v > peak
        if not above.any():
            return []
        s, e = _true_runs(above)
        vl = v.tolist()
        sl = ax = ay = None  # converted at the first walk that needs them
        walk, pso_n = tm.sacc_walk_n, tm.pso_n

        def stop(i: int, hi: int, thr: float) -> int:
            """First i..hi-1 below `thr` at a local minimum (the next sample is not lower) or in a gap, else hi."""
            while i < hi:
                x = vl[i]
                if math.isnan(x) or (x < thr and not (i + 1 < m and vl[i + 1] < x)):
                    return i
                i += 1
            return hi

        def peak_at(a: int, b: int) -> int:
            return max(range(a, b), key=vl.__getitem__)  # the first maximum, as np.argmax

        origin, bos, eos = window
        cache = self.saccade_cache if origin is not None else None
        if cache is not None and len(cache) > 256:
            for key in [k for k in cache if k[0] < origin]:
                del cache[key]
        # the context of one run's walks, before and after, plus what makes those values final (gap filling)
        final = tm.cap_n + 1 + tm.margin_n + tm.gap_n + tm.vel_k
        reach = walk + tm.noise_n + 2 + final, walk + 2 * pso_n + 1 + final
        out: list[tuple[int, int, int]] = []
        last = None  # (offset, PSO threshold, index in out or -1) of the previous run above the peak threshold
        for a, b in zip(s.tolist(), e.tolist()):
            if b - a > walk:  # no walk reaches its edges: Tobii I-VT's saccade (above the threshold), no PSO
                out.append((a, b, b))
                last = None
                continue
            if last is not None and a < last[0] + pso_n:
                # within a PSO's reach of the previous run: a strong PSO (N&H 2010: glissades may exceed the
                # peak threshold), or a second peak of the same saccade; it extends what came before
                p = peak_at(a, b)
                end = stop(p, min(m, p + walk), last[1])
                if last[2] >= 0:
                    on, off, pso_end = out[last[2]]
                    out[last[2]] = (on, max(off, end), max(pso_end, end)) if a < off else (on, off, max(pso_end, end))
                continue  # the reach stays the saccade's: a PSO starts within pso_max_ms of its offset
            key = None
            if cache is not None:
                hit = cache.get((origin + a, origin + b))
                if hit is not None:
                    on, walked, off, pso_end = (x - origin for x in hit[:4])
                    pso_thr = hit[4]
                    if on < 0:  # too short (N&H's 10 ms minimum)
                        last = (walked, pso_thr, -1)
                        continue
                    last = (walked, pso_thr, len(out))
                    out.append((on, off, pso_end))
                    continue
                if (a >= reach[0] or bos) and (b + reach[1] < m or eos):  # final here: kept
                    key = (origin + a, origin + b)
            if sl is None:
                sl, ax, ay = step.tolist(), ang[:, 0].tolist(), ang[:, 1].tolist()
            thr_on = float(onset[a])
            lo = max(0, a - walk)
            on = -1
            for i in range(a - 1, lo - 1, -1):  # walking back: below the onset threshold at a local minimum
                x = vl[i]
                if math.isnan(x) or (x < thr_on and not (i > 0 and vl[i - 1] < x)):
                    on = i + 1
                    break
            if on < 0:
                for i in range(a - 1, lo - 1, -1):  # else the last local minimum
                    x = vl[i]
                    if not (i > 0 and vl[i - 1] < x):
                        on = i + 1
                        break
            if on < 0:
                on = lo
            local = self._noise(vl[max(0, on - 1 - tm.noise_n):on], thr_on)
            still = max(thr_on, self._noise(sl[max(1, on - tm.noise_n):on], thr_on))  # the steps' own noise
            p = peak_at(a, b)
            off_thr = 0.7 * thr_on + 0.3 * local
            walked = stop(p, min(m, p + walk), off_thr)  # N&H's offset; their 10 ms minimum applies to it
            pso_thr = max(local, thr_on / 2)
            if walked - on < tm.min_sacc_n:
                last = (walked, pso_thr, -1)
                if key is not None:
                    cache[key] = (origin - 1, origin + walked, 0, 0, pso_thr)
                continue
            last = (walked, pso_thr, len(out))
            while on < p and sl[on] < still:  # the eye had not moved yet
                on += 1
            off, turned = walked, False
            x0, y0 = ax[on - 1 if on else 0], ay[on - 1 if on else 0]
            for i in range(p + 1, walked):  # the overshoot's turning point: the eye moves back, the PSO begins
                if (ax[i + 1] - ax[i]) * (ax[i] - x0) + (ay[i + 1] - ay[i]) * (ay[i] - y0) < 0:
                    off, turned = i, True
                    break
            while off - 1 > p and off < m and sl[off] < off_thr:  # the eye had stopped moving
                off -= 1
            pso_end = walked if turned else off
            if off < walked and off > on and not turned:  # the eye turned back into `off` or arrived there
                dx, dy = ax[off] - ax[off - 1], ay[off] - ay[off - 1]
                if dx * (ax[off - 1] - x0) + dy * (ay[off - 1] - y0) < 0:
                    pso_end = walked
            for j in range(min(m, walked + pso_n) - 1, walked - 1, -1):  # the last return above the PSO threshold
                if vl[j] > pso_thr:  # its velocity minimum lies up to the window's half width after the eye stops
                    pso_end = max(j + 1, stop(j, min(m, j + pso_n), pso_thr) - tm.vel_k)
                    break
            out.append((on, off, pso_end))
            if key is not None:
                cache[key] = (origin + on, origin + walked, origin + off, origin + pso_end, pso_thr)
        return out

    @staticmethod
    def _noise(values: list[float], default: float) -> float:
        """Mean + 3 SD of the finite values (N&H 2010's local noise), `default` for fewer than two."""
        x = [v for v in values if not math.isnan(v)]
        if len(x) < 2:
            return default
        mean = sum(x) / len(x)
        return mean + 3 * math.sqrt(sum((v - mean) ** 2 for v in x) / len(x))

    def _pursuit(self, ang: np.ndarray, fast: np.ndarray) -> np.ndarray:
        """Smooth pursuit: the slow velocity of the gaze angles, the distance between the mean positions of
        the two halves of `pursuit_window_ms` over their time apart, above `pursuit_velocity_deg_s`.

        I-VDT's idea (Komogortsev & Karpov 2013, Behav Res Methods 45:203): after the saccades, what moves
        is pursuit and what stays within a small area is fixation; as in REMoDNaV (Dar, Wagner & Hanke 2021,
        Behav Res Methods 53:399) the decision is a velocity threshold on a smoothed signal. The two halves
        ([i - w, i) and [i, i + w)) hold only valid samples of the same stretch between saccades, PSOs and
        gaps; the speed is the distance between their mean angles over the time between their mean sample
        times. Tracker noise alone moves these means too (a few deg/s in noisy recordings), so pursuit must
        also move in a consistent direction (Larsson et al. 2015's criterion): the step from each quarter of
        the window to the next goes along it. The sums are differences of prefix sums of the angles in fixed
        point (2^-32 deg): integer sums are exact, so they are the same in any window."""
        tm, m = self.tm, len(ang)
        w = tm.pursuit_n
        ok = ~fast & ~np.isnan(ang[:, 0])
        idx = np.arange(m)
        fixed = np.where(ok[:, None], np.rint(ang * 4294967296.0), 0.0).astype(np.int64)
        q = np.zeros((m + 1, 4), np.int64)  # prefix sums: angle x, angle y, count, sample index
        q[1:, 0:2] = np.cumsum(fixed, axis=0)
        q[1:, 2] = np.cumsum(ok)
        q[1:, 3] = np.cumsum(np.where(ok, idx, 0))
        # the stretch around i: after the last fast sample at or before i, before the next one after i
        after_fast = np.maximum.accumulate(np.where(fast, idx, -1)) + 1
        nxt = np.where(fast, idx, m)
        before_fast = np.minimum.accumulate(nxt[::-1])[::-1]
        before_fast = np.concatenate((before_fast[1:], [m]))
        fb = np.minimum(idx + w, before_fast)
        ba = np.maximum(idx - w, after_fast)
        fwd = q[fb] - q[idx]
        bwd = q[idx] - q[np.minimum(ba, idx)]  # empty when a fast sample is at i
        need = max(2, w // 4)
        enough = (fwd[:, 2] >= need) & (bwd[:, 2] >= need)
        with np.errstate(invalid="ignore", divide="ignore"):
            cf, cb = fwd[:, 2:3].astype(float), bwd[:, 2:3].astype(float)
            d = (fwd[:, 0:2] / cf - bwd[:, 0:2] / cb) / 4294967296.0
            dt = (fwd[:, 3] / cf[:, 0] - bwd[:, 3] / cb[:, 0]) / tm.rate
            slow = np.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2) / dt
            moving = enough & (slow > self.cfg.pursuit_velocity_deg_s)
            if not moving.any():
                return moving
            # consistent direction (Larsson et al. 2015, Biomed Signal Process Control 18:145): from each quarter
            # of the window to the next (where both hold two samples or more) the eye moves along d
            half = max(1, w // 2)
            sel = np.flatnonzero(moving)  # only where the speed says pursuit
            lo_s, hi_s, ds = np.minimum(after_fast[sel], sel), before_fast[sel], d[sel]
            bounds = [np.minimum(np.maximum(sel + k, lo_s), hi_s) for k in (-w, -half, 0, half, w)]
            quarters = [q[b] - q[a] for a, b in itertools.pairwise(bounds)]
            checked = np.zeros(len(sel), bool)
            against = np.zeros(len(sel), bool)
            for qa, qb in itertools.pairwise(quarters):
                both = (qa[:, 2] >= 2) & (qb[:, 2] >= 2)
                step = qb[:, 0:2] / qb[:, 2:3].astype(float) - qa[:, 0:2] / qa[:, 2:3].astype(float)
                along = step[:, 0] * ds[:, 0] + step[:, 1] * ds[:, 1]
                checked |= both
                against |= both & ~(along > 0)
            moving[sel] = checked & ~against
        return moving

    def _gap_blinks(self, gs: np.ndarray, ge: np.ndarray, distorted: np.ndarray, ang: np.ndarray) -> np.ndarray:
        """Blink seeds among the gaps (invalid runs shorter than `gap_fill_max_ms`, which 002 fills in rather
        than calls blinks): trackers that lose the pupil only while the lid covers it (EyeLink, SMI) report
        blinks of 20-70 ms of invalid samples inside a longer eyelid artefact, the gaze swinging away and back
        (Nystrom & Holmqvist 2010, Sec. "Blink detection"). A gap is a blink when its distorted stretch (up
        to `blink_extension_ms` either side) lasts at least `gap_fill_max_ms` (002's shortest blink) and the
        gaze comes back: the largest excursion from where it was before is over twice the net displacement
        across the stretch (a saccade next to a gap does not come back)."""
        m, ext = len(distorted), self.tm.blink_ext_n
        out = np.zeros(m, bool)
        ds, de = _true_runs(distorted)
        k = np.searchsorted(de, gs, side="right")  # the distorted run holding each gap (the gap is distorted)
        for a, b, r in zip(gs.tolist(), ge.tolist(), k.tolist()):
            lo, hi = max(int(ds[r]), a - ext), min(int(de[r]), b + ext)
            if hi - lo < self.tm.gap_n or lo < 1 or hi >= m:
                continue
            before, after, inside = ang[lo - 1], ang[hi], ang[lo:hi]
            away = np.sqrt(np.nanmax(np.sum((inside - before) ** 2, axis=1), initial=0.0))
            if away > 2 * math.sqrt(float(np.sum((after - before) ** 2))):
                out[a:b] = True
        return out

    def _whole_blinks(self, seeds: np.ndarray, distorted: np.ndarray) -> np.ndarray:
        """Blink samples: each seed (an invalid run of 002's 75-425 ms with its 50 ms margins, or eye openness below
        `lid_closing_fraction` of its trailing median) with the eyelid-distorted samples next to it, up to
        `blink_extension_ms` either side. Distorted: eye openness low, vertical gaze velocity above the
        saccade onset threshold (the lid drags the pupil's image, so blinks masquerade as saccades; Nystrom &
        Holmqvist 2010, Sec. "Blink detection") or no gaze. (The pupil's own distortion is handled by the
        50 ms margins and the dilation-speed filter, Kret & Sjak-Shie 2019, not by the label.)
        What is interpolated still follows 002 (75-425 ms invalid runs + margins); only the label grows."""
        m = len(seeds)
        out = seeds.copy()
        if not seeds.any():
            return out
        ext = self.tm.blink_ext_n
        ds, de = _true_runs(distorted | seeds)
        ss, se = _true_runs(seeds)
        k = np.searchsorted(de, ss, side="right")  # the distorted run holding each seed
        for a, b, r in zip(ss.tolist(), se.tolist(), k.tolist()):
            out[max(int(ds[r]), a - ext, 0):min(int(de[r]), b + ext, m)] = True
        return out

    def _merge(self, code: np.ndarray, u: np.ndarray, rs: np.ndarray, re: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Merge short saccade runs between two fixation runs whose positions are close (Tobii I-VT).

        The positions compared are the mean gaze directions over up to `merge_position_ms` of the fixation
        runs next to the gap, so the decision depends on a bounded neighbourhood only. Close: less than
        `merge_noise_sd` SDs of the two windows' sample spread apart (their sample clouds overlap: the shift is
        not told from the tracker's noise, the mean + 3 SD convention of Nystrom & Holmqvist 2010), which
        replaces Tobii's fixed `merge_max_angle_deg` (a typical tracker's noise; used with `merge_noise_sd`
        = 0). So a 0.3 deg microsaccade splits a fixation on a precise tracker (EyeLink) and not within the
        noise of a Tobii TX300 recording of an infant.
        """
        tm = self.tm
        if (code == PSO).any():  # a saccade and its PSO are one gap
            rs, re = _code_runs(np.where(code == PSO, SACCADE, code))
        rc = code[rs]
        cand = np.nonzero((rc[1:-1] == SACCADE) & (re[1:-1] - rs[1:-1] <= tm.merge_gap_n)
                          & (rc[:-2] == FIXATION) & (rc[2:] == FIXATION))[0] + 1
        if not len(cand):
            return (code, *_code_runs(code))
        P = tm.merge_pos_n
        a0 = np.maximum(rs[cand - 1], rs[cand] - P)
        b1 = np.minimum(re[cand + 1], re[cand] + P)
        bounds = np.stack((a0, rs[cand], re[cand], b1), axis=1).ravel()
        padded = np.concatenate((u, np.zeros((1, 3))))
        sums = np.add.reduceat(padded, bounds, axis=0)  # each segment summed on its own: window-independent
        a, b = sums[0::4], sums[2::4]
        la, lb = np.sqrt(np.einsum("ij,ij->i", a, a)), np.sqrt(np.einsum("ij,ij->i", b, b))
        cos = np.einsum("ij,ij->i", a, b) / (la * lb)
        k = self.cfg.merge_noise_sd
        if k > 0:  # the samples' spread around each mean direction: 1 - |mean of the unit vectors|^2 (rad^2)
            na, nb = rs[cand] - a0, b1 - re[cand]
            spread = np.sqrt(0.5 * (np.maximum(0.0, 1 - (la / na) ** 2) + np.maximum(0.0, 1 - (lb / nb) ** 2)))
            merge = cand[np.arccos(np.minimum(cos, 1.0)) < k * spread]
        else:
            merge = cand[cos >= self.cos_merge]
        if not len(merge):
            return (code, *_code_runs(code))
        code = code.copy()
        for r in merge.tolist():
            code[rs[r]:re[r]] = FIXATION
        rs, re = _code_runs(code)
        return code, rs, re


# -- one segment (constant rate) -------------------------------------------------------------------------

class _Segment:
    """Buffers a segment's input, computes windows, and hands out final output samples."""

    def __init__(self, cfg: EyesignalConfig, geo: Geometry, rate: float) -> None:
        self.cfg, self.geo, self.rate = cfg, geo, rate
        self.tm = Timing.of(cfg, rate)
        self.pipeline = _Pipeline(cfg, geo, self.tm)
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
        with np.errstate(invalid="ignore", divide="ignore"):
            self.comb[a:b], self.origin = _combine(self.raw[a:b], self.t[a:b], self.prev_t, self.origin,
                                               self.staged == 0, self.cfg, self.geo, self.rate)
        self.prev_t = float(self.t[b - 1])
        self.staged = self.n

    def _threshold(self, block: int) -> tuple[float, float, float, float]:
        """A block's causal thresholds, from the trailing window before it: dilation speed (median + n MAD),
        saccade peak and onset velocity, median eye openness (see `_velocity_thresholds`).

        Each block's velocities, dilation speeds and openness values are computed once (when the next block
        starts) and kept for the `pupil_mad_blocks` blocks of the window: every value has its full context
        then, so the thresholds do not depend on chunking."""
        tm = self.tm
        fixed = self.cfg.velocity_threshold_deg_s
        if block == 0:
            return math.inf, fixed, fixed, math.nan
        self.block_values.append(self._block_values(block - 1))
        del self.block_values[:-tm.mad_blocks]
        v, speed, opn = (np.concatenate(parts) for parts in zip(*self.block_values))
        peak, onset = self._velocity_thresholds(v)
        lid = _median(opn) if len(opn) else math.nan
        if not len(speed):
            return math.inf, peak, onset, lid
        med = _median(speed)
        return med + self.cfg.pupil_mad_multiplier * _median(np.abs(speed - med)), peak, onset, lid

    def _block_values(self, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block j's plausible velocities (deg/s; of its samples shifted back by the velocity half-window, so
        that each has its whole window), finite dilation speeds and valid eye openness values."""
        N, h = self.tm.mad_block_n, self.tm.vel_k
        a, b = j * N, (j + 1) * N
        if self.cfg.adaptive_threshold:
            lo = max(a - 2 * h, 0)
            rows = self.comb[lo - self.base:b - self.base]
            gaze = rows[:, _X:_EZ + 1].copy()
            gaze[rows[:, _GOK] == 0] = np.nan
            with np.errstate(invalid="ignore", divide="ignore"):
                v = self.pipeline.velocity(gaze, self.t[lo - self.base:b - self.base])[2]
            v = v[max(a - h, 0) - lo:b - h - lo]
            v = v[v < 1000.0]  # finite, plausible
        else:
            v = np.zeros(0)
        # dilation speed: the larger of the speeds to the previous and the next sample (Kret & Sjak-Shie 2019)
        lo, hi = max(a - 1, 0), b + 1
        p = np.where(self.comb[lo - self.base:hi - self.base, _POK] > 0, self.comb[lo - self.base:hi - self.base, _P],
                     np.nan)
        t = self.t[lo - self.base:hi - self.base]
        with np.errstate(invalid="ignore"):
            dp = np.abs(np.diff(p)) / np.diff(t)
            speed = np.fmax(np.concatenate(([np.nan], dp)), np.concatenate((dp, [np.nan])))
        speed = speed[a - lo:b - lo]
        speed = speed[speed < np.inf]  # finite (NaN compares False)
        opn = self.comb[a - self.base:b - self.base, _OPN]
        return v, speed, opn[opn >= 0]  # valid openness (NaN compares False)

    def _velocity_thresholds(self, v: np.ndarray) -> tuple[float, float]:
        """Nystrom & Holmqvist 2010's adaptive peak threshold over the trailing window's velocities `v`:
        PT = mean + 6 SD of the velocities below PT, iterated from 100 deg/s until it moves < 1 deg/s;
        onset threshold mean + 3 SD. Mean and SD are the median and 1.4826 MAD, so pursuit and the flanks
        of saccades in the window do not inflate them. The fixed `velocity_threshold_deg_s` is the floor
        of PT and half of it the floor of the onset threshold (a noise-free signal would get 0 deg/s), and
        both thresholds with `adaptive_threshold = false`. (Sorted once: each iteration's "below PT" is a
        prefix, whose median is read directly.)"""
        fixed = self.cfg.velocity_threshold_deg_s
        if not self.cfg.adaptive_threshold or len(v) < 2 * self.tm.noise_n:
            return fixed, fixed
        v = np.sort(v)
        pt, mean, sd = 100.0, 0.0, 0.0
        for _ in range(50):
            k = int(np.searchsorted(v, pt))  # v[:k] < pt
            if k < 2:
                break
            below = v[:k]
            mean = 0.5 * (float(below[(k - 1) // 2]) + float(below[k // 2]))  # robust centre and spread
            sd = 1.4826 * _median(np.abs(below - mean))  # (Engbert & Kliegl 2003, Vision Res 43:1035)
            new = mean + 6 * sd
            done = abs(new - pt) < 1.0
            pt = new
            if done:
                break
        return max(pt, fixed), max(mean + 3 * sd, fixed / 2)

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
        blocks = np.arange(lo, hi) // tm.mad_block_n - first
        threshold = np.asarray(self.thresholds[first:last_block + 1])[blocks]  # (m, 4): pupil, peak, onset, openness
        a, b = lo - self.base, hi - self.base
        with np.errstate(invalid="ignore", divide="ignore"):
            new = self.pipeline.run(self.t[a:b], self.comb[a:b], threshold, bos=lo == 0, eos=end, origin=lo,
                                    rows=slice(self.computed - lo, upto - lo))
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
    pipe = _Pipeline(cfg, geo, Timing.of(cfg, rate))
    gaze = np.zeros((len(x), 5))
    gaze[:, 0], gaze[:, 1], gaze[:, 4] = x, y, geo.distance_mm
    with np.errstate(invalid="ignore", divide="ignore"):
        _, u, velocity, ang = pipe.velocity(gaze, np.asarray(timestamps, dtype=np.float64))
        fixed = np.full(len(x), cfg.velocity_threshold_deg_s)
        return pipe.classify(velocity, u, ang, fixed, fixed)[0]


def process_recording(timestamps: Any, samples: Any, rate: float, config: EyesignalConfig | None = None,
                      screen: ScreenConfig | None = None) -> EyeSignalOutput:
    """Offline: the same processor on a whole recording (one push, then flush)."""
    proc = EyeSignalProcessor(rate, config, screen)
    t, raw = proc._check(timestamps, samples)
    step = max(1, int(rate * OFFLINE_BLOCK_S))  # bounded memory; the output does not depend on it
    parts = [proc.push(t[i:i + step], raw[i:i + step]) for i in range(0, len(t), step)]
    return EyeSignalOutput.concat([*parts, proc.flush()])
