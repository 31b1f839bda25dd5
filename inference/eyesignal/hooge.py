"""Validation on real, human-coded data: Hooge et al. (2018), 12 expert coders' fixations on Tobii TX300 data.

Data: `dcnieho/humanFixationClassification` on GitHub (data/ETdata/*.txt: time ms, x px, y px, one more
column; data/coderSettings/XX.txt: one file per coder, fixation start/end in ms per recording), recorded at
300 Hz on a 1920x1080 screen of 50.9 x 28.6 cm at ~65 cm. Licence CC BY-NC-SA 4.0; cite Hooge, Niehorster,
Nystrom, Andersson & Hessels (2018), Behav Res Methods 50:1864, doi:10.3758/s13428-017-0955-x (and Hessels,
Hooge & Kemner 2016, J Vis 16(8):10 for the infant recordings). A small subset lies in tests/data/hooge2018.

Scores follow the authors' MATLAB code (doF1_RTO_RTD_forAll.m and function_library/): coder times become
sample indices round(ms * 300 / 1000); event-level F1 with overlap matching (walk through the reference's
fixations in order; the first not yet used test fixation overlapping one is a hit, and both are used up;
hits, misses and false alarms summed over recordings); relative timing offset (RTO: mean start or end
difference of matched fixations, reference minus test, ms; negative = the test is later) and deviation (RTD:
their SD); plus per-sample Cohen's kappa of "is fixation". The coders' pairwise scores give the ceiling: for
each coder, the mean against the 11 others; the spread is their range.

Detectors on the same samples: ours (`EyeSignalProcessor`, fed as a Tobii_gaze stream at 300 Hz, both eyes
= the recorded binocular position, eye 65 cm in front of the display centre; scored with our fixations, and
with each PSO counted as the class that follows it (`validate.pso_as_next`: these coders start a fixation where
the saccade proper ends)), REMoDNaV (Dar, Wagner & Hanke 2021; its defaults) and pymovements' I-VT (30 deg/s,
Tobii I-VT's 60 ms minimum fixation).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyemotion import UserError
from eyemotion.config import EyesignalConfig, ScreenConfig
from eyemotion.streams import EVENT_CODES, GAZE_RAW

RATE = 300.0
SCREEN = ScreenConfig(width_px=1920, height_px=1080, width_mm=509.0, height_mm=286.0, distance_mm=650.0)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "hooge2018"
DETECTORS = ("eyemotion", "eyemotion +PSO", "remodnav", "pymovements I-VT")


@dataclass
class Recording:
    name: str
    t_s: np.ndarray
    x_px: np.ndarray
    y_px: np.ndarray
    coders: dict[str, np.ndarray]  # coder -> (k, 2) fixation [start, end] sample indices, inclusive


def load(folder: Path | str | None = None) -> list[Recording]:
    """Recordings that have coder settings, from a folder with ETdata/ and coderSettings/."""
    folder = Path(folder) if folder else DEFAULT_DATA
    et, cs = folder / "ETdata", folder / "coderSettings"
    if not et.is_dir() or not cs.is_dir():
        raise UserError(f"{folder} has no ETdata/ and coderSettings/ folders; pass the data folder of "
                        "github.com/dcnieho/humanFixationClassification (or tests/data/hooge2018)")
    settings: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for f in sorted(cs.glob("*.txt")):
        for line in f.read_text().splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) < 4:
                continue
            start, end = (round(float(v) * RATE / 1000.0) for v in cols[2:4])
            settings.setdefault(cols[0], {}).setdefault(f.stem, []).append((start, end))
    recordings = []
    for f in sorted(et.glob("*.txt")):
        if f.stem not in settings:
            continue
        data = np.loadtxt(f, skiprows=1, ndmin=2)
        coders = {c: np.array(sorted(v), int).reshape(-1, 2) for c, v in sorted(settings[f.stem].items())}
        recordings.append(Recording(f.stem, data[:, 0] / 1000.0, data[:, 1], data[:, 2], coders))
    if not recordings:
        raise UserError(f"no recording in {et} has coder settings in {cs}; check the folder")
    return recordings


# -- scores (the authors' MATLAB definitions) -----------------------------------------------------------

def _event_vector(events: np.ndarray, n: int) -> np.ndarray:
    vec = np.zeros(n, int)
    for k, (a, b) in enumerate(events.tolist(), start=1):
        vec[a:b + 1] = k
    return vec


def _match(ref: np.ndarray, test: np.ndarray) -> tuple[list[tuple[int, int]], int, int]:
    """Overlap matching (computeHitMissFA.m): matched (ref, test) index pairs, misses, false alarms."""
    n = int(max(ref.max(initial=-1), test.max(initial=-1))) + 1
    rv, tv = _event_vector(ref, n), _event_vector(test, n)
    pairs = []
    for f in range(1, len(ref) + 1):
        here = tv[rv == f]
        here = here[here > 0]
        if len(here):
            pairs.append((f - 1, int(here[0]) - 1))
            rv[rv == f] = 0
            tv[tv == here[0]] = 0
    return pairs, len(np.unique(rv[rv > 0])), len(np.unique(tv[tv > 0]))


def offsets(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets (samples, ref - test) of matched fixations (computeStartEndOffsets.m: the end
    offsets come from matching in reversed time)."""
    pairs, _, _ = _match(ref, test)
    start = np.array([ref[r, 0] - test[t, 0] for r, t in pairs], float)
    n = int(max(ref.max(initial=-1), test.max(initial=-1)))
    rev_r, rev_t = (n - e[::-1, ::-1] for e in (ref, test))
    pairs, _, _ = _match(rev_r, rev_t)
    end = -np.array([rev_r[r, 0] - rev_t[t, 0] for r, t in pairs], float)
    return start, end


