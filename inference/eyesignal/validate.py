"""Validation of the eye-signal processing against the simulator's ground truth and pymovements' I-VT.

For each rate, a seeded simulated recording (`eyemotion.acquisition.simulator.simulate_recording`) is
processed offline and compared sample by sample with the truth:
  * Cohen's kappa of "is fixation", "is saccade", "is blink", "is PSO", "is pursuit" (per sample);
  * what the noise lets any labeller see of the PSOs: the kappa of the truth's PSOs cut to their samples that
    lie more than 2 noise SDs from where the eye comes to rest (`visible_psos`);
  * blink detection: a true blink is found when a detected blink overlaps it (recall), a detected blink
    is right when it overlaps a true one (precision);
  * pupil RMSE (mm) against the true pupil inside the true blinks (where the output was interpolated),
    and on the valid samples for comparison;
  * agreement with pymovements' I-VT (`pix2deg` -> `pos2vel` -> `ivt`) run on our gap-filled positions
    with the same threshold and minimum fixation length, and our I-VT without merging: the share of
    samples (outside blinks and losses) that both call fixation or both call non-fixation, and kappa.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np

from eyemotion.config import EyesignalConfig, ScreenConfig
from eyemotion.streams import EVENT_CODES

log = logging.getLogger(__name__)

FIX, SAC, BLINK, LOSS, PSO, PURSUIT = (EVENT_CODES[k] for k in ("fixation", "saccade", "blink", "loss", "pso",
                                                                  "pursuit"))


@dataclass
class RateFigures:
    rate: float
    duration_s: float
    samples: int
    kappa_fixation: float
    kappa_saccade: float
    kappa_blink: float
    kappa_pso: float
    kappa_pursuit: float
    kappa_pso_visible: float
    blinks_true: int
    blinks_detected: int
    blink_precision: float
    blink_recall: float
    pupil_rmse_blink_mm: float
    pupil_rmse_valid_mm: float
    pymovements_agreement: float
    pymovements_kappa: float
    delay_s: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary labellings."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not len(a):
        return float("nan")
    observed = float(np.mean(a == b))
    pa, pb = float(a.mean()), float(b.mean())
    expected = pa * pb + (1 - pa) * (1 - pb)
    return 1.0 if expected == 1.0 else (observed - expected) / (1 - expected)


def runs(mask: np.ndarray) -> np.ndarray:
    """(k, 2) start/end (exclusive) of the runs of True."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.stack((np.flatnonzero(d == 1), np.flatnonzero(d == -1)), axis=1)


def visible_psos(event: np.ndarray, x: np.ndarray, y: np.ndarray, noise_sd: float, k: float = 2.0) -> np.ndarray:
    """The truth's codes with each PSO cut to what the signal shows: from its start through its last sample more
    than `k` noise SDs (`noise_sd`, same unit as the true positions `x`, `y`) from the rest path (the true path
    from the PSO's end on, extrapolated back linearly), fixation after that; a PSO with no such sample is all
    fixation. This labeller knows the true start and rest path, which a detector has to find in the noise: its
    PSO kappa is what the signal shows at that margin, to set beside the detector's."""
    out = event.copy()
    for s, e in runs(event == PSO):
        if e + 2 >= len(event):
            continue
        back = np.arange(s, e) - e
        gx, gy = (x[e + 2] - x[e]) / 2, (y[e + 2] - y[e]) / 2
        seen = np.flatnonzero(np.hypot(x[s:e] - x[e] - gx * back, y[s:e] - y[e] - gy * back) > k * noise_sd)
        out[s:e] = FIX
        if len(seen):
            out[s:s + seen[-1] + 1] = PSO
    return out


def pso_as_next(codes: np.ndarray) -> np.ndarray:
    """Each PSO sample as the class of the next non-PSO sample (fixation at the end): for references without a
    PSO class, whose coders start the next event where the saccade proper ends."""
    n = len(codes)
    nxt = np.where(codes != EVENT_CODES["pso"], np.arange(n), n)
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]
    return np.append(codes, EVENT_CODES["fixation"])[nxt]


