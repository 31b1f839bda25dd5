"""Session folders and `Session.load`: equivalence with plain pyxdf, partial loads, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pyxdf
from eyemotion.acquisition.replay import XdfWriter

from eyemotion.session import (
    DEJITTER_GAP_S,
    DEJITTER_GAP_SAMPLES,
    Session,
    SessionError,
    create_session_folder,
    update_session_json,
)
from eyemotion.streams import AUDIO, CAMERA, GAZE_RAW, MARKERS, stream_info


def write_synthetic(path: Path, seconds: float = 4.0, *, deduced_stamps: bool = False) -> dict[str, int]:
    """Gaze 250 Hz, audio 16 kHz and markers, in 0.5 s chunks, as LabRecorder lays them out."""
    rng = np.random.default_rng(1)
    counts = {"Tobii_gaze": 0, "eyemotion_audio": 0, "eyemotion_markers": 0}
    with XdfWriter(path) as w:
        w.add_stream(1, stream_info(GAZE_RAW, rate=250, namespace="x").as_xml())
        w.add_stream(2, stream_info(AUDIO, namespace="x").as_xml())
        w.add_stream(3, stream_info(MARKERS, namespace="x").as_xml())
        t0 = 5000.0
        for k in range(int(seconds * 2)):
            ts = t0 + k * 0.5 + np.arange(125) / 250
            w.write_samples(1, ts, rng.normal(size=(125, 37)))
            ts = t0 + k * 0.5 + np.arange(8000) / 16000
            w.write_samples(2, ts, rng.normal(size=(8000, 1)).astype(np.float32))
            w.write_samples(3, [t0 + k * 0.5 + 0.25], [[json.dumps({"event": "tick", "source": "test", "k": k})]])
            for sid in (1, 2, 3):
                w.write_clock_offset(sid, t0 + k * 0.5, 2e-6)
            if k % 4 == 3:
                w.write_boundary()
            counts["Tobii_gaze"] += 125
            counts["eyemotion_audio"] += 8000
            counts["eyemotion_markers"] += 1
    return counts


@pytest.fixture
def session_folder(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    folder = create_session_folder(tmp_path, "P010", "S1", protocol="demo")
    counts = write_synthetic(folder / "recording.xdf")
    (folder / "trials.csv").write_text("trial,clip,target,valence,arousal,chosen\n"
                                       "1,happy_01,happiness,7,6,happiness\n2,sad_02,sadness,2.5,3,neutral\n")
    return folder, counts


def test_load_matches_plain_pyxdf(session_folder: tuple[Path, dict[str, int]]) -> None:
    folder, counts = session_folder
    session = Session.load(folder)
    reference, _ = pyxdf.load_xdf(str(folder / "recording.xdf"), jitter_break_threshold_seconds=DEJITTER_GAP_S,
                                  jitter_break_threshold_samples=DEJITTER_GAP_SAMPLES)
    assert {s["info"]["name"][0] for s in reference} == set(session.streams)
    for ref in reference:
        name = ref["info"]["name"][0]
        mine = session.stream(name)
        assert len(mine) == counts[name]
        np.testing.assert_allclose(mine.time_stamps, ref["time_stamps"], rtol=0, atol=1e-8)
        if name == "eyemotion_markers":
            assert [row[0] for row in mine.data] == [row[0] for row in ref["time_series"]]
        else:
            np.testing.assert_array_equal(mine.data, ref["time_series"])
    assert session.stream("Tobii_gaze").labels == GAZE_RAW.labels  # incl. the undescribed device time
    assert session.meta["protocol"] == "demo"
    assert [t["clip"] for t in session.trials] == ["happy_01", "sad_02"]
    assert session.trials[1]["valence"] == 2.5 and session.trials[0]["arousal"] == 6
    assert len(session.markers) == counts["eyemotion_markers"] and not session.markers.malformed
    assert session.warnings == []


def test_dejitter_matches_pyxdf_on_jittery_stamps(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    stamps = 7000.0 + np.arange(5000) / 250 + rng.normal(0, 0.002, 5000)
    stamps[3000:] += 3.0  # a gap: two segments
    with XdfWriter(tmp_path / "j.xdf") as w:
        w.add_stream(1, stream_info(GAZE_RAW, rate=250).as_xml())
        w.write_samples(1, stamps, np.zeros((5000, 37)))
    mine = Session.load(tmp_path / "j.xdf").stream("Tobii_gaze")
    (ref,), _ = pyxdf.load_xdf(str(tmp_path / "j.xdf"), jitter_break_threshold_seconds=DEJITTER_GAP_S,
                               jitter_break_threshold_samples=DEJITTER_GAP_SAMPLES)
    np.testing.assert_allclose(mine.time_stamps, ref["time_stamps"], rtol=0, atol=1e-8)
    assert mine.info["segments"] == ref["info"]["segments"] == [(0, 2999), (3000, 4999)]
    assert mine.effective_srate == pytest.approx(ref["info"]["effective_srate"], rel=1e-9)


def test_a_short_hole_is_not_spread_over_the_stream_and_camera_stamps_stay_as_recorded(tmp_path: Path) -> None:
    """A dropped 100-ms audio block starts a new segment (pyxdf's 1-s default would shift every stamp by up to
    50 ms); camera frames (can_drop_samples) keep their own stamps across a restart."""
    audio = 7000.0 + np.arange(32000) / 16000
    audio[16000:] += 0.1
    frames = np.r_[7000.0 + np.arange(60) / 30, 7004.0 + np.arange(60) / 30]
    with XdfWriter(tmp_path / "h.xdf") as w:
        w.add_stream(1, stream_info(AUDIO).as_xml())
        w.add_stream(2, stream_info(CAMERA, rate=30.0).as_xml())
        w.write_samples(1, audio, np.zeros((32000, 1), np.float32))
        w.write_samples(2, frames, np.r_[np.arange(60), np.arange(60)].astype(float)[:, None])
    session = Session.load(tmp_path / "h.xdf")
    assert session.stream("eyemotion_audio").info["segments"] == [(0, 15999), (16000, 31999)]
    np.testing.assert_allclose(session.stream("eyemotion_audio").time_stamps, audio, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(session.stream("eyemotion_camera").time_stamps, frames)


def test_clock_offsets_are_applied(session_folder: tuple[Path, dict[str, int]]) -> None:
    folder, _ = session_folder
    audio = Session.load(folder, dejitter=False).stream("eyemotion_audio")
    assert audio.time_stamps[0] == pytest.approx(5000.0 + 2e-6, abs=1e-9)


def test_truncated_recording_loads_partially_with_warning(session_folder: tuple[Path, dict[str, int]]) -> None:
    folder, counts = session_folder
    xdf = folder / "recording.xdf"
    data = xdf.read_bytes()
    xdf.write_bytes(data[: int(len(data) * 0.6)])  # cut in the middle of a chunk, no footers
    session = Session.load(folder)
    assert any("did not end cleanly" in w for w in session.warnings)
    audio = session.stream("eyemotion_audio")
    assert 0.3 * counts["eyemotion_audio"] < len(audio) < counts["eyemotion_audio"]
    assert np.all(np.diff(audio.time_stamps) > 0)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)), "not an XDF file"),
    (b"XDF:", "holds no stream"),
])
def test_bad_recordings_give_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    folder = create_session_folder(tmp_path, "P011", "S1")
    (folder / "recording.xdf").write_bytes(content)
    with pytest.raises(SessionError, match=message) as err:
        Session.load(folder)
    assert "\n" not in str(err.value)


def test_missing_pieces(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="does not exist"):
        Session.load(tmp_path / "nope")
    folder = create_session_folder(tmp_path, "P012", "S1")
    with pytest.raises(SessionError, match="recording.xdf not found"):
        Session.load(folder)
    bare = tmp_path / "bare"
    bare.mkdir()
    write_synthetic(bare / "recording.xdf", 1.0)
    with pytest.raises(SessionError, match="session.json not found"):
        Session.load(bare)
    alone = Session.load(bare / "recording.xdf")  # documented: the bare file loads, with a warning
    assert alone.meta == {} and any("no session.json" in w for w in alone.warnings)
    with pytest.raises(SessionError, match="has no eyemotion_face stream"):
        alone.stream("eyemotion_face")


def test_session_folder_rules(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="not a pseudonym"):
        create_session_folder(tmp_path, "Jane Doe")
    folder = create_session_folder(tmp_path, "P013", "S1")
    with pytest.raises(SessionError, match="already exists"):
        create_session_folder(tmp_path, "P013", "S1")
    update_session_json(folder, screen={"width_px": 800})
    update_session_json(folder, screen={"height_px": 600}, notes="x")
    meta = json.loads((folder / "session.json").read_text())
    assert meta["screen"] == {"width_px": 800, "height_px": 600} and meta["participant"] == "P013"
