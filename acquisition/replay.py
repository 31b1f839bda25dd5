"""Replay a recorded session through LSL, and the small XDF reader/writer it streams with.

`ReplayController` re-publishes the *raw* streams of a `recording.xdf` (Tobii_gaze, eyemotion_camera,
eyemotion_audio, eyemotion_markers, eyemotion_face) as LSL outlets with their recorded layout and `desc`,
plus `desc/eyemotion/replay = 1`. Timestamps are the recorded ones shifted by one constant per
(re)start, seek or resume, so the relative timing inside and across streams is kept exactly; at
`speed` != 1 the samples come faster or slower but their stamps still advance at recording rate, so
every downstream node computes what it would have computed live.

Streams that are not raw contract streams (derived ones such as eyemotion_gaze, or names that are not in
the contract) are skipped with a warning: the pipeline recomputes derived streams. A raw stream whose
recorded layout differs from the contract is refused with a ContractError, as is a file with no
replayable stream at all.

The file is streamed chunk by chunk (`XdfFile`): one cheap scan of the chunk headers at open time builds
a seek index, then sample chunks are read sequentially and merged into time order with a bounded
look-ahead (`MergeBuffer`), so memory stays flat however long the session is.

XDF container format (https://github.com/sccn/xdf/wiki/Specifications): the magic `XDF:`, then chunks
`[NumLengthBytes][Length][Tag:uint16][Content]`; tags 1 FileHeader, 2 StreamHeader, 3 Samples,
4 ClockOffset, 5 Boundary, 6 StreamFooter. A sample is `[TimeStampBytes (0|8)][TimeStamp][values]`.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from eyemotion import UserError
from eyemotion.session import RECORDING_XDF, SessionError
from eyemotion.streams import AUDIO, BY_NAME, CAMERA, FACE, GAZE_RAW, MARKERS, check_info

log = logging.getLogger(__name__)

#: The raw streams a replay re-publishes (derived streams are recomputed by the pipeline).
REPLAYED = (GAZE_RAW.name, CAMERA.name, AUDIO.name, MARKERS.name, FACE.name)

TAG_FILE_HEADER, TAG_STREAM_HEADER, TAG_SAMPLES, TAG_CLOCK_OFFSET, TAG_BOUNDARY, TAG_STREAM_FOOTER = 1, 2, 3, 4, 5, 6
BOUNDARY_UUID = bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")
_NUMPY = {"double64": "<f8", "float32": "<f4", "int32": "<i4", "int16": "<i2", "int8": "i1", "int64": "<i8"}
MIN_SPEED, MAX_SPEED = 0.25, 20.0


class XdfError(SessionError):
    """A file that is not a readable XDF recording."""


# -- reading --------------------------------------------------------------------------------------

@dataclass
class XdfStream:
    """One stream's header (and footer, when the recording ended cleanly)."""

    stream_id: int
    xml: str
    name: str
    type: str
    channel_count: int
    nominal_srate: float
    channel_format: str
    source_id: str
    hostname: str
    footer: dict[str, str] = field(default_factory=dict)
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)

    @property
    def dtype(self) -> np.dtype | None:
        return None if self.channel_format == "string" else np.dtype(_NUMPY[self.channel_format])

    @property
    def clock_offset(self) -> float:
        """The median recorded clock offset (add it to a sample stamp to get the recorder's clock)."""
        return float(np.median([v for _, v in self.clock_offsets])) if self.clock_offsets else 0.0

    def desc(self) -> ET.Element | None:
        return ET.fromstring(self.xml).find("desc")

    @classmethod
    def from_xml(cls, stream_id: int, xml: str) -> XdfStream:
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as exc:
            raise XdfError(f"stream {stream_id} has an unreadable header ({exc}); the file is corrupt") \
                from None

        def text(tag: str, default: str = "") -> str:
            node = root.find(tag)
            return (node.text or default) if node is not None else default

        fmt = text("channel_format")
        if fmt not in _NUMPY and fmt != "string":
            raise XdfError(f"stream {text('name')!r} has unknown channel format {fmt!r}")
        try:
            count, srate = int(text("channel_count", "0")), float(text("nominal_srate", "0"))
        except ValueError as exc:
            raise XdfError(f"stream {text('name')!r} has a corrupt header ({exc})") from None
        if count < 0 or srate < 0:
            raise XdfError(f"stream {text('name')!r} has a corrupt header ({count} channels at {srate} Hz)")
        return cls(stream_id, xml, text("name"), text("type"), count, srate, fmt, text("source_id"),
                   text("hostname"))


