"""Clip audio, played separately from the picture and started at the clip's first flip.

Why separately: PsychoPy 2026.2's `MovieStim` plays movie sound either through ffpyplayer's SDL2
output, which PsychoPy itself documents as not precisely synchronised, or through a `psychopy.sound`
backend (`audioLib='ptb'`/`'sounddevice'`), which in this version fails in the constructor
(`AttributeError: _audioLib`). So the runner mutes the movie (`SDL_AUDIODRIVER=dummy`, volume 0),
extracts the audio track once with ffmpeg (float WAV, cached next to the clip in a temp folder), and
plays it with `sounddevice` on an output stream that is already running (emitting silence) before the
clip starts: the onset flip's callback flips a flag, and the next audio block carries the first sample.
The stream's DAC time of that sample, mapped to LSL time, is the measured audio onset; trials.csv
records it next to the clip onset (`audio_lag_ms`).

No sound card (CI, Xvfb): `null_alsa_config()` writes an ALSA configuration whose default PCM is the
`null` plugin; with `ALSA_CONFIG_PATH` pointing at it (before PortAudio starts), sounddevice gets a
working output device that discards the samples, so the real playback path still runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import pylsl

from eyemotion import UserError

log = logging.getLogger(__name__)

_NULL_ALSA = """# eyemotion: default ALSA output = the null plugin (no sound card needed)
pcm.!default { type plug slave { pcm "eyemotion_null" channels 2 rate 48000 } }
pcm.eyemotion_null { type null }
ctl.!default { type hw card 0 }
"""


def null_alsa_config() -> Path:
    """Write (once) an ALSA config that includes the system one and makes `null` the default output."""
    path = Path(tempfile.gettempdir()) / "eyemotion-alsa-null.conf"
    system = next((p for p in ("/usr/share/alsa/alsa.conf", "/etc/alsa/alsa.conf") if Path(p).is_file()), None)
    text = (f"<{system}>\n" if system else "") + _NULL_ALSA
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def use_null_audio() -> None:
    """Route this process's (and its children's) ALSA output to the null device; call before PortAudio."""
    os.environ["ALSA_CONFIG_PATH"] = str(null_alsa_config())


def extract_audio(clip: Path, cache_dir: Path | None = None) -> Path | None:
    """The clip's audio track as a float32 WAV (cached by the clip's path, size and mtime); None if silent."""
    stat = clip.stat()
    key = hashlib.sha256(f"{clip.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = cache_dir or Path(tempfile.gettempdir()) / "eyemotion-clip-audio"
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / f"{clip.stem}-{key}.wav"
    if wav.is_file():
        return wav
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise UserError("ffmpeg not found; install it (setup.sh does) to play clip audio")
    tmp = wav.with_suffix(f".{os.getpid()}.tmp.wav")
    proc = subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(clip), "-vn", "-ac", "2", "-ar", "48000",
                           "-c:a", "pcm_f32le", str(tmp)], capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        if "does not contain any stream" in proc.stderr or "Output file #0 does not contain" in proc.stderr:
            return None
        raise UserError(f"cannot extract the audio of {clip.name}: {proc.stderr.strip()[-200:]}")
    tmp.replace(wav)
    return wav


def output_available(device: str = "") -> bool:
    """Whether sounddevice sees an output device (the named one, or a default)."""
    try:
        import sounddevice as sd

        sd.query_devices(device or None, kind="output")
        return True
    except Exception:  # noqa: BLE001 - PortAudio errors of every kind mean "no usable output"
        return False


class ClipAudio:
    """Plays one clip's audio on a stream that runs before the clip; `trigger()` starts the samples."""

    def __init__(self, wav: Path, device: str = "", blocksize: int = 256) -> None:
        import sounddevice as sd
        import soundfile

        data, rate = soundfile.read(str(wav), dtype="float32", always_2d=True)
        self.samples = data
        self.rate = rate
        self.duration_s = len(data) / rate
        self._pos = 0
        self._playing = False
        self._paused = False
        self.onset_lsl: float | None = None  # LSL time the first sample reaches the DAC
        self._lock = threading.Lock()
        try:
            self.stream = sd.OutputStream(samplerate=rate, channels=data.shape[1], dtype="float32",
                                          device=device or None, blocksize=blocksize, latency="low",
                                          callback=self._callback)
            self.stream.start()
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"audio output {device or 'default'!r} cannot play the clip audio ({exc}); "
                            "set [stimuli] audio_device, or audio = 'off'") from None

    def _callback(self, out: np.ndarray, frames: int, time_info, status) -> None:
        with self._lock:
            if not self._playing or self._paused:
                out.fill(0)
                return
            if self.onset_lsl is None:
                ahead = max(time_info.outputBufferDacTime - time_info.currentTime, 0.0)
                self.onset_lsl = pylsl.local_clock() + ahead
            chunk = self.samples[self._pos:self._pos + frames]
            out[:len(chunk)] = chunk
            out[len(chunk):] = 0
            self._pos += len(chunk)

    def trigger(self, _flip_lsl: float | None = None) -> None:
        """Start the samples (called from the onset flip's callback)."""
        with self._lock:
            self._playing = True

    def pause(self, state: bool = True) -> None:
        with self._lock:
            self._paused = state

    @property
    def finished(self) -> bool:
        return self._pos >= len(self.samples)

    def close(self) -> None:
        """Stop and close the stream and let go of the samples. A sounddevice stream and its callback form a
        reference cycle that holds this object until Python's rare full collection; without the release each
        clip's samples (about 1 MB per 3 s) waited for it, and the 30-min soak's runner grew 6 %."""
        if self.stream is None:
            return
        try:
            self.stream.stop()
            self.stream.close()
        except Exception:
            log.debug("audio stream close failed", exc_info=True)
        with self._lock:
            self.stream = None
            self.samples = self.samples[:0].copy()  # not a view, which would keep the whole array
