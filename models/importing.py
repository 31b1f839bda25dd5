"""Labelled corpora in: speech and face recordings from outside our session folders -> a training dataset.

`eyemotion dataset import {speech,faces} FOLDER OUT` reads a folder of files and their labels and writes the
dataset format of `eyemotion.models.dataset` (crossmodal inputs only; gaze recordings come in through the
foreign-data import of the sessions, with labels per trial).

Labels come from either

* a CSV (``--csv``) with the columns ``file`` (path relative to FOLDER), ``label``, ``speaker`` (or
  ``participant``), and optionally ``valence`` and ``arousal`` (in [-1, 1]) and ``fold`` (an integer test fold
  per speaker: user-given folds), or
* a file-name pattern (``--pattern``): a Python regular expression with the named groups ``label`` and
  ``speaker`` (optionally ``fold``), matched against each file's path relative to FOLDER; files that do not
  match are skipped and counted.

A label is a class name of `eyemotion.streams.CLASSES` or a common alias (happy, sad, angry, ...);
``--label-map`` renames labels first (``01=neutral,03=happiness``), and ``--keep`` keeps only some classes
(rows with other classes are skipped and counted; any label that is neither known nor mapped is an error).

Inputs per row:

* speech (any sample rate, mono or the mean of the channels, resampled to 16 kHz): ``audio`` (N, 1, 88),
  the eGeMAPS functionals of the whole utterance with voiced-frame pooling (`EgemapsFeatures.utterance`,
  the same pooling as the live windows), or with ``--audio-window S`` the functionals of ``--audio-steps``
  windows of S seconds evenly spread over the utterance (a shorter utterance is one window).
* faces (images, or videos sampled at ``--frames`` evenly spaced frames): ``visual_face`` (N, T, 128), the
  face model's embedding per frame (NaN without a face). No gaze: train with ``--variant no-gaze``.

Folds are grouped by speaker and stratified by class (`models.dataset.assign_folds`) unless the CSV or the
pattern gives them; the class x fold table is printed. A speaker who has only one class is refused unless
``--allow-one-class-speakers``: the corpus then cannot separate speaker from emotion.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from eyemotion.models import shapes
from eyemotion.models.dataset import DEFAULT_FOLDS, fold_table, load_dataset, write_dataset
from tqdm import tqdm

from eyemotion import UserError
from eyemotion.streams import CLASSES

log = logging.getLogger(__name__)

KINDS = ("speech", "faces")
AUDIO_EXT = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXT = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv")
ALIASES = {
    "neu": "neutral", "happy": "happiness", "hap": "happiness", "joy": "happiness",
    "sad": "sadness", "angry": "anger", "ang": "anger", "disgusted": "disgust", "dis": "disgust",
    "fearful": "fear", "fea": "fear", "afraid": "fear", "surprised": "surprise", "sur": "surprise",
}


class CorpusError(UserError):
    """A corpus that cannot be imported (the message names the row or file and the fix)."""


@dataclass
class Row:
    file: Path
    label: int
    speaker: str
    valence: float = float("nan")
    arousal: float = float("nan")
    fold: int | None = None


@dataclass
class ImportSummary:
    path: Path
    n_rows: int
    speakers: int
    table: str
    skipped: dict[str, int] = field(default_factory=dict)
    no_speech: int = 0  # utterances the live voice-activity gate would not pass
    no_face: int = 0


def parse_label_map(text: str | None) -> dict[str, str]:
    """``"01=neutral,03=happiness"`` -> {"01": "neutral", "03": "happiness"}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        if "=" not in part:
            raise CorpusError(f"--label-map entry {part!r} has no '='; write FROM=TO pairs, e.g. 01=neutral,05=anger")
        key, value = (s.strip() for s in part.split("=", 1))
        out[key] = value
    return out


def class_index(label: str, label_map: dict[str, str], where: str, other_ok: bool = False) -> int:
    """The class of `label` after `label_map`; -1 for a label outside the classes when `other_ok` (with
    --keep: such labels, e.g. RAVDESS "calm", are skipped like any class that is not kept)."""
    name = label_map.get(label, label).strip().lower()
    name = ALIASES.get(name, name)
    if name not in CLASSES and other_ok:
        return -1
    if name not in CLASSES:
        raise CorpusError(f"{where}: unknown label {label!r}; use one of {', '.join(CLASSES)} (or an alias such as "
                           f"happy, sad, angry), or map it with --label-map {label}=CLASS")
    return CLASSES.index(name)


