"""Replay with the whole pipeline: a session replayed through the real nodes (eye signal, the face pipeline on
camera.mkv, live inference) re-computes the same predictions as offline reprocessing of the same recording.

The session is made here: the simulated tracker's raw Tobii_gaze, a generated camera video with a face
(camera.mkv, one eyemotion_camera sample per frame) and speech-like audio, written like LabRecorder.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from eyemotion.acquisition.media import write_test_video
from eyemotion.acquisition.replay import XdfWriter
from eyemotion.acquisition.replay_pipeline import ReplayPipeline, VideoFrameNode
from eyemotion.acquisition.simulator import simulate_recording
from eyemotion.inference.eyesignal.node import EyeSignalNode
from eyemotion.inference.eyesignal.processor import process_recording
from eyemotion.inference.features.commands import face_table_from_video
from eyemotion.inference.live import InferenceNode, predict_offline, window_period_s
from eyemotion.models.simulate_sessions import SimulationSettings, simulate_session

from eyemotion.session import RECORDING_XDF, Session, create_session_folder
from eyemotion.streams import AUDIO, CAMERA, EMOTION, FACE, GAZE_CLEAN, GAZE_RAW, open_inlet, stream_info

pytestmark = pytest.mark.timeout(240)

SECONDS = 12.0
# recorded LSL time of the first sample: off the window grid, and every sample off the slice edges by half
# an audio sample (a stamp exactly on an edge may fall either side after the replay's shift: no ties)
T0 = 1000.3 + 1 / 32000
RATE = 250.0
FPS = 30.0


def make_session(root: Path, config) -> Path:
    folder = create_session_folder(root, "P001", "20260101T120000", protocol="test", demo=True)
    ts, raw, _ = simulate_recording(SECONDS, RATE, seed=5, screen=config.screen,
                                    conditions=[(2.0, "happiness"), (10.0, None)])
    n_frames = int(SECONDS * FPS)
    write_test_video(folder / "camera.mkv", n_frames=n_frames, fps=FPS, size=(320, 240), face=True, seed=2)
    settings = SimulationSettings(participants=1, clip_s=SECONDS - 2, pause_s=1.0, emotions=("happiness",), seed=3)
    streams, _ = simulate_session(0, settings, config)
    audio = streams.audio[1][: int(SECONDS * 16000)]
    with XdfWriter(folder / RECORDING_XDF) as w:
        w.add_stream(1, stream_info(GAZE_RAW, rate=RATE, namespace="old").as_xml())
        w.write_samples(1, T0 + ts, raw)
        w.add_stream(2, stream_info(CAMERA, rate=FPS, namespace="old").as_xml())
        w.write_samples(2, T0 + np.arange(n_frames) / FPS, np.arange(n_frames, dtype=np.int32)[:, None])
        w.add_stream(3, stream_info(AUDIO, namespace="old").as_xml())
        w.write_samples(3, T0 + np.arange(len(audio)) / 16000, audio[:, None].astype(np.float32))
    return folder


def run(node) -> threading.Thread:
    thread = threading.Thread(target=node.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    return thread


def test_a_replay_recomputed_through_the_nodes_equals_offline_reprocessing(config, tmp_path: Path) -> None:
    folder = make_session(tmp_path, config)
    pipe = ReplayPipeline(folder, config, speed=2.0, predictions="recomputed", nodes=False)
    assert pipe.has_video and {s.name for s in pipe.controller.streams} == {GAZE_RAW.name, CAMERA.name, AUDIO.name}
    pipe.controller.open()
    cfg = pipe.node_config()  # what the supervised nodes get: the inference waits for a lagging face node
    nodes = [EyeSignalNode(cfg, screen=cfg.screen), VideoFrameNode(cfg, folder), InferenceNode(cfg)]
    threads = [run(n) for n in nodes]
    ns = config.lsl.namespace
    try:
        inference = nodes[2]
        deadline = time.monotonic() + 60
        while not {GAZE_CLEAN.name, FACE.name, AUDIO.name} <= inference.connected:
            assert time.monotonic() < deadline, f"the inference node found only {inference.connected}"
            time.sleep(0.1)
        inlet = open_inlet(EMOTION, namespace=ns, timeout=10, processing=0)
        time.sleep(1.0)
        pipe.controller.start()
        assert pipe.controller.wait(60)
        rows, ends = [], []
        quiet = time.monotonic()
        while time.monotonic() - quiet < 4.0:
            data, stamps = inlet.pull_chunk(timeout=0.2)
            if stamps:
                rows += data
                ends += stamps
                quiet = time.monotonic()
    finally:
        for n in nodes:
            n.request_stop()
        for t in threads:
            t.join(10)
        pipe.close()
    live = np.array(rows, float)
    ends = np.array(ends)
    clock0, pos0 = pipe.controller._anchor
    shift = clock0 - (pipe.controller.origin + pos0)
    period = window_period_s(config)
    assert abs(shift / period - round(shift / period)) < 1e-6, "the replay's shift keeps the window grid"
    assert len(ends) >= 10, f"only {len(ends)} predictions"
    assert nodes[1].frames > 0

    # offline reprocessing of the same recording: the same objects on whole arrays
    session = Session.load(folder, dejitter=False)
    gaze = session.stream(GAZE_RAW.name)
    clean = process_recording(gaze.time_stamps, gaze.data, RATE, config.eyesignal, config.screen)
    _columns, face = face_table_from_video(session.camera_segments, config, lambda items, **_: items)
    audio = session.stream(AUDIO.name)
    recorded_ends = ends - shift
    keep = recorded_ends <= face[-1, 0]  # the face stream ends with the video: later windows go without it
    offline = predict_offline(config, recorded_ends[keep], gaze=(clean.timestamps, clean.samples, RATE),
                              face=(face[:, 0], face[:, 1:]), audio=(audio.time_stamps, audio.data[:, 0]))
    assert all(p is not None for p in offline)
    want = np.array([np.asarray(p.sample(), np.float32) for p in offline], float)
    assert keep.sum() >= 8
    np.testing.assert_allclose(live[keep], want, rtol=0, atol=1e-4, equal_nan=True)
    assert live[keep][-3:, -3:].all(), "the last windows use face, gaze and audio"


def test_stream_simulate_starts_the_camera_with_the_face_analysers(config) -> None:
    """`eyemotion stream --simulate` builds the same camera node as a session (one camera node, one
    behaviour): a stream+record session then holds eyemotion_face and serves eyemotion_preview."""
    from eyemotion.acquisition.commands import build_sources
    from eyemotion.inference.features.face import FaceAnalyzer, PreviewAnalyzer

    (camera,) = build_sources(config, ["camera"], simulate=True, truth=None, output_dir=None)
    kinds = {type(a) for a in camera.worker.analyzers}
    assert kinds == {FaceAnalyzer, PreviewAnalyzer}
    assert camera.config.camera.source.endswith(".mp4") and camera.config.camera.loop  # the demo video
    for analyzer in camera.worker.analyzers:
        analyzer.close()
    (bare,) = build_sources(config, ["camera"], simulate=True, truth=None, output_dir=None, face=False)
    assert bare.worker.analyzers == []


def test_recorded_or_recomputed_predictions_choose_the_nodes_and_streams(config, tmp_path: Path) -> None:
    from eyemotion import UserError

    folder = make_session(tmp_path, config)
    recomputed = ReplayPipeline(folder, config, predictions="recomputed", nodes=False)
    names = {c.name: c for c in recomputed.children(tmp_path / "eyemotion.toml")}
    assert set(names) == {"video", "eyesignal", "inference"}
    assert "--no-face" not in names["video"].argv and FACE.name in names["video"].streams
    recorded = ReplayPipeline(folder, config, predictions="recorded", nodes=False)
    names = {c.name: c for c in recorded.children(tmp_path / "eyemotion.toml")}
    assert set(names) == {"video", "eyesignal"}  # the recorded predictions are replayed, not re-computed
    assert "--no-face" in names["video"].argv  # the video serves the preview only
    assert EMOTION not in recorded.expected_streams() and EMOTION in recomputed.expected_streams()
    cfg = recomputed.node_config()
    assert cfg.inference.stale_s >= 15 and cfg.inference.max_lag_s >= 60
    with pytest.raises(UserError, match="recorded or recomputed|recomputed or recorded"):
        ReplayPipeline(folder, config, predictions="live", nodes=False)


def test_the_video_node_finds_each_frame_in_its_segment_after_a_camera_restart() -> None:
    """camera.mkv holds frames 0-99 and camera-1.mkv (after a restart) frames 0-49 again: a replayed frame
    number is found in the segment that keeps the replay's constant stamp shift."""
    from eyemotion.session import VideoSegment

    node = VideoFrameNode.__new__(VideoFrameNode)
    node.segments = [VideoSegment(Path("camera.mkv"), np.arange(100), 10.0 + np.arange(100) / 30),
                     VideoSegment(Path("camera-1.mkv"), np.arange(50), 20.0 + np.arange(50) / 30)]
    node._shift = None
    shift = 500.0
    assert node.locate(99, 10.0 + 99 / 30 + shift) == (0, 99)
    assert node.locate(3, 20.0 + 3 / 30 + shift) == (1, 3)  # frame 3 exists in both: the shift decides
    assert node.locate(4, 20.0 + 4 / 30 + shift) == (1, 4)
    assert node.locate(120, 30.0 + shift) is None