@dataclass
class SampleChunk:
    """Samples of one stream: stamps (n,) and values (n, channels) or a list of string rows."""

    stream_id: int
    time_stamps: np.ndarray
    values: np.ndarray | list[list[str]]

    def __len__(self) -> int:
        return len(self.time_stamps)

    def slice(self, start: int, stop: int) -> SampleChunk:
        return SampleChunk(self.stream_id, self.time_stamps[start:stop], self.values[start:stop])


def _varlen(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode an XDF variable-length integer at `pos`; return (value, next position)."""
    width = buf[pos]
    if width == 1:
        return buf[pos + 1], pos + 2
    if width == 4:
        return struct.unpack_from("<I", buf, pos + 1)[0], pos + 5
    if width == 8:
        return struct.unpack_from("<Q", buf, pos + 1)[0], pos + 9
    raise ValueError(f"invalid variable-length integer width {width}")


def decode_samples(buf: bytes | memoryview, pos: int, n: int, fmt: str, channels: int, last_stamp: float,
                   tdiff: float) -> tuple[np.ndarray, np.ndarray | list[list[str]], int]:
    """Decode `n` samples starting at `pos`; return (stamps, values, end position).

    Numeric samples that all carry their 8-byte stamp (what LabRecorder writes) are decoded with one
    structured-array view; others fall back to a per-sample loop, deducing missing stamps as
    previous + 1/srate. Raises ValueError when the buffer ends early (a truncated chunk).
    """
    if n > len(buf) - pos:  # every sample takes at least its 1-byte stamp flag
        raise ValueError(f"sample count {n} exceeds the chunk")
    if fmt != "string":
        dtype = np.dtype(_NUMPY[fmt])
        record = 9 + channels * dtype.itemsize
        end = pos + n * record
        if end <= len(buf) and n > 0:
            rec = np.frombuffer(buf, dtype=np.dtype([("tsb", "u1"), ("ts", "<f8"), ("v", dtype, (channels,))]),
                                count=n, offset=pos)
            if np.all(rec["tsb"] == 8):
                return rec["ts"].astype(np.float64), rec["v"].astype(dtype.newbyteorder("=")), end
    stamps = np.empty(n)
    values: np.ndarray | list[list[str]] = [] if fmt == "string" else np.empty((n, channels), _NUMPY[fmt])
    width = 0 if fmt == "string" else channels * np.dtype(_NUMPY[fmt]).itemsize
    for k in range(n):
        if pos >= len(buf) or (buf[pos] == 8 and pos + 9 > len(buf)):
            raise ValueError("sample chunk ends early")
        if buf[pos] == 8:
            last_stamp = struct.unpack_from("<d", buf, pos + 1)[0]
            pos += 9
        else:
            last_stamp += tdiff
            pos += 1
        stamps[k] = last_stamp
        if fmt == "string":
            row = []
            for _ in range(channels):
                size, pos = _varlen(buf, pos)
                if pos + size > len(buf):
                    raise ValueError("string sample ends early")
                row.append(bytes(buf[pos:pos + size]).decode("utf-8", "replace"))
                pos += size
            values.append(row)
        else:
            if pos + width > len(buf):
                raise ValueError("numeric sample ends early")
            values[k] = np.frombuffer(buf, _NUMPY[fmt], channels, pos)
            pos += width
    return stamps, values, pos


@dataclass
class ChunkIndex:
    """Where each Samples chunk starts in the file, its stream and first stamp (for seeking)."""

    offsets: list[int] = field(default_factory=list)
    stream_ids: list[int] = field(default_factory=list)
    first_stamps: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


class XdfFile:
    """An XDF file read incrementally: `scan()` once, then `chunks(from_offset)` sequentially.

    Tolerates a truncated tail (a crashed recorder): the scan stops at the first incomplete chunk and
    `truncated_at` tells where.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.streams: dict[int, XdfStream] = {}
        self.index = ChunkIndex()
        self.file_header = ""
        self.truncated_at: int | None = None
        self.data_end = 0
        self.first_stamp = math.inf
        self.last_stamp = -math.inf
        self._last_by_stream: dict[int, float] = {}
        self.scan()

    def _open(self) -> BinaryIO:
        try:
            f = open(self.path, "rb", buffering=1 << 20)
        except FileNotFoundError:
            raise XdfError(f"{self.path} not found; pass a session folder or a recording.xdf") from None
        except OSError as exc:
            raise XdfError(f"{self.path} cannot be read ({exc})") from None
        magic = f.read(4)
        if magic != b"XDF:":
            f.close()
            what = "is empty" if not magic else "is not an XDF file (no 'XDF:' magic)"
            raise XdfError(f"{self.path} {what}; record again or pass the right file")
        return f

    def _read_chunk_head(self, f: BinaryIO) -> tuple[int, int, int] | None:
        """(chunk start, tag, content length) of the next chunk, or None at a clean/truncated end."""
        start = f.tell()
        first = f.read(1)
        if not first:
            return None
        width = first[0]
        if width not in (1, 4, 8):
            raise ValueError(f"bad chunk length width {width} at byte {start}")
        raw = f.read(width + 2)
        if len(raw) < width + 2:
            raise ValueError(f"chunk header cut at byte {start}")
        length = int.from_bytes(raw[:width], "little")
        tag = struct.unpack_from("<H", raw, width)[0]
        if length < 2 or tag not in range(1, 7):
            raise ValueError(f"bad chunk (tag {tag}, length {length}) at byte {start}")
        return start, tag, length - 2

    def scan(self) -> None:
        """Read headers, footers and clock offsets, and index every Samples chunk (skipping payloads)."""
        size = self.path.stat().st_size if self.path.exists() else 0
        with self._open() as f:
            while True:
                try:
                    head = self._read_chunk_head(f)
                except ValueError as exc:
                    self.truncated_at = f.tell()
                    log.warning("%s: %s; using the data before it", self.path.name, exc)
                    break
                if head is None:
                    break
                start, tag, length = head
                body_at = f.tell()
                if body_at + length > size:
                    self.truncated_at = start
                    log.warning("%s is truncated at byte %d (recorder crash?); using the data before it",
                                self.path.name, start)
                    break
                try:
                    if tag == TAG_SAMPLES:
                        self._index_samples(f, start, body_at, length)
                    elif tag in (TAG_STREAM_HEADER, TAG_STREAM_FOOTER, TAG_CLOCK_OFFSET, TAG_FILE_HEADER):
                        body = f.read(length)
                        self._read_meta(tag, body)
                except (ValueError, IndexError, OverflowError, struct.error) as exc:
                    log.warning("%s: corrupt chunk (tag %d) at byte %d (%s); skipped", self.path.name, tag,
                                start, exc)
                self.data_end = body_at + length
                f.seek(self.data_end)
        self._finish_index()
        if not self.streams:
            raise XdfError(f"{self.path} holds no stream (empty or cut before the first stream header); "
                           "record again")

    def _index_samples(self, f: BinaryIO, start: int, body_at: int, length: int) -> None:
        """Index one Samples chunk: its first stamp and, for numeric streams, its last (two small reads)."""
        head = f.read(min(length, 4 + 9 + 9))
        sid = struct.unpack_from("<I", head)[0]
        n, pos = _varlen(head, 4)
        stream = self.streams.get(sid)
        if stream is None or n == 0:
            return
        previous = self.index.first_stamps[-1] if self.index.first_stamps else 0.0
        first = struct.unpack_from("<d", head, pos + 1)[0] if head[pos] == 8 else previous
        last = first
        if stream.dtype is not None:
            record = 9 + stream.channel_count * stream.dtype.itemsize
            f.seek(body_at + pos + (n - 1) * record)
            tail = f.read(9)
            if len(tail) == 9 and tail[0] == 8:
                last = max(first, struct.unpack_from("<d", tail, 1)[0])
        self.index.offsets.append(start)
        self.index.stream_ids.append(sid)
        self.index.first_stamps.append(first)
        self.index.counts.append(n)
        self._last_by_stream[sid] = max(self._last_by_stream.get(sid, -math.inf), last)

    def _finish_index(self) -> None:
        """Apply each stream's clock offset to the indexed stamps; set first/last stamp of the file."""
        offsets = {sid: s.clock_offset for sid, s in self.streams.items()}
        self.index.first_stamps = [t + offsets[sid] for t, sid in zip(self.index.first_stamps,
                                                                      self.index.stream_ids)]
        if self.index.first_stamps:
            self.first_stamp = min(self.index.first_stamps)
            self.last_stamp = max(t + offsets[sid] for sid, t in self._last_by_stream.items())

    def _read_meta(self, tag: int, body: bytes) -> None:
        if tag == TAG_FILE_HEADER:
            self.file_header = body.decode("utf-8", "replace")
            return
        sid = struct.unpack_from("<I", body)[0]
        if tag == TAG_STREAM_HEADER:
            self.streams[sid] = XdfStream.from_xml(sid, body[4:].decode("utf-8", "replace"))
        elif tag == TAG_CLOCK_OFFSET and sid in self.streams:
            self.streams[sid].clock_offsets.append(struct.unpack_from("<dd", body, 4))
        elif tag == TAG_STREAM_FOOTER and sid in self.streams:
            try:
                root = ET.fromstring(body[4:].decode("utf-8", "replace"))
                self.streams[sid].footer = {c.tag: (c.text or "") for c in root}
            except ET.ParseError:
                log.warning("%s: unreadable footer of stream %d", self.path.name, sid)
        if tag == TAG_STREAM_HEADER and self.streams[sid].footer:
            self.streams[sid].footer = {}

    def offset_for(self, stamp: float, lookback_s: float) -> int:
        """File offset from which every sample at or after `stamp` is read (chunks may lag `lookback_s`)."""
        target = stamp - lookback_s
        for i, first in enumerate(self.index.first_stamps):
            if first >= target:
                return self.index.offsets[i]
        return self.data_end

    def chunks(self, offset: int | None = None, stream_ids: set[int] | None = None) -> Iterator[SampleChunk]:
        """Yield Samples chunks in file order from `offset` (default: the first), stamps clock-corrected."""
        if not self.index.offsets:
            return
        start = self.index.offsets[0] if offset is None else offset
        last: dict[int, float] = {}
        with self._open() as f:
            f.seek(start)
            while f.tell() < self.data_end:
                head = self._read_chunk_head(f)
                if head is None:
                    return
                _, tag, length = head
                if tag != TAG_SAMPLES:
                    f.seek(length, 1)
                    continue
                body = f.read(length)
                try:
                    sid = struct.unpack_from("<I", body)[0]
                    n, pos = _varlen(body, 4)
                except (ValueError, IndexError, struct.error):
                    continue  # a corrupt chunk, skipped with a warning by the scan
                stream = self.streams.get(sid)
                if stream is None or (stream_ids is not None and sid not in stream_ids):
                    continue
                tdiff = 1.0 / stream.nominal_srate if stream.nominal_srate > 0 else 0.0
                try:
                    stamps, values, _ = decode_samples(memoryview(body), pos, n, stream.channel_format,
                                                       stream.channel_count, last.get(sid, 0.0), tdiff)
                except ValueError as exc:
                    log.warning("%s: corrupt sample chunk of %s (%s); skipped", self.path.name, stream.name, exc)
                    continue
                if n:
                    last[sid] = float(stamps[-1])
                yield SampleChunk(sid, stamps + stream.clock_offset, values)


class MergeBuffer:
    """Merges per-stream chunks read in file order into time order, holding at most `horizon_s` ahead.

    LabRecorder writes each stream's data within about a second of its stamps, so a sample older than
    the newest stamp read minus the horizon will not be preceded by anything still unread.
    """

    def __init__(self, chunks: Iterator[SampleChunk], horizon_s: float = 3.0) -> None:
        self._chunks = chunks
        self.horizon_s = horizon_s
        self._pending: dict[int, list[SampleChunk]] = {}
        self._newest = -math.inf
        self.exhausted = False

    def _fill(self, until: float) -> None:
        while not self.exhausted and self._newest < until + self.horizon_s:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.exhausted = True
                break
            if len(chunk):
                self._pending.setdefault(chunk.stream_id, []).append(chunk)
                self._newest = max(self._newest, float(chunk.time_stamps[-1]))

    def take_before(self, stamp: float) -> list[SampleChunk]:
        """All buffered samples with a stamp < `stamp`, one chunk per stream."""
        self._fill(stamp)
        out = []
        for pending in self._pending.values():
            parts = []
            while pending:
                chunk = pending[0]
                cut = int(np.searchsorted(chunk.time_stamps, stamp, side="left"))
                if cut == 0:
                    break
                parts.append(chunk.slice(0, cut))
                if cut == len(chunk):
                    pending.pop(0)
                else:
                    pending[0] = chunk.slice(cut, len(chunk))
                    break
            if parts:
                out.append(_concat(parts))
        return out

    @property
    def empty(self) -> bool:
        return self.exhausted and not any(self._pending.values())


def _concat(parts: list[SampleChunk]) -> SampleChunk:
    if len(parts) == 1:
        return parts[0]
    stamps = np.concatenate([p.time_stamps for p in parts])
    if isinstance(parts[0].values, list):
        values: np.ndarray | list = [row for p in parts for row in p.values]
    else:
        values = np.concatenate([p.values for p in parts])
    return SampleChunk(parts[0].stream_id, stamps, values)


# -- writing (synthetic recordings for tests and benchmarks) ----------------------------------------

def _varlen_bytes(value: int) -> bytes:
    if value < 256:
        return bytes([1, value])
    if value < 2**32:
        return b"\x04" + struct.pack("<I", value)
    return b"\x08" + struct.pack("<Q", value)


class XdfWriter:
    """Writes an XDF file the way LabRecorder does (every sample stamped); for synthetic test data.

    >>> with XdfWriter(path) as w:
    ...     w.add_stream(1, stream_info(AUDIO).as_xml())
    ...     w.write_samples(1, stamps, values)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = open(self.path, "wb")
        self._f.write(b"XDF:")
        self._formats: dict[int, tuple[str, int]] = {}
        self._stats: dict[int, list[float]] = {}
        self._chunk(TAG_FILE_HEADER, b'<?xml version="1.0"?><info><version>1.0</version></info>')

    def _chunk(self, tag: int, content: bytes) -> None:
        self._f.write(_varlen_bytes(len(content) + 2) + struct.pack("<H", tag) + content)

    def add_stream(self, stream_id: int, info_xml: str) -> None:
        root = ET.fromstring(info_xml)
        self._formats[stream_id] = (root.findtext("channel_format", ""), int(root.findtext("channel_count", "0")))
        self._stats[stream_id] = [math.nan, math.nan, 0]
        self._chunk(TAG_STREAM_HEADER, struct.pack("<I", stream_id) + info_xml.encode())

    def write_samples(self, stream_id: int, stamps: np.ndarray, values: np.ndarray | list[list[str]]) -> None:
        fmt, channels = self._formats[stream_id]
        n = len(stamps)
        if n == 0:
            return
        head = struct.pack("<I", stream_id) + _varlen_bytes(n)
        if fmt == "string":
            body = bytearray()
            for stamp, row in zip(stamps, values):
                body += b"\x08" + struct.pack("<d", stamp)
                for text in row:
                    data = text.encode()
                    body += _varlen_bytes(len(data)) + data
            payload = bytes(body)
        else:
            dtype = np.dtype(_NUMPY[fmt])
            rec = np.empty(n, np.dtype([("tsb", "u1"), ("ts", "<f8"), ("v", dtype, (channels,))]))
            rec["tsb"], rec["ts"], rec["v"] = 8, stamps, np.asarray(values).reshape(n, channels)
            payload = rec.tobytes()
        self._chunk(TAG_SAMPLES, head + payload)
        stats = self._stats[stream_id]
        if math.isnan(stats[0]):
            stats[0] = float(stamps[0])
        stats[1], stats[2] = float(stamps[-1]), stats[2] + n

    def write_clock_offset(self, stream_id: int, collection_time: float, offset: float) -> None:
        self._chunk(TAG_CLOCK_OFFSET, struct.pack("<Idd", stream_id, collection_time, offset))

    def write_boundary(self) -> None:
        self._chunk(TAG_BOUNDARY, BOUNDARY_UUID)

    def close(self) -> None:
        if self._f.closed:
            return
        for sid, (first, last, count) in self._stats.items():
            xml = (f'<?xml version="1.0"?><info><first_timestamp>{first}</first_timestamp>'
                   f"<last_timestamp>{last}</last_timestamp><sample_count>{int(count)}</sample_count></info>")
            self._chunk(TAG_STREAM_FOOTER, struct.pack("<I", sid) + xml.encode())
        self._f.close()

    def __enter__(self) -> XdfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- replay ---------------------------------------------------------------------------------------

def recording_path(source: str | Path) -> Path:
    """The recording.xdf of a session folder, or `source` itself when it is a file."""
    path = Path(source)
    if path.is_dir():
        path = path / RECORDING_XDF
    if not path.exists():
        raise SessionError(f"{path} not found; pass a session folder (sessions/<participant>/<id>/) "
                           "or an .xdf file")
    return path


def replay_source_id(recorded: str, namespace: str) -> str:
    """The recorded source_id with its `#namespace` replaced by the replay's namespace."""
    base = recorded.split("#", 1)[0]
    return f"{base}#{namespace}" if namespace else base


def _copy_xml(src: ET.Element, dst: pylsl.XMLElement) -> None:  # noqa: F821
    for child in src:
        if len(child):
            _copy_xml(child, dst.append_child(child.tag))
        else:
            dst.append_child_value(child.tag, child.text or "")


def outlet_info(stream: XdfStream, namespace: str) -> pylsl.StreamInfo:  # noqa: F821
    """A StreamInfo with the recorded layout and desc, the replay namespace and `desc/eyemotion/replay=1`."""
    import pylsl

    fmt = {"double64": pylsl.cf_double64, "float32": pylsl.cf_float32, "int32": pylsl.cf_int32,
           "int16": pylsl.cf_int16, "int8": pylsl.cf_int8, "int64": pylsl.cf_int64,
           "string": pylsl.cf_string}[stream.channel_format]
    info = pylsl.StreamInfo(stream.name, stream.type, stream.channel_count, stream.nominal_srate, fmt,
                            replay_source_id(stream.source_id, namespace))
    desc = stream.desc()
    if desc is not None:
        _copy_xml(desc, info.desc())
    own = info.desc().child("eyemotion")
    if own.empty():
        own = info.desc().append_child("eyemotion")
    own.append_child_value("replay", "1")
    return info


def replayable_streams(xdf: XdfFile, names: tuple[str, ...] = REPLAYED) -> list[XdfStream]:
    """The contract streams of a recording named in `names` (default: the raw ones); others are skipped
    with a warning, bad layouts refused."""
    chosen = []
    for stream in xdf.streams.values():
        if stream.name not in names or stream.name not in BY_NAME:
            why = "derived (recomputed by the pipeline)" if stream.name in BY_NAME else "not in the stream contract"
            log.warning("not replaying %s (%s): %s", stream.name, stream.source_id, why)
            continue
        spec = BY_NAME[stream.name]
        probe = outlet_info(stream, "")
        diffs = check_info(spec, probe)
        if diffs:
            from eyemotion.streams import ContractError

            raise ContractError(f"{xdf.path}: recorded {stream.name} ({stream.source_id}) does not match the "
                                f"contract: {'; '.join(diffs)}; it cannot be replayed as eyemotion data")
        chosen.append(stream)
    if not chosen:
        names = ", ".join(sorted({s.name for s in xdf.streams.values()})) or "none"
        raise UserError(f"{xdf.path} has no stream eyemotion can replay (found: {names}; replayable: "
                        f"{', '.join(REPLAYED)})")
    return chosen


@dataclass
class ReplayStats:
    pushed: dict[str, int] = field(default_factory=dict)  # samples pushed per replayed source_id
    loops: int = 0


class ReplayController:
    """Plays a recording through LSL in a background thread; the dashboard's replay API.

    >>> replay = ReplayController("sessions/P001/20261123T094501", namespace=cfg.lsl.namespace)
    >>> replay.start(); replay.pause(); replay.seek(120.0); replay.set_speed(4); replay.resume()
    >>> replay.wait(); replay.close()

    Positions are seconds from the first recorded sample. `speed=math.inf` plays as fast as possible
    (benchmarks); the CLI allows 0.25-20x.
    """

    def __init__(self, source: str | Path, *, namespace: str = "", speed: float = 1.0,
                 start: float | None = None, end: float | None = None, loop: bool = False,
                 tick_s: float = 0.01, horizon_s: float = 3.0, align_s: float = 0.0,
                 names: tuple[str, ...] = REPLAYED) -> None:
        self.xdf = XdfFile(recording_path(source))
        self.align_s = float(align_s)
        self.namespace = namespace
        self.streams = replayable_streams(self.xdf, names)
        self.origin = self.xdf.first_stamp if math.isfinite(self.xdf.first_stamp) else 0.0
        self.duration = max(0.0, self.xdf.last_stamp - self.origin)
        self.start_s = 0.0 if start is None else float(start)
        self.end_s = math.inf if end is None else float(end)
        if self.end_s <= self.start_s:
            raise UserError(f"replay start {self.start_s:g} s is not before its end {self.end_s:g} s; "
                            "give --start smaller than --end")
        if self.start_s < 0 or self.start_s > self.duration:
            raise UserError(f"replay window {self.start_s:g}-{end} s is outside the recording "
                            f"(0-{self.duration:.1f} s); pick --start/--end within it")
        self._check_speed(speed)
        self.speed = float(speed)
        self.loop = loop
        self.tick_s = tick_s
        self.horizon_s = horizon_s
        self.stats = ReplayStats()
        self._outlets: dict[int, object] = {}
        self._cond = threading.Condition()
        self._paused = False
        self._seek_to: float | None = self.start_s
        self._stop = False
        self._position = self.start_s
        self._anchor: tuple[float, float] | None = None  # (LSL clock, position) of the current timing anchor
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()
        self.error: BaseException | None = None

    @staticmethod
    def _check_speed(speed: float) -> None:
        if not (speed == math.inf or MIN_SPEED <= speed <= MAX_SPEED):
            raise UserError(f"replay speed {speed:g} is out of range; use {MIN_SPEED:g}-{MAX_SPEED:g}")

    # -- control (thread-safe) -----------------------------------------------------------------------
    def open(self) -> None:
        """Create the outlets (before `start`, so that a recorder or node can connect first)."""
        import pylsl

        if self._outlets:
            return
        for stream in self.streams:
            self._outlets[stream.stream_id] = pylsl.StreamOutlet(outlet_info(stream, self.namespace))
            self.stats.pushed[replay_source_id(stream.source_id, self.namespace)] = 0
        log.info("replaying %s: %s", self.xdf.path, ", ".join(f"{s.name} ({s.source_id})" for s in self.streams))

    def wait_for_consumers(self, timeout: float) -> bool:
        """Wait until every outlet has a consumer (e.g. a recorder); False on timeout."""
        self.open()
        deadline = time.monotonic() + timeout
        return all(o.wait_for_consumers(max(0.0, deadline - time.monotonic())) for o in self._outlets.values())

    def start(self) -> None:
        self.open()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run_safe, name="replay", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            if self._paused:
                self._paused = False
                if self._seek_to is None:
                    self._seek_to = self._position  # re-anchor the timing at now
                self._cond.notify_all()

    def seek(self, position_s: float) -> None:
        with self._cond:
            self._seek_to = min(max(0.0, float(position_s)), self.duration)
            self._cond.notify_all()

    def set_speed(self, speed: float) -> None:
        self._check_speed(speed)
        with self._cond:
            self.speed = float(speed)
            if self._seek_to is None:
                self._seek_to = self._position  # re-anchor the timing at the new speed
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the replay ends (not when looping); re-raise an error of the replay thread."""
        done = self.finished.wait(timeout)
        if self.error is not None:
            raise self.error
        return done

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(5)
        self._outlets.clear()

    def _aligned(self, clock: float, position: float) -> float:
        """`clock`, moved back so that the stamp shift (clock - recorded time) is a whole number of
        `align_s`: with the live inference's window period, replayed windows cover the samples they
        covered live (window ends lie on an absolute grid of LSL time)."""
        if self.align_s <= 0:
            return clock
        shift = clock - (self.origin + position)
        return clock - (shift - math.floor(shift / self.align_s) * self.align_s)

    @property
    def position(self) -> float:
        return self._position

    def stream_clock(self) -> float:
        """The replayed streams' time (LSL stamps) at the current position: at speed != 1 the stamps
        advance at recording rate, so this, not `pylsl.local_clock()`, is "now" for their data."""
        import pylsl

        anchor = self._anchor
        return pylsl.local_clock() if anchor is None else anchor[0] + (self._position - anchor[1])

    @property
    def paused(self) -> bool:
        return self._paused

    # -- the replay thread -------------------------------------------------------------------------
    def _run_safe(self) -> None:
        try:
            self.run()
        except BaseException as exc:
            self.error = exc
            log.exception("replay failed")
        finally:
            self.finished.set()

    def run(self, progress: object | None = None) -> None:
        """Play until the end (or forever with `loop`), honouring pause/seek/speed/stop."""
        import pylsl

        self.open()
        merge: MergeBuffer | None = None
        wall0 = clock0 = pos0 = 0.0
        while True:
            with self._cond:
                while self._paused and not self._stop:
                    self._cond.wait(0.1)
                if self._stop:
                    return
                seek, self._seek_to = self._seek_to, None
                speed = self.speed
            if seek is not None:
                if merge is None or seek != self._position:
                    target = self.origin + seek
                    offset = self.xdf.offset_for(target, self.horizon_s)
                    merge = MergeBuffer(self.xdf.chunks(offset, set(self._outlets)), self.horizon_s)
                    merge.take_before(target)  # drop what precedes the seek point
                self._position = pos0 = seek
                wall0 = time.monotonic()
                clock0 = self._aligned(pylsl.local_clock(), pos0)
                self._anchor = (clock0, pos0)
            assert merge is not None
            tick = self.tick_s if math.isfinite(speed) else 1.0
            step_end = min(self._position + tick * (speed if math.isfinite(speed) else 1.0), self.end_s)
            due = wall0 + (step_end - pos0) / speed if math.isfinite(speed) else 0.0
            delay = due - time.monotonic()
            if delay > 0:
                with self._cond:
                    if self._cond.wait_for(lambda: self._stop or self._paused or self._seek_to is not None, delay):
                        continue
            shift = clock0 - (self.origin + pos0)
            last_step = step_end >= self.end_s
            for chunk in merge.take_before(self.origin + step_end + (1e-9 if last_step else 0.0)):
                self._push(chunk, shift)
            if progress is not None:
                progress.update(step_end - self._position)  # type: ignore[attr-defined]
            self._position = step_end
            if last_step or merge.empty:
                if not self.loop:
                    return
                self.stats.loops += 1
                with self._cond:
                    if self._seek_to is None:
                        self._seek_to = self.start_s
                merge = None

    def _push(self, chunk: SampleChunk, shift: float) -> None:
        outlet = self._outlets[chunk.stream_id]
        stamps = (chunk.time_stamps + shift).tolist()
        values = chunk.values if isinstance(chunk.values, list) else np.ascontiguousarray(chunk.values)
        outlet.push_chunk(values, stamps)  # type: ignore[attr-defined]
        stream = self.xdf.streams[chunk.stream_id]
        self.stats.pushed[replay_source_id(stream.source_id, self.namespace)] += len(chunk)