def table_cell(value: float, fmt: str) -> str:
    """A figure for the printed tables: `fmt` of it, or "-" where it is NaN (undefined, or no such class)."""
    return "-" if isinstance(value, float) and math.isnan(value) else fmt.format(value)


def overlap_matches(a: np.ndarray, b: np.ndarray) -> int:
    """How many runs of `a` overlap at least one run of `b` (both (k, 2), sorted)."""
    if not len(a) or not len(b):
        return 0
    j = np.searchsorted(b[:, 1], a[:, 0], side="right")  # first b run ending after each a run starts
    ok = j < len(b)
    return int(np.sum(ok & (b[np.minimum(j, len(b) - 1), 0] < a[:, 1])))


def pymovements_fixations(x: np.ndarray, y: np.ndarray, rate: float, screen: ScreenConfig,
                          threshold_deg_s: float, min_samples: int, smooth: bool) -> np.ndarray:
    """Per-sample fixation mask from pymovements' I-VT on normalised display positions."""
    from pymovements.events.detection import ivt
    from pymovements.transforms.numpy import pix2deg, pos2vel

    px = np.stack((x * screen.width_px, y * screen.height_px), axis=1)
    deg = pix2deg(px, screen_px=(screen.width_px, screen.height_px),
                  screen_cm=(screen.width_mm / 10, screen.height_mm / 10),
                  distance_cm=screen.distance_mm / 10, origin="upper left")
    vel = pos2vel(deg, sampling_rate=rate, method="smooth" if smooth else "neighbors")
    events = ivt(vel, velocity_threshold=threshold_deg_s, minimum_duration=min_samples - 1)
    mask = np.zeros(len(x), bool)
    for onset, offset in zip(events.frame["onset"].to_list(), events.frame["offset"].to_list()):
        mask[onset:offset + 1] = True
    return mask


def validate_rate(rate: float, duration_s: float = 300.0, seed: int = 0, config: EyesignalConfig | None = None,
                  screen: ScreenConfig | None = None, pursuit_share: float | None = None) -> RateFigures:
    """Our processor against the simulator's truth at one rate; `pursuit_share`: the simulator's share of viewing
    events that follow a moving target (None: its default; 0: static images)."""
    from eyemotion.acquisition.simulator import PURSUIT_SHARE, simulate_recording
    from eyemotion.inference.eyesignal.processor import OUT, EyeSignalProcessor, Timing, process_recording

    cfg, screen = config or EyesignalConfig(), screen or ScreenConfig()
    share = PURSUIT_SHARE if pursuit_share is None else pursuit_share
    t, raw, truth = simulate_recording(duration_s, rate=rate, seed=seed, screen=screen, pursuit_share=share)
    out = process_recording(t, raw, rate, cfg, screen).samples
    code = out[:, OUT["event"]].astype(int)
    te = truth.event.astype(int)

    true_blinks, found_blinks = runs(te == BLINK), runs(code == BLINK)
    in_blink = (te == BLINK) & np.isfinite(out[:, OUT["pupil"]])
    valid = (te != BLINK) & (te != LOSS) & np.isfinite(out[:, OUT["pupil"]])

    # pymovements' I-VT on the same (gap-filled) positions, against our I-VT without merging
    # (our classic mode: fixed threshold, no pursuit; a PSO counts as not-saccade, as I-VT has none)
    no_merge = dataclasses.replace(cfg, merge_max_gap_ms=0.0, adaptive_threshold=False,
                                   pursuit_velocity_deg_s=float("inf"))
    ours = process_recording(t, raw, rate, no_merge, screen).samples
    tm = Timing.of(cfg, rate)
    theirs = pymovements_fixations(ours[:, OUT["x"]], ours[:, OUT["y"]], rate, screen,
                                   cfg.velocity_threshold_deg_s, tm.min_fix_n, smooth=tm.vel_k >= 2)
    our_code = ours[:, OUT["event"]].astype(int)
    compare = (our_code != BLINK) & (our_code != LOSS)
    a, b = np.isin(our_code[compare], (FIX, PSO)), theirs[compare]

    def rmse(mask: np.ndarray) -> float:
        d = out[mask, OUT["pupil"]] - truth.pupil_mm[mask]
        return float(np.sqrt(np.mean(d * d))) if len(d) else float("nan")

    def kappa(event: int, labels: np.ndarray = code) -> float:  # NaN where the truth has none (pursuit, static viewing)
        return cohen_kappa(labels == event, te == event) if np.any(te == event) else float("nan")

    # the true gaze in deg (display mm over the eye's distance: the small-angle scale, within a few % of the
    # processor's angles away from the display's edges); the measured angles' noise SD per axis from their
    # steps within fixations (the gaze origin's noise included, as the detector sees it)
    deg_per_mm = np.degrees(1 / truth.eye_distance_mm)
    ax, ay = truth.x * screen.width_mm * deg_per_mm, truth.y * screen.height_mm * deg_per_mm
    in_fix = (te[1:] == FIX) & (te[:-1] == FIX)
    steps = np.concatenate([np.diff(out[:, OUT["angle_x"]])[in_fix], np.diff(out[:, OUT["angle_y"]])[in_fix]])
    noise_sd = float(np.nanstd(steps)) / math.sqrt(2)

    return RateFigures(
        rate=rate, duration_s=duration_s, samples=len(t),
        kappa_fixation=kappa(FIX), kappa_saccade=kappa(SAC), kappa_blink=kappa(BLINK), kappa_pso=kappa(PSO),
        kappa_pursuit=kappa(PURSUIT),
        kappa_pso_visible=kappa(PSO, visible_psos(te, ax, ay, noise_sd)),
        blinks_true=len(true_blinks), blinks_detected=len(found_blinks),
        blink_precision=overlap_matches(found_blinks, true_blinks) / max(1, len(found_blinks)),
        blink_recall=overlap_matches(true_blinks, found_blinks) / max(1, len(true_blinks)),
        pupil_rmse_blink_mm=rmse(in_blink), pupil_rmse_valid_mm=rmse(valid),
        pymovements_agreement=float(np.mean(a == b)), pymovements_kappa=cohen_kappa(a, b),
        delay_s=EyeSignalProcessor(rate, cfg, screen).delay_s,
    )


