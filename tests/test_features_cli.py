"""`eyemotion features SESSION` on a recorded session (an XDF written like LabRecorder, plus camera.mkv)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from eyemotion.acquisition.replay import XdfWriter
from eyemotion.inference.features.gaze_stats import FEATURE_NAMES

from eyemotion.cli import main
from eyemotion.session import CAMERA_SEGMENTS, CAMERA_VIDEO, RECORDING_XDF, Session, create_session_folder
from eyemotion.streams import AUDIO, CAMERA, EVENT_CODES, GAZE_CLEAN, stream_info

T0 = 5000.0


def make_session(root: Path, *, audio: bool = True, video: bool = True, gaze: bool = True) -> Path:
    folder = create_session_folder(root, "P001", "20261123T100000")
    rng = np.random.default_rng(0)
    with XdfWriter(folder / RECORDING_XDF) as w:
        if gaze:
            n = 6 * 120
            data = np.zeros((n, GAZE_CLEAN.channel_count))
            data[:, GAZE_CLEAN.index("angle_x")] = np.cumsum(rng.normal(0, 0.05, n))
            data[:, GAZE_CLEAN.index("pupil")] = 3 + 0.1 * np.sin(np.arange(n) / 50)
            data[:, GAZE_CLEAN.index("event")] = EVENT_CODES["fixation"]
            data[:, GAZE_CLEAN.index("eye_openness")] = 10.0
            data[:, GAZE_CLEAN.index("eye_distance")] = 650.0
            data[:, GAZE_CLEAN.index("validity")] = 3
            w.add_stream(1, stream_info(GAZE_CLEAN, rate=120.0).as_xml())
            w.write_samples(1, T0 + np.arange(n) / 120.0, data)
        if audio:
            n = 6 * 16000
            w.add_stream(2, stream_info(AUDIO).as_xml())
            w.write_samples(2, T0 + np.arange(n) / 16000.0, rng.normal(0, 0.05, (n, 1)).astype(np.float32))
        if video:
            frames = 45
            writer = cv2.VideoWriter(str(folder / CAMERA_VIDEO), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (640, 480))
            face = np.zeros((480, 640, 3), np.uint8)
            face[:, 80:560] = cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), (480, 480))
            for i in range(frames):
                writer.write(face if i < 30 else np.zeros_like(face))
            writer.release()
            w.add_stream(3, stream_info(CAMERA, rate=15.0).as_xml())
            w.write_samples(3, T0 + np.arange(frames) / 15.0, np.arange(frames, dtype=float)[:, None])
    return folder


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


def test_features_command_writes_the_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_session(tmp_path)
    before = (folder / RECORDING_XDF).read_bytes()
    assert main(["features", str(folder)]) == 0
    out = folder / "features"
    cols, gaze = read_csv(out / "gaze_statistics.csv")
    assert cols[:2] == ["time", "valid"] and cols[2:] == list(FEATURE_NAMES)
    assert len(gaze) == pytest.approx((6 - 1) / 0.1, abs=2) and gaze[:, 1].all()
    assert np.isfinite(gaze[:, 2:]).all()
    cols, audio = read_csv(out / "audio_egemaps.csv")
    assert cols[:5] == ["time", "valid", "speech", "voiced_ratio", "level_dbfs"] and len(cols) == 5 + 88
    assert len(audio) == 6 and audio[:, 1].all()  # 3-s windows every 0.5 s ([features] defaults) over 6 s of audio
    cols, face = read_csv(out / "face.csv")
    assert cols[:2] == ["time", "face_present"] and len(face) == pytest.approx(3 * 12, abs=2)
    present = face[:, 1]
    assert present[face[:, 0] < T0 + 1.9].all() and not present[face[:, 0] > T0 + 2.1].any()
    summary = json.loads((out / "features.json").read_text())
    assert set(summary["tables"]) == {"gaze_statistics.csv", "audio_egemaps.csv", "face.csv"}
    assert summary["tables"]["face.csv"]["source"] == "camera.mkv"
    assert (folder / RECORDING_XDF).read_bytes() == before  # the recording is never touched
    assert "wrote" in capsys.readouterr().out


def test_features_command_refuses_a_session_without_usable_streams(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = create_session_folder(tmp_path, "P002", "20261123T110000")
    with XdfWriter(folder / RECORDING_XDF) as w:
        w.add_stream(1, stream_info(CAMERA, rate=15.0).as_xml())
        w.write_samples(1, T0 + np.arange(10) / 15.0, np.arange(10, dtype=float)[:, None])
    assert main(["features", str(folder)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to compute" in err
    assert main(["features", str(tmp_path / "nope")]) != 0
    assert "does not exist" in capsys.readouterr().err


def test_features_help_documents_the_task() -> None:
    out = subprocess.run([sys.executable, "-m", "eyemotion.cli", "features", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "103" in out and "eGeMAPS" in out and "SESSION" in out


def test_camera_segments_pair_each_video_with_the_samples_recorded_while_it_was_written(tmp_path: Path) -> None:
    """A camera node restarted mid-session: camera.mkv (recording began at its frame 5), then camera-1.mkv.
    Each frame of the face table sits at the stamp of its own sample, in its own file."""
    folder = create_session_folder(tmp_path, "P001", "20261123T110000")
    face = np.zeros((480, 640, 3), np.uint8)
    face[:, 80:560] = cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), (480, 480))
    blank = np.zeros_like(face)
    for name, frames in (("camera.mkv", [blank] * 5 + [face] * 25), ("camera-1.mkv", [face] * 15 + [blank] * 15)):
        writer = cv2.VideoWriter(str(folder / name), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (640, 480))
        for frame in frames:
            writer.write(frame)
        writer.release()
    first = T0 + np.arange(5, 30) / 15.0  # frames 0-4 were captured before LabRecorder connected
    second = T0 + 10 + np.arange(30) / 15.0
    (folder / CAMERA_SEGMENTS).write_text(f"file,started_lsl,fps,width,height\ncamera.mkv,{T0 - 1},15,640,480\n"
                                          f"camera-1.mkv,{T0 + 9.5},15,640,480\n")
    with XdfWriter(folder / RECORDING_XDF) as w:
        w.add_stream(3, stream_info(CAMERA, rate=15.0).as_xml())
        w.write_samples(3, np.concatenate([first, second]),
                        np.concatenate([np.arange(5, 30), np.arange(30)]).astype(float)[:, None])
    segments = Session.load(folder, dejitter=False).camera_segments
    assert [s.path.name for s in segments] == ["camera.mkv", "camera-1.mkv"]
    assert segments[0].frame_index.tolist() == list(range(5, 30)) and segments[1].frame_index.tolist() == list(range(30))
    np.testing.assert_allclose(segments[1].stamps, second, rtol=0, atol=1e-9)
    assert main(["features", str(folder)]) == 0
    _, table = read_csv(folder / "features" / "face.csv")
    times, present = table[:, 0], table[:, 1].astype(bool)
    assert times.min() >= first[0] - 1e-4 and np.all(np.diff(times) > 0)  # the CSV keeps 5 decimals
    assert present[times < T0 + 3].all()  # camera.mkv frames 5-29: the face
    assert present[(times > T0 + 9) & (times < second[14] + 1e-4)].all()
    assert not present[times > second[15] - 1e-4].any()  # camera-1.mkv frames 15-29: blank
