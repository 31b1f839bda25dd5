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
   else `screen.distance_mm` in front of the display centre) -> angles and unit vectors; angular
   velocity = angle between the directions k samples before and after / their time difference.
4. I-VT (Tobii I-VT filter): velocity < threshold = fixation candidate; a saccade run of at most
   `merge_max_gap_ms` between two fixation runs is merged into them when the fixations' mean positions
   (over up to `merge_position_ms` next to the gap, a bounded stand-in for Tobii's whole-fixation
   average) are less than `merge_max_angle_deg` apart; fixations shorter than `min_fixation_ms`
   become unclassified. Blink and loss runs keep their own codes.
5. Saccade ("sweep") correction (002, Sec. III-A-3): x/y linearly interpolated across each saccade of
   at most `saccade_correction_max_ms`, as the extra channels `x/y_saccade_corrected`.
6. Pupil (002, footnote 3; Kret & Sjak-Shie 2019): samples whose dilation speed exceeds
   median + 16 MAD of the trailing `pupil_mad_window_s` (thresholds renewed every
   `pupil_mad_update_s`; none in the first block) are removed before the interpolation;
   `pupil_fluctuation` is the difference between consecutive blink-corrected pupil samples.

Timestamps: a sample whose timestamp is not finite or not later than every earlier one is dropped (the
count goes out as a `discontinuity` event). A time gap longer than `max(gap_fill_max_ms, 3 periods)`
or 25 consecutive intervals off the nominal period (a rate change) ends the current segment: it is
flushed as at the end of a stream and a new segment starts (at the new rate), marked `segment_start`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eyemotion import UserError
from eyemotion.config import EyesignalConfig, ScreenConfig
from eyemotion.streams import EVENT_CODES, GAZE_CLEAN, GAZE_RAW, GAZE_VALIDITY_BITS, ContractError

log = logging.getLogger(__name__)

FIXATION, SACCADE, BLINK, LOSS, UNCLASSIFIED = (EVENT_CODES[k] for k in
                                                ("fixation", "saccade", "blink", "loss", "unclassified"))
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
    lookahead: int  # samples after a sample that its output depends on
    history: int  # samples before a sample that its output depends on
    delay: int  # lookahead + block: accepted samples between an input and its output

    @classmethod
    def of(cls, cfg: EyesignalConfig, rate: float) -> "Timing":
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
        mad_blocks = max(1, int(round(cfg.pupil_mad_window_s / cfg.pupil_mad_update_s)))
        block_n = _samples(cfg.compute_block_ms, rate, "round")
        fill = cap_n + 1 + margin_n + gap_n  # region end + the padding decision beyond it
        ivt = min_fix_n + merge_gap_n + merge_pos_n + 2  # fixation length through merges
        sacc = sacc_max_n + 1  # end of the saccade being corrected
        lookahead = fill + vel_k + ivt + sacc + 1
        return cls(rate, gap_n, blink_max_n, margin_n, cap_n, vel_k, merge_gap_n, merge_pos_n, min_fix_n,
                   sacc_max_n, mad_block_n, mad_blocks, block_n, lookahead, lookahead + 2,
                   lookahead + block_n)


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
    def of(cls, screen: ScreenConfig, cfg: EyesignalConfig) -> "Geometry":
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
    def concat(cls, parts: list["EyeSignalOutput"]) -> "EyeSignalOutput":
        if not parts:
            return cls(np.zeros(0), np.zeros((0, _NOUT)))
        return cls(np.concatenate([p.timestamps for p in parts]), np.concatenate([p.samples for p in parts]),
                   [e for p in parts for e in p.events])


# -- stage 1: binocular combination ---------------------------------------------------------------------

