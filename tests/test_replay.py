"""Replay through LSL: a replayed recording, recorded again, is the same data with the same timing;
pause/seek/window/loop controls; and the refused inputs."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
from eyemotion.acquisition.recorder import Recorder
from eyemotion.acquisition.replay import ReplayController, XdfFile, XdfWriter, replay_source_id
from test_recorder import Recording, make_config, shared_recording

from eyemotion import UserError
from eyemotion.cli import main
from eyemotion.session import Session, SessionError, create_session_folder
from eyemotion.streams import AUDIO, GAZE_CLEAN, GAZE_RAW, MARKERS, ContractError, open_inlet, stream_info


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return shared_recording(tmp_path_factory)


def _base(source_id: str) -> str:
    return source_id.split("#", 1)[0]


def test_replay_recorded_again_is_identical(recording: Recording, tmp_path: Path, namespace: str) -> None:
    replay = ReplayController(recording.folder, namespace=namespace, speed=5.0)
    replay.open()
    config = make_config(namespace, required=("Tobii_gaze", "eyemotion_audio", "eyemotion_camera"))
    recorder = Recorder(config, create_session_folder(tmp_path, "P001", "S02"))
    recorder.start()
    try:
        assert replay.wait_for_consumers(15)
        replay.start()
        assert replay.wait(60)
        time.sleep(1.5)
    finally:
        replay.close()
        recorder.stop()
    first = Session.load(recording.folder, dejitter=False)
    second = Session.load(recorder.folder, dejitter=False)
    shifts = []
    for name in ("Tobii_gaze", "eyemotion_audio", "eyemotion_camera"):
        a, b = first.stream(name), second.stream(name)
        assert _base(a.source_id) == _base(b.source_id)
        assert b.source_id.endswith("#" + namespace)
        np.testing.assert_array_equal(a.data, b.data)
        shift = b.time_stamps - a.time_stamps
        assert np.ptp(shift) < 1e-3, name  # relative timing inside the stream
        shifts.append(shift.mean())
    replayed = {_base(sid) for sid in first.stream("eyemotion_markers").info["merged_source_ids"]}
    again = [m for m in second.markers.markers if _base(m.source_id) in replayed]
    assert [(m.event, m.source, m.fields) for m in again] == \
        [(m.event, m.source, m.fields) for m in first.markers.markers]
    shifts += [b.time - a.time for a, b in zip(first.markers.markers, again)]
    assert np.ptp(shifts) < 1e-3  # relative timing across streams
    assert [t for _, t, _ in second.markers.malformed] == [t for _, t, _ in first.markers.malformed]
    headers = {s.name: s for s in XdfFile(second.path / "recording.xdf").streams.values()}
    gaze_desc = headers["Tobii_gaze"].desc()
    assert gaze_desc.findtext("eyemotion/replay") == "1"
    assert gaze_desc.findtext("acquisition/manufacturer") == "Tobii"
    assert second.stream("Tobii_gaze").labels == GAZE_RAW.labels


def write_counter_file(path: Path, seconds: float = 4.0, *, extra_streams: bool = False) -> None:
    """Audio whose value is its sample index, 2 markers per second, optional non-replayed streams."""
    with XdfWriter(path) as w:
        w.add_stream(1, stream_info(AUDIO, namespace="old").as_xml())
        w.add_stream(2, stream_info(MARKERS, namespace="old").as_xml())
        if extra_streams:
            w.add_stream(3, stream_info(GAZE_CLEAN, rate=250, namespace="old").as_xml())
            w.add_stream(4, pylsl.StreamInfo("BioSemi", "EEG", 2, 100, pylsl.cf_float32, "amp1").as_xml())
        t0 = 100.0
        for k in range(int(seconds * 4)):
            idx = np.arange(k * 4000, (k + 1) * 4000)
            w.write_samples(1, t0 + idx / 16000, idx.astype(np.float32)[:, None])
            if k % 2 == 0:
                w.write_samples(2, [t0 + k * 0.25 + 0.1], [[json.dumps({"event": "tick", "source": "t", "k": k})]])


def _subscribed(replay: ReplayController, namespace: str) -> pylsl.StreamInlet:
    """An audio inlet whose data feed is open (samples pushed before that would not reach it)."""
    inlet = open_inlet(AUDIO, namespace=namespace, timeout=5, processing=0)
    inlet.open_stream(timeout=5)
    deadline = time.monotonic() + 5
    while not replay._outlets[1].have_consumers() and time.monotonic() < deadline:
        time.sleep(0.01)
    return inlet


def _pull_all(inlet: pylsl.StreamInlet, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    values, stamps = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        data, ts = inlet.pull_chunk(timeout=0.05, max_samples=20000)
        if ts:
            values.append(np.asarray(data)[:, 0])
            stamps.append(np.asarray(ts))
    return (np.concatenate(values) if values else np.zeros(0)), (np.concatenate(stamps) if stamps else np.zeros(0))


def test_window_keeps_exact_relative_timing(tmp_path: Path, namespace: str) -> None:
    write_counter_file(tmp_path / "rec.xdf")
    replay = ReplayController(tmp_path / "rec.xdf", namespace=namespace, speed=10, start=1.0, end=2.0)
    replay.open()
    inlet = _subscribed(replay, namespace)
    assert inlet.info().desc().child("eyemotion").child_value("replay") == "1"
    replay.start()
    values, stamps = _pull_all(inlet, 1.0)
    replay.wait(5)
    values2, stamps2 = _pull_all(inlet, 0.3)
    values, stamps = np.r_[values, values2], np.r_[stamps, stamps2]
    np.testing.assert_array_equal(values, np.arange(16000, 32001))  # [start, end] of the recording
    np.testing.assert_allclose(np.diff(stamps), 1 / 16000, atol=1e-9)
    assert abs(stamps[0] - pylsl.local_clock()) < 5  # re-based to now


def test_pause_seek_speed_and_loop(tmp_path: Path, namespace: str) -> None:
    write_counter_file(tmp_path / "rec.xdf", 4.0)
    replay = ReplayController(tmp_path / "rec.xdf", namespace=namespace, speed=1.0, loop=True)
    replay.open()
    inlet = _subscribed(replay, namespace)
    replay.start()
    time.sleep(0.5)
    replay.pause()
    time.sleep(0.2)
    held = replay.position
    _pull_all(inlet, 0.3)
    assert replay.paused and replay.position == held and 0.2 < held < 1.5
    nothing, _ = _pull_all(inlet, 0.3)
    assert len(nothing) == 0  # nothing flows while paused
    replay.seek(3.0)
    replay.set_speed(4.0)
    replay.resume()
    values, stamps = _pull_all(inlet, 0.6)
    assert values[0] == 48000  # playback went on from 3.0 s
    steady = np.diff(values) == 1  # everywhere but the loop's wrap-around
    assert steady.mean() > 0.99
    np.testing.assert_allclose(np.diff(stamps)[steady], 1 / 16000, atol=1e-9)
    deadline = time.monotonic() + 5
    while replay.stats.loops == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    replay.close()
    assert replay.stats.loops >= 1
    with pytest.raises(UserError, match="speed 50 is out of range"):
        replay.set_speed(50)


def test_non_contract_streams_are_skipped_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_counter_file(tmp_path / "rec.xdf", 1.0, extra_streams=True)
    replay = ReplayController(tmp_path / "rec.xdf", namespace="unused")
    assert sorted(s.name for s in replay.streams) == ["eyemotion_audio", "eyemotion_markers"]
    assert "not replaying BioSemi (amp1): not in the stream contract" in caplog.text
    assert "not replaying eyemotion_gaze" in caplog.text and "derived" in caplog.text
    assert replay_source_id("eyemotion:eyemotion_audio@pc#old", "new") == "eyemotion:eyemotion_audio@pc#new"


def test_refused_inputs(tmp_path: Path) -> None:
    only_foreign = tmp_path / "foreign.xdf"
    with XdfWriter(only_foreign) as w:
        w.add_stream(1, pylsl.StreamInfo("BioSemi", "EEG", 2, 100, pylsl.cf_float32, "amp1").as_xml())
        w.write_samples(1, np.arange(10) / 100, np.zeros((10, 2), np.float32))
    with pytest.raises(UserError, match="no stream eyemotion can replay.*BioSemi"):
        ReplayController(only_foreign)
    bad_layout = tmp_path / "bad.xdf"
    with XdfWriter(bad_layout) as w:
        w.add_stream(1, pylsl.StreamInfo("eyemotion_audio", "Audio", 2, 16000, pylsl.cf_float32, "x").as_xml())
        w.write_samples(1, np.arange(10) / 16000, np.zeros((10, 2), np.float32))
    with pytest.raises(ContractError, match="has 2 channels, expected 1"):
        ReplayController(bad_layout)
    write_counter_file(tmp_path / "ok.xdf", 1.0)
    with pytest.raises(UserError, match="speed 0.1 is out of range"):
        ReplayController(tmp_path / "ok.xdf", speed=0.1)
    with pytest.raises(UserError, match="outside the recording"):
        ReplayController(tmp_path / "ok.xdf", start=30)
    (tmp_path / "empty.xdf").write_bytes(b"")
    with pytest.raises(SessionError, match="is empty"):
        ReplayController(tmp_path / "empty.xdf")
    with pytest.raises(SessionError, match="not found"):
        ReplayController(tmp_path / "missing")


def test_truncated_file_replays_up_to_the_cut(tmp_path: Path, namespace: str) -> None:
    write_counter_file(tmp_path / "rec.xdf", 2.0)
    data = (tmp_path / "rec.xdf").read_bytes()
    (tmp_path / "rec.xdf").write_bytes(data[: len(data) // 2])
    replay = ReplayController(tmp_path / "rec.xdf", namespace=namespace, speed=math.inf)
    assert replay.xdf.truncated_at is not None
    replay.start()
    assert replay.wait(10)
    pushed = next(n for sid, n in replay.stats.pushed.items() if "eyemotion_audio" in sid)
    assert 8000 <= pushed < 32000 and pushed % 4000 == 0  # whole chunks before the cut


def test_cli_replay(tmp_path: Path, namespace: str, capsys: pytest.CaptureFixture) -> None:
    write_counter_file(tmp_path / "rec.xdf", 1.0)
    cfg = tmp_path / "eyemotion.toml"
    cfg.write_text(f'[lsl]\nnamespace = "{namespace}"\n')
    assert main(["--config", str(cfg), "replay", str(tmp_path / "rec.xdf"), "--speed", "20"]) == 0
    assert "replayed" in capsys.readouterr().out
    assert main(["--config", str(cfg), "replay", str(tmp_path / "rec.xdf"), "--speed", "40"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eyemotion: error: replay speed 40 is out of range") and "\n" not in err