def kappa(a: np.ndarray, b: np.ndarray) -> float:
    from eyemotion.inference.eyesignal.validate import cohen_kappa

    return cohen_kappa(a, b)


@dataclass
class Agreement:
    """One labeller (test) against a set of references, pooled over recordings."""

    f1: float
    kappa: float
    rto_onset_ms: float
    rtd_onset_ms: float
    rto_offset_ms: float
    rtd_offset_ms: float


def agreement(test: list[np.ndarray], ref: list[np.ndarray], lengths: list[int]) -> Agreement:
    """Scores of `test` against `ref` (one (k, 2) event array per recording), pooled as the MATLAB code."""
    hit = miss = fa = 0
    on, off, a, b = [], [], [], []
    for te, re, n in zip(test, ref, lengths):
        if len(re) or len(te):
            pairs, m, f = _match(re, te)
            hit, miss, fa = hit + len(pairs), miss + m, fa + f
            s, e = offsets(re, te)
            on.append(s)
            off.append(e)
        a.append(_event_vector(te, n) > 0)
        b.append(_event_vector(re, n) > 0)
    on_ms, off_ms = (np.concatenate(v) * 1000.0 / RATE if v else np.zeros(0) for v in (on, off))
    return Agreement(2 * hit / max(1, 2 * hit + miss + fa), kappa(np.concatenate(a), np.concatenate(b)),
                     float(np.mean(on_ms)), float(np.std(on_ms, ddof=1)),
                     float(np.mean(off_ms)), float(np.std(off_ms, ddof=1)))


# -- detectors ----------------------------------------------------------------------------------------------

