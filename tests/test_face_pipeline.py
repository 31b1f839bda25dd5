"""The face pipeline on real photos (scikit-image's astronaut and LFW subset), blank frames, and live over
LSL: FaceAnalyzer / PreviewAnalyzer fed from a real video file read with cv2.VideoCapture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pylsl
import pytest
import skimage.data
from eyemotion.inference.features.face import (
    FaceAnalyzer,
    FacePipeline,
    FaceResult,
    PreviewAnalyzer,
    RateGate,
    decode_preview,
)

from eyemotion.streams import CLASSES, FACE, PREVIEW, open_inlet


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def frame_640x480(image: np.ndarray) -> np.ndarray:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = cv2.resize(image, (480, 480), interpolation=cv2.INTER_AREA)
    return frame


def test_real_photo_face_is_found_with_sane_probabilities(pipeline: FacePipeline, astronaut: np.ndarray) -> None:
    result = pipeline(astronaut)
    assert result.present
    x, y, w, h = result.box  # Eileen Collins' face: about x 170-270, y 60-165 of 512
    assert 0.28 < x < 0.40 and 0.08 < y < 0.18 and 0.14 < w < 0.26 and 0.14 < h < 0.26
    p = result.probabilities
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0, abs=1e-5) and (p >= 0).all()
    assert CLASSES[int(np.argmax(p))] == "happiness"  # she smiles broadly
    assert np.isfinite(result.embedding).all() and result.embedding.std() > 0.01
    sample = result.sample()
    assert len(sample) == FACE.channel_count and sample[FACE.index("face_present")] == 1.0


def test_blank_and_textureless_frames_have_no_face(pipeline: FacePipeline) -> None:
    for frame in (np.zeros((480, 640, 3), np.uint8), np.full((480, 640, 3), 200, np.uint8),
                  cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (480, 640, 3)).astype(np.uint8),
                                   (31, 31), 0)):
        result = pipeline(frame)
        assert not result.present
        sample = np.array(result.sample())
        assert sample[0] == 0 and np.isnan(sample[1:]).all()


def test_lfw_faces_are_found_and_non_faces_mostly_rejected(pipeline: FacePipeline) -> None:
    """scikit-image's LFW subset: 100 real faces and 100 non-face patches (25x25, shown at 200 px)."""
    images = skimage.data.lfw_subset()

    def found(image: np.ndarray) -> bool:
        canvas = np.zeros((300, 300), np.uint8)
        canvas[50:250, 50:250] = cv2.resize((image * 255).astype(np.uint8), (200, 200), interpolation=cv2.INTER_CUBIC)
        return pipeline.detect(canvas) is not None

    faces = sum(found(im) for im in images[:100])
    non_faces = sum(found(im) for im in images[100:])
    assert faces >= 90 and non_faces <= 10, (faces, non_faces)


def test_eye_alignment_follows_a_rotation(pipeline: FacePipeline, astronaut: np.ndarray) -> None:
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    box = pipeline.detect(gray)
    x, y, w, h = box
    upright = pipeline.eye_tilt(gray[y:y + h, x:x + w])
    rotation = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), 6.0, 1.0)  # 6 deg counter-clockwise
    rotated = cv2.warpAffine(gray, rotation, gray.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
    tilted = pipeline.eye_tilt(rotated[y:y + h, x:x + w])
    assert upright != 0.0 and upright - tilted == pytest.approx(6.0, abs=2.5)
    crop, applied = pipeline.crop(gray, box)
    assert crop.shape == (64, 64) and applied == pytest.approx(upright)


def test_rate_gate_keeps_the_average_rate() -> None:
    gate = RateGate(12.0)
    passed = sum(gate(i / 30.0) for i in range(300))  # 10 s of 30 fps
    assert 118 <= passed <= 121
    gate = RateGate(5.0)
    assert sum(gate(i / 30.0) for i in range(300)) in (50, 51)


def test_rate_gate_picks_the_same_frames_when_the_stamps_are_shifted() -> None:
    """A replay shifts every stamp by its clock offset; at 30 fps and 12 Hz half the due times fall exactly
    on a frame, and the gate must not let float rounding pick a different frame there."""
    stamps = 1000.3 + np.arange(360) / 30.0

    def picked(ts: np.ndarray) -> list[int]:
        gate = RateGate(12.0)
        return [i for i, t in enumerate(ts) if gate(float(t))]

    want = picked(stamps)
    for shift in (17511.0, 270517.0, 41932.5, 637324.5, 123.25, 5e5 + 1 / 3):
        assert picked(stamps + shift) == want, f"shift {shift}"


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


def test_analyzers_publish_face_and_preview_from_a_video(config, tmp_path: Path, astronaut: np.ndarray) -> None:
    video = tmp_path / "camera.mp4"
    face_frame = frame_640x480(astronaut)
    write_video(video, [face_frame] * 30 + [np.zeros((480, 640, 3), np.uint8)] * 30)
    face, preview = FaceAnalyzer(config), PreviewAnalyzer(config)
    face_inlet = open_inlet(FACE, namespace=config.lsl.namespace, timeout=15)  # generous on a busy machine
    preview_inlet = open_inlet(PREVIEW, namespace=config.lsl.namespace, timeout=15)
    face_inlet.open_stream(timeout=5)
    preview_inlet.open_stream(timeout=5)
    capture = cv2.VideoCapture(str(video))
    t0, results, index = pylsl.local_clock(), [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        result = face(frame, t0 + index / 30.0, index)
        preview(frame, t0 + index / 30.0, index)
        if result is not None:
            results.append((index, result))
        index += 1
    capture.release()
    assert index == 60
    face_samples, face_times = [], []
    preview_samples = []
    deadline = pylsl.local_clock() + 5
    while (len(face_samples) < len(results) or len(preview_samples) < 10) and pylsl.local_clock() < deadline:
        s, t = face_inlet.pull_chunk(timeout=0.2)
        face_samples += s
        face_times += t
        p, _ = preview_inlet.pull_chunk(timeout=0.05)
        preview_samples += p
    face.close()
    preview.close()
    assert 22 <= len(results) <= 26  # 2 s of video at [face] rate_hz = 12
    assert len(face_samples) == len(results)
    present = np.array(face_samples)[:, FACE.index("face_present")]
    expected = np.array([1.0 if i < 30 else 0.0 for i, _ in results])
    np.testing.assert_array_equal(present, expected)
    np.testing.assert_allclose(face_times, [t0 + i / 30.0 for i, _ in results], atol=1e-6)
    probs = np.array(face_samples)[present == 1][:, FACE.index("fer_neutral"):FACE.index("fer_surprise") + 1]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert 10 <= len(preview_samples) <= 11  # 2 s at 5 Hz
    image = decode_preview(preview_samples[0][0])
    assert image.shape == (120, 160, 3) and image.mean() > 20


def test_absent_result_layout() -> None:
    sample = FaceResult.absent().sample()
    assert len(sample) == FACE.channel_count and sample[0] == 0.0
