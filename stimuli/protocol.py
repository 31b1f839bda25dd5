"""Protocol files: a TOML file (screen, durations, ratings, calibration, randomisation, tracking) plus a
conditions table (CSV or XLSX: clip, emotion, optional id, block, notes).

The collection protocol follows 002_cbeb04dbce786b8c.txt, Sec. III-A: stimulus clips per emotion
category, watched one after another, each followed by a Self-Assessment Manikin self-report.

`load_protocol` validates *everything* before a window opens (TOML keys and types, durations, the
conditions table, every clip: exists, decodes, has a video stream, fits the maximum duration) and
raises one `ProtocolError` listing every problem, one per line after a summary line.

`build_schedule` turns a protocol into the trial order for one participant: seeded, with emotion blocks
(a block defaults to the clip's emotion) whose order is counterbalanced across participants with a
balanced Latin square (Williams design) indexed by the participant number.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import random
import re
import shutil
import subprocess
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eyemotion import UserError, plural
from eyemotion.streams import CLASSES

#: `clip_root` value that points a protocol at the generated demo clips (made on first use).
DEMO_CLIP_ROOT = "demo-cache"


class ProtocolError(UserError):
    """A protocol with problems; the message lists all of them."""


@dataclass(frozen=True)
class ProtocolInfo:
    name: str = "protocol"
    conditions: str = "conditions.csv"  # relative to the protocol file
    clip_root: str = ""  # clip paths are relative to this (default: the protocol's folder); "demo-cache"
    instructions: str = ("You will watch short video clips. Keep your eyes on the screen and let yourself "
                         "feel whatever the clip makes you feel.\n\nAfter each clip, rate how you felt.\n\n"
                         "Press SPACE to begin.")


@dataclass(frozen=True)
class ScreenSpec:
    width_px: int = 1920
    height_px: int = 1080
    width_mm: float = 531.0
    height_mm: float = 299.0
    distance_mm: float = 650.0
    background: str = "#000000"  # clips are shown on black; ratings on the same background


@dataclass(frozen=True)
class Durations:
    """Seconds. `instructions_s` = 0 waits for a key press (auto-respond: continues at once)."""

    instructions_s: float = 0.0
    baseline_s: float = 5.0  # fixation cross before each clip
    iti_s: float = 2.0  # blank inter-trial interval after the ratings
    rating_timeout_s: float = 0.0  # 0 = wait for an answer
    max_clip_s: float = 600.0  # refuse longer clips (EMER's were 1-2 min)


@dataclass(frozen=True)
class Ratings:
    valence: bool = True
    arousal: bool = True
    emotion: bool = True  # felt emotion among the 7 canonical classes
    intensity: bool = True  # intensity of the felt emotion
    sam_points: int = 9  # SAM valence/arousal scale points (stored 1..N and in [-1, 1])
    intensity_points: int = 5


@dataclass(frozen=True)
class Calibration:
    enabled: bool = True
    points: int = 5  # Titta's N_CAL_TARGETS: 0, 1, 3, 5, 9, 13
    validation_points: int = 4
    point_s: float = 1.5  # each target is shown this long; gaze of the last `sample_s` is used
    sample_s: float = 0.8
    max_accuracy_deg: float = 1.5  # validation accepted when mean accuracy (both eyes) is within this
    max_precision_deg: float = 0.5  # and the RMS sample-to-sample precision within this
    max_attempts: int = 3  # a poor validation is redone up to this many times, then accepted with a warning


@dataclass(frozen=True)
class Randomisation:
    seed: int = 1
    order: str = "blocked"  # "blocked" (emotion blocks), "random" (all trials shuffled), "fixed" (file order)
    counterbalance: bool = True  # rotate the block order by participant number (balanced Latin square)
    shuffle_within_blocks: bool = True


@dataclass(frozen=True)
class Tracking:
    lost_after_s: float = 2.0  # no Tobii_gaze samples for this long = tracker lost
    on_lost: str = "continue"  # "continue", or "pause" before the next trial until samples return
    required: bool = False  # refuse to start without a Tobii_gaze stream


@dataclass(frozen=True)
class Condition:
    """One row of the conditions table, with what probing the clip found."""

    row: int
    clip_id: str
    clip: str  # as written in the table
    path: Path  # resolved
    emotion: str
    block: str
    notes: str = ""
    duration_s: float = 0.0
    fps: float = 0.0
    frames: int = 0
    width: int = 0
    height: int = 0
    has_audio: bool = False


@dataclass(frozen=True)
class Protocol:
    path: Path
    protocol: ProtocolInfo
    screen: ScreenSpec
    durations: Durations
    ratings: Ratings
    calibration: Calibration
    randomisation: Randomisation
    tracking: Tracking
    conditions: tuple[Condition, ...] = field(default=())
    digest: str = ""  # sha256 of the TOML and conditions files (a resumed session must match)

    @property
    def name(self) -> str:
        return self.protocol.name

    def summary(self) -> dict[str, Any]:
        """What session.json records about the protocol."""
        return {"name": self.name, "file": str(self.path), "digest": self.digest,
                "n_conditions": len(self.conditions),
                "settings": {s: dataclasses.asdict(getattr(self, s)) for s in _SECTIONS}}


_SECTIONS: dict[str, type] = {
    "protocol": ProtocolInfo, "screen": ScreenSpec, "durations": Durations, "ratings": Ratings,
    "calibration": Calibration, "randomisation": Randomisation, "tracking": Tracking,
}
_TYPES = (bool, int, float, str)


def _read_section(name: str, cls: type, table: Any, problems: list[str]) -> Any:
    """Build one section dataclass from its TOML table, recording (not raising) every bad key."""
    if not isinstance(table, dict):
        problems.append(f"[{name}] must be a table of key = value")
        return cls()
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in table.items():
        if key not in hints:
            problems.append(f"unknown key {name}.{key} (known: {', '.join(hints)})")
            continue
        want = hints[key]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > 1e308:  # beyond float range (float() would raise OverflowError)
                problems.append(f"{name}.{key} is too large; use a number below 1e308")
                continue
            value = float(value)
        if want in _TYPES and (not isinstance(value, want) or (want is int and isinstance(value, bool))):
            problems.append(f"{name}.{key} must be {want.__name__}, not {value!r}")
            continue
        kwargs[key] = value
    return cls(**kwargs)


def _check_settings(p: dict[str, Any], problems: list[str]) -> None:
    s, d, r, c, rz, t = (p["screen"], p["durations"], p["ratings"], p["calibration"], p["randomisation"],
                         p["tracking"])
    for key in ("width_px", "height_px", "width_mm", "height_mm"):
        if getattr(s, key) <= 0:
            problems.append(f"screen.{key} must be > 0, not {getattr(s, key)}")
    if not 200 <= s.distance_mm <= 2000:
        problems.append(f"screen.distance_mm must be within 200-2000 mm, not {s.distance_mm}")
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", s.background):
        problems.append(f"screen.background must be a colour like '#000000', not {s.background!r}")
    for key in ("instructions_s", "baseline_s", "iti_s", "rating_timeout_s"):
        value = getattr(d, key)
        if not 0 <= value <= 3600:
            problems.append(f"durations.{key} must be within 0-3600 s, not {value}")
    if not 0 < d.max_clip_s <= 7200:
        problems.append(f"durations.max_clip_s must be within 0-7200 s (exclusive 0), not {d.max_clip_s}")
    if r.sam_points not in (5, 7, 9):
        problems.append(f"ratings.sam_points must be 5, 7 or 9 (SAM scales), not {r.sam_points}")
    if not 2 <= r.intensity_points <= 9:
        problems.append(f"ratings.intensity_points must be within 2-9 (one digit key each), not {r.intensity_points}")
    if c.points not in (0, 1, 3, 5, 9, 13):
        problems.append(f"calibration.points must be 0, 1, 3, 5, 9 or 13 (Titta's layouts), not {c.points}")
    if not 1 <= c.validation_points <= 9:
        problems.append(f"calibration.validation_points must be within 1-9, not {c.validation_points}")
    if c.point_s < 0.8:
        problems.append(f"calibration.point_s must be >= 0.8 s (Titta's minimum pacing), not {c.point_s}")
    if not 0 < c.sample_s < c.point_s:
        problems.append(f"calibration.sample_s must be > 0 and shorter than point_s ({c.point_s}), not {c.sample_s}")
    if c.max_accuracy_deg <= 0 or c.max_precision_deg <= 0:
        problems.append("calibration.max_accuracy_deg and max_precision_deg must be > 0")
    if c.max_attempts < 1:
        problems.append(f"calibration.max_attempts must be >= 1, not {c.max_attempts}")
    if rz.order not in ("blocked", "random", "fixed"):
        problems.append(f"randomisation.order must be 'blocked', 'random' or 'fixed', not {rz.order!r}")
    if t.lost_after_s <= 0:
        problems.append(f"tracking.lost_after_s must be > 0, not {t.lost_after_s}")
    if t.on_lost not in ("continue", "pause"):
        problems.append(f"tracking.on_lost must be 'continue' or 'pause', not {t.on_lost!r}")


def read_conditions_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV or XLSX conditions table as dicts of stripped strings (header names lower-cased)."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        rows = [["" if v is None else str(v) for v in row] for row in book.worksheets[0].iter_rows(values_only=True)]
        book.close()
    else:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    return [{h: (r[i].strip() if i < len(r) else "") for i, h in enumerate(header) if h} for r in rows[1:]]


@dataclass(frozen=True)
class ClipProbe:
    duration_s: float
    fps: float
    frames: int
    width: int
    height: int
    has_audio: bool


def probe_clip(path: Path) -> ClipProbe:
    """Read a clip's video/audio metadata with ffprobe and decode its first frame with OpenCV.

    Raises ProtocolError with a one-line reason when the file is not a playable video.
    """
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise ProtocolError("ffprobe not found; install ffmpeg (setup.sh does) to check clips")
    proc = subprocess.run([ffprobe, "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                           str(path)], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["unreadable"])[-1]
        raise ProtocolError(f"not a readable video ({reason})")
    info = json.loads(proc.stdout or "{}")
    video = [s for s in info.get("streams", []) if s.get("codec_type") == "video"]
    if not video:
        raise ProtocolError("has no video stream")
    v = video[0]
    num, _, den = (v.get("avg_frame_rate") or v.get("r_frame_rate") or "0/1").partition("/")
    fps = float(num) / float(den or 1) if float(den or 1) else 0.0
    duration = float(v.get("duration") or info.get("format", {}).get("duration") or 0.0)
    frames = int(v.get("nb_frames") or round(duration * fps))
    if fps <= 0 or duration <= 0:
        raise ProtocolError("has no usable frame rate or duration")
    import cv2

    cap = cv2.VideoCapture(str(path))
    ok, _ = cap.read()
    cap.release()
    if not ok:
        raise ProtocolError("cannot be decoded (no first frame; the file may be corrupt)")
    has_audio = any(s.get("codec_type") == "audio" for s in info.get("streams", []))
    return ClipProbe(duration, fps, frames, int(v.get("width", 0)), int(v.get("height", 0)), has_audio)


def _expand(path: str | Path) -> Path:
    """`~` and `~user` expanded; left as written when that home is unknown (then reported as not found)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def _clip_root(toml_path: Path, info: ProtocolInfo) -> Path:
    if info.clip_root == DEMO_CLIP_ROOT:
        from eyemotion.stimuli.democlips import ensure_demo_clips

        return ensure_demo_clips()
    root = _expand(info.clip_root) if info.clip_root else toml_path.parent
    return root if root.is_absolute() else toml_path.parent / root