def tobii_gaze(x_px: np.ndarray, y_px: np.ndarray, screen: ScreenConfig = SCREEN,
               cfg: EyesignalConfig | None = None) -> np.ndarray:
    """A Tobii_gaze array (n, 37) with the recorded position for both eyes, no pupil and no eye openness,
    and the eyes `screen.distance_mm` in front of the display centre (Tobii UCS)."""
    cfg = cfg or EyesignalConfig()
    n = len(x_px)
    raw = np.zeros((n, GAZE_RAW.channel_count))
    x, y = x_px / screen.width_px, y_px / screen.height_px
    valid = np.isfinite(x) & np.isfinite(y)
    for eye in ("left_eye", "right_eye"):
        col = {k: GAZE_RAW.index(f"{k}.{eye}") for k in (
            "x.position_on_display_area.gaze_point", "y.position_on_display_area.gaze_point", "valid.gaze_point",
            "diameter.pupil", "x.position_in_user_coordinates.gaze_origin",
            "y.position_in_user_coordinates.gaze_origin", "z.position_in_user_coordinates.gaze_origin",
            "valid.gaze_origin", "diameter.eye_openness")}
        raw[:, col["x.position_on_display_area.gaze_point"]] = np.where(valid, x, np.nan)
        raw[:, col["y.position_on_display_area.gaze_point"]] = np.where(valid, y, np.nan)
        raw[:, col["valid.gaze_point"]] = valid
        raw[:, col["diameter.pupil"]] = np.nan
        raw[:, col["x.position_in_user_coordinates.gaze_origin"]] = 0.0
        raw[:, col["y.position_in_user_coordinates.gaze_origin"]] = cfg.tracker_gap_mm + screen.height_mm / 2
        raw[:, col["z.position_in_user_coordinates.gaze_origin"]] = screen.distance_mm
        raw[:, col["valid.gaze_origin"]] = 1.0
        raw[:, col["diameter.eye_openness"]] = np.nan
    return raw


def fixation_events(mask: np.ndarray) -> np.ndarray:
    """(k, 2) inclusive [start, end] of the runs of True."""
    from eyemotion.inference.eyesignal.validate import runs

    r = runs(np.asarray(mask, bool))
    return np.stack((r[:, 0], r[:, 1] - 1), axis=1) if len(r) else np.zeros((0, 2), int)


def ours(rec: Recording, cfg: EyesignalConfig | None = None) -> np.ndarray:
    """Per-sample event codes of our processor on one recording (streamed, `stream_codes`)."""
    return stream_codes(rec.t_s, rec.x_px, rec.y_px, RATE, SCREEN, cfg)


def stream_output(t_s: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, rate: float, screen: ScreenConfig,
                  cfg: EyesignalConfig | None = None, chunk_s: float = 0.04):
    """Our processor's output (`EyeSignalOutput`), the positions (`tobii_gaze`) pushed in 40 ms chunks, as live."""
    from eyemotion.inference.eyesignal.processor import EyeSignalOutput, EyeSignalProcessor

    proc = EyeSignalProcessor(rate, cfg, screen)
    raw = tobii_gaze(x_px, y_px, screen, proc.cfg)
    chunk = max(1, round(chunk_s * rate))
    parts = [proc.push(t_s[i:i + chunk], raw[i:i + chunk]) for i in range(0, len(raw), chunk)]
    out = EyeSignalOutput.concat([*parts, proc.flush()])
    assert len(out.samples) == len(raw)
    return out


def stream_codes(t_s: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, rate: float, screen: ScreenConfig,
                 cfg: EyesignalConfig | None = None, chunk_s: float = 0.04) -> np.ndarray:
    """Per-sample event codes of `stream_output`."""
    from eyemotion.inference.eyesignal.processor import OUT

    return stream_output(t_s, x_px, y_px, rate, screen, cfg, chunk_s).samples[:, OUT["event"]].astype(int)


REMODNAV_CODES = {"FIXA": "fixation", "SACC": "saccade", "ISAC": "saccade", "HPSO": "pso", "IHPS": "pso",
                  "LPSO": "pso", "ILPS": "pso", "PURS": "pursuit"}


