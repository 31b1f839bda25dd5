"""The compiled stages of the eye-signal pipeline: one window of combined samples in, output samples out.

`processor` cuts the stream into windows that hold every output sample's whole context (see its module
docstring) and calls `combine` on new raw samples and `run_window` on each window. These are plain loops
compiled by numba: the vectorised numpy version spent most of its time in the fixed cost of a few hundred
small-array calls per 250 ms block, which capped streaming at ~250x real time (issue 14 asks for 1000x). Each
loop gives the same floats in any window: a value depends only on the samples it reads, summed in a fixed
order.

The algorithms, with their papers, are described at each function; the parameters are `Params` (sample counts
from `processor.Timing`, values from `EyesignalConfig`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from eyemotion.streams import EVENT_CODES, GAZE_CLEAN, GAZE_VALIDITY_BITS

FIXATION, SACCADE, BLINK, LOSS, UNCLASSIFIED, PSO, PURSUIT = (
    EVENT_CODES[k] for k in ("fixation", "saccade", "blink", "loss", "unclassified", "pso", "pursuit"))
_B = GAZE_VALIDITY_BITS
(B_LEFT_GAZE, B_RIGHT_GAZE, B_LEFT_PUPIL, B_RIGHT_PUPIL, B_GAZE_INTERP, B_PUPIL_INTERP, B_BAD, B_DEFAULT, B_CLOSED,
 B_IRREGULAR, B_PUPIL_OUTLIER, B_SEGMENT_START) = (_B[k] for k in (
    "left_gaze", "right_gaze", "left_pupil", "right_pupil", "gaze_interpolated", "pupil_interpolated", "bad_input",
    "distance_default", "eyes_closed", "time_irregular", "pupil_outlier", "segment_start"))

# columns of the combined (stage 1) buffer
X, Y, EX, EY, EZ, P, OPN, FLAGS, GOK, POK, AX, AY = range(12)  # AX, AY: the gaze angles of x, y, EX, EY, EZ
NCOMB = 12
# columns of the output (eyemotion_gaze)
_O = {label: i for i, label in enumerate(GAZE_CLEAN.labels)}
NOUT = GAZE_CLEAN.channel_count
(O_X, O_Y, O_AX, O_AY, O_PUPIL, O_PUPIL_RAW, O_FLUCT, O_VEL, O_EVENT, O_OPEN, O_DIST, O_VALID, O_XC, O_YC) = (
    _O[k] for k in ("x", "y", "angle_x", "angle_y", "pupil", "pupil_raw", "pupil_fluctuation", "velocity", "event",
                    "eye_openness", "eye_distance", "validity", "x_saccade_corrected", "y_saccade_corrected"))

# Offsets inside one eye's 18-channel block of Tobii_gaze (left block first, then right); checked in `processor`.
EYE = 18
GX, GY, GVALID, PUP, PVALID, OX, OY, OZ, OVALID, OPEN, OPENVALID = 0, 1, 5, 7, 8, 10, 11, 12, 13, 15, 16

_jit = njit(cache=True, error_model="numpy")  # numpy's float rules: x / 0 is inf or NaN, not an exception


class Params(NamedTuple):
    """What the compiled stages need: `processor.Timing`'s sample counts and the config's values."""

    rate: float
    gap_n: int
    blink_max_n: int
    margin_n: int
    cap_n: int
    vel_k: int
    merge_gap_n: int
    merge_pos_n: int
    min_fix_n: int
    sacc_max_n: int
    sacc_walk_n: int
    min_sacc_n: int
    noise_n: int
    pso_n: int
    pso_cap_n: int
    pursuit_n: int
    pursuit_min_n: int
    blink_ext_n: int
    mad_block_n: int  # samples per threshold block
    width_mm: float
    height_mm: float
    lid_closing_fraction: float
    pursuit_velocity: float  # inf: no pursuit class (classic I-VT)
    merge_noise_sd: float
    cos_merge: float


class CombineParams(NamedTuple):
    """Stage 1's values from `EyesignalConfig` and the display geometry."""

    rate: float
    offscreen_margin: float
    pupil_min_mm: float
    pupil_max_mm: float
    closed_openness_mm: float
    use_left: bool
    use_right: bool
    centre_y_ucs: float
    distance_mm: float
    width_mm: float
    height_mm: float


# -- causal thresholds, once per block ------------------------------------------------------------------------

@_jit
def block_values(comb, t, base, start, n, k, adaptive):
    """One threshold block's values, each sorted: the plausible velocities (deg/s, below 1000) of its samples
    shifted back by the velocity half-window k (so that each has its whole window), the finite dilation speeds
    (`dilation_speed`) and the valid eye openness.
    The block is the segment's samples start..start+n-1; `comb` and `t` hold the segment from index `base`, 2k
    samples before the block (or from the segment's start) and one after it."""
    end = start + n
    if adaptive:
        lo = max(start - 2 * k, 0)
        m = end - lo
        ang = np.empty((m, 2))
        for i in range(m):
            row = comb[lo - base + i]
            ok = row[GOK] > 0
            ang[i, 0] = row[AX] if ok else np.nan
            ang[i, 1] = row[AY] if ok else np.nan
        v = speed(ang, t[lo - base:end - base], k)[max(start - k, 0) - lo:end - k - lo]
        v = v[v < 1000.0]  # finite, plausible
    else:
        v = np.zeros(0)
    p_lo = max(start - 1, 0)  # the steps into the block's first sample and out of its last one
    p = valid_pupil(comb[p_lo - base:end + 1 - base])
    dilation = dilation_speed(p, t[p_lo - base:end + 1 - base])[start - p_lo:end - p_lo]
    dilation = dilation[dilation < np.inf]  # finite (NaN compares False)
    openness = comb[start - base:end - base, OPN]
    return np.sort(v), np.sort(dilation), np.sort(openness[openness >= 0])  # valid openness (NaN compares False)


@_jit
def valid_pupil(c):
    """The combined rows' pupil diameter (mm), NaN where it is not valid."""
    p = np.empty(len(c))
    for i in range(len(c)):
        p[i] = c[i, P] if c[i, POK] > 0 else np.nan
    return p


@_jit
def dilation_speed(p, t):
    """Per sample, the larger of the pupil's speeds (mm/s) to the previous and to the next sample, NaN where neither
    is known (Kret & Sjak-Shie 2019's dilation speed)."""
    m = len(p)
    out = np.empty(m)
    for i in range(m):
        a = abs(p[i] - p[i - 1]) / (t[i] - t[i - 1]) if i else np.nan
        b = abs(p[i + 1] - p[i]) / (t[i + 1] - t[i]) if i + 1 < m else np.nan
        out[i] = np.fmax(a, b)
    return out


@_jit
def slide_sorted(window, add, drop):
    """The sorted multiset `window` + `add` - `drop` (each sorted; `drop` a part of `window`) in one merge: a
    trailing window's sorted values one block later, without sorting them again."""
    out = np.empty(len(window) + len(add) - len(drop))
    i = j = k = n = 0
    while i < len(window) or j < len(add):
        if j < len(add) and (i >= len(window) or add[j] < window[i]):
            out[n] = add[j]
            j += 1
        elif k < len(drop) and drop[k] == window[i]:
            i += 1
            k += 1
            continue
        else:
            out[n] = window[i]
            i += 1
        n += 1
    return out


