"""The camera node on real generated video files, read by real LSL inlets; its bad-input errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import numpy as np
import pylsl
import pytest
from eyemotion.acquisition.camera import CameraError, CameraNode, CameraSource, list_cameras, open_capture
from eyemotion.acquisition.media import write_test_video

from eyemotion.config import CameraConfig
from eyemotion.streams import CAMERA, MARKERS, check_info, open_inlet

FPS = 30.0


def count_frames_cv2(path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def count_frames_ffprobe(path) -> int | None:
    if shutil.which("ffprobe") is None:
        return None
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def pull_all(inlet: pylsl.StreamInlet, samples: list, stamps: list, wait: float = 0.2) -> None:
    chunk, ts = inlet.pull_chunk(timeout=wait)
    samples.extend(chunk)
    stamps.extend(ts)


def start(node: CameraNode) -> threading.Thread:
    """Run an opened node in a thread, once a consumer is connected (so that no sample is missed)."""
    deadline = time.monotonic() + 5
    while not node._outlet.have_consumers() and time.monotonic() < deadline:
        time.sleep(0.01)
    thread = threading.Thread(target=node.run, kwargs={"duration": 60, "handle_signals": False}, daemon=True)
    thread.start()
    return thread


def camera_config(config, source, **kw):
    return config.replace(camera=CameraConfig(source=str(source), **kw))


def test_file_source_frames_match_video_and_stream(tmp_path, config):
    video = write_test_video(tmp_path / "in.mp4", n_frames=75, fps=FPS, size=(640, 480))
    seen: list[int] = []
    node = CameraNode(camera_config(config, video), tmp_path / "session",
                      analyzers=[lambda frame, ts, i: seen.append((frame.shape, i))])
    node.open()
    inlet = open_inlet(CAMERA, namespace=config.lsl.namespace, timeout=5)
    inlet.open_stream(timeout=5)  # subscribe now, so that the first frame is not missed
    assert check_info(CAMERA, inlet.info()) == []
    assert inlet.info().nominal_srate() == FPS
    thread = start(node)
    samples, stamps = [], []
    while thread.is_alive():
        pull_all(inlet, samples, stamps)
    thread.join()
    pull_all(inlet, samples, stamps, wait=0.5)

    written = node.video_path
    assert node.frames == 75  # the whole file, then a clean stop (no loop)
    assert [int(s[0]) for s in samples] == list(range(75))  # sample i is frame index i
    assert count_frames_cv2(written) == len(samples)
    probed = count_frames_ffprobe(written)
    if probed is not None:
        assert probed == len(samples)
    intervals = np.diff(stamps)
    assert np.all(intervals > 0)
    assert abs(np.median(intervals) - 1 / FPS) < 0.25 / FPS  # paced at the file's fps
    # the analyser got real frames, never more than there were
    assert seen and all(shape == (480, 640, 3) for shape, _ in seen) and len(seen) <= 75


def test_file_vanishing_marks_gap_and_keeps_video(tmp_path, config):
    video = write_test_video(tmp_path / "in.mp4", n_frames=60, fps=FPS, size=(320, 240))
    cfg = camera_config(config, video, loop=True, reconnect_max_s=0.5)
    node = CameraNode(cfg, tmp_path / "session")
    node.open()
    frames = open_inlet(CAMERA, namespace=config.lsl.namespace, timeout=5)
    markers = open_inlet(MARKERS, namespace=config.lsl.namespace, timeout=5)
    frames.open_stream(timeout=5)
    markers.open_stream(timeout=5)
    thread = start(node)
    samples, stamps, marks = [], [], []

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pull_all(frames, samples, stamps, wait=0.05)
            chunk, _ = markers.pull_chunk(timeout=0.0)
            marks.extend(json.loads(m[0]) for m in chunk)

    pump(1.0)
    hidden = video.rename(tmp_path / "unplugged.mp4")
    pump(1.5)
    before_restore = len(samples)
    hidden.rename(video)
    deadline = time.monotonic() + 10
    while not any(m["event"] == "device_restored" for m in marks) and time.monotonic() < deadline:
        pump(0.2)
    pump(0.8)
    node.request_stop()
    thread.join(10)
    pump(0.3)

    events = [m["event"] for m in marks]
    assert events[:2] == ["device_lost", "device_restored"], events
    lost, restored = marks[0], marks[1]
    assert lost["source"] == "camera" and lost["reason"] == "file disappeared"
    assert restored["attempts"] >= 2  # it retried while the file was gone
    assert restored["gap_s"] > 1.0
    assert len(samples) > before_restore  # frames flow again after the gap
    assert [int(s[0]) for s in samples] == list(range(len(samples)))  # no index skipped or repeated
    assert count_frames_cv2(node.video_path) == node.frames == len(samples)  # camera.mkv intact
    assert node.gaps == 1


def test_a_restarted_node_writes_the_next_segment_and_a_killed_one_stays_readable(tmp_path, config, namespace):
    """SIGKILL the camera node mid-recording: camera.mkv keeps its frames (an MP4 would have no index), and
    the restarted node writes camera-1.mkv, never over the first; camera_segments.csv lists both."""
    import csv
    import os
    import signal
    import sys

    from eyemotion.session import CAMERA_SEGMENTS

    video = write_test_video(tmp_path / "in.mp4", n_frames=60, fps=FPS, size=(640, 480))
    session = tmp_path / "session"
    cfg = tmp_path / "eyemotion.toml"
    cfg.write_text(f'[lsl]\nnamespace = "{namespace}"\n[camera]\nsource = "{video}"\nloop = true\n')
    cmd = [sys.executable, "-m", "eyemotion.cli", "--config", str(cfg), "node", "camera", "--session", str(session)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        inlet = open_inlet(CAMERA, namespace=namespace, timeout=30)
        inlet.open_stream(timeout=10)
        samples, stamps = [], []
        deadline = time.monotonic() + 30
        while len(samples) < 90 and time.monotonic() < deadline:
            pull_all(inlet, samples, stamps)
        assert len(samples) >= 90, proc.stderr.read() if proc.poll() is not None else "too few frames"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    first = session / "camera.mkv"
    kept = count_frames_cv2(first)
    assert kept >= 60  # every frame but those still in the encoder's buffer at the kill (about a second)
    node = CameraNode(camera_config(config, video), session)  # the restart
    node.open()
    node.close()
    assert node.video_path == session / "camera-1.mkv"
    assert count_frames_cv2(first) == kept  # untouched
    with open(session / CAMERA_SEGMENTS, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ["camera.mkv", "camera-1.mkv"]
    assert float(rows[0]["started_lsl"]) < stamps[0] < float(rows[1]["started_lsl"])


def test_missing_video_file_is_a_user_error(tmp_path, config):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(CameraError, match="not found") as err:
        CameraNode(camera_config(config, missing), tmp_path).open()
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "camera.mkv").exists()


def test_camera_index_that_does_not_open_names_it_and_lists_the_others(config):
    openable = [c["index"] for c in list_cameras()]
    bad = max(openable, default=-1) + 9  # beyond what list_cameras probes
    with pytest.raises(CameraError) as err:
        open_capture(CameraSource.parse(str(bad)), camera_config(config, bad))
    message = str(err.value)
    assert f"camera {bad} cannot be opened" in message
    if openable:
        assert "cameras that open: " + ", ".join(map(str, openable)) in message
    else:
        assert "no camera opens" in message


def test_url_that_does_not_open_is_a_user_error(config):
    url = "http://127.0.0.1:9/missing.mjpg"  # the discard port: nothing serves video there
    with pytest.raises(CameraError, match="does not open") as err:
        open_capture(CameraSource.parse(url), camera_config(config, url, open_timeout_s=2.0))
    assert url in str(err.value)

