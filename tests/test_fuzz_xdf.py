"""Fuzzing the XDF readers (issue 9, item 5): `acquisition.replay.XdfFile` (the incremental chunk reader
the replay streams with) and `eyemotion.session.Session.load` (pyxdf with our sample decoder).

A small valid recording is written with the project's own `XdfWriter`, then truncated at random offsets,
bytes flipped, garbage inserted or chunks deleted. The only acceptable outcomes are a result or a
`UserError` (one line); a truncated file must load the documented part: every chunk that ends before the
cut, with `truncated_at` set (XdfFile) or a "did not end cleanly" warning (Session.load).
"""

from __future__ import annotations

import functools
import json
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from eyemotion.acquisition.replay import MergeBuffer, XdfFile, XdfWriter, replayable_streams
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

from eyemotion import UserError
from eyemotion.session import Session
from eyemotion.streams import AUDIO, CAMERA, MARKERS, stream_info

pytestmark = pytest.mark.timeout(120)

TAG_STREAM_HEADER, TAG_SAMPLES = 2, 3


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    tag: int
    stream_id: int  # 0 for chunks without one
    samples: int


@dataclass(frozen=True)
class Recording:
    data: bytes
    chunks: tuple[Chunk, ...]
    names: dict[int, str]


def _walk(data: bytes) -> tuple[Chunk, ...]:
    """The chunks of a valid XDF file, parsed independently of the code under test (spec: sccn/xdf wiki)."""
    pos, out = 4, []
    while pos < len(data):
        width = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 1 + width], "little")
        body = pos + 1 + width + 2
        tag = struct.unpack_from("<H", data, body - 2)[0]
        sid = struct.unpack_from("<I", data, body)[0] if tag != 1 else 0
        n = 0
        if tag == TAG_SAMPLES:
            w = data[body + 4]
            n = int.from_bytes(data[body + 5:body + 5 + w], "little")
        out.append(Chunk(pos, pos + 1 + width + length, tag, sid, n))
        pos += 1 + width + length
    return tuple(out)


@functools.cache
def recording() -> Recording:
    """Audio (float32), markers (string, JSON) and camera (double64), clock offsets, footers: ~16 KB.

    Not a fixture: hypothesis would print its 16 KB in every failure report.
    """
    names = {1: AUDIO.name, 2: MARKERS.name, 3: CAMERA.name}
    with tempfile.TemporaryDirectory(prefix="fuzz-xdf-") as folder:
        path = Path(folder) / "valid.xdf"
        _write(path)
        data = path.read_bytes()
    return Recording(data, _walk(data), names)


def _write(path: Path) -> None:
    with XdfWriter(path) as w:
        w.add_stream(1, stream_info(AUDIO, namespace="fuzz").as_xml())
        w.add_stream(2, stream_info(MARKERS, namespace="fuzz").as_xml())
        w.add_stream(3, stream_info(CAMERA, rate=30, namespace="fuzz").as_xml())
        t0 = 50.0
        for k in range(6):
            w.write_clock_offset(1, t0 + k, 0.001)
            idx = np.arange(k * 160, (k + 1) * 160)
            w.write_samples(1, t0 + idx / 16000, idx.astype(np.float32)[:, None])
            w.write_samples(2, [t0 + k * 0.01], [[json.dumps({"event": "tick", "source": "fuzz", "k": k})]])
            frames = np.arange(k * 3, k * 3 + 3)
            w.write_samples(3, t0 + frames / 30, frames.astype(float)[:, None])


def _expected_after_cut(rec: Recording, cut: int) -> dict[str, int]:
    """Samples per stream in the chunks that end before `cut`, for streams whose header ends before it."""
    complete = [c for c in rec.chunks if c.end <= cut]
    streams = {rec.names[c.stream_id] for c in complete if c.tag == TAG_STREAM_HEADER}
    counts = dict.fromkeys(streams, 0)
    for c in complete:
        if c.tag == TAG_SAMPLES and rec.names[c.stream_id] in counts:
            counts[rec.names[c.stream_id]] += c.samples
    return counts