def _float(text: str | None, where: str, column: str) -> float:
    if text is None or str(text).strip() == "":
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        raise CorpusError(f"{where}: {column} {text!r} is not a number; give a number in [-1, 1] or leave it empty") \
            from None
    if not -1.0 <= value <= 1.0:
        raise CorpusError(f"{where}: {column} {value} is outside [-1, 1]; rescale the ratings to [-1, 1]")
    return value


def _fold(text: str | None, where: str) -> int | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise CorpusError(f"{where}: fold {text!r} is not an integer; give folds as 0, 1, 2, ...") from None


def rows_from_csv(folder: Path, table: Path, label_map: dict[str, str], keep: set[int] | None,
                  skipped: dict[str, int]) -> list[Row]:
    try:
        with table.open(newline="", encoding="utf-8-sig") as f:
            records = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorpusError(f"{table} cannot be read as CSV ({exc}); give a UTF-8 CSV with a header row") from None
    cols = set(records[0]) if records else set()
    speaker_col = "speaker" if "speaker" in cols else "participant"
    missing = [c for c in ("file", "label", speaker_col) if c not in cols]
    if missing:
        raise CorpusError(f"{table} lacks the column(s) {', '.join(missing)}; its header must have file, label and "
                           f"speaker (or participant), optionally valence, arousal, fold")
    rows = []
    for i, rec in enumerate(records, start=2):
        where = f"{table.name} line {i}"
        label = class_index(str(rec["label"]), label_map, where, keep is not None)
        if keep is not None and label not in keep:
            skipped["other class"] = skipped.get("other class", 0) + 1
            continue
        speaker = str(rec[speaker_col] or "").strip()
        if not speaker:
            raise CorpusError(f"{where}: no {speaker_col}; every row needs one (folds keep speakers apart)")
        rows.append(Row(folder / str(rec["file"]).strip(), label, speaker, _float(rec.get("valence"), where, "valence"),
                        _float(rec.get("arousal"), where, "arousal"), _fold(rec.get("fold"), where)))
    return rows


def rows_from_pattern(folder: Path, pattern: str, extensions: tuple[str, ...], label_map: dict[str, str],
                      keep: set[int] | None, skipped: dict[str, int]) -> list[Row]:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise CorpusError(f"--pattern {pattern!r} is not a regular expression ({exc}); fix it") from None
    missing = [g for g in ("label", "speaker") if g not in regex.groupindex]
    if missing:
        raise CorpusError(f"--pattern needs the named group(s) {', '.join(f'(?P<{g}>...)' for g in missing)}")
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in extensions and p.is_file()):
        rel = path.relative_to(folder).as_posix()
        m = regex.search(rel)
        if not m:
            skipped["no pattern match"] = skipped.get("no pattern match", 0) + 1
            continue
        label = class_index(m["label"], label_map, rel, keep is not None)
        if keep is not None and label not in keep:
            skipped["other class"] = skipped.get("other class", 0) + 1
            continue
        fold = _fold(m["fold"], rel) if "fold" in regex.groupindex else None
        rows.append(Row(path, label, m["speaker"], fold=fold))
    return rows


