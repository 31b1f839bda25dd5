"""The training-data format of the eyemotion models, and a synthetic dataset with a planted signal.

A dataset is a directory holding two files:

``windows.npz`` (numpy, uncompressed), one row per window; N windows:

================  =======================  ==================================================
array             shape, dtype             content (shapes from `eyemotion.models.shapes`)
================  =======================  ==================================================
face              (N, 8, 128) float32      EMERT: face embeddings of 8 frames
eye               (N, 32, C) float32       EMERT: 32 eyemotion_gaze samples, C = its channels
fixation          (N, 32, 18, 32) float32  EMERT: 32 fixation-map slices
visual_face       (N, Tv, 128) float32     crossmodal: per-frame face embeddings
visual_gaze       (N, Tv, 103) float32     crossmodal: per-frame windowed gaze statistics
audio             (N, Ta, 88) float32      crossmodal: eGeMAPS functionals per sub-window
er7               (N,) int64               self-reported emotion, index into `streams.CLASSES`
er3               (N,) int64               coarse emotion, index into `shapes.CLASSES_3`
valence, arousal  (N,) float32             self-report scaled to [-1, 1] (NaN: not rated)
fer7              (N,) int64               facial expression, auto-annotated by the face model (-1: none)
participant       (N,) str                 participant pseudonym (folds split on it)
clip              (N,) str                 clip id (several windows per clip)
================  =======================  ==================================================

Only the inputs of the model being trained are required (EMERT: face, eye, fixation; crossmodal:
visual_face, visual_gaze, audio). Missing feature values are NaN; the models treat them as the mean.

``dataset.json``: ``{"format": "eyemotion-windows", "version": 1, "created", "provenance": {...}
(sessions, clips, tools that built it), "n_windows", "participants", "classes", "classes_3",
"folds": [[participants of test fold 0], ...], "normalisation": {"all": STATS, "folds": [STATS
of the training participants of fold k, ...]}}`` where STATS maps an input name to ``{"mean": [...],
"std": [...]}`` per feature (fixation: one scalar). Statistics of fold k are computed on its training
participants only. Folds split by participant, 5 by default as in 002_cbeb04dbce786b8c.txt Sec. V-A-1, and
are stratified by class (`assign_folds`) unless the caller gives them; ``"fold_table"`` holds the class x
fold table as text lines. Labelled corpora from elsewhere come in through `eyemotion.models.importing`.

`write_dataset` is the one writer (the session dataset builder calls it); `load_dataset` checks a
directory and names what is wrong.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eyemotion.models import shapes

from eyemotion import UserError, __version__
from eyemotion.streams import CLASSES

WINDOWS_FILE = "windows.npz"
META_FILE = "dataset.json"
FORMAT = "eyemotion-windows"
VERSION = 1
INT_LABELS = ("er7", "er3", "fer7")
FLOAT_LABELS = ("valence", "arousal")
STR_LABELS = ("participant", "clip")
LABELS = INT_LABELS + FLOAT_LABELS + STR_LABELS
DEFAULT_FOLDS = 5


class DatasetError(UserError):
    """A training dataset that is missing, malformed or too small."""


@dataclass
class WindowDataset:
    root: Path
    inputs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    meta: dict

    def __len__(self) -> int:
        return len(self.labels["er7"])

    @property
    def n_folds(self) -> int:
        return len(self.meta["folds"])

    def split(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """(train indices, test indices) of `fold`: its participants are held out."""
        test = np.isin(self.labels["participant"], self.meta["folds"][fold])
        return np.flatnonzero(~test), np.flatnonzero(test)

    def normalisation(self, fold: int | None) -> dict:
        """Statistics of fold `fold`'s training participants (None: of all participants)."""
        norm = self.meta["normalisation"]
        return norm["all"] if fold is None else norm["folds"][fold]


