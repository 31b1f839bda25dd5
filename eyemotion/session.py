"""Session folders: `sessions/<participant>/<session-id>/` (see ARCHITECTURE.md, "A session on disk").

    session.json   participant pseudonym, protocol, devices, screen, calibration, versions, start/end, notes
    recording.xdf  every stream, written by LabRecorder
    camera.mkv     the webcam video; a camera node restarted mid-session writes camera-1.mkv, camera-2.mkv, ...
                   (Matroska: a killed node leaves a readable file). Frame i of a segment is the
                   eyemotion_camera sample with value i among those recorded while that segment was written.
    camera_segments.csv  one row per video segment: file, the LSL time the camera node opened it, fps, size
    trials.csv     the runner's trial table

`session.json` is only ever changed through `update_session_json`, which merges keys and replaces the
file atomically, so several nodes can add their part and a crash never leaves half a file.

`Session.load(path)` reads a recorded session back: every stream as clock-synchronised, dejittered
numpy arrays (pyxdf), the markers decoded into a table, the trials with their self-reports and the
`session.json` content.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import struct
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from eyemotion import UserError, __version__

SESSION_JSON = "session.json"
RECORDING_XDF = "recording.xdf"
CAMERA_VIDEO = "camera.mkv"
CAMERA_SEGMENTS = "camera_segments.csv"
TRIALS_CSV = "trials.csv"

log = logging.getLogger(__name__)

_PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_lock = threading.Lock()


class SessionError(UserError):
    """A session folder that is missing, incomplete or malformed."""


def check_participant_id(participant: str) -> str:
    """Refuse ids that are not short pseudonyms (letters, digits, '-', '_'; no spaces, no names with dots)."""
    if not _PSEUDONYM.match(participant or ""):
        raise SessionError(
            f"participant id {participant!r} is not a pseudonym: use 1-32 letters, digits, '-' or '_' "
            "(e.g. P001), never a real name"
        )
    return participant


_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_session_id(session_id: str) -> str:
    """Refuse session ids that could leave the participant's folder ('..', '/', spaces, dots)."""
    if not _SESSION_ID.match(session_id or ""):
        raise SessionError(f"session id {session_id!r} is not allowed: use 1-64 letters, digits, '-' or '_' "
                           "(e.g. S01 or 20261123T094501); it names a folder inside the participant's")
    return session_id


def new_session_id(now: datetime | None = None) -> str:
    """A sortable id such as `20261123T094501`."""
    return (now or datetime.now()).strftime("%Y%m%dT%H%M%S")


def create_session_folder(root: str | Path, participant: str, session_id: str | None = None,
                          **fields: Any) -> Path:
    """Create `root/<participant>/<session-id>/` with an initial `session.json`; return the folder."""
    check_participant_id(participant)
    sid = check_session_id(session_id or new_session_id())
    folder = Path(root) / participant / sid
    try:
        folder.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise SessionError(f"session folder {folder} already exists; pick another session id or resume it") from None
    except OSError as exc:
        raise SessionError(f"cannot create session folder {folder} ({exc}); check the sessions directory") from None
    update_session_json(folder, participant=participant, session_id=sid, eyemotion_version=__version__,
                        created=datetime.now(UTC).isoformat(), **fields)
    return folder


