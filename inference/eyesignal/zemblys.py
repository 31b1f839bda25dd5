"""Validation on real data coded sample by sample: Zemblys et al. (2018)'s `lookAtPoint_EL`, one expert's
fixations, saccades, post-saccadic oscillations (PSO) and blinks on EyeLink 1000 Plus recordings.

Data: `r-zemblys/irf` on GitHub, etdata/lookAtPoint_EL/lookAtPoint_EL_S{1..6}.npy: numpy structured arrays
(t s, x and y in degrees from the display centre, status = valid, evt: 0 undefined, 1 fixation, 2 saccade,
3 PSO, 5 blink) at 1000 Hz, a participant looking at points that jump across a 1920x1080 display of
53.3 x 30.1 cm at 56.5 cm. S3 is coded only approximately (saccades and blinks; the authors left it out of
training and testing), so it is left out here too. Licence MIT (the repository's); cite Zemblys, Niehorster,
Komogortsev & Holmqvist (2018), Using machine learning to detect events in eye-tracking data, Behav Res Methods
50:160, doi:10.3758/s13428-017-0860-3. Two recordings lie in tests/data/zemblys2018.

Fed at 250 Hz (every 4th sample: the Fusion's top rate), both eyes = the recorded position, no pupil and no
eye openness (EyeLink's blinks are the invalid samples only), in 40 ms chunks as live. Scores: per-sample
Cohen's kappa of each class against the expert, over the samples the expert labelled (evt != 0); the number
of events (runs) per class and their median duration. Anchors in the same run: REMoDNaV (its defaults; no
blink class) and pymovements' I-VT (30 deg/s, 60 ms minimum fixation; its saccades: the other valid samples).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyemotion import UserError
from eyemotion.config import EyesignalConfig, ScreenConfig
from eyemotion.streams import EVENT_CODES

NATIVE_RATE = 1000.0
RATE = 250.0
SCREEN = ScreenConfig(width_px=1920, height_px=1080, width_mm=533.0, height_mm=301.0, distance_mm=565.0)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "zemblys2018"
RECORDINGS = ("S1", "S2", "S4", "S5", "S6")  # S3: coded approximately only
EXPERT_CODES = {1: "fixation", 2: "saccade", 3: "pso", 5: "blink"}
CLASSES = ("fixation", "saccade", "pso", "blink")
DETECTORS = ("eyemotion", "remodnav", "pymovements I-VT")


@dataclass
class Recording:
    name: str
    rate: float  # the rate it is fed at (every (1000 / rate)-th sample)
    t_s: np.ndarray
    x_px: np.ndarray  # NaN where the tracker marked the sample invalid
    y_px: np.ndarray
    expert: np.ndarray  # EVENT_CODES per sample; -1 where the expert left it undefined


def load(folder: Path | str | None = None, rate: float = RATE) -> list[Recording]:
    """The recordings in `folder` (lookAtPoint_EL_S*.npy, S3 left out), every (1000 / rate)-th sample."""
    folder = Path(folder) if folder else DEFAULT_DATA
    files = [folder / f"lookAtPoint_EL_{s}.npy" for s in RECORDINGS]
    files = [f for f in files if f.is_file()]
    if not files:
        raise UserError(f"{folder} holds no lookAtPoint_EL_S*.npy; pass the etdata/lookAtPoint_EL folder of "
                        "github.com/r-zemblys/irf (or tests/data/zemblys2018)")
    step = NATIVE_RATE / rate
    if step != int(step) or step < 1:
        raise UserError(f"rate {rate:g} Hz does not divide the recordings' {NATIVE_RATE:g} Hz; use e.g. 250 or 500")
    recordings = []
    for f in files:
        try:
            d = np.load(f)[::int(step)]
            t, x, y, ok, evt = (d[k] for k in ("t", "x", "y", "status", "evt"))
        except (ValueError, OSError, KeyError) as exc:
            raise UserError(f"{f} is not a lookAtPoint_EL recording ({exc}); fetch it again from r-zemblys/irf")
        ok = ok & np.isfinite(x) & np.isfinite(y)
        px = []
        for deg, mm, pixels in ((x, SCREEN.width_mm, SCREEN.width_px), (y, SCREEN.height_mm, SCREEN.height_px)):
            pos_mm = SCREEN.distance_mm * np.tan(np.radians(deg.astype(float)))
            px.append(np.where(ok, (0.5 + pos_mm / mm) * pixels, np.nan))
        expert = np.full(len(evt), -1)
        for value, name in EXPERT_CODES.items():
            expert[evt == value] = EVENT_CODES[name]
        recordings.append(Recording(f.stem, rate, t.astype(float), px[0], px[1], expert))
    return recordings


def _expert_psos(recs: list[Recording], min_deg: float):
    """(recording, its gaze angles x and y, saccade start, PSO start, PSO end, saccade vector dx and dy) of each
    expert PSO that follows a saccade of `min_deg` or more (from before the saccade to the PSO's last sample)."""
    sac, pso = EVENT_CODES["saccade"], EVENT_CODES["pso"]
    for r in recs:
        ax, ay = (np.degrees(np.arctan((p / n - 0.5) * mm / SCREEN.distance_mm)) for p, n, mm in
                  ((r.x_px, SCREEN.width_px, SCREEN.width_mm), (r.y_px, SCREEN.height_px, SCREEN.height_mm)))
        e = r.expert
        for i in np.flatnonzero((e[1:] == pso) & (e[:-1] == sac)) + 1:
            a = i - 1
            while a > 0 and e[a - 1] == sac:
                a -= 1
            b = i + int(np.argmax(np.append(e[i:], -1) != pso))  # the PSO's end
            dx, dy = ax[b - 1] - ax[max(a - 1, 0)], ay[b - 1] - ay[max(a - 1, 0)]
            if math.hypot(dx, dy) >= min_deg:  # not NaN
                yield r, ax, ay, a, i, b, dx, dy


def pso_starts(recs: list[Recording], min_deg: float = 1.0, reach: int = 15) -> np.ndarray:
    """Where the expert starts each PSO that follows a saccade of `min_deg` or more: the first PSO sample minus the
    sampled overshoot's extreme (the sample farthest along the saccade, within `reach` samples of the change), in
    samples. The simulator labels its PSOs from that extreme (acquisition/simulator.py)."""
    offsets = []
    for _r, ax, ay, a, i, b, dx, dy in _expert_psos(recs, min_deg):
        lo, hi = max(a, i - reach), min(b, i + reach)
        along = (ax[lo:hi] - ax[a]) * dx + (ay[lo:hi] - ay[a]) * dy
        if np.isfinite(along).all():
            offsets.append(i - (lo + int(np.argmax(along))))
    return np.asarray(offsets, dtype=int)


def pso_swings(recs: list[Recording], min_deg: float = 1.0) -> np.ndarray:
    """(overshoot, undershoot) in degrees of each PSO after a saccade of `min_deg` or more, the shape the simulator's
    PSO follows (acquisition/simulator.py): along the saccade, from where the eye rests 20-60 ms after the
    expert's PSO, the farthest point within 15 ms of the PSO's start and the farthest back within 60 ms after it."""
    swings = []
    for r, ax, ay, a, i, b, dx, dy in _expert_psos(recs, min_deg):
        ms = r.rate / 1000
        rest = slice(b + round(20 * ms), b + round(60 * ms))
        if rest.stop > len(ax):
            continue
        x1, y1 = np.mean(ax[rest]), np.mean(ay[rest])
        along = ((ax - x1) * dx + (ay - y1) * dy) / math.hypot(dx, dy)
        lo = max(a, i - round(15 * ms))
        near = along[lo:i + round(15 * ms)]
        if not np.isfinite(near).all():
            continue
        top = lo + int(np.argmax(near))
        after = along[top:top + round(60 * ms)]
        if np.isfinite(after).all():
            swings.append((along[top], -after.min()))
    return np.asarray(swings, dtype=float).reshape(-1, 2)


@dataclass
class Scores:
    """One labeller against the expert, pooled over the recordings."""

    kappa: dict[str, float]  # class -> per-sample Cohen's kappa (nan: the labeller has no such class)
    events: dict[str, int]  # class -> number of runs
    median_ms: dict[str, float]  # class -> median run duration


def score(codes: np.ndarray, expert: np.ndarray, breaks: np.ndarray, rate: float,
          classes: tuple[str, ...] = CLASSES, report: tuple[str, ...] = CLASSES) -> Scores:
    """`codes` against `expert` (both concatenated over recordings; `breaks`: where each recording starts), for
    each class in `report`; kappa only for the labeller's own `classes`."""
    from eyemotion.inference.eyesignal.validate import cohen_kappa, runs

    labelled = expert >= 0
    kappa, events, median = {}, {}, {}
    for name in report:
        mine = codes == EVENT_CODES[name]
        kappa[name] = cohen_kappa(mine[labelled], expert[labelled] == EVENT_CODES[name]) if name in classes \
            else math.nan
        lengths = np.concatenate([np.diff(runs(part), axis=1)[:, 0] for part in np.split(mine, breaks[1:])])
        events[name] = len(lengths)
        median[name] = float(np.median(lengths)) * 1000.0 / rate if len(lengths) else math.nan
    return Scores(kappa, events, median)


@dataclass
class ZemblysFigures:
    recordings: int
    samples: int
    rate: float
    expert: Scores
    detectors: dict[str, Scores]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def ivt_codes(x_px: np.ndarray, y_px: np.ndarray, rate: float, screen: ScreenConfig, cfg: EyesignalConfig
              ) -> np.ndarray:
    """pymovements' I-VT as per-sample `EVENT_CODES`: its fixations (Tobii I-VT's threshold and minimum duration),
    the other valid samples saccade, the invalid ones unclassified."""
    from eyemotion.inference.eyesignal.validate import pymovements_fixations

    min_n = math.ceil(cfg.min_fixation_ms * rate / 1000 - 1e-6)
    f = pymovements_fixations(x_px / screen.width_px, y_px / screen.height_px, rate, screen,
                              cfg.velocity_threshold_deg_s, min_n, smooth=True)
    return np.where(f, EVENT_CODES["fixation"],
                    np.where(np.isfinite(x_px), EVENT_CODES["saccade"], EVENT_CODES["unclassified"]))


def validate(recs: list[Recording], cfg: EyesignalConfig | None = None) -> ZemblysFigures:
    """The table for recordings from `load` (all at one rate)."""
    from eyemotion.inference.eyesignal.hooge import remodnav_codes, stream_codes

    cfg = cfg or EyesignalConfig()
    rate = recs[0].rate
    expert = np.concatenate([r.expert for r in recs])
    breaks = np.cumsum([0] + [len(r.t_s) for r in recs])[:-1]
    labellers = {"eyemotion": lambda r: stream_codes(r.t_s, r.x_px, r.y_px, rate, SCREEN, cfg),
                 "remodnav": lambda r: remodnav_codes(r.x_px, r.y_px, rate, SCREEN),
                 "pymovements I-VT": lambda r: ivt_codes(r.x_px, r.y_px, rate, SCREEN, cfg)}
    own = {"eyemotion": CLASSES, "remodnav": CLASSES[:3], "pymovements I-VT": CLASSES[:2]}
    detectors = {name: score(np.concatenate([fn(r) for r in recs]), expert, breaks, rate, own[name])
                 for name, fn in labellers.items()}
    return ZemblysFigures(len(recs), len(expert), rate, score(expert, expert, breaks, rate), detectors)


def format_table(f: ZemblysFigures) -> str:
    from eyemotion.inference.eyesignal.validate import table_cell

    width, col = 22, 17
    lines = [(f"Zemblys et al. 2018 lookAtPoint_EL: {f.recordings} recordings, {f.samples} samples at {f.rate:g} Hz "
             "(EyeLink 1000 Plus, every 4th sample of 1000 Hz at 250 Hz), 1 expert's sample codes (real data)"),
             f"{'':<{width}}" + "".join(f"{h:>{col}}" for h in ("expert", *DETECTORS))]

    for name in CLASSES:
        lines.append(f"{'kappa ' + name:<{width}}" + f"{'':>{col}}"
                     + "".join(f"{table_cell(f.detectors[d].kappa[name], '{:.3f}'):>{col}}" for d in DETECTORS))
    for name in CLASSES:
        row = [f.expert, *(f.detectors[d] for d in DETECTORS)]
        lines.append(f"{name + ' events':<{width}}" + "".join(f"{s.events[name]:>{col}}" for s in row))
        lines.append(f"{'  median (ms)':<{width}}"
                     + "".join(f"{table_cell(s.median_ms[name], '{:.0f}'):>{col}}" for s in row))
    lines.append("(kappa over the samples the expert labelled; '-': the labeller has no such class; I-VT's saccades "
                 "are its valid non-fixation samples)")
    return "\n".join(lines)