def _read_conditions(toml_path: Path, info: ProtocolInfo, max_clip_s: float,
                     problems: list[str]) -> tuple[list[Condition], Path | None]:
    table = (toml_path.parent / info.conditions)
    if not table.is_file():
        problems.append(f"conditions table {table} not found (protocol.conditions = {info.conditions!r})")
        return [], None
    try:
        rows = read_conditions_table(table)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad table
        problems.append(f"conditions table {table.name} cannot be read ({exc})")
        return [], table
    if not rows:
        problems.append(f"conditions table {table.name} has no trials")
        return [], table
    for col in ("clip", "emotion"):
        if col not in rows[0]:
            problems.append(f"conditions table {table.name} has no '{col}' column "
                            "(columns: clip, emotion, and optional id, block, notes)")
            return [], table
    root = _clip_root(toml_path, info)
    out: list[Condition] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{table.name} row {i}"
        clip, emotion = row.get("clip", ""), row.get("emotion", "").lower()
        bad = False
        if emotion not in CLASSES:
            problems.append(f"{where}: unknown emotion {row.get('emotion', '')!r} (use one of {', '.join(CLASSES)})")
            bad = True
        if not clip:
            problems.append(f"{where}: empty clip path")
            continue
        path = _expand(clip)
        path = path if path.is_absolute() else root / path
        clip_id = row.get("id") or path.stem
        if clip_id in seen:
            problems.append(f"{where}: clip id {clip_id!r} repeats row {seen[clip_id]} (give each row a unique id)")
            bad = True
        seen[clip_id] = i
        if not path.is_file():
            problems.append(f"{where}: clip {clip!r} not found at {path}")
            continue
        try:
            probe = probe_clip(path)
        except ProtocolError as exc:
            problems.append(f"{where}: clip {clip!r} {exc}")
            continue
        if probe.duration_s > max_clip_s:
            problems.append(f"{where}: clip {clip!r} lasts {probe.duration_s:.1f} s, more than "
                            f"durations.max_clip_s = {max_clip_s:g}")
            bad = True
        if not bad:
            out.append(Condition(row=i, clip_id=clip_id, clip=clip, path=path, emotion=emotion,
                                 block=row.get("block") or emotion, notes=row.get("notes", ""),
                                 duration_s=probe.duration_s, fps=probe.fps, frames=probe.frames,
                                 width=probe.width, height=probe.height, has_audio=probe.has_audio))
    return out, table


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol; raise ProtocolError listing every problem found."""
    toml_path = _expand(path).resolve()
    if not toml_path.is_file():
        raise ProtocolError(f"protocol file {toml_path} not found; pass a protocol .toml "
                            "(e.g. the demo: eyemotion stimuli run demo)")
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:  # also huge integers, deep nesting
        raise ProtocolError(f"protocol {toml_path.name} is not valid TOML ({exc}); fix the syntax") from None
    problems: list[str] = []
    for name in data:
        if name not in _SECTIONS:
            problems.append(f"unknown section [{name}] (known: {', '.join(_SECTIONS)})")
    sections = {name: _read_section(name, cls, data.get(name, {}), problems) for name, cls in _SECTIONS.items()}
    _check_settings(sections, problems)
    conditions, table = _read_conditions(toml_path, sections["protocol"], sections["durations"].max_clip_s,
                                         problems)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ProtocolError(f"protocol {toml_path.name} has {plural(len(problems), 'problem')}; "
                            f"fix {'it' if len(problems) == 1 else 'them'} and run again:\n{lines}")
    digest = hashlib.sha256(toml_path.read_bytes() + (table.read_bytes() if table else b"")).hexdigest()[:16]
    return Protocol(path=toml_path, conditions=tuple(conditions), digest=digest, **sections)


# -- schedule ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScheduledTrial:
    trial: int  # 1-based position in this participant's session
    block: str
    block_index: int  # 1-based position of the block in the session
    condition: Condition


def participant_number(participant: str) -> int:
    """The number in a pseudonym (`P007` -> 7); ids without digits get a stable number from their text."""
    digits = re.findall(r"\d+", participant)
    if digits:
        return int(digits[-1])
    return int(hashlib.sha256(participant.encode()).hexdigest()[:6], 16)


def balanced_latin_row(n: int, row: int) -> list[int]:
    """Row `row` of a balanced Latin square (Williams design) of order `n`.

    The first row is 0, 1, n-1, 2, n-2, ...; row r adds r (mod n). For even n, every item follows every
    other item equally often over n rows; for odd n the reversed rows are appended (a cycle of 2n).
    """
    first = [0] + [(i + 1) // 2 if i % 2 else n - i // 2 for i in range(1, n)]
    cycle = n if n % 2 == 0 else 2 * n
    r = row % cycle
    seq = [(v + r) % n for v in first]
    return seq[::-1] if r >= n else seq


def build_schedule(protocol: Protocol, participant: str) -> list[ScheduledTrial]:
    """The trial order for `participant` (deterministic: same protocol + participant -> same order)."""
    rz = protocol.randomisation
    number = participant_number(participant)
    rng = random.Random(f"{rz.seed}:{number}")
    conds = list(protocol.conditions)
    if rz.order == "fixed":
        blocks = list(dict.fromkeys(c.block for c in conds))
        return [ScheduledTrial(i + 1, c.block, blocks.index(c.block) + 1, c) for i, c in enumerate(conds)]
    if rz.order == "random":
        rng.shuffle(conds)
        return [ScheduledTrial(i + 1, c.block, 1, c) for i, c in enumerate(conds)]
    # blocked: a seeded base order of the blocks (same for everyone), rotated per participant
    blocks = sorted(dict.fromkeys(c.block for c in conds))
    random.Random(rz.seed).shuffle(blocks)
    if rz.counterbalance:
        blocks = [blocks[i] for i in balanced_latin_row(len(blocks), number)]
    ordered = []
    for block in blocks:
        members = [c for c in conds if c.block == block]
        if rz.shuffle_within_blocks:
            rng.shuffle(members)
        ordered += members
    return [ScheduledTrial(i + 1, c.block, blocks.index(c.block) + 1, c) for i, c in enumerate(ordered)]
