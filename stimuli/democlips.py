"""Generated demo clips: one short labelled clip per emotion, with picture and sound.

Real studies bring validated film clips (see the README); these exist so that the demo and the tests run
without any. Each clip's look and sound follow its emotion with a *synthetic* design (ours, not taken
from a study): overall brightness differs between emotions (so the simulated tracker's pupil light
response is plausible), as do colour, motion and the tone pattern. Frames are drawn with numpy/OpenCV,
the sound is synthesised, and ffmpeg encodes both into an H.264 + AAC mp4.

Clips are made on first use into a cache folder (`$EYEMOTION_CACHE` or `~/.cache/eyemotion`), never
committed to the repository.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eyemotion import UserError
from eyemotion.streams import CLASSES

log = logging.getLogger(__name__)

AUDIO_RATE = 48000
VERSION = 2  # bump when the look, sound or length changes, so caches regenerate
#: Demo clip length: the 4-s model window ([features] emert_window_s, crossmodal_window_s) plus 2 s, so
#: `eyemotion dataset build` on a demo session gets 2-3 labelled windows per clip (ends every 1 s).
DEMO_CLIP_S = 6.0


@dataclass(frozen=True)
class ClipStyle:
    """How one emotion's demo clip looks and sounds."""

    colour: tuple[int, int, int]  # BGR background
    brightness: float  # 0..1 overall luminance
    motion: str  # drift | bounce | fall | shake | wobble | flash | burst
    tones_hz: tuple[float, ...]  # notes played in turn
    note_s: float  # length of each note
    wave: str  # sine | square | noisy


STYLES: dict[str, ClipStyle] = {
    "neutral": ClipStyle((128, 128, 128), 0.50, "drift", (220.0,), 1.0, "sine"),
    "happiness": ClipStyle((60, 200, 255), 0.80, "bounce", (523.3, 659.3, 784.0), 0.18, "sine"),
    "sadness": ClipStyle((120, 50, 20), 0.22, "fall", (220.0, 261.6, 329.6), 0.8, "sine"),
    "anger": ClipStyle((20, 20, 200), 0.40, "shake", (110.0, 116.5), 0.12, "square"),
    "disgust": ClipStyle((40, 110, 90), 0.35, "wobble", (185.0, 261.6), 0.35, "noisy"),
    "fear": ClipStyle((30, 10, 10), 0.10, "flash", (65.4, 880.0), 0.5, "noisy"),
    "surprise": ClipStyle((230, 230, 230), 0.90, "burst", (392.0, 1568.0), 0.25, "sine"),
}