def _combine(raw: np.ndarray, t: np.ndarray, prev_t: float | None, origin: np.ndarray | None,
             first: bool, cfg: EyesignalConfig, geo: Geometry, rate: float
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sample combination of both eyes -> (n, _NCOMB) columns; returns the last gaze origin seen."""
    n = len(raw)
    eyes = raw[:, :2 * _EYE].reshape(n, 2, _EYE)
    use = np.array([cfg.eye_selection != "right", cfg.eye_selection != "left"])
    flags = np.zeros(n, np.int64)

    gx, gy = eyes[:, :, _GX], eyes[:, :, _GY]
    claimed = eyes[:, :, _GVALID] == 1
    lo, hi = -cfg.offscreen_margin, 1 + cfg.offscreen_margin
    with np.errstate(invalid="ignore"):
        sane = np.isfinite(gx) & np.isfinite(gy) & (gx >= lo) & (gx <= hi) & (gy >= lo) & (gy <= hi)
        pd = eyes[:, :, _PUP]
        p_claimed = eyes[:, :, _PVALID] == 1
        p_finite = np.isfinite(pd) & (pd > 0)
        p_range = p_finite & (pd >= cfg.pupil_min_mm) & (pd <= cfg.pupil_max_mm)
        openness = eyes[:, :, _OPEN]
        o_ok = (eyes[:, :, _OPENVALID] == 1) & np.isfinite(openness) & (openness >= 0)
        orig = eyes[:, :, _OX:_OZ + 1]
        g_ok_origin = (eyes[:, :, _OVALID] == 1) & np.isfinite(orig).all(axis=2) & (orig[:, :, 2] > 0)
    bad = (claimed & ~sane).any(axis=1) | (p_claimed & ~p_finite).any(axis=1)
    flags |= np.where(bad, BIT["bad_input"], 0)

    n_open = o_ok.sum(axis=1)
    closed = (n_open > 0) & (np.where(o_ok, openness, -np.inf).max(axis=1) < cfg.closed_openness_mm)
    flags |= np.where(closed, BIT["eyes_closed"], 0)

    g_ok = claimed & sane & use & ~closed[:, None]
    p_ok = p_claimed & p_range & use & ~closed[:, None]
    flags |= g_ok[:, 0] * BIT["left_gaze"] | g_ok[:, 1] * BIT["right_gaze"]
    flags |= p_ok[:, 0] * BIT["left_pupil"] | p_ok[:, 1] * BIT["right_pupil"]
    flags |= np.where((p_claimed & p_finite & ~p_range & use).any(axis=1), BIT["pupil_outlier"], 0)

    out = np.empty((n, _NCOMB))
    ng = g_ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, _X] = np.where(g_ok, gx, 0.0).sum(axis=1) / ng
        out[:, _Y] = np.where(g_ok, gy, 0.0).sum(axis=1) / ng
        npup = p_ok.sum(axis=1)
        out[:, _P] = np.where(p_ok, pd, 0.0).sum(axis=1) / npup
        out[:, _OPN] = np.where(o_ok, openness, 0.0).sum(axis=1) / n_open
        no = g_ok_origin.sum(axis=1)
        eye = np.where(g_ok_origin[:, :, None], orig, 0.0).sum(axis=1) / no[:, None]  # (n, 3) UCS
    # eye position: this sample's gaze origin, else the last one seen, else in front of the centre
    last = np.maximum.accumulate(np.where(no > 0, np.arange(n), -1))
    if origin is None:
        fallback = np.array([0.0, geo.centre_y_ucs, geo.distance_mm])
        flags |= np.where(last < 0, BIT["distance_default"], 0)
    else:
        fallback = origin
    eye = np.where((last >= 0)[:, None], eye[np.maximum(last, 0)], fallback)
    new_origin = eye[-1].copy() if (n and last[-1] >= 0) else origin
    out[:, _EX] = eye[:, 0]
    out[:, _EY] = eye[:, 1] - geo.centre_y_ucs
    out[:, _EZ] = eye[:, 2]
    out[:, _GOK] = ng > 0
    out[:, _POK] = npup > 0

    dt = np.diff(t, prepend=t[0] if prev_t is None else prev_t) * rate
    irregular = (dt < 0.5) | (dt > 1.5)
    if prev_t is None and n:
        irregular[0] = False
    flags |= np.where(irregular, BIT["time_irregular"], 0)
    if first and n:
        flags[0] |= BIT["segment_start"]
    out[:, _FLAGS] = flags
    return out, new_origin


# -- helpers for runs -----------------------------------------------------------------------------------

def _true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in a bool array."""
    d = np.diff(mask.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _code_runs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of the runs of equal values."""
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.concatenate(([0], change)), np.concatenate((change, [len(codes)]))


def _cover(starts: np.ndarray, ends: np.ndarray, m: int) -> np.ndarray:
    """Bool mask of length m covering the union of [starts, ends) (clipped to the array)."""
    s, e = np.clip(starts, 0, m), np.clip(ends, 0, m)
    delta = np.bincount(s, minlength=m + 1)[:m + 1] - np.bincount(e, minlength=m + 1)[:m + 1]
    return np.cumsum(delta[:m]) > 0


def _positions(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """All indices of the runs [starts, ends), concatenated."""
    lens = ends - starts
    total = int(lens.sum())
    offsets = np.repeat(np.cumsum(lens) - lens, lens)
    return np.arange(total) - offsets + np.repeat(starts, lens)


def _interpolate_runs(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Linear interpolation of `values` (m,) or (m, c) across each run, between samples start-1 and end."""
    lens = ends - starts
    pos = _positions(starts, ends)
    left = np.repeat(starts - 1, lens)
    right = np.repeat(ends, lens)
    w = (pos - left) / (right - left)
    if values.ndim == 2:
        w = w[:, None]
    out = values.copy()
    out[pos] = values[left] + w * (values[right] - values[left])
    return out


# -- the window computation ------------------------------------------------------------------------------

class _Pipeline:
    """The vectorised computation on one window of combined samples (see the module docstring)."""

    def __init__(self, cfg: EyesignalConfig, geo: Geometry, tm: Timing) -> None:
        self.cfg, self.geo, self.tm = cfg, geo, tm
        self.cos_merge = math.cos(math.radians(cfg.merge_max_angle_deg))

    def run(self, t: np.ndarray, c: np.ndarray, threshold: np.ndarray, bos: bool, eos: bool) -> np.ndarray:
        tm, geo = self.tm, self.geo
        m = len(t)
        out = np.full((m, _NOUT), np.nan)
        flags = c[:, _FLAGS].astype(np.int64)
        g_ok = c[:, _GOK] > 0

        # 2. gaps, blinks, loss: classify invalid runs, pad long ones, fill short bad regions
        s, e = _true_runs(~g_ok)
        lens = e - s
        open_end = (e == m) & (not eos)
        long_run = lens >= tm.gap_n
        bad = _cover(s[long_run] - tm.margin_n, e[long_run] + tm.margin_n, m) | ~g_ok
        blink_run = long_run & (lens <= tm.blink_max_n) & ~open_end
        loss_run = lens > tm.blink_max_n
        bs, be = _true_runs(bad)
        fill = (be - bs <= tm.cap_n) & (bs > 0) & (be < m)
        bs, be = bs[fill], be[fill]
        gaze = c[:, [_X, _Y, _EX, _EY, _EZ]]
        gaze = _interpolate_runs(gaze, bs, be)
        filled = _cover(bs, be, m)
        gaze[~g_ok & ~filled] = np.nan
        flags |= np.where(filled, BIT["gaze_interpolated"], 0)

        # 6 (first half). pupil: outliers by dilation speed, then the same filling
        p = np.where(c[:, _POK] > 0, c[:, _P], np.nan)
        with np.errstate(invalid="ignore"):
            dp = np.abs(np.diff(p)) / np.diff(t)
            speed = np.fmax(np.concatenate(([np.nan], dp)), np.concatenate((dp, [np.nan])))
            outlier = speed > threshold
        flags |= np.where(outlier, BIT["pupil_outlier"], 0)
        p_good = np.isfinite(p) & ~outlier & ~bad
        ps, pe = _true_runs(~p_good)
        pfill = (pe - ps <= tm.cap_n) & (ps > 0) & (pe < m)
        ps, pe = ps[pfill], pe[pfill]
        pupil = _interpolate_runs(np.where(p_good, p, np.nan), ps, pe)
        pfilled = _cover(ps, pe, m)
        flags |= np.where(pfilled, BIT["pupil_interpolated"], 0)

        # 3. geometry and velocity
        dx = (gaze[:, 0] - 0.5) * geo.width_mm - gaze[:, 2]
        dy = (0.5 - gaze[:, 1]) * geo.height_mm - gaze[:, 3]
        dz = gaze[:, 4]
        out[:, OUT["angle_x"]] = np.degrees(np.arctan2(dx, dz))
        out[:, OUT["angle_y"]] = np.degrees(np.arctan2(dy, dz))
        u = np.stack((dx, dy, dz), axis=1)
        u /= np.sqrt((u * u).sum(axis=1))[:, None]
        k = tm.vel_k
        velocity = np.full(m, np.nan)
        if m > 2 * k:
            chord = np.sqrt(((u[2 * k:] - u[:-2 * k]) ** 2).sum(axis=1))
            with np.errstate(invalid="ignore"):
                velocity[k:m - k] = np.degrees(2 * np.arcsin(np.minimum(chord / 2, 1.0))) / (t[2 * k:] - t[:-2 * k])

        # 4. I-VT with merging and discarding
        with np.errstate(invalid="ignore"):
            code = np.where(velocity < self.cfg.velocity_threshold_deg_s, FIXATION,
                            np.where(velocity >= self.cfg.velocity_threshold_deg_s, SACCADE, UNCLASSIFIED))
        code[~np.isfinite(gaze[:, 0])] = UNCLASSIFIED
        code[_cover(s[blink_run], e[blink_run], m)] = BLINK
        code[_cover(s[loss_run], e[loss_run], m)] = LOSS
        code = self._merge(code, u)
        rs, re = _code_runs(code)
        short = (code[rs] == FIXATION) & (re - rs < tm.min_fix_n)
        code[_cover(rs[short], re[short], m)] = UNCLASSIFIED

        # 5. saccade correction
        rs, re = _code_runs(code)
        sac = (code[rs] == SACCADE) & (re - rs <= tm.sacc_max_n) & (rs > 0) & (re < m)
        xy = gaze[:, :2]
        corrected = _interpolate_runs(xy, rs[sac], re[sac])
        corrected = np.where(np.isfinite(corrected), corrected, xy)

        out[:, OUT["x"]] = gaze[:, 0]
        out[:, OUT["y"]] = gaze[:, 1]
        out[:, OUT["pupil"]] = pupil
        out[:, OUT["pupil_raw"]] = p
        out[1:, OUT["pupil_fluctuation"]] = pupil[1:] - pupil[:-1]
        out[:, OUT["velocity"]] = velocity
        out[:, OUT["event"]] = code
        out[:, OUT["eye_openness"]] = c[:, _OPN]
        out[:, OUT["eye_distance"]] = gaze[:, 4]
        out[:, OUT["validity"]] = flags
        out[:, OUT["x_saccade_corrected"]] = corrected[:, 0]
        out[:, OUT["y_saccade_corrected"]] = corrected[:, 1]
        return out

    def _merge(self, code: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Merge short saccade runs between two fixation runs whose positions are close (Tobii I-VT)."""
        tm = self.tm
        if tm.merge_gap_n == 0:
            return code
        rs, re = _code_runs(code)
        rc = code[rs]
        cand = np.flatnonzero((rc[1:-1] == SACCADE) & (re[1:-1] - rs[1:-1] <= tm.merge_gap_n)
                              & (rc[:-2] == FIXATION) & (rc[2:] == FIXATION)) + 1
        if not len(cand):
            return code
        code = code.copy()
        P = tm.merge_pos_n
        for r in cand:
            a = u[max(rs[r - 1], rs[r] - P):rs[r]].mean(axis=0)
            b = u[re[r]:min(re[r + 1], re[r] + P)].mean(axis=0)
            cos = float(a @ b) / math.sqrt(float(a @ a) * float(b @ b))
            if cos >= self.cos_merge:
                code[rs[r]:re[r]] = FIXATION
        return code


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
        self.thresholds: list[float] = []
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
                   (len(self.thresholds) - tm.mad_blocks) * tm.mad_block_n - 1)
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
        self.comb[a:b], self.origin = _combine(self.raw[a:b], self.t[a:b], self.prev_t, self.origin,
                                               self.staged == 0, self.cfg, self.geo, self.rate)
        self.prev_t = float(self.t[b - 1])
        self.staged = self.n

    def _threshold(self, block: int) -> float:
        """Dilation-speed threshold (median + n MAD) for a block, from the trailing window before it."""
        tm = self.tm
        if block == 0:
            return math.inf
        a = max(0, (block - tm.mad_blocks) * tm.mad_block_n)
        b = block * tm.mad_block_n
        lo, hi = max(a - 1, 0) - self.base, b + 1 - self.base
        p = np.where(self.comb[lo:hi, _POK] > 0, self.comb[lo:hi, _P], np.nan)
        t = self.t[lo:hi]
        with np.errstate(invalid="ignore"):
            dp = np.abs(np.diff(p)) / np.diff(t)
            speed = np.fmax(np.concatenate(([np.nan], dp)), np.concatenate((dp, [np.nan])))
        speed = speed[a - (lo + self.base):b - (lo + self.base)]
        speed = speed[np.isfinite(speed)]
        if not len(speed):
            return math.inf
        med = float(np.median(speed))
        return med + self.cfg.pupil_mad_multiplier * float(np.median(np.abs(speed - med)))

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
        blocks = np.arange(lo, hi) // tm.mad_block_n
        threshold = np.asarray(self.thresholds)[blocks]
        a, b = lo - self.base, hi - self.base
        res = self.pipeline.run(self.t[a:b], self.comb[a:b], threshold, bos=lo == 0, eos=end)
        new = res[self.computed - lo:upto - lo]
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
            self._dropped += int(len(keep))
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


def process_recording(timestamps: Any, samples: Any, rate: float, config: EyesignalConfig | None = None,
                      screen: ScreenConfig | None = None) -> EyeSignalOutput:
    """Offline: the same processor on a whole recording (one push, then flush)."""
    proc = EyeSignalProcessor(rate, config, screen)
    return EyeSignalOutput.concat([proc.push(timestamps, samples), proc.flush()])
