"""Training datasets from recorded sessions: `eyemotion dataset build SESSIONS... OUT`.

Each session's clips (trials.csv `clip_onset_lsl` .. `clip_offset_lsl`, or the `clip_onset` /
`clip_offset` markers of the trial when the table lacks them) are cut into windows that end every
`hop_s` from `onset + window` to the clip offset, on the live node's window grid. The model inputs of
each window come from `eyemotion.inference.live.WindowInputs`, the object the live node uses, fed with
the session's eyemotion_gaze (or its Tobii_gaze run through the eye-signal processor), eyemotion_face
(or the face pipeline run on camera.mkv) and eyemotion_audio: each stream from a little before every
clip (the history its windows need) to its offset, so the long stretches between clips (ratings) cost
no feature extraction.

Labels (one set per window, from its trial):
- `er7`: the participant's self-reported felt emotion (trials.csv `felt_emotion`), as an index into
  `eyemotion.streams.CLASSES`. Trials without a felt emotion, valence or arousal are skipped (counted in
  the provenance): labels come from self-reports only.
- `er3` (coarse, 002_cbeb04dbce786b8c.txt Sec. III-B: positive / neutral / negative), by `coarse`:
  "emotion" (default) maps the felt emotion with `models.shapes.CLASS7_TO_3` (happiness and surprise
  positive; sadness, anger, disgust and fear negative; neutral neutral); "valence" uses the sign of the
  self-reported valence: below -0.125 negative, above +0.125 positive, else neutral (on a 9-point SAM
  scale: 1-4 negative, 5 neutral, 6-9 positive).
- `valence`, `arousal`: the self-reports in [-1, 1] (trials.csv `valence` / `arousal`).
- `fer7`: auto-annotated by the face model, as the model auto-annotation step of EMER's ALA (002 Sec.
  III-B): the class of the mean eyemotion_face FER probabilities over the window's face frames. A window
  without any face frame has no FER label (-1, counted in the provenance as `fer7_missing`): the FER loss
  and metrics leave it out (taking the ER label instead would shrink the very ER-FER gap 002 studies).
Folds: `models.dataset.write_dataset` splits by participant (5 folds by default, as in 002 Sec. V-A-1).

Per-clip rows (002 Sec. V-A-2): besides the windows, every labelled clip gives one row of EMERT inputs
sampled evenly from the whole clip (8 face frames, 32 gaze samples, 32 fixation-map slices; same labels,
FER label over the whole clip). They go into `OUT/clips/`, a dataset of the same format holding the
EMERT inputs only; `eyemotion train emert` trains and evaluates on them and also reports the figures on
the 4-s sliding windows the live node uses. Clips shorter than a window still give a per-clip row.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eyemotion.models import shapes
from eyemotion.models.dataset import DEFAULT_FOLDS, META_FILE, DatasetError, write_dataset

from eyemotion.config import Config
from eyemotion.streams import AUDIO, CLASSES, FACE, GAZE_CLEAN, GAZE_RAW

log = logging.getLogger(__name__)

COARSE_MODES = ("emotion", "valence")
VALENCE_NEUTRAL_BAND = 0.125
_PRESENT = FACE.index("face_present")
_FER = slice(FACE.index("fer_neutral"), FACE.index("fer_neutral") + len(CLASSES))


@dataclass
class ClipLabel:
    """One clip of a session with its self-reports."""

    trial: int
    clip: str
    onset: float  # LSL s
    offset: float
    er7: int
    valence: float
    arousal: float


@dataclass
class SessionStreams:
    """What the dataset builder needs from one session (recorded or simulated)."""

    participant: str
    source: str
    clips: list[ClipLabel]
    gaze: tuple[np.ndarray, np.ndarray, float] | None = None  # eyemotion_gaze: timestamps, samples, rate
    face: tuple[np.ndarray, np.ndarray] | None = None  # eyemotion_face: timestamps, samples
    audio: tuple[np.ndarray, np.ndarray] | None = None  # eyemotion_audio: timestamps, samples (16 kHz)
    skipped: Counter = field(default_factory=Counter)  # trials left out, by reason


def coarse_label(er7: int, valence: float, mode: str) -> int:
    """The 3-class label (index into `shapes.CLASSES_3`) of a window; see the module docstring."""
    if mode == "emotion":
        return shapes.CLASS7_TO_3[er7]
    if mode == "valence":
        if valence < -VALENCE_NEUTRAL_BAND:
            return shapes.CLASSES_3.index("negative")
        if valence > VALENCE_NEUTRAL_BAND:
            return shapes.CLASSES_3.index("positive")
        return shapes.CLASSES_3.index("neutral")
    raise DatasetError(f"unknown coarse label mode {mode!r}; use one of {', '.join(COARSE_MODES)}")


def _finite(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def clips_from_trials(trials: list[dict[str, Any]], markers: Any = None) -> tuple[list[ClipLabel], Counter]:
    """The labelled clips of a trial table (trials.csv rows); onsets from the table, else the markers."""
    marker_times: dict[int, dict[str, float]] = {}
    for m in getattr(markers, "markers", []) or []:
        if m.event in ("clip_onset", "clip_offset") and isinstance(m.fields.get("trial"), int):
            marker_times.setdefault(m.fields["trial"], {})[m.event] = m.time
    clips, skipped = [], Counter()
    for row in trials:
        number = _finite(row.get("trial"))
        trial = int(number) if math.isfinite(number) else -1
        onset = _finite(row.get("clip_onset_lsl"))
        offset = _finite(row.get("clip_offset_lsl"))
        if not (math.isfinite(onset) and math.isfinite(offset)):
            times = marker_times.get(trial, {})
            onset, offset = times.get("clip_onset", math.nan), times.get("clip_offset", math.nan)
        felt = str(row.get("felt_emotion") or "").strip()
        valence, arousal = _finite(row.get("valence")), _finite(row.get("arousal"))
        if not (math.isfinite(onset) and math.isfinite(offset)) or offset <= onset:
            skipped["no clip onset/offset"] += 1
        elif felt not in CLASSES:
            skipped["no felt emotion"] += 1
        elif not (math.isfinite(valence) and math.isfinite(arousal)):
            skipped["no valence/arousal"] += 1
        else:
            clips.append(ClipLabel(trial, str(row.get("clip_id") or row.get("clip") or f"trial{trial}"), onset, offset,
                                   CLASSES.index(felt), float(np.clip(valence, -1, 1)), float(np.clip(arousal, -1, 1))))
    return clips, skipped


def load_session_streams(path: str | Path, config: Config, progress: Callable = lambda x, **_: x) -> SessionStreams:
    """Read a recorded session folder into `SessionStreams` (the recording is never changed).

    eyemotion_gaze is used as recorded; without it, the recorded Tobii_gaze goes through the eye-signal
    processor (the live node's object). Without eyemotion_face, the face pipeline runs on camera.mkv.
    """
    from eyemotion.session import Session, SessionError

    session = Session.load(path)
    if not session.meta.get("participant") and not Path(path).is_dir():  # the folds are participant-wise
        raise DatasetError(f"{path} is a bare recording without session.json, so its participant is unknown; "
                           "pass its session folder (sessions/<participant>/<session-id>/)")
    participant = str(session.meta.get("participant") or Path(session.path).parent.name)
    clips, skipped = clips_from_trials(session.trials, session.markers)
    gaze = face = audio = None
    if GAZE_CLEAN.name in session.streams:
        s = session.streams[GAZE_CLEAN.name]
        gaze = (s.time_stamps, np.asarray(s.data, float), float(s.nominal_srate or s.effective_srate))
    elif GAZE_RAW.name in session.streams:
        from eyemotion.inference.eyesignal.node import screen_from_session
        from eyemotion.inference.eyesignal.processor import process_recording

        s = session.streams[GAZE_RAW.name]
        rate = float(s.nominal_srate or s.effective_srate)
        out = process_recording(s.time_stamps, np.asarray(s.data, float), rate, config.eyesignal,
                                screen_from_session(session.path, config.screen))
        gaze = (out.timestamps, out.samples, rate)
    if FACE.name in session.streams:
        s = session.streams[FACE.name]
        face = (s.time_stamps, np.asarray(s.data, float))
    elif segments := session.camera_segments:
        from eyemotion.inference.features.commands import face_table_from_video

        _, table = face_table_from_video(segments, config, progress)
        face = (table[:, 0], table[:, 1:])
    if AUDIO.name in session.streams:
        s = session.streams[AUDIO.name]
        if abs((s.nominal_srate or s.effective_srate) - 16000) > 1:
            raise SessionError(f"{session.path}: eyemotion_audio is not 16 kHz; record with [microphone] samplerate "
                               "= 16000")
        audio = (s.time_stamps, np.asarray(s.data, float)[:, 0])
    if gaze is None and face is None and audio is None:
        raise SessionError(f"{session.path} has no eyemotion_gaze, Tobii_gaze, eyemotion_face, camera.mkv or "
                           "eyemotion_audio: nothing to build windows from")
    return SessionStreams(participant, str(session.path), clips, gaze, face, audio, skipped)


def clip_window_ends(onset: float, offset: float, config: Config, hop_s: float) -> np.ndarray:
    """Window ends of one clip on the live node's grid: from onset + window to offset, every ~hop_s."""
    from eyemotion.inference.live import slice_s

    grid = slice_s(config)
    window = max(config.features.emert_window_s, config.features.crossmodal_window_s)
    step = max(1, round(hop_s / grid))
    first = math.ceil((onset + window) / grid - 1e-9)
    last = math.floor(offset / grid + 1e-9)
    return np.arange(first, last + 1, step) * grid


def _between(arrays: tuple | None, start: float, end: float) -> tuple | None:
    if arrays is None:
        return None
    ts = arrays[0]
    lo, hi = np.searchsorted(ts, [start, end], side="left")
    return (ts[lo:hi], arrays[1][lo:hi], *arrays[2:])


def _merged(ranges: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping (start, end) ranges merged, in time order."""
    out: list[list[float]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


Part = tuple[dict[str, list], dict[str, list], Counter]
CLIP_DIR = "clips"  # the per-clip dataset inside a dataset built from sessions
LABEL_KEYS = ("er7", "er3", "valence", "arousal", "fer7", "participant", "clip")


def session_windows(session: SessionStreams, config: Config, *, hop_s: float = 1.0, coarse: str = "emotion",
                    progress: Callable = lambda x, **_: x) -> Part:
    """Model inputs and labels of every window of every clip of one session, and counts for the provenance."""
    return session_rows(session, config, hop_s=hop_s, coarse=coarse, progress=progress)[0]


def session_rows(session: SessionStreams, config: Config, *, hop_s: float = 1.0, coarse: str = "emotion",
                 progress: Callable = lambda x, **_: x) -> tuple[Part, Part]:
    """(windows, per-clip rows) of one session, each as (inputs, labels, counts for the provenance).

    One `WindowInputs` (the live node's object) gets each stream's samples around the clips (the history
    the windows need, ranges merged where clips are close), in time order; then each window is read, and
    each clip's EMERT inputs are sampled from [onset, offset) by the same builder (002 Sec. V-A-2).
    """
    from eyemotion.inference.live import WindowInputs

    f = config.features
    # history before a clip's first window [onset, onset + window): face frames of that window; gaze
    # statistics of the frames (1-s windows, 0.5 s tolerance); eGeMAPS sub-windows ending after the onset
    leads = {"gaze": f.gaze_window_s + 1.0, "face": 0.5, "audio": f.audio_window_s + 0.5}
    feeder = WindowInputs(config, keep_s=math.inf)
    for name, lead in leads.items():
        arrays = getattr(session, name)
        for start, end in _merged([(c.onset - lead, c.offset + 0.5) for c in session.clips]):
            part = _between(arrays, start, end)
            if part is not None:
                getattr(feeder, f"push_{name}")(*part)
    inputs: dict[str, list] = {k: [] for k in ("face", "eye", "fixation", "visual_face", "visual_gaze", "audio")}
    labels: dict[str, list] = {k: [] for k in LABEL_KEYS}
    counts: Counter = Counter()
    clip_inputs: dict[str, list] = {k: [] for k in ("face", "eye", "fixation")}
    clip_labels: dict[str, list] = {k: [] for k in LABEL_KEYS}
    clip_counts: Counter = Counter()

    def add_labels(into: dict[str, list], clip: ClipLabel, fer7: int | None, tally: Counter) -> None:
        if fer7 is None:
            tally["fer7_missing"] += 1
        for k, v in (("er7", clip.er7), ("er3", coarse_label(clip.er7, clip.valence, coarse)),
                     ("valence", clip.valence), ("arousal", clip.arousal), ("fer7", -1 if fer7 is None else fer7),
                     ("participant", session.participant), ("clip", f"{session.participant}/{clip.trial}/{clip.clip}")):
            into[k].append(v)

    for clip in progress(session.clips, desc=f"{session.participant} clips", unit="clip", leave=False):
        whole = feeder.emert.window(clip.offset, start=clip.onset)
        for k, v in (("face", whole.face), ("eye", whole.gaze), ("fixation", whole.fixation)):
            clip_inputs[k].append(v)
        add_labels(clip_labels, clip, _fer_label(session.face, clip.onset, clip.offset), clip_counts)
        clip_counts["clips"] += 1
        clip_counts.update(f"clips_with_{m}" for m, ok in (("face", whole.face_present), ("gaze", whole.gaze_present))
                           if ok)
        ends = clip_window_ends(clip.onset, clip.offset, config, hop_s)
        if not len(ends):
            counts["clips shorter than a window"] += 1
            continue
        for end in ends:
            w = feeder.inputs(float(end))
            for k, v in {**w.emert, **w.crossmodal}.items():
                inputs[k].append(v)
            counts.update(f"windows_with_{m}" for m in ("face", "gaze", "audio") if getattr(w, m))
            add_labels(labels, clip, _fer_label(session.face, end - f.emert_window_s, end), counts)
        counts["clips"] += 1
        counts["windows"] += len(ends)
    return (inputs, labels, counts), (clip_inputs, clip_labels, clip_counts)


def _fer_label(face: tuple | None, start: float, end: float) -> int | None:
    """Class of the mean FER probabilities of the face frames in [start, end) (None without a face)."""
    if face is None:
        return None
    ts, samples = face[0], face[1]
    lo, hi = np.searchsorted(ts, [start, end], side="left")
    rows = samples[lo:hi]
    rows = rows[rows[:, _PRESENT] > 0.5][:, _FER]
    rows = rows[np.isfinite(rows).all(axis=1)]
    return int(np.argmax(rows.mean(axis=0))) if len(rows) else None


def windows_to_dataset(out: str | Path, parts: Sequence[Part], provenance: dict, *, folds: int = DEFAULT_FOLDS,
                       seed: int = 0, clip_parts: Sequence[Part] | None = None) -> Path:
    """Stack the windows of several sessions and write them with `models.dataset.write_dataset`; with
    `clip_parts`, the per-clip rows go into `out/clips`, with the windows' folds."""
    inputs = {k: [v for p in parts for v in p[0][k]] for k in parts[0][0]} if parts else {}
    labels = {k: [v for p in parts for v in p[1][k]] for k in parts[0][1]} if parts else {}
    if not labels or not labels["er7"]:
        raise DatasetError("the sessions gave no labelled windows: they need clips with onset/offset and "
                           "self-reports (felt emotion, valence, arousal) in trials.csv, at least one window long "
                           "([features] emert_window_s / crossmodal_window_s)")
    if folds < 2:
        raise DatasetError(f"--folds {folds}: participant-wise cross-validation needs at least 2 folds (and as many "
                           "participants); pass --folds 2 or more")
    totals = sum((p[2] for p in parts), Counter())
    arrays = {k: np.stack(v).astype(np.float32) for k, v in inputs.items()}
    path = write_dataset(out, arrays, {k: np.asarray(v) for k, v in labels.items()},
                         {**provenance, "counts": dict(totals)}, n_folds=folds, seed=seed)
    if clip_parts:
        clip_arrays = {k: np.stack([v for p in clip_parts for v in p[0][k]]).astype(np.float32)
                       for k in clip_parts[0][0]}
        clip_labels = {k: np.asarray([v for p in clip_parts for v in p[1][k]]) for k in clip_parts[0][1]}
        clip_totals = sum((p[2] for p in clip_parts), Counter())
        write_dataset(Path(out) / CLIP_DIR, clip_arrays, clip_labels,
                      {**provenance, "unit": "clip", "sampling": "002 Sec. V-A-2: 8 face frames, 32 gaze samples, "
                       "32 fixation-map slices evenly from each whole clip", "counts": dict(clip_totals)},
                      folds=json.loads((path / META_FILE).read_text())["folds"])
    return path


def build_dataset(sessions: Sequence[str | Path], out: str | Path, config: Config, *, hop_s: float = 1.0,
                  coarse: str = "emotion", folds: int = DEFAULT_FOLDS, seed: int = 0, progress: bool = True) -> Path:
    """`eyemotion dataset build`: windows of every clip of every session -> a dataset in `out`."""
    from tqdm import tqdm

    from eyemotion import __version__

    if coarse not in COARSE_MODES:
        raise DatasetError(f"unknown coarse label mode {coarse!r}; use one of {', '.join(COARSE_MODES)}")
    if hop_s <= 0:
        raise DatasetError(f"the window hop must be > 0 s, not {hop_s}")
    if not sessions:
        raise DatasetError("no sessions given; pass one or more sessions/<participant>/<id>/ folders")
    missing = [str(p) for p in sessions if not Path(p).exists()]
    if missing:
        raise DatasetError(f"{missing[0]} does not exist; pass sessions/<participant>/<session-id>/ folders")
    bar = (lambda x, **kw: tqdm(x, **kw)) if progress else (lambda x, **_: x)
    parts, clip_parts, described = [], [], []
    for path in bar(list(sessions), desc="sessions", unit="session"):
        streams = load_session_streams(path, config, bar)
        part, clip_part = session_rows(streams, config, hop_s=hop_s, coarse=coarse, progress=bar)
        part[2].update({f"skipped trials: {k}": v for k, v in streams.skipped.items()})
        parts.append(part)
        clip_parts.append(clip_part)
        described.append({"path": str(path), "participant": streams.participant, "clips": len(streams.clips),
                          "windows": len(part[1]["er7"]), "skipped": dict(streams.skipped),
                          "inputs": [m for m in ("gaze", "face", "audio") if getattr(streams, m) is not None]})
        log.info("%s: %d clips, %d windows", path, len(streams.clips), len(part[1]["er7"]))
    provenance = {"source": "recorded sessions", "builder": "eyemotion.models.sessions_dataset",
                  "eyemotion": __version__, "sessions": described, "hop_s": hop_s, "coarse_labels": coarse,
                  "labels": "self-reports in trials.csv; fer7 auto-annotated by the face model (mean FER "
                            "probabilities over the window or clip; -1 without a face)",
                  "features": config.to_dict()["features"]}
    return windows_to_dataset(out, parts, provenance, folds=folds, seed=seed, clip_parts=clip_parts)