def default_cache_dir() -> Path:
    root = os.environ.get("EYEMOTION_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "eyemotion"


def _frame(style: ClipStyle, t: float, duration: float, size: tuple[int, int], label: str,
           rng: np.random.Generator) -> np.ndarray:
    w, h = size
    base = np.array(style.colour, float)
    level = style.brightness
    if style.motion == "flash" and (t % 1.3) < 0.08:  # sudden bright flashes in the dark
        level = 0.9
    if style.motion == "burst":  # dim, then a sudden bright burst after 40 % of the clip
        level = 0.3 if t < 0.4 * duration else style.brightness
    scale = level / max(float(base.mean()) / 255.0, 1e-3)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.clip(base * scale, 0, 255).astype(np.uint8)
    fg = tuple(int(min(255, c * 0.5 + 127)) for c in style.colour)
    cx, cy, r = w / 2, h / 2, h / 6
    if style.motion == "drift":
        cx += w / 4 * math.sin(2 * math.pi * t / duration)
    elif style.motion == "bounce":
        cy = h * 0.75 - abs(math.sin(2 * math.pi * t * 1.2)) * h * 0.45
    elif style.motion == "fall":
        cy = (t / duration) * h * 1.2 - r
    elif style.motion == "shake":
        cx += rng.normal(0, w / 25)
        cy += rng.normal(0, h / 25)
    elif style.motion == "wobble":
        r *= 1 + 0.3 * math.sin(2 * math.pi * t * 2.5)
    elif style.motion == "burst":
        r *= 0.5 if t < 0.4 * duration else 0.5 + 3.0 * (t - 0.4 * duration) / duration
    import cv2

    cv2.circle(img, (int(cx), int(cy)), max(int(r), 2), fg, -1, lineType=cv2.LINE_AA)
    cv2.putText(img, label, (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _sound(style: ClipStyle, duration: float, rng: np.random.Generator) -> np.ndarray:
    n = round(duration * AUDIO_RATE)
    t = np.arange(n) / AUDIO_RATE
    note = (t // style.note_s).astype(int) % len(style.tones_hz)
    freq = np.asarray(style.tones_hz)[note]
    phase = 2 * np.pi * np.cumsum(freq) / AUDIO_RATE
    wave = np.sin(phase)
    if style.wave == "square":
        wave = np.sign(wave) * 0.6
    elif style.wave == "noisy":
        wave = 0.7 * wave + 0.3 * rng.normal(0, 0.5, n)
    within = (t % style.note_s) / style.note_s
    envelope = np.minimum(1.0, within * 20) * np.minimum(1.0, (1 - within) * 20)  # 5 % ramps, no clicks
    fade = np.minimum(1.0, np.minimum(t, duration - t) / 0.05)
    mono = (0.3 * wave * envelope * fade).astype(np.float32)
    return np.stack([mono, mono], axis=1)


def make_clip(emotion: str, path: Path, *, seconds: float = DEMO_CLIP_S, fps: float = 25.0,
              size: tuple[int, int] = (320, 240), seed: int = 0) -> Path:
    """Write one demo clip (H.264 video + AAC audio) for `emotion` to `path`."""
    if emotion not in STYLES:
        raise UserError(f"unknown emotion {emotion!r}; use one of {', '.join(CLASSES)}")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise UserError("ffmpeg not found; install it (setup.sh does) to make demo clips")
    import soundfile

    style = STYLES[emotion]
    rng = np.random.default_rng([seed, CLASSES.index(emotion)])
    n_frames = round(seconds * fps)
    duration = n_frames / fps
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="eyemotion-clip-") as tmp:
        wav = Path(tmp) / "audio.wav"
        soundfile.write(wav, _sound(style, duration, rng), AUDIO_RATE, subtype="PCM_16")
        out = Path(tmp) / "clip.mp4"
        cmd = [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{size[0]}x{size[1]}",
               "-r", f"{fps:g}", "-i", "-", "-i", str(wav), "-c:v", "libx264", "-preset", "veryfast",
               "-pix_fmt", "yuv420p", "-g", str(int(fps)), "-c:a", "aac", "-b:a", "96k", "-shortest",
               "-movflags", "+faststart", str(out)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for i in range(n_frames):
                proc.stdin.write(_frame(style, i / fps, duration, size, emotion, rng).tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise UserError(f"ffmpeg could not encode {path.name}: {err.strip()[-200:]}")
        shutil.move(out, path)
    return path


def make_demo_clips(out_dir: str | Path, *, seconds: float = DEMO_CLIP_S, fps: float = 25.0,
                    size: tuple[int, int] = (320, 240), seed: int = 0, progress: bool = False) -> Path:
    """Write one clip per emotion plus `conditions.csv` and `manifest.json` into `out_dir`, atomically
    (`eyemotion.outputs.staged_output`: the set appears complete, or not at all)."""
    from eyemotion.outputs import staged_output

    final = Path(out_dir)
    with staged_output(final) as out:
        _write_demo_clips(out, seconds, fps, size, seed, progress)
    return final


def _write_demo_clips(out: Path, seconds: float, fps: float, size: tuple[int, int], seed: int,
                      progress: bool) -> None:
    emotions = list(CLASSES)
    if progress:
        from tqdm import tqdm

        emotions = tqdm(emotions, desc="demo clips", unit="clip")
    for emotion in emotions:
        make_clip(emotion, out / f"{emotion}.mp4", seconds=seconds, fps=fps, size=size, seed=seed)
    with (out / "conditions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "clip", "emotion", "notes"])
        for emotion in CLASSES:
            writer.writerow([f"demo_{emotion}", f"{emotion}.mp4", emotion, "generated demo clip"])
    manifest = {"version": VERSION, "seconds": seconds, "fps": fps, "size": list(size), "seed": seed,
                "clips": {e: f"{e}.mp4" for e in CLASSES}, "styles": {e: asdict(s) for e, s in STYLES.items()},
                "note": "synthetic clips made by eyemotion.stimuli.democlips; not validated stimuli"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


def ensure_demo_clips(cache_dir: str | Path | None = None) -> Path:
    """The demo clip folder, generated on first use (about 1 s per clip)."""
    folder = Path(cache_dir) if cache_dir else default_cache_dir() / f"demo-clips-v{VERSION}"
    manifest = folder / "manifest.json"
    if manifest.is_file() and all((folder / f"{e}.mp4").is_file() for e in CLASSES):
        return folder
    log.info("generating demo clips into %s (first use)", folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-clips-", dir=folder.parent))
    try:
        make_demo_clips(staging)
        try:
            staging.rename(folder)
        except OSError:  # another process finished first (or the folder exists half-made)
            if not manifest.is_file():
                shutil.rmtree(folder, ignore_errors=True)
                staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