def _read_all(path: Path) -> dict[str, int]:
    """Everything the incremental reader yields, per stream name, merged into time order as replay does."""
    xdf = XdfFile(path)
    counts = {s.name: 0 for s in xdf.streams.values()}
    for chunk in xdf.chunks():
        assert chunk.time_stamps.shape == (len(chunk),)
        assert len(chunk.values) == len(chunk)
        counts[xdf.streams[chunk.stream_id].name] += len(chunk)
    merge = MergeBuffer(xdf.chunks(), horizon_s=1.0)
    merged = sum(len(c) for c in merge.take_before(np.inf))
    assert merged == sum(counts.values())
    return counts


def _load(path: Path) -> Session:
    session = Session.load(path, dejitter=False)
    for stream in session.streams.values():
        assert len(stream.data) == len(stream.time_stamps)
    return session


def _one_line(exc: UserError) -> None:
    message = str(exc)
    assert message and "\n" not in message, f"not a one-line error: {message!r}"


# -- truncation: a documented partial load ----------------------------------------------------------

@settings(max_examples=examples(100))
@given(cut_fraction=st.floats(0, 1))
@example(cut_fraction=0.0)
@example(cut_fraction=1.0)
@example(cut_fraction=0.6969969273640738)  # inside a clock offset: pyxdf failed, Session.load refused (fixed)
def test_truncated_file_loads_every_chunk_before_the_cut(cut_fraction: float) -> None:
    rec = recording()
    cut = int(cut_fraction * len(rec.data))
    expected = _expected_after_cut(rec, cut)
    in_header = any(c.start < cut < c.end and c.tag == TAG_STREAM_HEADER for c in rec.chunks)
    with tempfile.TemporaryDirectory(prefix="fuzz-xdf-") as folder:
        path = Path(folder) / "recording.xdf"
        path.write_bytes(rec.data[:cut])
        # the incremental reader
        if not expected:
            with pytest.raises(UserError) as err:
                XdfFile(path)
            _one_line(err.value)
        else:
            xdf = XdfFile(path)
            at_boundary = cut in {c.end for c in rec.chunks}
            assert (xdf.truncated_at is None) == at_boundary
            assert _read_all(path) == expected
        # pyxdf through Session.load: the same, except that pyxdf may refuse a stream header cut in its XML
        if not expected:
            with pytest.raises(UserError) as err:
                _load(path)
            _one_line(err.value)
            return
        try:
            session = _load(path)
        except UserError as exc:
            assert in_header, f"refused a file cut after its headers: {exc}"
            _one_line(exc)
            return
        assert {name: len(s) for name, s in session.streams.items()} == expected
        if cut < len(rec.data):
            assert any("did not end cleanly" in w for w in session.warnings)


# -- corruption: a result or a clear error ----------------------------------------------------------

MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
)


def _mutate(data: bytes, mutations: list[tuple]) -> bytes:
    buf = bytearray(data)
    for kind, where, arg in mutations:
        pos = min(int(where * len(buf)), max(len(buf) - 1, 0))
        if kind == "flip" and buf:
            buf[pos] ^= arg
        elif kind == "overwrite":
            buf[pos:pos + len(arg)] = arg
        elif kind == "insert":
            buf[pos:pos] = arg
        elif kind == "delete":
            del buf[pos:pos + arg]
        elif kind == "truncate":
            del buf[pos:]
    return bytes(buf)


def _check_outcome(path: Path) -> None:
    """Either reader returns a result, or raises a one-line UserError: nothing else."""
    try:
        xdf = XdfFile(path)
        _read_all(path)
        replayable_streams(xdf)
    except UserError as exc:
        _one_line(exc)
    try:
        _load(path)
    except UserError as exc:
        _one_line(exc)