def remodnav_codes(x_px: np.ndarray, y_px: np.ndarray, rate: float = RATE, screen: ScreenConfig = SCREEN
                   ) -> np.ndarray:
    """REMoDNaV's labels (its default parameters) as per-sample `EVENT_CODES` (unlabelled: unclassified;
    its saccades and intersaccadic saccades are saccades, its four PSO kinds PSO, pursuit pursuit). Its
    Savitzky-Golay window (19 ms) must hold an odd number of samples: at rates where it does not (250 Hz: 4), the
    next odd count."""
    import logging

    from remodnav.clf import EyegazeClassifier

    logging.getLogger("remodnav").setLevel(logging.ERROR)
    px2deg = math.degrees(math.atan2(0.5 * screen.width_mm, screen.distance_mm)) / (0.5 * screen.width_px)
    # its Savitzky-Golay edge fit (scipy) fails on NaN near either end: it gets the span from the first to the
    # last 20 valid samples in a row
    codes = np.full(len(x_px), EVENT_CODES["unclassified"])
    finite = np.isfinite(x_px) & np.isfinite(y_px)
    whole = np.flatnonzero(np.convolve(finite, np.ones(20), "valid") == 20)
    if not len(whole):
        return codes
    a, b = int(whole[0]), int(whole[-1]) + 20
    data = np.rec.fromarrays([x_px[a:b].astype(float), y_px[a:b].astype(float)], names="x,y")
    clf = EyegazeClassifier(px2deg=px2deg, sampling_rate=rate)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = math.floor(0.019 * rate)
        events = clf(clf.preproc(data, savgol_length=(n if n % 2 and n > 2 else max(3, n + 1)) / rate + 1e-9))
    for ev in events:
        if ev["label"] in REMODNAV_CODES:
            codes[a + round(ev["start_time"] * rate):a + round(ev["end_time"] * rate)] = \
                EVENT_CODES[REMODNAV_CODES[ev["label"]]]
    return codes


def ivt_fixations(rec: Recording, cfg: EyesignalConfig | None = None) -> np.ndarray:
    from eyemotion.inference.eyesignal.validate import pymovements_fixations

    cfg = cfg or EyesignalConfig()
    min_n = math.ceil(cfg.min_fixation_ms * RATE / 1000 - 1e-6)
    return pymovements_fixations(rec.x_px / SCREEN.width_px, rec.y_px / SCREEN.height_px, RATE, SCREEN,
                                 cfg.velocity_threshold_deg_s, min_n, smooth=True)


# -- the report ----------------------------------------------------------------------------------------------

@dataclass
class HoogeFigures:
    recordings: int
    samples: int
    coders: list[str]
    coder_f1: list[float]  # each coder's mean F1 against the other coders
    coder_kappa: list[float]
    coder_rto_onset_ms: list[float]
    coder_rto_offset_ms: list[float]
    coder_rtd_onset_ms: list[float]
    coder_rtd_offset_ms: list[float]
    floor_f1: list[float]  # per coder: the lowest F1 of another coder against that coder
    floor_kappa: list[float]
    detectors: dict[str, list[Agreement]]  # detector -> its scores against each coder

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def mean(self, detector: str, key: str) -> float:
        return float(np.mean([getattr(a, key) for a in self.detectors[detector]]))

    def inside(self, detector: str, key: str) -> int:
        """Coders against whom `detector` scores at least as well as the other coders' lowest (issue 14's goal:
        agreement with each coder inside the coders' own spread); `key` is f1 or kappa."""
        floor = {"f1": self.floor_f1, "kappa": self.floor_kappa}[key]
        return sum(getattr(a, key) >= low for a, low in zip(self.detectors[detector], floor))