def assign_folds(participants: Iterable[str], n_folds: int = DEFAULT_FOLDS, seed: int = 0,
                 labels: Iterable[int] | None = None) -> list[list[str]]:
    """Split participants into `n_folds` test groups, grouped by participant and stratified by class.

    Given one label per row (`labels`, aligned with `participants` given per row), participants are placed
    largest first (ties in seeded random order) into the fold whose class counts then deviate least from
    an equal share of every class, the greedy scheme of scikit-learn's StratifiedGroupKFold. Without
    labels: near-equal numbers of participants per fold (seeded shuffle).
    """
    rows = np.asarray(list(participants)).astype(str)
    people = sorted(set(rows.tolist()))
    if len(people) < n_folds:
        raise DatasetError(f"{len(people)} participants cannot make {n_folds} participant-wise folds; "
                           f"record more participants or use fewer folds")
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(len(people))
        return [sorted(people[i] for i in order[k::n_folds]) for k in range(n_folds)]
    y = np.asarray(list(labels))
    classes = np.unique(y)
    counts = np.array([[np.sum((rows == p) & (y == c)) for c in classes] for p in people], dtype=float)
    target = counts.sum(0) / n_folds
    order = sorted(rng.permutation(len(people)), key=lambda i: -counts[i].sum())
    fold_counts = np.zeros((n_folds, len(classes)))
    members: list[list[str]] = [[] for _ in range(n_folds)]
    for i in order:
        cost = [np.sum(((fold_counts[k] + counts[i]) / np.maximum(target, 1) - 1) ** 2)
                - np.sum((fold_counts[k] / np.maximum(target, 1) - 1) ** 2) for k in range(n_folds)]
        best = min(range(n_folds), key=lambda k: (cost[k], fold_counts[k].sum(), len(members[k])))
        fold_counts[best] += counts[i]
        members[best].append(people[i])
    return [sorted(m) for m in members]


def check_folds(folds: Sequence[Sequence[str]], participants: Iterable[str]) -> list[list[str]]:
    """User-given folds: every participant in exactly one non-empty fold."""
    people = set(np.asarray(list(participants)).astype(str).tolist())
    folds = [sorted(str(p) for p in f) for f in folds]
    seen = [p for f in folds for p in f]
    if len(folds) < 2 or any(not f for f in folds):
        raise DatasetError(f"{len(folds)} fold(s) given, some empty; give at least 2 folds, each with a participant")
    twice = sorted({p for p in seen if seen.count(p) > 1})
    if twice:
        raise DatasetError(f"participant(s) {', '.join(twice[:5])} are in more than one fold; "
                           f"give each participant one fold")
    missing, extra = sorted(people - set(seen)), sorted(set(seen) - people)
    if missing or extra:
        raise DatasetError(f"the folds do not match the data (no fold for {', '.join(missing[:5]) or '-'}; "
                           f"unknown {', '.join(extra[:5]) or '-'}); give every participant exactly one fold")
    return folds


def fold_table(er7: np.ndarray, participant: np.ndarray, folds: Sequence[Sequence[str]]) -> str:
    """The class x fold table (rows per class, one column per test fold, plus participants per fold)."""
    er7, participant = np.asarray(er7), np.asarray(participant).astype(str)
    present = [c for c in range(len(CLASSES)) if (er7 == c).any()]
    head = f"{'':12s}" + "".join(f"{'fold ' + str(k):>9s}" for k in range(len(folds))) + f"{'all':>8s}"
    lines = [head]
    masks = [np.isin(participant, f) for f in folds]
    for c in present:
        lines.append(f"{CLASSES[c]:12s}" + "".join(f"{int(np.sum(m & (er7 == c))):9d}" for m in masks)
                     + f"{int(np.sum(er7 == c)):8d}")
    lines.append(f"{'rows':12s}" + "".join(f"{int(m.sum()):9d}" for m in masks) + f"{len(er7):8d}")
    lines.append(f"{'participants':12s}" + "".join(f"{len(f):9d}" for f in folds)
                 + f"{len(set(participant.tolist())):8d}")
    return "\n".join(lines)


def normalisation_stats(inputs: dict[str, np.ndarray], index: np.ndarray) -> dict[str, dict[str, list[float]]]:
    """Per-feature mean and std (NaN ignored, std floored) of the rows `index`; fixation maps get one scalar."""
    stats = {}
    for name, arr in inputs.items():
        rows = arr[index].astype(np.float64)
        flat = rows.reshape(-1, 1) if name == "fixation" else rows.reshape(-1, rows.shape[-1])
        with np.errstate(all="ignore"):
            mean = np.nan_to_num(np.nanmean(flat, axis=0), nan=0.0)
            std = np.nan_to_num(np.nanstd(flat, axis=0), nan=1.0)
        std = np.where(std < 1e-6, 1.0, std)
        stats[name] = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    return stats