def read_session_json(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / SESSION_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionError(f"{path} not found: {folder} is not a session folder "
                           "(expected sessions/<participant>/<session-id>/)") from None
    except (OSError, ValueError, RecursionError) as exc:  # bad UTF-8/JSON, huge integers, deep nesting
        raise SessionError(f"{path} is not valid JSON ({exc}); restore it from a backup or re-create it") from None
    if not isinstance(data, dict):
        raise SessionError(f"{path} must hold a JSON object")
    return data


def update_session_json(folder: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into `session.json` (top-level keys; dicts are merged one level deep), atomically."""
    path = Path(folder) / SESSION_JSON
    with _lock:
        data = read_session_json(folder) if path.exists() else {}
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        tmp = path.with_name(f".{SESSION_JSON}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str), encoding="utf-8")
        os.replace(tmp, path)
    return data


# -- loading a recorded session ------------------------------------------------------------------

@dataclass(frozen=True)
class VideoSegment:
    """One camera video file and the eyemotion_camera samples recorded while it was written."""

    path: Path
    frame_index: np.ndarray  # frame numbers inside `path` (sample values), increasing
    stamps: np.ndarray  # their LSL times


def next_camera_video(folder: Path) -> Path:
    """The file a camera node (re)started in `folder` writes: camera.mkv, then camera-1.mkv, camera-2.mkv, ..."""
    stem, suffix = CAMERA_VIDEO.rsplit(".", 1)
    k = 0
    while True:
        path = folder / (CAMERA_VIDEO if k == 0 else f"{stem}-{k}.{suffix}")
        if not path.exists():
            return path
        k += 1


def add_camera_segment(folder: Path, video: Path, started_lsl: float, fps: float, size: tuple[int, int]) -> None:
    """Append the row of a new video segment to camera_segments.csv (flushed to disk at once)."""
    table = folder / CAMERA_SEGMENTS
    new = not table.exists()
    with open(table, "a", newline="") as f:
        if new:
            f.write("file,started_lsl,fps,width,height\n")
        f.write(f"{video.name},{started_lsl:.6f},{fps:.6g},{size[0]},{size[1]}\n")
        f.flush()
        os.fsync(f.fileno())


def read_camera_segments(folder: Path) -> list[dict[str, str]]:
    table = Path(folder) / CAMERA_SEGMENTS
    if not table.exists():
        return []
    with open(table, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("file") and row.get("started_lsl")]
    for row in rows:
        try:
            float(row["started_lsl"])
        except ValueError:
            raise SessionError(f"{table}: started_lsl {row['started_lsl']!r} of {row['file']} is not a number; "
                               "fix or delete that row") from None
    return rows


@dataclass
class RecordedStream:
    """One recorded stream as aligned arrays (clock-synchronised and dejittered by pyxdf)."""

    name: str
    type: str
    source_id: str
    hostname: str
    nominal_srate: float
    effective_srate: float
    channel_format: str
    time_stamps: np.ndarray  # (n,) LSL seconds, recorder clock
    data: np.ndarray  # (n, channels); dtype object for string streams
    labels: list[str]
    info: dict[str, Any]  # pyxdf's header (and footer) dict

    def __len__(self) -> int:
        return len(self.time_stamps)

    def channel(self, label: str) -> np.ndarray:
        """One channel's column by label (SessionError listing the labels if absent)."""
        if label not in self.labels:
            raise SessionError(f"{self.name} has no channel {label!r}; channels: {', '.join(self.labels[:8])} ...")
        return self.data[:, self.labels.index(label)]


@dataclass
class Marker:
    time: float
    event: str
    source: str
    fields: dict[str, Any]
    source_id: str


@dataclass
class MarkerTable:
    """The session's markers in time order, decoded; malformed ones kept apart as (time, text, problem)."""

    markers: list[Marker] = field(default_factory=list)
    malformed: list[tuple[float, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.markers)

    @property
    def times(self) -> np.ndarray:
        return np.array([m.time for m in self.markers])

    def events(self, event: str) -> list[Marker]:
        return [m for m in self.markers if m.event == event]


@dataclass
class Session:
    """A recorded session loaded into memory: `Session.load("sessions/P001/20261123T094501")`.

    `streams` is keyed by stream name; several marker streams (one per sender) are merged into one
    `eyemotion_markers` in time order, and any other repeated name is keyed `name@source_id`.
    `warnings` lists what was wrong but tolerated (a truncated file, malformed markers, ...).
    """

    path: Path
    meta: dict[str, Any]
    streams: dict[str, RecordedStream]
    markers: MarkerTable
    trials: list[dict[str, Any]]
    warnings: list[str]

    @property
    def camera_segments(self) -> list[VideoSegment]:
        """The camera video files with the recorded eyemotion_camera samples of each (empty without either)."""
        camera = self.streams.get("eyemotion_camera")
        if camera is None:
            return []
        rows = read_camera_segments(self.path)
        if not rows and (self.path / CAMERA_VIDEO).exists():  # written without the table (by hand, or a test)
            rows = [{"file": CAMERA_VIDEO, "started_lsl": "-inf"}]
        starts = [float(r["started_lsl"]) for r in rows] + [np.inf]
        segments = []
        for k, row in enumerate(rows):
            inside = (camera.time_stamps >= starts[k]) & (camera.time_stamps < starts[k + 1])
            if (self.path / row["file"]).exists() and inside.any():
                segments.append(VideoSegment(self.path / row["file"], camera.data[inside, 0].astype(np.int64),
                                             camera.time_stamps[inside]))
        return segments

    def stream(self, name: str) -> RecordedStream:
        try:
            return self.streams[name]
        except KeyError:
            raise SessionError(f"{self.path} has no {name} stream; recorded: {', '.join(self.streams)}") from None

    @classmethod
    def load(cls, path: str | Path, *, dejitter: bool = True, streams: list[str] | None = None) -> Session:
        """Load a session folder (or a bare .xdf file, with its folder's session.json if any).

        Clock offsets are applied and regular streams dejittered (pyxdf). A folder without
        `session.json` is refused; a truncated recording (a crashed recorder) loads up to the cut with
        a warning; an empty or non-XDF file is refused. `streams` restricts loading to those names.
        """
        path = Path(path)
        warnings: list[str] = []
        if path.is_dir():
            folder, xdf = path, path / RECORDING_XDF
            meta = read_session_json(folder)
        elif path.is_file():
            folder, xdf = path.absolute().parent, path  # never "." for a bare file in the working directory
            if (folder / SESSION_JSON).exists():
                meta = read_session_json(folder)
            else:
                meta = {}
                warnings.append(f"no {SESSION_JSON} beside {xdf.name}: loaded the recording alone")
        else:
            raise SessionError(f"{path} does not exist; pass sessions/<participant>/<session-id>/ or an .xdf file")
        check_xdf_file(xdf)
        raw, pyxdf_problems = _load_xdf(xdf, dejitter=dejitter, names=streams)
        warnings += pyxdf_problems
        recorded = [_recorded_stream(s) for s in raw]
        unfinished = [s.name for s in recorded if "footer" not in s.info]
        if unfinished:
            warnings.append(f"{xdf.name} did not end cleanly (no footer for {', '.join(sorted(set(unfinished)))}):"
                            " loaded the data up to the cut")
        table = _marker_table([s for s in recorded if s.name == "eyemotion_markers"])
        for t, text, problem in table.malformed:
            warnings.append(f"malformed marker at {t:.3f} s skipped: {problem}")
        trials = read_trials(folder / TRIALS_CSV)
        for w in warnings:
            log.warning("%s: %s", folder, w)
        return cls(folder, meta, _key_streams(recorded), table, trials, warnings)


def check_xdf_file(xdf: Path) -> None:
    """Refuse a missing, empty or non-XDF recording with a one-line SessionError."""
    try:
        with open(xdf, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise SessionError(f"{xdf} not found: the session has no recording (was `eyemotion record` run?)") from None
    except OSError as exc:
        raise SessionError(f"{xdf} cannot be read ({exc})") from None
    if not magic:
        raise SessionError(f"{xdf} is empty: the recorder wrote nothing; record the session again")
    if magic != b"XDF:":
        raise SessionError(f"{xdf} is not an XDF file (no 'XDF:' magic); pass the recording.xdf of a session")


_pyxdf_lock = threading.Lock()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"pyxdf: {record.getMessage().splitlines()[0]}")


def _load_xdf(xdf: Path, *, dejitter: bool, names: list[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """pyxdf.load_xdf with clock sync, its sample decoder swapped for a vectorised one, then dejitter.

    pyxdf decodes samples one by one in Python (about 1 µs each: minutes for an hour of 16 kHz audio);
    `_fast_read_chunk3` decodes a whole chunk with one numpy view and falls back to the per-sample
    path for chunks with deduced stamps, so the result is identical. pyxdf's jitter removal solves a
    least-squares problem on an (n, 2) matrix per segment (over 30 s for an hour of audio); `dejitter`
    computes the same line in closed form. Tests compare both with plain pyxdf.
    """
    import pyxdf
    import pyxdf.pyxdf as impl

    collect = _Collect()
    impl.logger.addHandler(collect)
    select = [{"name": n} for n in names] if names else None
    try:
        with _pyxdf_lock:
            original = impl._read_chunk3
            impl._read_chunk3 = _fast_read_chunk3
            try:
                try:
                    raw, _ = pyxdf.load_xdf(str(xdf), select_streams=select, synchronize_clocks=True,
                                            dejitter_timestamps=False)
                except Exception:  # pyxdf fails on some cuts (inside a clock offset or a chunk tag)
                    whole = _whole_chunks(xdf)
                    if whole is None:
                        raise
                    raw, _ = pyxdf.load_xdf(whole, select_streams=select, synchronize_clocks=True,
                                            dejitter_timestamps=False)
            finally:
                impl._read_chunk3 = original
    except ValueError as exc:
        raise SessionError(f"{xdf}: {exc} (asked for {', '.join(names or [])})") from None
    except Exception as exc:  # noqa: BLE001 - pyxdf raises bare Exceptions on unreadable files
        raise SessionError(f"{xdf} cannot be read as XDF ({exc}); it may be corrupt") from None
    finally:
        impl.logger.removeHandler(collect)
    if not raw:
        raise SessionError(f"{xdf} holds no stream (cut before the first stream header?); record again")
    if dejitter:
        for stream in raw:
            _dejitter_stream(stream)
    return raw, collect.messages


DEJITTER_GAP_S = 0.02
DEJITTER_GAP_SAMPLES = 3


def dejitter(stamps: np.ndarray, srate: float, *, gap_s: float = DEJITTER_GAP_S,
             gap_samples: int = DEJITTER_GAP_SAMPLES) -> tuple[np.ndarray, list[tuple[int, int]], float]:
    """Regularise the stamps of a regular stream like pyxdf: split at gaps longer than
    max(`gap_s`, `gap_samples` periods), fit a least-squares line stamp = a + b * index per segment and
    replace the stamps by it. Returns (stamps, inclusive segments, effective rate).

    pyxdf's defaults (1 s, 500 samples) would spread a shorter hole (a dropped audio block, a node restart
    in a 250 Hz gaze stream) over its whole segment and shift every stamp; eyemotion's streams carry
    device or smoothed stamps, so any hole over 20 ms and 3 periods starts a new segment."""
    t = np.array(stamps, dtype=np.float64)
    n = len(t)
    if n == 0 or srate <= 0:
        return t, [(0, n - 1)] if n else [], 0.0
    breaks = np.flatnonzero(np.abs(np.diff(t)) > max(gap_s, gap_samples / srate))
    starts, ends = np.r_[0, breaks + 1], np.r_[breaks, n - 1]
    for a, b in zip(starts, ends):
        m = b - a + 1
        if m < 2:
            continue
        centred = np.arange(m, dtype=np.float64) - (m - 1) / 2
        mean = t[a:b + 1].mean()
        slope = np.dot(centred, t[a:b + 1] - mean) / np.dot(centred, centred)
        t[a:b + 1] = mean + slope * centred
    counts, durations = ends - starts, t[ends] - t[starts]
    rate = float(counts.sum() / durations.sum()) if durations.sum() > 0 else 0.0
    return t, [(int(a), int(b)) for a, b in zip(starts, ends)], rate


def _dejitter_stream(stream: dict[str, Any]) -> None:
    info = stream["info"]
    srate = float(_first(info, "nominal_srate", "0"))
    if srate <= 0 or not len(stream["time_stamps"]):
        return
    try:
        can_drop = info["desc"][0]["synchronization"][0]["can_drop_samples"][0].lower() == "true"
    except (KeyError, IndexError, TypeError, AttributeError):
        can_drop = False
    from eyemotion.streams import BY_NAME

    spec = BY_NAME.get(_first(info, "name"))
    if can_drop or (spec is not None and spec.can_drop_samples):  # as recorded: stamps of frames that came
        return
    stream["time_stamps"], info["segments"], info["effective_srate"] = dejitter(stream["time_stamps"], srate)


def _whole_chunks(xdf: Path) -> io.BytesIO | None:
    """A truncated recording's whole chunks, for pyxdf to read (None when the file is not truncated)."""
    from eyemotion.acquisition.replay import XdfFile

    scan = XdfFile(xdf)
    if scan.truncated_at is None:
        return None
    with open(xdf, "rb") as f:
        return io.BytesIO(f.read(scan.data_end))


def _fast_read_chunk3(f: Any, s: Any) -> tuple[int, np.ndarray, Any]:
    """Drop-in for pyxdf's `_read_chunk3(f, StreamData)`: decode one Samples chunk's payload."""
    import pyxdf.pyxdf as impl

    from eyemotion.acquisition.replay import decode_samples

    n = impl._read_varlen_int(f)
    if s.fmt == "string":
        stamps, values = _read_string_samples(f, n, s)
    else:
        raw = f.read(n * (9 + s.samplebytes))
        stamps, values, used = decode_samples(raw, 0, n, s.fmt, s.nchns, s.last_timestamp, s.tdiff)
        if used < len(raw):
            f.seek(used - len(raw), 1)
    if n:
        s.last_timestamp = float(stamps[-1])
    return n, stamps, values


def _read_string_samples(f: Any, n: int, s: Any) -> tuple[np.ndarray, list[list[str]]]:
    import pyxdf.pyxdf as impl

    stamps = np.empty(n)
    values: list[list[str]] = []
    last = s.last_timestamp
    for k in range(n):
        flag = f.read(1)
        if not flag:
            raise ValueError("string sample chunk ends early")
        if flag == b"\x08":
            last = struct.unpack("<d", f.read(8))[0]
        else:
            last += s.tdiff
        stamps[k] = last
        row = []
        for _ in range(s.nchns):
            size = impl._read_varlen_int(f)
            data = f.read(size)
            if len(data) < size:
                raise ValueError("string sample ends early")
            row.append(data.decode("utf-8", "replace"))
        values.append(row)
    return stamps, values


def _first(info: dict[str, Any], key: str, default: str = "") -> str:
    value = info.get(key, [default])
    return value[0] if isinstance(value, list) and value and isinstance(value[0], str) else default


def _channel_labels(info: dict[str, Any], count: int) -> list[str]:
    labels: list[str] = []
    try:
        for ch in info["desc"][0]["channels"][0]["channel"]:
            labels.append(ch["label"][0])
    except (KeyError, IndexError, TypeError):
        pass
    from eyemotion.streams import BY_NAME

    spec = BY_NAME.get(_first(info, "name"))
    if spec is not None and spec.channel_count == count:
        return spec.labels  # includes channels the producer leaves undescribed (TittaLSL's device time)
    return labels + [f"ch{i}" for i in range(len(labels), count)]


def _recorded_stream(raw: dict[str, Any]) -> RecordedStream:
    info = raw["info"]
    count = int(_first(info, "channel_count", "0"))
    if count < 0:
        raise SessionError(f"stream {_first(info, 'name')!r} has a corrupt header ({count} channels)")
    fmt = _first(info, "channel_format")
    series = raw["time_series"]
    if fmt == "string":
        data = np.empty((len(series), count), dtype=object)
        if len(series):
            data[:] = series
    else:
        data = np.asarray(series).reshape(len(raw["time_stamps"]), count)  # (-1, 0) fails for 0 channels
    merged_info = dict(info)
    if "footer" in raw:
        merged_info["footer"] = raw["footer"]
    return RecordedStream(
        name=_first(info, "name"), type=_first(info, "type"), source_id=_first(info, "source_id"),
        hostname=_first(info, "hostname"), nominal_srate=float(_first(info, "nominal_srate", "0")),
        effective_srate=float(info.get("effective_srate", 0.0)), channel_format=fmt,
        time_stamps=np.asarray(raw["time_stamps"], dtype=np.float64), data=data,
        labels=_channel_labels(info, count), info=merged_info)


def _key_streams(recorded: list[RecordedStream]) -> dict[str, RecordedStream]:
    out: dict[str, RecordedStream] = {}
    markers = [s for s in recorded if s.name == "eyemotion_markers"]
    if markers:
        out["eyemotion_markers"] = _merge_irregular(markers)
    for s in recorded:
        if s.name == "eyemotion_markers":
            continue
        key = s.name if s.name not in out else f"{s.name}@{s.source_id}"
        out[key] = s
    return out


def _merge_irregular(parts: list[RecordedStream]) -> RecordedStream:
    if len(parts) == 1:
        return parts[0]
    stamps = np.concatenate([p.time_stamps for p in parts])
    order = np.argsort(stamps, kind="stable")
    first = parts[0]
    return RecordedStream(first.name, first.type, ";".join(p.source_id for p in parts), first.hostname,
                          first.nominal_srate, 0.0, first.channel_format, stamps[order],
                          np.concatenate([p.data for p in parts])[order], first.labels,
                          {**first.info, "merged_source_ids": [p.source_id for p in parts]})


def _marker_table(streams: list[RecordedStream]) -> MarkerTable:
    from eyemotion.acquisition.markers import MarkerError, parse_marker

    rows: list[tuple[float, str, str]] = []
    for s in streams:
        rows += [(float(t), str(v[0]), s.source_id) for t, v in zip(s.time_stamps, s.data)]
    rows.sort(key=lambda r: r[0])
    table = MarkerTable()
    for t, text, sid in rows:
        try:
            value = parse_marker(text)
        except MarkerError as exc:
            table.malformed.append((t, text, str(exc)))
            continue
        fields = {k: v for k, v in value.items() if k not in ("event", "source")}
        table.markers.append(Marker(t, value["event"], str(value.get("source", "")), fields, sid))
    return table


def _number(text: str, decimal_comma: bool = False) -> Any:
    if decimal_comma and text.count(",") == 1 and "." not in text:
        text_dot = text.replace(",", ".")
        try:
            return float(text_dot)
        except ValueError:
            pass
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_trials(path: Path) -> list[dict[str, Any]]:
    """The runner's trial table (one dict per trial, numbers converted); [] when there is none.

    A spreadsheet-edited table is read too: a byte-order mark, CRLF line ends and `;` or tab delimiters (with
    decimal commas under `;`). A row with more fields than the header (a note typed beside it) keeps them in
    an `extra` column; a row with fewer is refused, naming the row.
    """
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
        header = text.splitlines()[0] if text else ""
        delimiter = max((",", ";", "\t"), key=header.count)
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SessionError(f"{path} cannot be read as CSV ({exc}); fix or remove it") from None
    if not rows:
        return []
    columns, trials = rows[0], []
    extra = "extra" if "extra" not in columns else "extra_fields"
    has_extra = any(len(r) > len(columns) for r in rows[1:])
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # an empty line a spreadsheet left at the end
        if len(row) < len(columns):
            raise SessionError(f"{path} row {number} has {len(row)} fields but the header has {len(columns)}; "
                               "fill in the missing fields or remove the row")
        trial = {k: _number(v, decimal_comma=delimiter == ";") for k, v in zip(columns, row)}
        if has_extra:
            trial[extra] = "; ".join(v for v in row[len(columns):] if v.strip())
        trials.append(trial)
    return trials