def validate(recs: list[Recording], cfg: EyesignalConfig | None = None) -> HoogeFigures:
    """The table for recordings from `load`."""
    coders = sorted({c for r in recs for c in r.coders})
    lengths = [len(r.t_s) for r in recs]
    per = {c: [r.coders.get(c, np.zeros((0, 2), int)) for r in recs] for c in coders}
    pair = {(a, b): agreement(per[b], per[a], lengths) for a in coders for b in coders if a != b}

    def mean_over(c: str, key: str) -> float:
        return float(np.mean([getattr(pair[(o, c)], key) for o in coders if o != c]))

    def floor(c: str, key: str) -> float:  # the other coders labelling, scored against c as the detectors are
        return float(min(getattr(pair[(c, o)], key) for o in coders if o != c))

    from eyemotion.inference.eyesignal.validate import pso_as_next

    codes = [ours(r, cfg) for r in recs]
    found = {name: [fixation_events(fn(c) == EVENT_CODES["fixation"]) for c in codes]
             for name, fn in (("eyemotion", lambda c: c), ("eyemotion +PSO", pso_as_next))}
    runs_of = {
        "remodnav": lambda r: fixation_events(remodnav_codes(r.x_px, r.y_px) == EVENT_CODES["fixation"]),
        "pymovements I-VT": lambda r: fixation_events(ivt_fixations(r, cfg)),
    }
    found |= {name: [fn(r) for r in recs] for name, fn in runs_of.items()}
    detectors = {name: [agreement(found[name], per[c], lengths) for c in coders] for name in DETECTORS}
    return HoogeFigures(
        len(recs), int(sum(lengths)), coders,
        *([mean_over(c, key) for c in coders] for key in ("f1", "kappa", "rto_onset_ms", "rto_offset_ms",
                                                          "rtd_onset_ms", "rtd_offset_ms")),
        *([floor(c, key) for c in coders] for key in ("f1", "kappa")), detectors=detectors)


def format_table(f: HoogeFigures) -> str:
    keys = (("fixation F1", "f1", "{:.3f}"), ("fixation kappa", "kappa", "{:.3f}"),
            ("RTO onset (ms)", "rto_onset_ms", "{:+.1f}"), ("RTO offset (ms)", "rto_offset_ms", "{:+.1f}"),
            ("RTD onset (ms)", "rtd_onset_ms", "{:.1f}"), ("RTD offset (ms)", "rtd_offset_ms", "{:.1f}"))
    head = ["coders (min-mean-max)", *DETECTORS]
    width = 16
    lines = [(f"Hooge et al. 2018: {f.recordings} recordings, {f.samples} samples at 300 Hz, {len(f.coders)} "
              "coders; each labeller against every coder (real data)"),
             f"{'':<{width}}" + f"{head[0]:>22}" + "".join(f"{h:>17}" for h in head[1:])]
    coder_lists = {"f1": f.coder_f1, "kappa": f.coder_kappa, "rto_onset_ms": f.coder_rto_onset_ms,
                   "rto_offset_ms": f.coder_rto_offset_ms, "rtd_onset_ms": f.coder_rtd_onset_ms,
                   "rtd_offset_ms": f.coder_rtd_offset_ms}
    for label, key, fmt in keys:
        v = coder_lists[key]
        cells = ["-".join(fmt.format(x) for x in (min(v), float(np.mean(v)), max(v)))]
        cells += [fmt.format(f.mean(d, key)) for d in DETECTORS]
        lines.append(f"{label:<{width}}" + f"{cells[0]:>22}" + "".join(f"{c:>17}" for c in cells[1:]))
    for label, key in (("F1 inside", "f1"), ("kappa inside", "kappa")):
        cells = ["-", *(f"{f.inside(d, key)} of {len(f.coders)}" for d in DETECTORS)]  # the coders set the range
        lines.append(f"{label:<{width}}" + f"{cells[0]:>22}" + "".join(f"{c:>17}" for c in cells[1:]))
    lines.append("(RTO: reference coder minus labeller, negative = the labeller is later; detectors: mean over "
                 "coders; coders: each coder's mean against the others; inside: coders against whom the labeller "
                 "scores at least the lowest score of another coder against that coder; +PSO: our PSO counted as "
                 "the class that follows it, as these coders start a fixation where the saccade proper ends)")
    return "\n".join(lines)