def _check_input(name: str, arr: np.ndarray, n: int, where: str) -> None:
    spec = shapes.ALL_INPUTS[name]
    if arr.ndim != len(spec.shape) + 1 or len(arr) != n:
        raise DatasetError(f"{where}: {name} has shape {arr.shape}, expected ({n}, {', '.join(map(str, spec.shape))}); "
                           f"rebuild the dataset")
    for got, want in zip(arr.shape[1:], spec.shape):
        if want is not None and got != want:
            raise DatasetError(f"{where}: {name} has shape {arr.shape}, expected (N, {', '.join(map(str, spec.shape))}) "
                               f"(see eyemotion.models.shapes); rebuild the dataset")


def write_dataset(out: str | Path, inputs: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                  provenance: dict, n_folds: int = DEFAULT_FOLDS, seed: int = 0,
                  folds: Sequence[Sequence[str]] | None = None) -> Path:
    """Write `windows.npz` and `dataset.json` into `out` (created); statistics are computed here, and the
    folds too (`assign_folds`: grouped by participant, stratified by er7) unless given in `folds`."""
    out = Path(out)
    missing = [k for k in LABELS if k not in labels]
    if missing:
        raise DatasetError(f"labels {', '.join(missing)} are missing")
    n = len(labels["er7"])
    unknown = [k for k in inputs if k not in shapes.ALL_INPUTS]
    if unknown:
        raise DatasetError(f"unknown inputs {', '.join(unknown)}; known: {', '.join(shapes.ALL_INPUTS)}")
    for name, arr in inputs.items():
        _check_input(name, arr, n, str(out))
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}
    arrays.update({k: np.asarray(labels[k], dtype=np.int64) for k in INT_LABELS})
    arrays.update({k: np.asarray(labels[k], dtype=np.float32) for k in FLOAT_LABELS})
    arrays.update({k: np.asarray(labels[k]).astype(str) for k in STR_LABELS})
    folds = (check_folds(folds, arrays["participant"]) if folds is not None
             else assign_folds(arrays["participant"], n_folds, seed, arrays["er7"]))
    fold_stats = []
    for fold in folds:
        train = np.flatnonzero(~np.isin(arrays["participant"], fold))
        fold_stats.append(normalisation_stats({k: arrays[k] for k in inputs}, train))
    meta = {
        "format": FORMAT, "version": VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "eyemotion": __version__, "provenance": provenance, "n_windows": n,
        "participants": sorted(set(arrays["participant"].tolist())), "classes": list(CLASSES),
        "classes_3": list(shapes.CLASSES_3), "inputs": sorted(inputs), "fold_seed": seed, "folds": folds,
        "fold_table": fold_table(arrays["er7"], arrays["participant"], folds).splitlines(),
        "normalisation": {"all": normalisation_stats({k: arrays[k] for k in inputs}, np.arange(n)),
                          "folds": fold_stats},
    }
    from eyemotion.outputs import staged_output

    with staged_output(out) as stage:  # atomic: windows and meta appear together, or not at all
        np.savez(stage / WINDOWS_FILE, **arrays)
        (stage / META_FILE).write_text(json.dumps(meta, indent=1))
    return out