def _check_rows(rows: list[Row], source: str, n_folds: int, allow_one_class: bool) -> list[list[str]] | None:
    if not rows:
        raise CorpusError(f"no labelled files found in {source}; check --csv / --pattern and --keep")
    for r in rows:
        if not r.file.is_file():
            raise CorpusError(f"{r.file} (speaker {r.speaker}) does not exist; fix its path or remove its row")
    by_speaker: dict[str, set[int]] = {}
    for r in rows:
        by_speaker.setdefault(r.speaker, set()).add(r.label)
    single = sorted(s for s, c in by_speaker.items() if len(c) == 1)
    if single and not allow_one_class:
        raise CorpusError(f"speaker(s) {', '.join(single[:5])}{' ...' if len(single) > 5 else ''} have only one class "
                           f"({CLASSES[next(iter(by_speaker[single[0]]))]} for {single[0]}), so speaker and emotion "
                           f"cannot be told apart; remove them or pass --allow-one-class-speakers")
    given = {r.fold for r in rows}
    if given == {None}:
        if len(by_speaker) < n_folds:
            raise CorpusError(f"{len(by_speaker)} speakers cannot make {n_folds} speaker-wise folds; use --folds "
                               f"{max(2, len(by_speaker))} or fewer")
        return None
    if None in given:
        raise CorpusError("some rows give a fold and some do not; give a fold for every row or for none")
    folds: dict[int, set[str]] = {}
    for r in rows:
        folds.setdefault(int(r.fold), set()).add(r.speaker)  # type: ignore[arg-type]
    owners: dict[str, set[int]] = {}
    for k, people in folds.items():
        for p in people:
            owners.setdefault(p, set()).add(k)
    split = sorted(p for p, ks in owners.items() if len(ks) > 1)
    if split:
        raise CorpusError(f"speaker {split[0]} is in folds {sorted(owners[split[0]])}; a speaker must be in one fold")
    return [sorted(folds[k]) for k in sorted(folds)]


def read_audio(path: Path) -> np.ndarray:
    """Mono 16 kHz float32 samples of an audio file (any rate; channels averaged)."""
    import soundfile as sf
    from eyemotion.inference.features.audio import resample_to_16k

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - libsndfile raises RuntimeError / LibsndfileError / TypeError
        raise CorpusError(f"{path} cannot be read as audio ({type(exc).__name__}: {str(exc)[:80]}); "
                           f"re-export it as WAV/FLAC or remove its row") from None
    if len(data) == 0:
        raise CorpusError(f"{path} holds no audio samples; re-export it or remove its row")
    signal = resample_to_16k(data.mean(axis=1), int(rate))
    if not np.isfinite(signal).all():
        raise CorpusError(f"{path} holds non-finite samples; re-export it or remove its row")
    return signal


def speech_inputs(rows: list[Row], audio_window_s: float = 0.0, audio_steps: int = 4,
                  progress: bool = True) -> tuple[np.ndarray, int]:
    """(audio (N, steps, 88), number of utterances the live voice-activity gate would drop)."""
    from eyemotion.inference.features.audio import SAMPLE_RATE, AudioSettings, EgemapsFeatures
    from eyemotion.inference.features.builders import even_indices

    from eyemotion.config import FeaturesConfig

    settings = AudioSettings.from_config(FeaturesConfig())
    extractor = EgemapsFeatures(settings)
    out, no_speech = [], 0
    for r in tqdm(rows, desc="eGeMAPS", unit="file", disable=not progress, leave=False):
        signal = read_audio(r.file)
        values, speech, _, _ = extractor.utterance(signal)
        no_speech += not speech
        win = int(audio_window_s * SAMPLE_RATE)
        if audio_window_s <= 0 or len(signal) <= win:
            steps = [values] * (1 if audio_window_s <= 0 else audio_steps)
        else:
            starts = np.linspace(0, len(signal) - win, max(1, int(np.ceil(2 * len(signal) / win))))
            starts = starts[even_indices(len(starts), audio_steps)]
            steps = [extractor.pooled_functionals(signal[int(s):int(s) + win])[0] for s in starts]
        out.append(np.stack(steps))
    return np.stack(out).astype(np.float32), no_speech


def _video_frames(path: Path, n: int) -> list[np.ndarray]:
    import cv2
    from eyemotion.inference.features.builders import even_indices

    cap = cv2.VideoCapture(str(path))
    try:
        frames = []
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for i in even_indices(max(total, 0), n):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, frame = cap.read()
            if ok:
                frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise CorpusError(f"{path} cannot be read as a video (no frames decoded); re-encode it or remove its row")
    return frames


def face_inputs(rows: list[Row], frames: int = 16, progress: bool = True) -> tuple[np.ndarray, int]:
    """(visual_face (N, T, 128), rows without any face); T = 1 for images only, else `frames`."""
    import cv2
    from eyemotion.inference.features.builders import even_indices
    from eyemotion.inference.features.face import FacePipeline

    pipeline = FacePipeline()
    videos = any(r.file.suffix.lower() in VIDEO_EXT for r in rows)
    t = frames if videos else 1
    out, no_face = [], 0
    for r in tqdm(rows, desc="faces", unit="file", disable=not progress, leave=False):
        if r.file.suffix.lower() in VIDEO_EXT:
            images = _video_frames(r.file, frames)
        else:
            image = cv2.imread(str(r.file))
            if image is None:
                raise CorpusError(f"{r.file} cannot be read as an image; re-save it as PNG/JPEG or remove its row")
            images = [image]
        emb = [res.embedding for res in map(pipeline, images) if res.present]
        no_face += not emb
        seq = np.stack(emb)[even_indices(len(emb), t)] if emb else np.full((t, shapes.FACE_DIM), np.nan)
        out.append(seq)
    return np.stack(out).astype(np.float32), no_face