@settings(max_examples=examples(250))
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=4))
def test_corrupted_file_gives_a_result_or_a_clear_error(mutations: list[tuple]) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-xdf-") as folder:
        path = Path(folder) / "recording.xdf"
        path.write_bytes(_mutate(recording().data, mutations))
        _check_outcome(path)


@settings(max_examples=examples(150))
@given(chunk=st.integers(0, 30), offset=st.integers(0, 40), value=st.integers(0, 255))
def test_corrupted_chunk_header_or_field(chunk: int, offset: int, value: int) -> None:
    """One byte set inside a chunk's head (length, tag, stream id, sample count, first stamps)."""
    target = recording().chunks[chunk % len(recording().chunks)]
    pos = min(target.start + offset, target.end - 1)
    data = bytearray(recording().data)
    data[pos] = value
    with tempfile.TemporaryDirectory(prefix="fuzz-xdf-") as folder:
        path = Path(folder) / "recording.xdf"
        path.write_bytes(bytes(data))
        _check_outcome(path)


@settings(max_examples=examples(60))
@given(garbage=st.binary(max_size=300), magic=st.booleans())
def test_random_bytes(garbage: bytes, magic: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-xdf-") as folder:
        path = Path(folder) / "recording.xdf"
        path.write_bytes((b"XDF:" if magic else b"") + garbage)
        _check_outcome(path)


# -- random chunks with valid framing: stream headers, sample payloads, offsets, footers ------------

def _chunk(tag: int, content: bytes) -> bytes:
    length = len(content) + 2
    width = 1 if length < 256 else 4
    return bytes([width]) + length.to_bytes(width, "little") + struct.pack("<H", tag) + content


def _header_xml(name: str, count: str, fmt: str, srate: str) -> bytes:
    return (f'<?xml version="1.0"?><info><name>{escape(name)}</name><type>T</type><channel_count>{escape(count)}'
            f"</channel_count><channel_format>{escape(fmt)}</channel_format><nominal_srate>{escape(srate)}"
            f"</nominal_srate><source_id>fuzz</source_id></info>").encode("utf-8", "surrogatepass")


HEADERS = st.builds(
    _header_xml,
    st.one_of(st.sampled_from([AUDIO.name, MARKERS.name, CAMERA.name]), st.text(max_size=6)),
    st.one_of(st.integers(-2, 40).map(str), st.text(max_size=4)),
    st.sampled_from(["float32", "double64", "string", "int8", "int16", "int32", "int64", "bogus", ""]),
    st.one_of(st.floats().map(repr), st.sampled_from(["0", "16000", "250", "-1"]), st.text(max_size=4)),
)


@st.composite
def samples_payloads(draw: st.DrawFn) -> bytes:
    """A sample count (varlen, any width) and samples with or without stamps, of any value width."""
    n = draw(st.integers(0, 6))
    width = draw(st.sampled_from([1, 4, 8]))
    count = draw(st.one_of(st.just(n), st.integers(0, 2**(8 * width) - 1)))
    body = bytes([width]) + count.to_bytes(width, "little")
    value_bytes = draw(st.sampled_from([0, 1, 4, 8, 12]))
    for _ in range(n):
        if draw(st.booleans()):
            body += b"\x08" + struct.pack("<d", draw(st.floats()))
        else:
            body += b"\x00"
        body += draw(st.binary(min_size=value_bytes, max_size=value_bytes))
    return body


CHUNKS = st.one_of(
    st.tuples(st.just(2), st.integers(0, 3), HEADERS),
    st.tuples(st.just(3), st.integers(0, 3), samples_payloads()),
    st.tuples(st.just(3), st.integers(0, 3), st.binary(max_size=40)),
    st.tuples(st.just(4), st.integers(0, 3), st.binary(max_size=20)),
    st.tuples(st.just(5), st.integers(0, 3), st.binary(max_size=16)),
    st.tuples(st.just(6), st.integers(0, 3), st.one_of(st.binary(max_size=20), HEADERS)),
    st.tuples(st.integers(0, 9), st.integers(0, 3), st.binary(max_size=8)),
)

CAMERA_HEADER = _header_xml(CAMERA.name, "1", "double64", "30")


@settings(max_examples=examples(400))
@given(chunks=st.lists(CHUNKS, max_size=8), short_sid=st.booleans())
# a stamp cut short inside a chunk: struct.error escaped decode_samples (fixed)
@example(chunks=[(2, 1, CAMERA_HEADER), (3, 1, b"\x01\x02" + b"\x08" + bytes(16) + b"\x08" + bytes(4))],
         short_sid=False)
# a sample count far beyond the chunk: huge allocation / struct.error (fixed)
@example(chunks=[(2, 1, CAMERA_HEADER), (3, 1, b"\x08" + (2**62).to_bytes(8, "little") + bytes(9))], short_sid=False)
# an unparsable stream header: xml ParseError escaped XdfFile (fixed)
@example(chunks=[(2, 1, b"<info><name>x</nam"), (3, 1, b"\x01\x00")], short_sid=False)
# a non-numeric channel_count: ValueError escaped XdfFile (fixed)
@example(chunks=[(2, 1, _header_xml("x", "one", "float32", "1"))], short_sid=False)
# chunks too short to hold a stream id: struct.error escaped the scan (fixed)
@example(chunks=[(2, 1, CAMERA_HEADER), (3, 1, b""), (4, 1, b"\x01"), (6, 1, b"")], short_sid=True)
# a negative rate: pylsl raised RuntimeError while replaying it (fixed)
@example(chunks=[(2, 0, _header_xml(AUDIO.name, "0", "float32", "-1.0"))], short_sid=False)
# a string stream with -1 channels (pyxdf accepts it): ValueError escaped Session.load (fixed)
@example(chunks=[(2, 0, _header_xml(AUDIO.name, "-1", "string", "0.0"))], short_sid=False)
# a stream with 0 channels: ValueError escaped Session.load (fixed)
@example(chunks=[(2, 0, _header_xml(AUDIO.name, "0", "float32", "0.0"))], short_sid=False)
def test_random_chunks(chunks: list[tuple[int, int, bytes]], short_sid: bool) -> None:
    """Well-framed chunks whose contents are random: header XML fields, sample counts, stamps, values."""
    data = b"XDF:" + _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for tag, sid, content in chunks:
        prefix = struct.pack("<I", sid)
        data += _chunk(tag, (prefix[:2] if short_sid and tag != 2 else prefix) + content)
    with tempfile.TemporaryDirectory(prefix="fuzz-xdf-") as folder:
        path = Path(folder) / "recording.xdf"
        path.write_bytes(data)
        _check_outcome(path)


@settings(max_examples=examples(40))
@given(texts=st.lists(st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.builds(lambda e, rest: json.dumps({"event": e, **rest}), st.one_of(st.text(max_size=8), st.integers()),
              st.dictionaries(st.text(max_size=4), st.one_of(st.floats(), st.integers(), st.text(max_size=4)),
                              max_size=3)),
    st.sampled_from(["1" * 5000, "[" * 5000, '{"event": "x", "v": NaN}', "null", "{}"])), min_size=1, max_size=12))
def test_marker_texts_in_a_recording(texts: list[str]) -> None:
    """Every recorded marker is decoded into the table or kept apart as malformed, never lost or raised."""
    with tempfile.TemporaryDirectory(prefix="fuzz-xdf-") as folder:
        path = Path(folder) / "recording.xdf"
        with XdfWriter(path) as w:
            w.add_stream(1, stream_info(MARKERS, namespace="fuzz").as_xml())
            w.write_samples(1, np.arange(len(texts), dtype=float), [[t] for t in texts])
        session = _load(path)
    assert len(session.markers) + len(session.markers.malformed) == len(texts)
    assert all(isinstance(m.event, str) and m.event for m in session.markers.markers)