def load_dataset(path: str | Path, require: Sequence[str] = ()) -> WindowDataset:
    """Read and check a dataset directory; `require` names the inputs the caller needs."""
    root = Path(path)
    fix = "build one with `eyemotion dataset build SESSIONS... OUT`"
    if not root.is_dir():
        raise DatasetError(f"dataset {root} is not a directory; {fix}")
    for name in (WINDOWS_FILE, META_FILE):
        if not (root / name).is_file():
            raise DatasetError(f"dataset {root} has no {name}; {fix}")
    try:
        meta = json.loads((root / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{root / META_FILE} cannot be read ({exc}); {fix}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise DatasetError(f"{root / META_FILE} is not an {FORMAT} v{VERSION} description; {fix}")
    try:
        with np.load(root / WINDOWS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{root / WINDOWS_FILE} cannot be read ({exc}); {fix}") from None
    missing = [k for k in (*LABELS, *require) if k not in arrays]
    if missing:
        raise DatasetError(f"{root / WINDOWS_FILE} lacks {', '.join(missing)}; {fix}")
    n = len(arrays["er7"])
    for k in LABELS:
        if len(arrays[k]) != n:
            raise DatasetError(f"{root / WINDOWS_FILE}: {k} has {len(arrays[k])} rows, er7 has {n}; {fix}")
    inputs = {k: v for k, v in arrays.items() if k in shapes.ALL_INPUTS}
    for name, arr in inputs.items():
        _check_input(name, arr, n, str(root / WINDOWS_FILE))
    for label, n_classes, lowest in (("er7", shapes.N_CLASSES, 0), ("fer7", shapes.N_CLASSES, -1),
                                     ("er3", len(shapes.CLASSES_3), 0)):
        if n and not (arrays[label].min() >= lowest and arrays[label].max() < n_classes):
            raise DatasetError(f"{root / WINDOWS_FILE}: {label} labels outside {lowest}-{n_classes - 1}; {fix}")
    labels = {k: arrays[k] for k in LABELS}
    return WindowDataset(root, inputs, labels, meta)


# --- synthetic data with a planted signal (tests, benchmarks, until recorded sessions exist) ---

#: Valence and arousal planted per class (neutral, happiness, sadness, anger, disgust, fear, surprise).
PLANTED_VA = np.array([[0.0, -0.3], [0.8, 0.5], [-0.7, -0.4], [-0.6, 0.8], [-0.6, 0.3], [-0.7, 0.7], [0.3, 0.8]])


def make_synthetic_dataset(out: str | Path, *, participants: int = 10, windows_per_class: int = 3,
                           signal: float = 0.5, visual_frames: int = 10, audio_steps: int = 6,
                           n_folds: int = DEFAULT_FOLDS, seed: int = 0) -> Path:
    """A dataset in the format above whose features carry a planted class signal.

    Each class has a fixed random prototype per input (the same for every participant), scaled by
    `signal` and added to unit Gaussian noise plus a per-participant offset; fixation maps put a blob
    at a class-dependent screen position. FER labels equal the ER labels 80 % of the time.
    """
    rng = np.random.default_rng(seed)
    proto_rng = np.random.default_rng(12345)  # the planted signal does not depend on `seed`
    dims = {"face": shapes.FACE_DIM, "eye": shapes.EYE_DIM, "visual_face": shapes.FACE_DIM,
            "visual_gaze": shapes.GAZE_STATS_DIM, "audio": shapes.AUDIO_DIM}
    lengths = {"face": shapes.EMERT_FACE_FRAMES, "eye": shapes.EMERT_EYE_SAMPLES, "visual_face": visual_frames,
               "visual_gaze": visual_frames, "audio": audio_steps}
    protos = {k: proto_rng.normal(size=(shapes.N_CLASSES, d)) for k, d in dims.items()}
    n_per = shapes.N_CLASSES * windows_per_class
    er7 = np.tile(np.repeat(np.arange(shapes.N_CLASSES), windows_per_class), participants)
    pid = np.repeat([f"P{p:02d}" for p in range(participants)], n_per)
    n = len(er7)
    inputs: dict[str, np.ndarray] = {}
    for k, d in dims.items():
        offsets = np.repeat(rng.normal(scale=0.5, size=(participants, 1, d)), n_per, axis=0)
        noise = rng.normal(size=(n, lengths[k], d))
        inputs[k] = (noise + offsets + signal * protos[k][er7][:, None, :]).astype(np.float32)
    rows, cols = np.mgrid[0:shapes.FIXATION_ROWS, 0:shapes.FIXATION_COLS]
    centre_col = 3 + er7 * 4 + rng.normal(scale=1.5, size=n)
    centre_row = 9 + rng.normal(scale=3.0, size=n)
    blob = np.exp(-((cols[None] - centre_col[:, None, None]) ** 2 + (rows[None] - centre_row[:, None, None]) ** 2) / 8.0)
    fix = blob[:, None] * rng.uniform(0.5, 1.0, size=(n, shapes.EMERT_FIXATION_SLICES, 1, 1))
    fix += rng.uniform(0, 0.3, size=fix.shape)
    inputs["fixation"] = (fix / fix.sum(axis=(2, 3), keepdims=True)).astype(np.float32)
    va = np.clip(PLANTED_VA[er7] + rng.normal(scale=0.15, size=(n, 2)), -1, 1)
    fer7 = np.where(rng.uniform(size=n) < 0.8, er7, rng.integers(0, shapes.N_CLASSES, size=n))
    labels = {"er7": er7, "er3": np.asarray(shapes.CLASS7_TO_3)[er7], "valence": va[:, 0], "arousal": va[:, 1],
              "fer7": fer7, "participant": pid, "clip": np.array([f"{p}-c{i % n_per:03d}" for i, p in enumerate(pid)])}
    provenance = {"source": "synthetic", "generator": "eyemotion.models.dataset.make_synthetic_dataset",
                  "signal": signal, "seed": seed, "note": "planted class signal; for pipeline testing only"}
    return write_dataset(out, inputs, labels, provenance, n_folds=n_folds, seed=seed)