@_jit
def _sorted_median(v, k):
    """Median of the sorted v[:k]."""
    return v[k // 2] if k % 2 else 0.5 * (v[k // 2 - 1] + v[k // 2])


@_jit
def _sorted_mad_median(v, k, centre):
    """Median of |v[:k] - centre| for a sorted v, walking outwards from `centre` (the distances on either side
    are sorted already): the same order statistics as sorting the distances, without sorting them."""
    right = np.searchsorted(v[:k], centre)  # v[:right] < centre <= v[right:k]
    left = right - 1
    want = k // 2  # the distances of rank want - 1 (k even) and want
    prev = cur = 0.0
    for _ in range(want + 1):
        prev = cur
        if right < k and (left < 0 or v[right] - centre <= centre - v[left]):
            cur = v[right] - centre
            right += 1
        else:
            cur = centre - v[left]
            left -= 1
    return cur if k % 2 else 0.5 * (prev + cur)


@_jit
def velocity_thresholds(v, fixed, adaptive, min_n):
    """Nystrom & Holmqvist 2010's adaptive peak threshold over the trailing window's velocities `v` (sorted):
    PT = mean + 6 SD of the velocities below PT, iterated from 100 deg/s until it moves < 1 deg/s; onset
    threshold mean + 3 SD. Mean and SD are the median and 1.4826 MAD, so pursuit and the flanks of saccades in
    the window do not inflate them (Engbert & Kliegl 2003, Vision Res 43:1035). The fixed threshold `fixed` is
    the floor of PT and half of it the floor of the onset threshold (a noise-free signal would get 0 deg/s), and
    both thresholds without `adaptive` or with fewer than `min_n` velocities. (Sorted: each iteration's
    "below PT" is a prefix, whose median and MAD are read from it.)"""
    if not adaptive or len(v) < min_n:
        return fixed, fixed
    pt, mean, sd = 100.0, 0.0, 0.0
    for _ in range(50):
        k = np.searchsorted(v, pt)  # v[:k] < pt
        if k < 2:
            break
        mean = _sorted_median(v, k)
        sd = 1.4826 * _sorted_mad_median(v, k, mean)
        new = mean + 6 * sd
        done = abs(new - pt) < 1.0
        pt = new
        if done:
            break
    return max(pt, fixed), max(mean + 3 * sd, fixed / 2)


@_jit
def window_thresholds(v, dilation, openness, fixed, adaptive, min_n, mad_multiplier):
    """A block's causal thresholds from its trailing window's sorted velocities, dilation speeds and eye openness
    values: dilation speed (median + `mad_multiplier` MAD, Kret & Sjak-Shie 2019), saccade peak and onset velocity
    (`velocity_thresholds`) and the median eye openness (NaN without one)."""
    peak, onset = velocity_thresholds(v, fixed, adaptive, min_n)
    lid = _sorted_median(openness, len(openness)) if len(openness) else np.nan
    if not len(dilation):
        return np.inf, peak, onset, lid
    med = _sorted_median(dilation, len(dilation))
    return med + mad_multiplier * _sorted_mad_median(dilation, len(dilation), med), peak, onset, lid


# -- stage 1: binocular combination ---------------------------------------------------------------------------

@_jit
def combine(raw, t, prev_t, has_prev_t, origin, has_origin, first, cp):
    """Per-sample combination of both eyes -> ((n, NCOMB) columns, the last gaze origin seen, whether one was).

    Per eye, a value counts when the tracker marks it valid and it is plausible (gaze on or near the display,
    pupil within range); both eyes are averaged, else the valid one is used. Eyes closed by eye openness count
    as invalid. The eye position is this sample's gaze origin, else the last one seen, else in front of the
    display centre (flagged `distance_default`). Comparisons are False for NaN, so a NaN or infinite value
    never passes a range check."""
    n = raw.shape[0]
    out = np.empty((n, NCOMB))
    eye = np.empty(3)
    seen = has_origin
    if has_origin:
        eye[:] = origin
    else:
        eye[0], eye[1], eye[2] = 0.0, cp.centre_y_ucs, cp.distance_mm
    before = prev_t if has_prev_t else t[0] - 1.0 / cp.rate  # the first sample of a segment is regular
    g_ok, p_ok, o_ok = np.zeros(2, np.bool_), np.zeros(2, np.bool_), np.zeros(2, np.bool_)  # per eye
    sums, counts = np.zeros(4), np.zeros(4)  # x, y, pupil, openness over the eyes that count
    o_sum = np.zeros(3)  # the valid gaze origins
    for i in range(n):
        r = raw[i]
        flags = 0
        bad = implausible = False
        open_max = -np.inf
        for e in range(2):
            b = EYE * e
            op = r[b + OPEN]
            o_ok[e] = r[b + OPENVALID] == 1 and op >= 0 and op < np.inf
            if o_ok[e] and op > open_max:
                open_max = op
        closed = (o_ok[0] or o_ok[1]) and open_max < cp.closed_openness_mm
        sums[:] = 0.0
        counts[:] = 0.0
        for e in range(2):
            b = EYE * e
            keep = cp.use_left if e == 0 else cp.use_right
            gx, gy, pd = r[b + GX], r[b + GY], r[b + PUP]
            sane = abs(gx - 0.5) <= 0.5 + cp.offscreen_margin and abs(gy - 0.5) <= 0.5 + cp.offscreen_margin
            g_claim, p_claim = r[b + GVALID] == 1, r[b + PVALID] == 1
            p_real = pd > 0 and pd < np.inf
            p_range = pd >= cp.pupil_min_mm and pd <= cp.pupil_max_mm
            g_ok[e] = g_claim and sane and not closed and keep
            p_ok[e] = p_claim and p_range and not closed and keep
            bad = bad or (g_claim and not sane) or (p_claim and not p_real)
            implausible = implausible or (p_claim and p_real and not p_range)
            if g_ok[e]:
                sums[0] += gx
                sums[1] += gy
                counts[0] += 1
                counts[1] += 1
            if p_ok[e]:
                sums[2] += pd
                counts[2] += 1
            if o_ok[e]:
                sums[3] += r[b + OPEN]
                counts[3] += 1
        out[i, X], out[i, Y], out[i, P], out[i, OPN] = (sums[0] / counts[0], sums[1] / counts[1],
                                                        sums[2] / counts[2], sums[3] / counts[3])
        o_sum[:] = 0.0
        no = 0
        for e in range(2):
            b = EYE * e
            ox, oy, oz = r[b + OX], r[b + OY], r[b + OZ]
            if r[b + OVALID] == 1 and oz > 0 and abs(ox) < 1e4 and abs(oy) < 1e4 and abs(oz) < 1e4:
                o_sum[0] += ox
                o_sum[1] += oy
                o_sum[2] += oz
                no += 1
        if no:
            eye[:] = o_sum / no
            seen = True
        elif not seen:
            flags |= B_DEFAULT
        out[i, EX], out[i, EY], out[i, EZ] = eye[0], eye[1] - cp.centre_y_ucs, eye[2]
        out[i, AX], out[i, AY] = _angles(out[i, X], out[i, Y], out[i, EX], out[i, EY], out[i, EZ], cp.width_mm,
                                         cp.height_mm)
        out[i, GOK] = g_ok[0] or g_ok[1]
        out[i, POK] = p_ok[0] or p_ok[1]
        q = (t[i] - before) * cp.rate
        before = t[i]
        flags |= ((B_LEFT_GAZE if g_ok[0] else 0) | (B_RIGHT_GAZE if g_ok[1] else 0)
                  | (B_LEFT_PUPIL if p_ok[0] else 0) | (B_RIGHT_PUPIL if p_ok[1] else 0) | (B_BAD if bad else 0)
                  | (B_CLOSED if closed else 0) | (B_PUPIL_OUTLIER if implausible else 0)
                  | (B_IRREGULAR if (q < 0.5 or q > 1.5) else 0))
        if first and i == 0:
            flags |= B_SEGMENT_START
        out[i, FLAGS] = flags
    return out, eye, seen


# -- helpers for runs -----------------------------------------------------------------------------------------

@_jit
def true_runs(mask):
    """Start and end (exclusive) indices of the runs of True in a bool array."""
    m = len(mask)
    k = 0
    for i in range(m):
        if mask[i] and (i == 0 or not mask[i - 1]):
            k += 1
    s, e = np.empty(k, np.int64), np.empty(k, np.int64)
    k = 0
    for i in range(m):
        if mask[i]:
            if i == 0 or not mask[i - 1]:
                s[k] = i
            if i == m - 1 or not mask[i + 1]:
                e[k] = i + 1
                k += 1
    return s, e


@_jit
def code_runs(code):
    """Start and end (exclusive) of the runs of equal values."""
    m = len(code)
    k = 1
    for i in range(1, m):
        if code[i] != code[i - 1]:
            k += 1
    s, e = np.empty(k, np.int64), np.empty(k, np.int64)
    s[0] = 0
    k = 0
    for i in range(1, m):
        if code[i] != code[i - 1]:
            e[k] = i
            k += 1
            s[k] = i
    e[k] = m
    return s, e


@_jit
def cover(starts, ends, m):
    """Bool mask of length m covering the union of [starts, ends) (clipped to the array)."""
    mask = np.zeros(m, np.bool_)
    for a, b in zip(starts, ends):
        mask[max(a, 0):min(max(b, 0), m)] = True
    return mask


@_jit
def fill_runs(bad, cap):
    """The runs of `bad` that are interpolated: at most `cap` long, with a good sample on both sides."""
    s, e = true_runs(bad)
    ok = (e - s <= cap) & (s > 0) & (e < len(bad))
    return s[ok], e[ok]


@_jit
def interpolate_runs(values, starts, ends):
    """Linear interpolation of `values` (m, c) across each run, between samples start-1 and end."""
    out = values.copy()
    for a, b in zip(starts, ends):
        left, right = a - 1, b
        for i in range(a, b):
            w = (i - left) / (right - left)
            for j in range(values.shape[1]):
                lv = values[left, j]
                out[i, j] = lv + w * (values[right, j] - lv)
    return out


@_jit
def sg_derivative(x, t, h):
    """Savitzky-Golay first derivative (2nd-order polynomial, 2h+1 samples) of x per second; NaN at the edges
    (Nystrom & Holmqvist 2010, Sec. "Calculating velocity")."""
    m = len(x)
    out = np.full(m, np.nan)
    norm = h * (h + 1) * (2 * h + 1) / 3  # sum of j^2 over -h..h
    for i in range(h, m - h):
        acc = 0.0
        for j in range(1, h + 1):
            acc += j * (x[i + j] - x[i - j])
        out[i] = acc / norm / ((t[i + h] - t[i - h]) / (2 * h))
    return out


# -- stages 3-4: geometry, velocity, events -----------------------------------------------------------------

@_jit
def _direction(x, y, ex, ey, ez, width_mm, height_mm):
    """The gaze vector (display frame, mm) from the eye (display-centred mm) to the gaze point (normalised
    display x, y)."""
    return (x - 0.5) * width_mm - ex, (0.5 - y) * height_mm - ey, ez


@_jit
def _angles(x, y, ex, ey, ez, width_mm, height_mm):
    """The horizontal and vertical gaze angles (deg) of `_direction`."""
    d0, d1, d2 = _direction(x, y, ex, ey, ez, width_mm, height_mm)
    return math.degrees(math.atan2(d0, d2)), math.degrees(math.atan2(d1, d2))


@_jit
def geometry(gaze, known_ang, known, pp):
    """Unit gaze vectors (m, 3) and the gaze angles (m, 2) (deg) from columns x, y (normalised display), eye x,
    eye y (display-centred mm), eye distance (mm); the angles of rows where `known` are `known_ang`'s (the
    same function of the same values, computed once at stage 1)."""
    m = len(gaze)
    u = np.empty((m, 3))
    ang = np.empty((m, 2))
    for i in range(m):
        g = gaze[i]
        d0, d1, d2 = _direction(g[0], g[1], g[2], g[3], g[4], pp.width_mm, pp.height_mm)
        norm = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        u[i, 0], u[i, 1], u[i, 2] = d0 / norm, d1 / norm, d2 / norm
        if known[i]:
            ang[i, 0], ang[i, 1] = known_ang[i, 0], known_ang[i, 1]
        else:
            ang[i, 0], ang[i, 1] = _angles(g[0], g[1], g[2], g[3], g[4], pp.width_mm, pp.height_mm)
    return u, ang


@_jit
def speed(ang, t, k):
    """Angular velocity (deg/s): Savitzky-Golay differentiation (2nd-order polynomial over
    `velocity_window_ms`, 2k + 1 samples) of the horizontal and vertical gaze angles, as Nystrom & Holmqvist
    2010 (Behav Res Methods 42:188), Sec. "Calculating velocity"; speed = their Euclidean norm."""
    vx, vy = sg_derivative(ang[:, 0].copy(), t, k), sg_derivative(ang[:, 1].copy(), t, k)
    return np.sqrt(vx * vx + vy * vy)


@_jit
def _stop(v, i, hi, thr):
    """First i..hi-1 below `thr` at a local minimum (the next sample is not lower) or in a gap, else hi."""
    m = len(v)
    while i < hi:
        x = v[i]
        if math.isnan(x) or (x < thr and not (i + 1 < m and v[i + 1] < x)):
            return i
        i += 1
    return hi


@_jit
def _first_below(v, i, hi, thr):
    """First i..hi-1 below `thr`, else hi."""
    while i < hi and not v[i] < thr:
        i += 1
    return i


@_jit
def _peak_at(v, a, b):
    """The first maximum of v[a:b]."""
    best, at = v[a], a
    for i in range(a + 1, b):
        if v[i] > best:
            best, at = v[i], i
    return at


@_jit
def _noise(values, default):
    """Mean + 3 SD of the finite values (N&H 2010's local noise), `default` for fewer than two."""
    n, total = 0, 0.0
    for x in values:
        if not math.isnan(x):
            n += 1
            total += x
    if n < 2:
        return default
    mean = total / n
    ss = 0.0
    for x in values:
        if not math.isnan(x):
            ss += (x - mean) * (x - mean)
    return mean + 3 * math.sqrt(ss / n)


@_jit
def _robust_noise(values):
    """Median + 3 SDs (1.4826 MAD) of the finite values, 0 for fewer than two: `_noise` that a sample or two of
    movement at the window's edge does not lift."""
    x = np.sort(values[~np.isnan(values)])
    if len(x) < 2:
        return 0.0
    centre = _sorted_median(x, len(x))
    return centre + 3 * 1.4826 * _sorted_mad_median(x, len(x), centre)


@_jit
def _walk_back(v, a, lo, thr):
    """The onset of the run above the peak threshold starting at `a`, walking back no further than `lo`: the sample
    after the first one below `thr` at a local velocity minimum (or in a gap), else after the last local minimum,
    else `lo`."""
    for i in range(a - 1, lo - 1, -1):
        x = v[i]
        if math.isnan(x) or (x < thr and not (i > 0 and v[i - 1] < x)):
            return i + 1
    for i in range(a - 1, lo - 1, -1):
        if not (i > 0 and v[i - 1] < v[i]):
            return i + 1
    return lo


@_jit
def _last_return_end(v, walked, reach, thr, half_window):
    """The end of the last return above `thr` within `reach` samples after N&H's offset `walked` that comes back
    down within `reach` (velocity that stays above it is movement, e.g. pursuit after the saccade): its velocity
    minimum below `thr` (or, still falling at the reach's end, where it fell below), moved back by the velocity
    window's `half_window`, since that minimum lies up to it after the eye stops; not before the return's last
    sample. -1 if there is none."""
    m = len(v)
    j = min(m, walked + reach) - 1
    while j >= walked:
        if v[j] > thr:
            hi = min(m, j + reach)
            stop = _stop(v, j, hi, thr)
            if stop == hi:
                stop = _first_below(v, j, hi, thr)
            if stop < hi:
                return max(j + 1, stop - half_window)
            while j >= walked and v[j] > thr:  # an earlier start of this return stays up as long
                j -= 1
            continue
        j -= 1
    return -1


@_jit
def _overshoot(ang, x0, y0, amp, lo, hi, sd):
    """The first sample i in lo..hi-1 that lies farther along the saccade from (x0, y0) (its start; `amp`: its
    amplitude to sample lo) than both its neighbours, each by more than 3 position-noise SDs `sd`: the eye stepped
    on into it and back out of it (an overshoot's extreme). -1 if none."""
    ux, uy = (ang[lo, 0] - x0) / amp, (ang[lo, 1] - y0) / amp
    for i in range(max(lo, 1), min(hi, len(ang) - 1)):
        onward = (ang[i, 0] - ang[i - 1, 0]) * ux + (ang[i, 1] - ang[i - 1, 1]) * uy
        back = (ang[i, 0] - ang[i + 1, 0]) * ux + (ang[i, 1] - ang[i + 1, 1]) * uy
        if min(onward, back) > 3 * sd:
            return i
    return -1


@_jit
def _position_sd(step, a, b, rate):
    """The position noise SD per axis (deg) from the RMS of the steps (deg/s) in a..b-1, NaN for fewer than two:
    the step between two samples holds the noise of both, on two axes."""
    n, ss = 0, 0.0
    for i in range(a, b):
        if not math.isnan(step[i]):
            n += 1
            ss += step[i] * step[i]
    return math.sqrt(ss / n / 4) / rate if n >= 2 else np.nan


@_jit
def _drift(ang, a, b, min_speed, rate):
    """The eye's mean step (deg per sample, x and y) from sample a to b - 1 where it moves faster than `min_speed`
    (deg/s) over them (pursuit), else (0, 0): also for fewer than three samples or an end in a gap."""
    if b - a < 3 or math.isnan(ang[a, 0]) or math.isnan(ang[b - 1, 0]):
        return 0.0, 0.0
    dx, dy = (ang[b - 1, 0] - ang[a, 0]) / (b - 1 - a), (ang[b - 1, 1] - ang[a, 1]) / (b - 1 - a)
    if not math.hypot(dx, dy) * rate > min_speed:
        return 0.0, 0.0
    return dx, dy


@_jit
def _moved(ang, i, lag, dx, dy):
    """How far (deg) the eye moved from sample i - lag to i beyond the drift (dx, dy) per sample."""
    return math.hypot(ang[i, 0] - ang[i - lag, 0] - lag * dx, ang[i, 1] - ang[i - lag, 1] - lag * dy)


@_jit
def _moved_noise(ang, lag, a0, a1, dx, dy, b0, b1, bdx, bdy):
    """`_noise` of `_moved` over `lag` samples within a0..a1 - 1 (drift dx, dy) and b0 - 1..b1 - 1 (drift bdx, bdy);
    inf for fewer than two."""
    values = np.empty(max(0, a1 - a0 - lag) + max(0, b1 - b0 + 1 - lag))
    n = 0
    for j in range(a0 + lag, a1):
        values[n] = _moved(ang, j, lag, dx, dy)
        n += 1
    for j in range(b0 - 1 + lag, b1):
        values[n] = _moved(ang, j, lag, bdx, bdy)
        n += 1
    return _noise(values[:n], np.inf)


@_jit
def saccades(v, ang, step, peak, onset, pp):
    """(start, end, PSO end) of each saccade, an (k, 3) array; Nystrom & Holmqvist 2010 (Sec. "Saccade detection" and
    "Glissade detection"; glissade = PSO, Larsson et al. 2013): a run above the peak threshold; the onset is the first
    sample, walking back, below the onset threshold at a local velocity minimum; the offset threshold is 0.7 onset
    threshold + 0.3 (mean + 3 SD of the 40 ms before the onset) (local noise), and the offset the first local minimum
    below it walking forward from the peak (where the velocity stays above it, as on a target moving faster than it, the
    first local minimum after the run above the peak threshold: else a saccade onto such a target ran on to the walk's
    end). A PSO is a return above the PSO threshold within `pso_max_ms` of the offset: the local noise, or that of the
    40 ms after the PSO's reach where the eye has settled if higher (N&H's local noise on both sides, there as median +
    3 SDs from the MAD, which the PSO's last samples do not lift: a return must stand out of the fixation it ends in, as
    a human coder sees it; Hooge et al. 2018's fixation kappa .805 -> .817, inside all 12 coders' spread, Zemblys et al.
    2018's PSO .678 -> .687, its median PSO 24 -> 22 ms, the expert's 20; the simulator's PSOs into pursuit lost up to
    .02), at least half the onset threshold; it ends at the next local minimum below it, which must come within
    `pso_max_ms` (where the velocity falls below it and on through that reach: where it fell below): an oscillation
    comes back down, and velocity that stays above it is movement (pursuit after a catch-up saccade), not PSO. A PSO
    lasts at most `pso_max_ms`, in whole samples (N&H's 40 ms glissade window; 98 % of Zemblys et al. 2018's
    expert-coded PSOs are shorter): what follows is fixation. A run above the peak threshold within a PSO's reach of a
    saccade's offset (its own offset below, where the eye turns back or arrives, not N&H's velocity minimum, which the
    walk may find tens of ms later while the velocity sinks on through the drift: at 60 Hz a 3.6 deg saccade 83 ms after
    a 15 deg one had become its PSO, and fixation) is a strong PSO (N&H: glissades may exceed the peak threshold) only
    if it moves the eye no farther than that saccade did, as a PSO is smaller than its saccade; else it is the next
    saccade (e.g. the saccade after a spike that passed for a short one, which Hooge et al. 2018's coders saw in their
    Tobii data, had become a 60 ms PSO). Walks are bounded by `saccade_max_ms`, which keeps every decision within a
    bounded context; a run above the peak threshold longer than that (e.g. the linear ramp across a filled gap in which
    the eye moved) is a saccade as in Tobii I-VT, every sample above the threshold, with no PSO.

    Edges to the sample: the centred differentiation window attributes the movement between two samples to
    both, so the velocity minimum the walks stop at lies up to its half width outside the movement (issue 14
    measured saccades starting ~4 ms early, 36 ms long against the experts' 28-32 ms), and the local-minimum
    rule can stop a noise sample or two earlier still. So the onset moves forward (up to the peak) while the
    step into it, one sample's displacement per sample period (`step`), is below the onset threshold and the
    steps' local noise (mean + 3 SD over the 40 ms before): the eye had not moved yet. But a saccade accelerates
    from rest over half its duration (minimum jerk: 2 % of a 30 ms saccade's amplitude in its first 4 ms), so
    at 250-300 Hz its first sample in flight moves the eye less than the noise, and the onset had stayed a sample
    late (in 73 % of the simulator's saccades at 250 Hz; Hooge et al. 2018's coders end fixations 5 ms before
    it). So the onset steps back one sample where its speed is still rising (each of the next two steps longer than
    the one before) and the speed of the steps into and out of it, extrapolated linearly back, reaches zero before
    the previous sample (the step out of it less than 3 times the step into it). Likewise the offset (the
    velocity minimum, where with a PSO the eye turns back, N&H 2010's saccade end) moves back while the step
    out of the last saccade sample is below the offset threshold: a sample is in flight when the eye moves
    into it and out of it. Where the eye turns back before N&H's offset (the overshoot's turning point: the
    next step points against the saccade), the saccade ends there and the PSO begins (Larsson et al. 2013's
    PSO onset; with the smeared velocity, N&H's offset there lies up to the window's half width into the PSO),
    however slowly the eye moved into the turn: it did not stop there. The turn may also lie at N&H's offset
    itself, where a PSO follows (the velocity returns above the PSO threshold within `pso_max_ms`; after a
    saccade with no visible overshoot a noise step out of the fixation would pass for a turn), or where the eye
    steps back out of it farther than the steps' local noise: at 60-120 Hz the centred window spans the
    overshoot and its return, which cancel in its velocity (steps of 0.62 deg on and 0.39 deg back at 60 Hz gave
    7 deg/s; 31 % of the simulator's PSOs at 60 Hz were missed). Where neither holds, the turn is a sample at or just
    after N&H's offset that lies farther along the saccade than both its neighbours, each by more than 3 SDs of the
    position noise (from the steps before the onset): an overshoot's extreme whose steps are shorter than the step
    threshold, which is at least the onset threshold (0.25 deg a sample at 60 Hz).
    The samples between the two offsets are PSO when the eye turned back into them (the overshoot's return,
    which at 60 Hz is often a single step, too short for a velocity peak of its own), else fixation (it
    arrived). The PSO's own end, the velocity minimum after its last return above the PSO threshold, moves
    back by the window's half width (not before that return's last sample): the smear again, which put the
    PSO end 7 ms after the expert's (Zemblys et al. 2018) and the fixation onset of Hooge et al.'s coders
    inside our PSO. Then a PSO goes on while the eye steps out of its last sample farther than the steps' noise
    (mean + 3 SD) over the 40 ms before the onset and the 40 ms after the PSO's reach together, so that a fixation
    noisier than the one before does not carry it on: the window also smears the slow return from the undershoot
    below the PSO threshold. The noise alone, not also the onset threshold as where the onset and offset walks judge
    a sample in flight: at 60 Hz that is 0.25 deg a sample, 12 noise SDs, and the PSO's last sample, a median 3.6 SDs
    from where the eye comes to rest, had been fixation in 172 of the simulator's 809 PSOs (static viewing, 300 s;
    PSO kappa .751 / .772 / .774 -> .775 / .792 / .774; Zemblys et al. 2018's PSO .687 -> .688, Hooge et al. 2018 and
    GazeCom within .003). It also goes on while the eye moves from its last sample to the sample after next farther
    than the noise of such two-sample displacements: the slow return from the undershoot moves the eye less than the
    noise in one sample but twice as far in two, while the noise of a two-sample displacement is that of one (a
    velocity over more samples to see slow movement through the noise, as Engbert & Kliegl 2003, Vision Res 43:1035,
    for microsaccades). Simulator PSO .787 / .812 / .793 -> .793 / .825 / .814 (with the pursuit rule below), Zemblys
    et al.'s PSO .691 -> .694, blink .925 -> .922; Hooge et al. kappa .817 -> .816, RTD onset / offset 36.9 / 32.3 ->
    32.4 / 26.7 ms (the coders' mean 26.3 / 22.1); GazeCom fixation .740 -> .736. The 40 ms before the onset are those
    before the onset the walk back found, as for the walks' step threshold, not before the onset moved on to the first
    sample in flight, whose steps carry the saccade's start (they had been, for a stop: PSO .793 / .825 / .814 -> .806 /
    .829 / .814, Zemblys et al.'s blink .922 -> .924, Hooge et al. and GazeCom unchanged).

    Into pursuit (the eye moves faster than `pursuit_velocity_deg_s` between the ends of the 40 ms after the PSO's
    reach, as after a catch-up saccade) the PSO's return runs against the pursuit: its velocity cancels the pursuit's
    (the eye seems to pause) and every step carries the pursuit's own. Larsson et al. 2013 (IEEE Trans Biomed Eng
    60:2484) detect PSOs in the presence of smooth pursuit; here the steps and two-sample displacements, and their
    noise, are taken less the pursuit's mean step over that window (those of the 40 ms before the onset less their own
    window's; none in a fixation), and where the velocity showed no PSO, the overshoot's turn is the first sample after
    the peak out of which the eye steps back against the saccade farther than that noise. The simulator's PSO samples
    into pursuit found: .52 / .55 / .45 -> .69 / .69 / .54 at 60 / 120 / 250 Hz (300 s, seed 0), PSO kappa .775 / .792 /
    .774 -> .787 / .808 / .783; Zemblys et al.'s PSO .688 -> .687 (median 22 -> 24 ms, the expert's 20), Hooge et al.
    kappa .817 unchanged, GazeCom fixation .734 -> .740."""
    m = len(v)
    s, e = true_runs(v > peak)
    out = np.empty((len(s), 3), np.int64)
    k = 0
    walk, pso_n = pp.sacc_walk_n, pp.pso_n
    ax, ay = ang[:, 0], ang[:, 1]
    # the previous run above the peak threshold (its offset and PSO threshold), and the last saccade's amplitude
    have_last, last_off, last_thr, last_at, last_amp = False, 0, 0.0, -1, 0.0
    for a, b in zip(s, e):
        if b - a > walk:  # no walk reaches its edges: Tobii I-VT's saccade (above the threshold), no PSO
            out[k, 0], out[k, 1], out[k, 2] = a, b, b
            k += 1
            have_last = False
            continue
        if have_last and a < last_off + pso_n:
            # within a PSO's reach of the previous run: a strong PSO (N&H 2010: glissades may exceed the peak
            # threshold), or a second peak of the same saccade; it extends what came before
            p = _peak_at(v, a, b)
            end = _stop(v, p, min(m, p + walk), last_thr)
            larger = False  # than the saccade before it: the next saccade, not its PSO
            if last_at >= 0 and a >= out[last_at, 1]:
                j0, j1 = max(a - 1, 0), min(end, m - 1)
                larger = math.hypot(ax[j1] - ax[j0], ay[j1] - ay[j0]) > last_amp  # False for NaN
            if not larger:
                if last_at >= 0:
                    if a < out[last_at, 1]:
                        out[last_at, 1] = max(out[last_at, 1], end)
                    out[last_at, 2] = max(out[last_at, 2], end)
                continue  # the reach stays the saccade's: a PSO starts within pso_max_ms of its offset
        thr_on = onset[a]
        on = _walk_back(v, a, max(0, a - walk), thr_on)
        local = _noise(v[max(0, on - 1 - pp.noise_n):on], thr_on)
        b0 = max(1, on - pp.noise_n)
        before = step[b0:on]  # the steps of the 40 ms before the onset
        still = max(thr_on, _noise(before, thr_on))  # the steps' own noise
        p = _peak_at(v, a, b)
        off_thr = 0.7 * thr_on + 0.3 * local
        walked = _stop(v, p, min(m, p + walk), off_thr)  # N&H's offset; their 10 ms minimum applies to it
        if walked == p + walk:  # the velocity stays above it (pursuit faster than it): where the fall ends
            walked = b
            while walked + 1 < p + walk and v[walked + 1] < v[walked]:
                walked += 1
        settled = _robust_noise(v[min(m, walked + pso_n):min(m, walked + 2 * pso_n)])  # after the PSO's reach
        pso_thr = max(local, thr_on / 2, settled)
        have_last, last_off, last_thr = True, walked, pso_thr
        if walked - on < pp.min_sacc_n:
            last_at = -1
            continue
        last_at = k
        walked_back = on
        while on < p and step[on] < still:  # the eye had not moved yet
            on += 1
        if on > walked_back and on + 2 < m and step[on] < step[on + 1] < 3 * step[on] and step[on + 1] < step[on + 2]:
            on -= 1  # it had: its speed, still rising, extrapolates to zero before the previous sample
        off, turned = walked, False
        j0 = on - 1 if on else 0
        x0, y0 = ax[j0], ay[j0]
        last_amp = math.hypot(ax[min(walked, m - 1)] - x0, ay[min(walked, m - 1)] - y0)
        returns = np.any(v[walked + 1:walked + pso_n] > pso_thr)  # after N&H's offset: a PSO follows
        # or the eye leaves it farther than the steps' noise: if that step points back (the turn below), a PSO the
        # velocity window averages away (its centred span holds the overshoot and the return)
        leaves = not returns and walked + 1 < m and step[walked + 1] > still
        for i in range(p + 1, min(walked + 1 if returns or leaves else walked, m - 1)):  # the overshoot's turning point
            if (ax[i + 1] - ax[i]) * (ax[i] - x0) + (ay[i + 1] - ay[i]) * (ay[i] - y0) < 0:
                off, turned = i, True
                break
        spike = False  # or an overshoot sample that steps less than that (at 60 Hz often the PSO's only one)
        if not turned and not returns and last_amp > 0:
            i = _overshoot(ang, x0, y0, last_amp, walked, walked + 2,
                           _position_sd(step, max(1, on - pp.noise_n), on, pp.rate))
            if i >= 0:
                off = walked = i
                turned = spike = True
        while not turned and off - 1 > p and off < m and step[off] < off_thr:  # the eye had stopped moving
            off -= 1
        pso_end = walked if turned else off
        if (leaves or spike) and turned and off == walked:
            pso_end = walked + 1
        if off < walked and off > on and not turned:  # the eye turned back into `off` or arrived there
            dx, dy = ax[off] - ax[off - 1], ay[off] - ay[off - 1]
            if dx * (ax[off - 1] - x0) + dy * (ay[off - 1] - y0) < 0:
                pso_end = walked
        returned = _last_return_end(v, walked, pso_n, pso_thr, pp.vel_k)
        if returned >= 0:
            pso_end = returned
        a0, a1 = min(m, walked + pso_n), min(m, walked + 2 * pso_n)  # after the PSO's reach
        dx, dy = _drift(ang, a0, a1, pp.pursuit_velocity, pp.rate)
        if pso_end > off or dx != 0.0 or dy != 0.0:  # a PSO to end, or into pursuit one the velocity may have hidden
            # the noise over the window after the reach and the 40 ms before the onset the walk back found (pursuit
            # there too before a catch-up saccade)
            bdx, bdy = _drift(ang, b0 - 1, walked_back, pp.pursuit_velocity, pp.rate)
            noise1 = _moved_noise(ang, 1, a0, a1, dx, dy, b0, walked_back, bdx, bdy)
            noise2 = _moved_noise(ang, 2, a0, a1, dx, dy, b0, walked_back, bdx, bdy)
            if (dx != 0.0 or dy != 0.0) and pso_end <= off:  # into pursuit, where the velocity showed no PSO: the
                for i in range(p + 1, min(walked + pso_n, m - 1)):  # overshoot's turn, the eye stepping back out of it
                    back = (ax[i + 1] - ax[i] - dx) * (ax[i] - x0) + (ay[i + 1] - ay[i] - dy) * (ay[i] - y0) < 0
                    if back and _moved(ang, i + 1, 1, dx, dy) > noise1:
                        off, pso_end = i, i + 1
                        break
            while off < pso_end < off + pp.pso_cap_n and pso_end + 1 < m and (
                    _moved(ang, pso_end + 1, 1, dx, dy) > noise1
                    or (pso_end + 2 < m and _moved(ang, pso_end + 2, 2, dx, dy) > noise2)):
                pso_end += 1
        last_off = off  # the saccade's own offset: where the eye turns back or arrives
        out[k, 0], out[k, 1], out[k, 2] = on, off, pso_end
        k += 1
    for r in range(k):  # a PSO lasts at most pso_max_ms (a strong PSO may have extended it) and ends where
        out[r, 2] = min(out[r, 2], out[r, 1] + pp.pso_cap_n)  # the next saccade starts
        if r + 1 < k:
            out[r, 2] = min(out[r, 2], max(out[r + 1, 0], out[r, 1]))
    return out[:k]


@_jit
def pursuit(ang, fast, pp):
    """Smooth pursuit: the slow velocity of the gaze angles, the distance between the mean positions of the two
    halves of `pursuit_window_ms` over their time apart, above `pursuit_velocity_deg_s`.

    I-VDT's idea (Komogortsev & Karpov 2013, Behav Res Methods 45:203): after the saccades, what moves is
    pursuit and what stays within a small area is fixation; as in REMoDNaV (Dar, Wagner & Hanke 2021, Behav
    Res Methods 53:399) the decision is a velocity threshold on a smoothed signal. The two halves ([i - w, i)
    and [i, i + w)) hold only valid samples of the same stretch between saccades, PSOs and gaps; the speed is
    the distance between their mean angles over the time between their mean sample times. Tracker noise alone
    moves these means too (a few deg/s in noisy recordings), so pursuit must also move in a consistent
    direction (Larsson et al. 2015's criterion) and steadily: the step from each quarter of the window to the
    next goes along it at half the window's speed or more. The steadiness is ours: without it a slow glide of
    ~1 deg in ~100 ms between two fixations (infants' drift in Hooge et al. 2018's static viewing) was pursuit;
    the share was swept at 0 (direction only), 0.25, 0.5 and 0.75 on all data sets (in a displacement form of
    the same test), and 0.5 gained on the three real ones without more pursuit called fixation on GazeCom
    (issue 14's closing notes). The sums are
    differences of prefix sums of the angles in fixed point (2^-32 deg): integer sums are exact, so they are the
    same in any window."""
    m, w = len(ang), pp.pursuit_n
    scale = 4294967296.0
    q = np.zeros((m + 1, 4), np.int64)  # prefix sums: angle x, angle y, count, sample index
    for i in range(m):
        q[i + 1] = q[i]
        if not fast[i] and not math.isnan(ang[i, 0]):
            q[i + 1, 0] += np.int64(np.rint(ang[i, 0] * scale))
            q[i + 1, 1] += np.int64(np.rint(ang[i, 1] * scale))
            q[i + 1, 2] += 1
            q[i + 1, 3] += i
    # the stretch around i: after the last fast sample at or before i, before the next one after i
    after_fast = np.empty(m, np.int64)
    before_fast = np.empty(m, np.int64)
    last = -1
    for i in range(m):
        if fast[i]:
            last = i
        after_fast[i] = last + 1
    nxt = m
    for i in range(m - 1, -1, -1):
        before_fast[i] = nxt
        if fast[i]:
            nxt = i
    need, half = max(2, w // 4), max(1, w // 2)
    moving = np.zeros(m, np.bool_)
    bounds = np.empty(5, np.int64)
    for i in range(m):
        fb, ba = min(i + w, before_fast[i]), min(max(i - w, after_fast[i]), i)
        cf, cb = q[fb, 2] - q[i, 2], q[i, 2] - q[ba, 2]
        if cf < need or cb < need:
            continue
        cff, cbf = float(cf), float(cb)
        d0 = ((q[fb, 0] - q[i, 0]) / cff - (q[i, 0] - q[ba, 0]) / cbf) / scale
        d1 = ((q[fb, 1] - q[i, 1]) / cff - (q[i, 1] - q[ba, 1]) / cbf) / scale
        dt = ((q[fb, 3] - q[i, 3]) / cff - (q[i, 3] - q[ba, 3]) / cbf) / pp.rate
        dist = math.sqrt(d0 * d0 + d1 * d1)
        if not dist / dt > pp.pursuit_velocity:
            continue
        # consistent direction (Larsson et al. 2015, Biomed Signal Process Control 18:145) and steady speed: from
        # each quarter of the window to the next (where both hold two samples or more) the eye moves along d at
        # half the window's speed or more
        lo_s, hi_s = min(after_fast[i], i), before_fast[i]
        for n, kk in enumerate((-w, -half, 0, half, w)):
            bounds[n] = min(max(i + kk, lo_s), hi_s)
        checked = against = False
        for n in range(3):  # quarters n and n + 1
            a0, a1, b1 = bounds[n], bounds[n + 1], bounds[n + 2]
            ca, cb2 = q[a1, 2] - q[a0, 2], q[b1, 2] - q[a1, 2]
            if ca >= 2 and cb2 >= 2:
                s0 = (q[b1, 0] - q[a1, 0]) / float(cb2) - (q[a1, 0] - q[a0, 0]) / float(ca)
                s1 = (q[b1, 1] - q[a1, 1]) / float(cb2) - (q[a1, 1] - q[a0, 1]) / float(ca)
                ts = ((q[b1, 3] - q[a1, 3]) / float(cb2) - (q[a1, 3] - q[a0, 3]) / float(ca)) / pp.rate
                along = (s0 * d0 + s1 * d1) / scale / dist  # deg moved along d from one quarter to the next
                checked = True
                if not along / ts > 0.5 * dist / dt:
                    against = True
        moving[i] = checked and not against
    return moving


@_jit
def gap_blinks(gs, ge, distorted, ang, pp):
    """Blink seeds among the gaps (invalid runs shorter than `gap_fill_max_ms`, which 002 fills in rather than
    calls blinks): trackers that lose the pupil only while the lid covers it (EyeLink, SMI) report blinks of
    20-70 ms of invalid samples inside a longer eyelid artefact, the gaze swinging away and back (Nystrom &
    Holmqvist 2010, Sec. "Blink detection"). A gap is a blink when its distorted stretch (up to
    `blink_extension_ms` either side) lasts at least `gap_fill_max_ms` (002's shortest blink) and the gaze comes
    back: the largest excursion from where it was before is over twice the net displacement across the stretch
    (a saccade next to a gap does not come back)."""
    m, ext = len(distorted), pp.blink_ext_n
    out = np.zeros(m, np.bool_)
    ds, de = true_runs(distorted)
    r = 0
    for a, b in zip(gs, ge):
        while r < len(de) and de[r] <= a:  # the distorted run holding the gap (the gap is distorted)
            r += 1
        lo, hi = max(ds[r], a - ext), min(de[r], b + ext)
        if hi - lo < pp.gap_n or lo < 1 or hi >= m:
            continue
        bx, by = ang[lo - 1, 0], ang[lo - 1, 1]
        away = 0.0
        for i in range(lo, hi):
            dx, dy = ang[i, 0] - bx, ang[i, 1] - by
            if dx * dx + dy * dy > away:  # noqa: PLR1730 (NaN compares False: skipped, as nanmax)
                away = dx * dx + dy * dy
        dx, dy = ang[hi, 0] - bx, ang[hi, 1] - by
        if math.sqrt(away) > 2 * math.sqrt(dx * dx + dy * dy):
            out[a:b] = True
    return out


@_jit
def whole_blinks(seeds, distorted, pp):
    """Blink samples: each seed (an invalid run of 002's 75-425 ms with its 50 ms margins, or eye openness below
    `lid_closing_fraction` of its trailing median) with the eyelid-distorted samples next to it, up to
    `blink_extension_ms` either side. Distorted: eye openness low, vertical gaze velocity above the saccade
    onset threshold (the lid drags the pupil's image, so blinks masquerade as saccades; Nystrom & Holmqvist
    2010, Sec. "Blink detection") or no gaze. (The pupil's own distortion is handled by the 50 ms margins and
    the dilation-speed filter, Kret & Sjak-Shie 2019, not by the label.) What is interpolated still follows
    002 (75-425 ms invalid runs + margins); only the label grows."""
    m, ext = len(seeds), pp.blink_ext_n
    out = seeds.copy()
    ds, de = true_runs(distorted | seeds)
    ss, se = true_runs(seeds)
    r = 0
    for a, b in zip(ss, se):
        while de[r] <= a:  # the distorted run holding the seed
            r += 1
        out[max(ds[r], a - ext, 0):min(de[r], b + ext, m)] = True
    return out


@_jit
def merge(code, u, pp):
    """Merge short saccade runs between two fixation runs whose positions are close (Tobii I-VT).

    The positions compared are the mean gaze directions over up to `merge_position_ms` of the fixation runs
    next to the gap, so the decision depends on a bounded neighbourhood only. Close: less than `merge_noise_sd`
    SDs of the two windows' sample spread apart (their sample clouds overlap: the shift is not told from the
    tracker's noise, the mean + 3 SD convention of Nystrom & Holmqvist 2010), which replaces Tobii's fixed
    `merge_max_angle_deg` (a typical tracker's noise; used with `merge_noise_sd` = 0). So a 0.3 deg
    microsaccade splits a fixation on a precise tracker (EyeLink) and not within the noise of a Tobii TX300
    recording of an infant. A saccade and its PSO are one gap."""
    gaps = code.copy()
    for i in range(len(gaps)):
        if gaps[i] == PSO:
            gaps[i] = SACCADE
    rs, re = code_runs(gaps)
    out = code.copy()
    k_sd = pp.merge_noise_sd
    for r in range(1, len(rs) - 1):  # a saccade (+ PSO) run, not a PSO alone, between two fixation runs
        if not (code[rs[r]] == SACCADE and re[r] - rs[r] <= pp.merge_gap_n and code[rs[r - 1]] == FIXATION
                and code[rs[r + 1]] == FIXATION):
            continue
        a0, b1 = max(rs[r - 1], rs[r] - pp.merge_pos_n), min(re[r + 1], re[r] + pp.merge_pos_n)
        sa, sb = np.zeros(3), np.zeros(3)
        for i in range(a0, rs[r]):
            sa += u[i]
        for i in range(re[r], b1):
            sb += u[i]
        la = math.sqrt(sa[0] * sa[0] + sa[1] * sa[1] + sa[2] * sa[2])
        lb = math.sqrt(sb[0] * sb[0] + sb[1] * sb[1] + sb[2] * sb[2])
        cos = (sa[0] * sb[0] + sa[1] * sb[1] + sa[2] * sb[2]) / (la * lb)
        if math.isnan(cos):
            close = False
        elif k_sd > 0:  # the samples' spread around each mean direction: 1 - |mean of the unit vectors|^2 (rad^2)
            fa, fb = la / (rs[r] - a0), lb / (b1 - re[r])
            spread = math.sqrt(0.5 * (max(0.0, 1 - fa * fa) + max(0.0, 1 - fb * fb)))
            close = math.acos(min(cos, 1.0)) < k_sd * spread
        else:
            close = cos >= pp.cos_merge
        if close:
            out[rs[r]:re[r]] = FIXATION
    return out


@_jit
def classify(v, u, ang, peak, onset, overrides, pp):
    """Per-sample codes: saccades and PSOs (`saccades`), smooth pursuit (`pursuit`), the rest fixation; `overrides` (an
    (m,) array, -1 where none) set codes (blink, loss, unclassified) before Tobii I-VT's merging and discarding of
    short fixations. A PSO neither is a saccade nor stops a merge (Nystrom & Holmqvist 2010). A saccade that starts
    in a blink, with its PSO, is blink: the lid reopening drags the pupil's image (N&H 2010, Sec. "Blink
    detection"), and its tail, once the vertical velocity falls below the onset threshold, had been saccade and PSO:
    1.7 / 2.4 % of the simulator's blink samples at 120 / 250 Hz, now 0.1 %. A fixation too short to keep next to
    pursuit is pursuit: the stretch's edge, which the pursuit window cannot judge (it needs a quarter window on each
    side), e.g. after a saccade onto a moving target, where GazeCom's experts and the simulator's truth code pursuit
    from the saccade's end. Returns the codes."""
    m = len(v)
    code = np.empty(m, np.int64)
    step = np.empty(m)
    step[0] = np.nan
    for i in range(m):
        code[i] = UNCLASSIFIED if math.isnan(v[i]) else FIXATION
        if i:
            dx, dy = ang[i, 0] - ang[i - 1, 0], ang[i, 1] - ang[i - 1, 1]
            step[i] = math.sqrt(dx * dx + dy * dy) * pp.rate
    sacc = saccades(v, ang, step, peak, onset, pp)
    for a, b, c in sacc:
        code[a:b] = SACCADE
        code[b:c] = PSO
    if math.isfinite(pp.pursuit_velocity):  # inf: no pursuit class (classic I-VT)
        moving = pursuit(ang, code != FIXATION, pp)
        for i in range(m):
            if code[i] == FIXATION and moving[i]:
                code[i] = PURSUIT
    for i in range(m):
        if overrides[i] >= 0:
            code[i] = overrides[i]
    for a, b, c in sacc:  # a saccade that starts in a blink is the lid reopening: the blink's, with its PSO
        if overrides[a] == BLINK:
            for i in range(a, c):
                if overrides[i] < 0:
                    code[i] = BLINK
    rs, re = code_runs(code)
    for a, b in zip(rs, re):
        if code[a] == PURSUIT and b - a < pp.pursuit_min_n:  # too short to tell from a drift or glide
            code[a:b] = FIXATION
    if pp.merge_gap_n:
        code = merge(code, u, pp)
    # Tobii I-VT's minimum applies to what it calls a fixation: with the PSO before it (it has no PSO class)
    rs, re = code_runs(code)
    short = np.zeros(len(rs), np.bool_)
    for r in range(len(rs)):
        length = re[r] - rs[r] + (re[r - 1] - rs[r - 1] if r and code[rs[r - 1]] == PSO else 0)
        short[r] = code[rs[r]] == FIXATION and length < pp.min_fix_n
    for r in range(len(rs)):
        if short[r]:
            beside = (r > 0 and code[rs[r - 1]] == PURSUIT) or (r + 1 < len(rs) and code[rs[r + 1]] == PURSUIT)
            code[rs[r]:re[r]] = PURSUIT if beside else UNCLASSIFIED
    return code


# -- the window ---------------------------------------------------------------------------------------------

@_jit
def run_window(t, c, thresholds, row0, eos, r0, r1, pp):
    """Output samples for the window rows [r0, r1), whose context the window covers completely; `eos`: the
    window ends the segment. `thresholds`: pupil, peak, onset, openness per threshold block, the first one
    holding the window's first row as its `row0`-th sample. Stages 2-6 of `processor`'s pipeline."""
    m = len(t)
    threshold = np.empty((m, 4))
    for i in range(m):
        threshold[i] = thresholds[(row0 + i) // pp.mad_block_n]
    flags = np.empty(m, np.int64)
    g_ok = np.empty(m, np.bool_)
    for i in range(m):
        flags[i] = np.int64(c[i, FLAGS])
        g_ok[i] = c[i, GOK] > 0
    gaze = c[:, X:EZ + 1].copy()  # x, y, eye x, eye y, eye z

    # 2. gaps, blinks, loss: classify invalid runs, pad long ones, fill short bad regions
    bad = ~g_ok
    s, e = true_runs(bad)
    lens = e - s
    long_run = lens >= pp.gap_n
    blink_run = long_run & (lens <= pp.blink_max_n) & ((e < m) | eos)
    loss_run = lens > pp.blink_max_n
    gs, ge = s[~long_run], e[~long_run]
    filled = np.zeros(m, np.bool_)
    if len(s):
        bad |= cover(s[long_run] - pp.margin_n, e[long_run] + pp.margin_n, m)
        bs, be = fill_runs(bad, pp.cap_n)
        gaze = interpolate_runs(gaze, bs, be)
        filled = cover(bs, be, m)
        for i in range(m):
            if filled[i]:
                flags[i] |= B_GAZE_INTERP
            elif not g_ok[i]:
                gaze[i] = np.nan

    # 6 (first half). pupil: outliers by dilation speed, then the same filling. While the lid covers part of
    # the pupil (eye openness low, a partial blink or the closing/opening phase of a blink) the measured
    # diameter shrinks with it: those samples and the same margins are removed too (Kret & Sjak-Shie 2019;
    # Hershman et al. 2018)
    p = valid_pupil(c)
    outlier = np.zeros(m, np.bool_)
    lid_low = np.zeros(m, np.bool_)
    dilation = dilation_speed(p, t)
    for i in range(m):
        outlier[i] = dilation[i] > threshold[i, 0]
        lid_low[i] = c[i, OPN] < pp.lid_closing_fraction * threshold[i, 3]  # NaN: False
    p_good = ~np.isnan(p) & ~outlier & ~bad
    any_lid = lid_low.any()
    if any_lid:
        ls, le = true_runs(lid_low)
        p_good &= ~cover(ls - pp.margin_n, le + pp.margin_n, m)
    pupil = p
    if not p_good.all():
        kept = np.where(p_good, p, np.nan)
        ps, pe = fill_runs(~p_good, pp.cap_n)
        pupil = interpolate_runs(kept.reshape(m, 1), ps, pe)[:, 0]
        p_filled = cover(ps, pe, m)
        for i in range(m):
            flags[i] |= (B_PUPIL_OUTLIER if outlier[i] else 0) | (B_PUPIL_INTERP if p_filled[i] else 0)

    # 3. geometry and velocity; 4. events
    u, ang = geometry(gaze, c[:, AX:AY + 1], g_ok & ~filled, pp)
    vel = speed(ang, t, pp.vel_k)
    overrides = np.full(m, -1, np.int64)
    if len(s) or any_lid:
        # the invalid run with its interpolated margins (the lid is moving there too), then the extension
        seeds = cover(s[blink_run] - pp.margin_n, e[blink_run] + pp.margin_n, m)
        lost = cover(s[loss_run], e[loss_run], m)
        vy = np.abs(sg_derivative(ang[:, 1].copy(), t, pp.vel_k))
        distorted = (lid_low | (vy >= threshold[:, 2]) | ~g_ok) & ~lost
        if len(gs):
            seeds |= gap_blinks(gs, ge, distorted, ang, pp)
        blink = whole_blinks(seeds | (lid_low & ~lost), distorted, pp)
        for i in range(m):
            if lost[i]:
                overrides[i] = LOSS
            elif blink[i]:
                overrides[i] = BLINK
            elif math.isnan(gaze[i, 0]):
                overrides[i] = UNCLASSIFIED
    code = classify(vel, u, ang, threshold[:, 1], threshold[:, 2], overrides, pp)

    # 5. saccade correction (002, Sec. III-A-3): x/y interpolated across each saccade of at most
    # `saccade_correction_max_ms`
    rs, re = code_runs(code)
    sac = np.zeros(len(rs), np.bool_)
    for r in range(len(rs)):
        sac[r] = code[rs[r]] == SACCADE and re[r] - rs[r] <= pp.sacc_max_n and rs[r] > 0 and re[r] < m
    xy = gaze[:, :2].copy()
    corrected = interpolate_runs(xy, rs[sac], re[sac])

    # the output rows only
    out = np.empty((r1 - r0, NOUT))
    for i in range(r0, r1):
        o = out[i - r0]
        o[O_AX], o[O_AY] = ang[i, 0], ang[i, 1]
        o[O_X], o[O_Y] = gaze[i, 0], gaze[i, 1]
        o[O_PUPIL], o[O_PUPIL_RAW] = pupil[i], p[i]
        o[O_FLUCT] = pupil[i] - pupil[i - 1] if i else np.nan
        o[O_VEL], o[O_EVENT] = vel[i], code[i]
        o[O_OPEN], o[O_DIST] = c[i, OPN], gaze[i, 4]
        o[O_VALID] = flags[i]
        cx, cy = corrected[i, 0], corrected[i, 1]
        o[O_XC] = xy[i, 0] if math.isnan(cx) else cx
        o[O_YC] = xy[i, 1] if math.isnan(cy) else cy
    return out
