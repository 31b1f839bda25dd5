"""Validation on real data with smooth pursuit: GazeCom (free viewing of natural videos), coded sample by sample as
fixation, saccade, smooth pursuit or noise by two experts, and a final coding where a third broke their ties.

Format: the ARFF files of GazeCom (Agtzidis, Startsev & Dorr 2016; Startsev, Agtzidis & Dorr 2019, Behav Res Methods
51:556, doi:10.3758/s13428-018-1144-2): `%@METADATA width_px/height_px/width_mm/height_mm/distance_mm`, then the
attributes time (microseconds), x, y (pixels), confidence, handlabeller1, handlabeller2, handlabeller_final
(0 unknown, 1 fixation, 2 saccade, 3 smooth pursuit, 4 noise). One GazeCom recording (GGM_holsten_gate, 20 s of an
EyeLink II at 250 Hz) is example_data/input.arff of github.com/MikhailStartsev/deep_em_classifier (GPL-3.0, so it
is not committed here); the whole data set (4.5 h, michaeldorr.de/smoothpursuit) reads the same way (pass its
folder).

Fed as a Tobii_gaze stream (`hooge.stream_codes`): the samples go onto the nominal grid of the median interval
(a slot with no sample is invalid, and so is a sample whose confidence is 0.5 or less), then every k-th to `rate`.
Scores against the final coding, over the samples it calls fixation, saccade or pursuit (noise and unknown left out):
per-sample Cohen's kappa per class, the share of pursuit samples called fixation (what issue 14 measured), event counts
and median durations. The experts' ceiling: expert 1 against expert 2 on the same samples (pursuit called fixation:
both ways, averaged). GazeCom has no PSO class, so "eyemotion +PSO" also counts each of our PSOs as the class that
follows it. Anchors in the same run: REMoDNaV (which has a pursuit class) and pymovements' I-VT.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eyemotion.inference.eyesignal.validate import pso_as_next, table_cell
from eyemotion.inference.eyesignal.zemblys import Scores, ivt_codes, score

from eyemotion import UserError
from eyemotion.config import EyesignalConfig, ScreenConfig
from eyemotion.streams import EVENT_CODES

RATE = 250.0
CLASSES = ("fixation", "saccade", "pursuit")
LABELS = {1: "fixation", 2: "saccade", 3: "pursuit"}  # 0 unknown, 4 noise: not scored
METADATA = ("width_px", "height_px", "width_mm", "height_mm", "distance_mm")
EXPERTS = ("handlabeller1", "handlabeller2")
DETECTORS = ("eyemotion", "eyemotion +PSO", "remodnav", "pymovements I-VT")
FETCH_HINT = "the example_data/input.arff of github.com/MikhailStartsev/deep_em_classifier, or a GazeCom folder"


@dataclass
class Recording:
    name: str
    screen: ScreenConfig
    rate: float  # the rate it is fed at
    t_s: np.ndarray  # the regular grid at the fed rate
    x_px: np.ndarray  # NaN where no valid sample lies on the grid slot
    y_px: np.ndarray
    final: np.ndarray  # EVENT_CODES per sample; -1 where not scored (unknown, noise, no sample)
    experts: dict[str, np.ndarray]  # handlabeller1/2 the same way, where the file has them


def _codes(labels: np.ndarray) -> np.ndarray:
    out = np.full(len(labels), -1)
    for value, name in LABELS.items():
        out[labels == value] = EVENT_CODES[name]
    return out


def read_arff(path: Path) -> tuple[dict[str, float], list[str], np.ndarray]:
    """(metadata, attribute names, numeric data rows) of a GazeCom ARFF file."""
    meta: dict[str, float] = {}
    names: list[str] = []
    rows: list[list[float]] = []
    in_data = False
    try:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or (line.startswith("%") and not line.startswith("%@METADATA")):
                continue
            if in_data:
                rows.append([float(v) for v in line.split(",")])
                if len(rows[-1]) != len(names):
                    raise UserError(f"{path} line {number} has {len(rows[-1])} values but the header names "
                                    f"{len(names)} attributes; the file is cut or edited: fetch it again")
            elif line.startswith("%@METADATA"):
                _, key, value = line.split()[:3]
                meta[key] = float(value)
            elif line.lower().startswith("@attribute"):
                names.append(line.split()[1])
            elif line.lower().startswith("@data"):
                in_data = True
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} ({exc}); pass {FETCH_HINT}") from None
    except ValueError:
        raise UserError(f"{path} line {number} is not a row of numbers or a '%@METADATA key value' line; "
                        f"the file is not a GazeCom ARFF: pass {FETCH_HINT}") from None
    return meta, names, np.array(rows, float).reshape(-1, len(names))


def load_file(path: Path | str, rate: float = RATE) -> Recording:
    path = Path(path)
    meta, names, data = read_arff(path)
    missing = [k for k in METADATA if k not in meta] + [k for k in ("time", "x", "y", "confidence",
                                                                    "handlabeller_final") if k not in names]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}; a GazeCom ARFF has the %@METADATA lines "
                        f"{'/'.join(METADATA)} and the attributes time, x, y, confidence, handlabeller_final")
    if len(data) < 2:
        raise UserError(f"{path} holds {len(data)} samples; pass {FETCH_HINT}")
    col = {n: data[:, names.index(n)] for n in names}
    dt = np.diff(col["time"])
    if not (dt > 0).all():
        raise UserError(f"{path}: the time column is not increasing (microseconds expected)")
    native = round(1e6 / float(np.median(dt)))
    step = native / rate
    if step != int(step):
        raise UserError(f"{path}: its {native} Hz is not a multiple of {rate:g} Hz; feed it at a rate that divides it")
    # each sample onto the nominal grid of the tracker's own clock (its timestamps jitter by up to half a period),
    # a sample whose slot is taken into the next one; empty slots stay invalid
    periods = (col["time"] - col["time"][0]) * native / 1e6
    periods -= np.angle(np.mean(np.exp(2j * np.pi * periods))) / (2 * np.pi)  # the grid's phase (circular mean)
    order = np.arange(len(dt) + 1)
    slot = np.maximum.accumulate(np.rint(periods).astype(int) - order) + order
    slot -= slot[0]
    n = int(slot[-1]) + 1
    valid = (col["confidence"] > 0.5) & np.isfinite(col["x"]) & np.isfinite(col["y"])
    x, y = np.full(n, np.nan), np.full(n, np.nan)
    x[slot], y[slot] = np.where(valid, col["x"], np.nan), np.where(valid, col["y"], np.nan)

    def labels(name: str) -> np.ndarray:
        out = np.full(n, -1)
        out[slot] = _codes(col[name])
        return out[::int(step)]

    screen = ScreenConfig(width_px=int(meta["width_px"]), height_px=int(meta["height_px"]),
                          width_mm=meta["width_mm"], height_mm=meta["height_mm"], distance_mm=meta["distance_mm"])
    try:
        screen.validate()
    except UserError as exc:
        raise UserError(f"{path}: its %@METADATA screen is implausible ({str(exc).removeprefix('config: ')})") from None
    t = col["time"][0] / 1e6 + np.arange(0, n, int(step)) / native
    return Recording(path.stem, screen, rate, t, x[::int(step)], y[::int(step)], labels("handlabeller_final"),
                     {e: labels(e) for e in EXPERTS if e in col})


def load(path: Path | str | None, rate: float = RATE) -> list[Recording]:
    """One ARFF file, or every *.arff under a folder."""
    if path is None:
        raise UserError(f"no GazeCom data given; pass {FETCH_HINT}")
    path = Path(path)
    files = sorted(path.rglob("*.arff")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise UserError(f"{path} is not an .arff file or a folder holding some; pass {FETCH_HINT}")
    return [load_file(f, rate) for f in files]


@dataclass
class GazecomFigures:
    recordings: int
    samples: int  # scored samples
    rate: float
    reference: Scores
    experts: Scores | None  # expert 1 against expert 2, where both are in every file
    detectors: dict[str, Scores]
    pursuit_as_fixation: dict[str, float]  # share of the final coding's pursuit samples called fixation (experts:
    # of one expert's pursuit samples, the share the other calls fixation, averaged over the ways with pursuit)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def validate(recs: list[Recording], cfg: EyesignalConfig | None = None) -> GazecomFigures:
    """The table for recordings from `load` (all at one rate)."""
    from eyemotion.inference.eyesignal.hooge import remodnav_codes, stream_codes

    cfg = cfg or EyesignalConfig()
    rate = recs[0].rate
    final = np.concatenate([r.final for r in recs])
    breaks = np.cumsum([0] + [len(r.t_s) for r in recs])[:-1]
    fix = EVENT_CODES["fixation"]
    ours = np.concatenate([stream_codes(r.t_s, r.x_px, r.y_px, rate, r.screen, cfg) for r in recs])
    codes = {"eyemotion": ours, "eyemotion +PSO": pso_as_next(ours),
             "remodnav": np.concatenate([remodnav_codes(r.x_px, r.y_px, rate, r.screen) for r in recs]),
             "pymovements I-VT": np.concatenate([ivt_codes(r.x_px, r.y_px, rate, r.screen, cfg) for r in recs])}
    own = {"remodnav": CLASSES, "pymovements I-VT": CLASSES[:2]}
    detectors = {name: score(c, final, breaks, rate, own.get(name, CLASSES), CLASSES) for name, c in codes.items()}
    pursuit = final == EVENT_CODES["pursuit"]
    as_fix = {name: float(np.mean(c[pursuit] == fix)) if pursuit.any() else math.nan for name, c in codes.items()}
    experts = None
    if all(set(EXPERTS) <= set(r.experts) for r in recs):
        one, two = (np.concatenate([r.experts[e] for r in recs]) for e in EXPERTS)
        experts = score(one, np.where(final >= 0, two, -1), breaks, rate, CLASSES, CLASSES)
        scored = final >= 0
        ways = [a[scored & (b == EVENT_CODES["pursuit"])] == fix for a, b in ((one, two), (two, one))]
        ways = [float(np.mean(w)) for w in ways if len(w)]
        as_fix["expert 1 vs 2"] = float(np.mean(ways)) if ways else math.nan
    return GazecomFigures(len(recs), int((final >= 0).sum()), rate, score(final, final, breaks, rate, CLASSES, CLASSES),
                          experts, detectors, as_fix)


def format_table(f: GazecomFigures) -> str:
    width, col = 26, 17
    heads = (["expert 1 vs 2"] if f.experts else []) + list(DETECTORS)
    rows = ([f.experts] if f.experts else []) + [f.detectors[d] for d in DETECTORS]
    lines = [(f"GazeCom (videos of natural scenes): {f.recordings} recording(s), {f.samples} scored samples at "
              f"{f.rate:g} Hz, 2 experts + a tie-breaking final coding with smooth pursuit (real data)"),
             f"{'':<{width}}" + "".join(f"{h:>{col}}" for h in heads)]

    for name in CLASSES:
        lines.append(f"{'kappa ' + name:<{width}}"
                     + "".join(f"{table_cell(s.kappa[name], '{:.3f}'):>{col}}" for s in rows))
    lines.append(f"{'pursuit called fixation':<{width}}"
                 + "".join(f"{table_cell(f.pursuit_as_fixation[h], '{:.0%}'):>{col}}" for h in heads))
    heads, rows = ["final", *(["expert 1"] if f.experts else []), *DETECTORS], [f.reference, *rows]
    lines.append(f"{'events (median ms)':<{width}}" + "".join(f"{h:>{col}}" for h in heads))
    for name in ("saccade", "pursuit"):
        lines.append(f"{'  ' + name:<{width}}" + "".join(
            f"{s.events[name]:>{col - 7}} ({table_cell(s.median_ms[name], '{:.0f}'):>4})" for s in rows))
    lines.append("(kappa against the final coding over its fixation, saccade and pursuit samples; expert 1 vs 2: "
                 "expert 1 against expert 2; +PSO: our PSO counted as the class that follows it, GazeCom has none)")
    return "\n".join(lines)