def import_corpus(kind: str, folder: str | Path, out: str | Path, *, csv_path: str | Path | None = None,
                  pattern: str | None = None, label_map: str | dict | None = None, keep: str | None = None,
                  n_folds: int = DEFAULT_FOLDS, seed: int = 0, audio_window_s: float = 0.0, audio_steps: int = 4,
                  frames: int = 16, allow_one_class_speakers: bool = False, name: str = "",
                  licence: str = "", progress: bool = True) -> ImportSummary:
    """Import a labelled corpus (see the module docstring); returns the summary with the class x fold table."""
    if kind not in KINDS:
        raise CorpusError(f"unknown corpus kind {kind!r}; choose one of {', '.join(KINDS)}")
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise CorpusError(f"{folder} is not a folder; give the folder that holds the corpus files")
    if (out / "windows.npz").exists():
        raise CorpusError(f"{out} already holds a dataset; pass a new output directory")
    if (csv_path is None) == (pattern is None):
        raise CorpusError("give exactly one of --csv LABELS.csv or --pattern REGEX to say where the labels are")
    mapping = label_map if isinstance(label_map, dict) else parse_label_map(label_map)
    keep_set = None if not keep else {class_index(k.strip(), mapping, "--keep") for k in keep.split(",") if k.strip()}
    skipped: dict[str, int] = {}
    exts = AUDIO_EXT if kind == "speech" else IMAGE_EXT + VIDEO_EXT
    if csv_path is not None:
        rows = rows_from_csv(folder, Path(csv_path), mapping, keep_set, skipped)
    else:
        rows = rows_from_pattern(folder, str(pattern), exts, mapping, keep_set, skipped)
    folds = _check_rows(rows, str(csv_path or folder), n_folds, allow_one_class_speakers)
    if kind == "speech":
        audio, no_speech = speech_inputs(rows, audio_window_s, audio_steps, progress)
        inputs, no_face = {"audio": audio}, 0
    else:
        visual, no_face = face_inputs(rows, frames, progress)
        inputs, no_speech = {"visual_face": visual}, 0
    er7 = np.array([r.label for r in rows], np.int64)
    labels = {"er7": er7, "er3": np.asarray(shapes.CLASS7_TO_3)[er7], "fer7": np.full(len(rows), -1),
              "valence": np.array([r.valence for r in rows], np.float32),
              "arousal": np.array([r.arousal for r in rows], np.float32),
              "participant": np.array([r.speaker for r in rows]),
              "clip": np.array([r.file.relative_to(folder).as_posix() if r.file.is_relative_to(folder) else str(r.file)
                                for r in rows])}
    provenance = {"source": "import", "kind": kind, "corpus": name or folder.name, "licence": licence,
                  "folder": str(folder.resolve()), "labels": str(csv_path) if csv_path else f"pattern {pattern}",
                  "label_map": mapping, "keep": sorted(CLASSES[k] for k in keep_set) if keep_set else None,
                  "audio": ("utterance, voiced-frame pooled eGeMAPS" if audio_window_s <= 0 else
                            f"{audio_steps} windows of {audio_window_s} s, voiced-frame pooled eGeMAPS")
                  if kind == "speech" else None,
                  "folds": "given" if folds else "speaker-grouped, class-stratified", "skipped": skipped,
                  "no_speech_by_live_gate": no_speech, "no_face": no_face}
    path = write_dataset(out, inputs, labels, provenance, n_folds=n_folds, seed=seed, folds=folds)
    ds = load_dataset(path)
    table = fold_table(ds.labels["er7"], ds.labels["participant"], ds.meta["folds"])
    return ImportSummary(path, len(rows), len({r.speaker for r in rows}), table, skipped, no_speech, no_face)