def validate(rates: tuple[float, ...] = (60.0, 120.0, 250.0), duration_s: float = 300.0, seed: int = 0,
             config: EyesignalConfig | None = None, screen: ScreenConfig | None = None,
             progress: bool = False, pursuit_share: float | None = None) -> list[RateFigures]:
    items = rates
    if progress:
        from tqdm import tqdm

        items = tqdm(rates, desc="validating", unit="rate")
    return [validate_rate(r, duration_s, seed, config, screen, pursuit_share) for r in items]


def format_table(figures: list[RateFigures]) -> str:
    rows = [
        ("samples", "{:d}", "samples"),
        ("kappa fixation", "{:.3f}", "kappa_fixation"),
        ("kappa saccade", "{:.3f}", "kappa_saccade"),
        ("kappa blink", "{:.3f}", "kappa_blink"),
        ("kappa PSO", "{:.3f}", "kappa_pso"),
        ("kappa pursuit", "{:.3f}", "kappa_pursuit"),
        ("kappa PSO seen at 2 SD", "{:.3f}", "kappa_pso_visible"),
        ("blinks true / detected", None, None),
        ("blink precision", "{:.3f}", "blink_precision"),
        ("blink recall", "{:.3f}", "blink_recall"),
        ("pupil RMSE in blinks (mm)", "{:.4f}", "pupil_rmse_blink_mm"),
        ("pupil RMSE valid (mm)", "{:.4f}", "pupil_rmse_valid_mm"),
        ("I-VT agreement, pymovements", "{:.4f}", "pymovements_agreement"),
        ("I-VT kappa, pymovements", "{:.3f}", "pymovements_kappa"),
        ("fixed delay (s)", "{:.3f}", "delay_s"),
    ]
    width = 30
    lines = [f"{'':<{width}}" + "".join(f"{f'{f.rate:g} Hz':>12}" for f in figures)]
    for label, fmt, key in rows:
        if key is None:
            cells = [f"{f.blinks_true} / {f.blinks_detected}" for f in figures]
        else:
            cells = [table_cell(getattr(f, key), fmt) for f in figures]
        lines.append(f"{label:<{width}}" + "".join(f"{c:>12}" for c in cells))
    return "\n".join(lines)
