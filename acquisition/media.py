"""Small real media for the demo and the tests: a video with moving content and WAV files.

`write_test_video` writes a real mp4 with OpenCV (moving shapes, a frame counter, and optionally a real
face photo, scikit-image's `astronaut()`, so that a face detector finds a face).
`write_test_wav` writes a 16-bit WAV: speech-like sound (a glottal pulse train with a wandering pitch
through formant resonators, in syllables and pauses), a tone, or silence. All content is seeded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from eyemotion import UserError

log = logging.getLogger(__name__)

WAV_KINDS = ("speech-like", "tone", "silence")


def _face_patch(height: int) -> np.ndarray:
    """The astronaut's head and shoulders (BGR), scaled to `height` pixels."""
    import cv2
    from skimage import data

    rgb = data.astronaut()[0:300, 90:330]  # head and shoulders of the 512x512 photo
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    width = round(bgr.shape[1] * height / bgr.shape[0])
    return cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)


def write_test_video(
    path: str | Path,
    n_frames: int = 90,
    fps: float = 30.0,
    size: tuple[int, int] = (640, 480),
    *,
    face: bool = False,
    seed: int = 0,
    fourcc: str = "mp4v",
) -> Path:
    """Write `n_frames` frames of `size` (width, height) at `fps` to `path` and return the path.

    Every frame differs: a drifting gradient background, a moving circle and rectangle and the frame
    number. With `face=True` a real face photo slides slowly across the frame.
    """
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
    if not writer.isOpened():
        raise UserError(f"cannot write video {path} with codec {fourcc!r}; pick another codec or path")
    rng = np.random.default_rng(seed)
    colour = tuple(int(c) for c in rng.integers(60, 255, 3))
    xs = np.linspace(0, 255, width, dtype=np.float32)
    patch = _face_patch(int(height * 0.6)) if face else None
    try:
        for i in range(n_frames):
            shift = (i * 4) % 256
            row = ((xs + shift) % 256).astype(np.uint8)
            frame = np.empty((height, width, 3), np.uint8)
            frame[:] = row[None, :, None]
            frame[..., 1] = frame[..., 1] // 2
            if patch is not None:
                ph, pw = patch.shape[:2]
                x0 = int((width - pw) * (0.5 + 0.4 * np.sin(2 * np.pi * i / max(n_frames, 1))))
                y0 = (height - ph) // 2
                frame[y0:y0 + ph, x0:x0 + pw] = patch
            cx = int(width / 2 + width / 3 * np.cos(2 * np.pi * i / 45))
            cy = int(height / 2 + height / 3 * np.sin(2 * np.pi * i / 45))
            cv2.circle(frame, (cx, cy), 30, colour, -1)
            rx = (i * 7) % max(width - 60, 1)
            cv2.rectangle(frame, (rx, 20), (rx + 60, 70), (255 - colour[0], 200, colour[2]), -1)
            cv2.putText(frame, f"{i:05d}", (10, height - 15), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
            writer.write(frame)
    finally:
        writer.release()
    log.debug("wrote %d frames to %s", n_frames, path)
    return path


def speech_like(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Seeded speech-like float32 audio in [-1, 1]: voiced syllables (~4 per second) and pauses."""
    from scipy import signal

    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) + 15 * np.sin(2 * np.pi * 3.1 * t)
    phase = np.cumsum(f0 / rate)
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal cycle
    source = pulses + 0.02 * rng.standard_normal(n)
    voice = np.zeros(n)
    for formant, bandwidth in ((500, 80), (1500, 120), (2500, 160)):
        r = np.exp(-np.pi * bandwidth / rate)
        theta = 2 * np.pi * formant / rate
        voice += signal.lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], source)
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    pauses = (np.sin(2 * np.pi * 0.35 * t + rng.uniform(0, 6)) > -0.6).astype(float)
    out = voice * syllables * pauses + 0.003 * rng.standard_normal(n)
    peak = np.abs(out).max() or 1.0
    return (0.6 * out / peak).astype(np.float32)


def make_test_audio(seconds: float, rate: int = 16000, kind: str = "speech-like", seed: int = 0) -> np.ndarray:
    """The samples `write_test_wav` writes (float32, mono)."""
    if kind not in WAV_KINDS:
        raise UserError(f"unknown test audio kind {kind!r}; use one of {', '.join(WAV_KINDS)}")
    n = round(seconds * rate)
    if kind == "tone":
        return (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(n) / rate)).astype(np.float32)
    if kind == "silence":
        return np.zeros(n, np.float32)
    return speech_like(seconds, rate, seed)


def write_test_wav(path: str | Path, seconds: float, rate: int = 16000, kind: str = "speech-like",
                   *, seed: int = 0) -> Path:
    """Write a mono 16-bit WAV of `seconds` (`kind`: speech-like, tone or silence); return the path."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), make_test_audio(seconds, rate, kind, seed), rate, subtype="PCM_16")
    return path
