"""`trials.csv`: one row per completed trial, rewritten atomically after every trial.

Times are LSL times (s) of the screen flips (see `eyemotion.stimuli.timing`), so they line up with
every stream in `recording.xdf`. Ratings are stored both as scale points (`*_sam`, 1..N) and mapped to
[-1, 1] (002_cbeb04dbce786b8c.txt, Sec. III-B). Empty cells mean "not asked" or "not measured".
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eyemotion.stimuli.protocol import ProtocolError

from eyemotion.session import TRIALS_CSV


@dataclass
class TrialRecord:
    participant: str
    trial: int
    block: str
    block_index: int
    clip_id: str
    clip: str
    target_emotion: str
    clip_duration_s: float
    clip_fps: float
    clip_frames: int
    trial_start_lsl: float = math.nan
    baseline_onset_lsl: float = math.nan
    clip_onset_lsl: float = math.nan
    clip_offset_lsl: float = math.nan  # the first flip at or after the clip's end (the clip is gone)
    clip_last_flip_lsl: float = math.nan  # the last flip that still showed the clip
    clip_measured_s: float = math.nan  # offset - onset - time paused
    clip_paused_s: float = 0.0
    clip_frames_shown: int = 0  # distinct movie frames put on screen
    dropped_frames: int = 0  # display refreshes missed during the clip
    frame_interval_max_ms: float = math.nan
    audio: str = "none"  # "played", "silent" (no output device / off) or "none" (clip has no audio)
    audio_onset_lsl: float = math.nan
    audio_lag_ms: float = math.nan  # audio onset - clip onset
    rating_onset_lsl: float = math.nan
    valence_sam: int | None = None
    valence: float = math.nan
    valence_rt_s: float = math.nan
    arousal_sam: int | None = None
    arousal: float = math.nan
    arousal_rt_s: float = math.nan
    felt_emotion: str = ""
    felt_emotion_rt_s: float = math.nan
    intensity: int | None = None
    intensity_rt_s: float = math.nan
    rating_end_lsl: float = math.nan
    trial_end_lsl: float = math.nan
    tracker_lost: bool = False
    tracker_lost_s: float = 0.0
    auto_responded: bool = False
    notes: str = ""


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrialRecord))
_TYPES = {f.name: f.type for f in dataclasses.fields(TrialRecord)}


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def write_trials(folder: Path, records: list[TrialRecord]) -> Path:
    """Write all records to `folder/trials.csv` atomically (temp file + rename)."""
    path = Path(folder) / TRIALS_CSV
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in records:
        writer.writerow([_cell(getattr(r, c)) for c in COLUMNS])
    tmp = path.with_name(f".{TRIALS_CSV}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _parse(name: str, text: str) -> Any:
    kind = _TYPES[name]
    if kind == "bool":
        return text == "true"
    if kind == "int":
        return int(text) if text else 0
    if kind == "int | None":
        return int(text) if text else None
    if kind == "float":
        return float(text) if text else math.nan
    return text


def read_trials(folder: Path) -> list[TrialRecord]:
    """The records in `folder/trials.csv` ([] when there is none)."""
    path = Path(folder) / TRIALS_CSV
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise ProtocolError(f"{path} lacks columns {', '.join(missing)}; it was not written by this runner")
    return [TrialRecord(**{c: _parse(c, row[c]) for c in COLUMNS}) for row in rows]
