"""eGeMAPS audio features (000_e9deb5c9c21c243c.txt, Sec. 3.5.3: the 88 eGeMAPSv02 functionals from
openSMILE) on sliding windows of the 16 kHz eyemotion_audio stream, LLD sequences, and voice activity.

openSMILE (the `opensmile` package) is free for research and education only; commercial use needs a
licence from audEERING.

Voice activity per window: voiced share = VoicedSegmentsPerSec x MeanVoicedSegmentLengthSec (two of the
88 functionals), and the window's RMS level in dBFS. A window is speech when the voiced share reaches
`min_voiced_ratio` and the level exceeds `min_level_dbfs`; otherwise the audio modality is absent.
A window missing more than 10% of its samples (a gap in the stream) is invalid: NaN features, valid=0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from eyemotion.config import FeaturesConfig

from .windows import FeatureWindows, SlidingBuffer

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
N_EGEMAPS = 88
SIDE_COLUMNS = ("speech", "voiced_ratio", "level_dbfs")
_MIN_COMPLETE = 0.9


def _smile(level: str):
    import opensmile

    feature_level = {"functionals": opensmile.FeatureLevel.Functionals,
                     "lld": opensmile.FeatureLevel.LowLevelDescriptors}[level]
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=feature_level)


def level_dbfs(signal: np.ndarray) -> float:
    """RMS level of a [-1, 1] signal in dB full scale (-inf for digital silence, floored at -200)."""
    rms = float(np.sqrt(np.mean(np.square(signal, dtype=np.float64)))) if len(signal) else 0.0
    return 20 * np.log10(max(rms, 1e-10))


@dataclass(frozen=True)
class AudioSettings:
    window_s: float = 4.0
    hop_s: float = 1.0
    min_voiced_ratio: float = 0.1
    min_level_dbfs: float = -50.0

    @classmethod
    def from_config(cls, cfg: FeaturesConfig) -> AudioSettings:
        return cls(cfg.audio_window_s, cfg.audio_hop_s, cfg.vad_min_voiced_ratio, cfg.vad_min_level_dbfs)


class EgemapsFeatures:
    """Streaming extractor: push 16 kHz eyemotion_audio chunks, get eGeMAPS functionals per window."""

    def __init__(self, settings: AudioSettings = AudioSettings()) -> None:
        self.settings = settings
        self._smile = _smile("functionals")
        self.names: tuple[str, ...] = tuple(self._smile.feature_names)
        if len(self.names) != N_EGEMAPS:
            raise RuntimeError(f"opensmile eGeMAPSv02 gave {len(self.names)} functionals, expected {N_EGEMAPS}")
        self._voiced = (self.names.index("VoicedSegmentsPerSec"), self.names.index("MeanVoicedSegmentLengthSec"))
        self._buffer = SlidingBuffer(settings.window_s, settings.hop_s, 1)

    def functionals(self, signal: np.ndarray) -> np.ndarray:
        """The 88 functionals of one mono 16 kHz signal."""
        return self._smile.process_signal(np.asarray(signal, np.float32), SAMPLE_RATE).to_numpy()[0]

    def voice_activity(self, values: np.ndarray, signal: np.ndarray) -> tuple[bool, float, float]:
        voiced = float(values[self._voiced[0]] * values[self._voiced[1]])
        level = level_dbfs(signal)
        speech = voiced >= self.settings.min_voiced_ratio and level > self.settings.min_level_dbfs
        return speech, voiced, level

    def push(self, timestamps: np.ndarray, samples: np.ndarray) -> FeatureWindows:
        """Add samples (per-sample LSL timestamps); return the features of each completed window."""
        samples = np.asarray(samples, float).reshape(len(timestamps), -1)[:, 0]
        ends, rows, valid, side = [], [], [], []
        for end, _times, window in self._buffer.push(timestamps, samples):
            signal = window[:, 0]
            ok = len(signal) >= _MIN_COMPLETE * self.settings.window_s * SAMPLE_RATE
            values = self.functionals(signal) if ok else np.full(N_EGEMAPS, np.nan)
            speech, voiced, level = self.voice_activity(values, signal) if ok else (False, np.nan, np.nan)
            ends.append(end)
            rows.append(values)
            valid.append(ok)
            side.append((float(speech), voiced, level))
        if not ends:
            return FeatureWindows.empty(self.names, SIDE_COLUMNS)
        side_arr = np.array(side)
        return FeatureWindows(self.names, np.array(ends), np.vstack(rows), np.array(valid),
                              {k: side_arr[:, i] for i, k in enumerate(SIDE_COLUMNS)})


def egemaps_windows(timestamps: np.ndarray, samples: np.ndarray,
                    settings: AudioSettings = AudioSettings()) -> FeatureWindows:
    """Offline: the same streaming object on a whole recording."""
    return EgemapsFeatures(settings).push(timestamps, samples)


def egemaps_llds(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The 25 eGeMAPSv02 low-level descriptors of a 16 kHz signal, every 10 ms (frame start times in s)."""
    smile = _smile("lld")
    df = smile.process_signal(np.asarray(signal, np.float32), SAMPLE_RATE)
    starts = df.index.get_level_values("start").total_seconds().to_numpy()
    return starts, df.to_numpy(), tuple(df.columns)


def resample_to_16k(signal: np.ndarray, rate: int) -> np.ndarray:
    """Polyphase resampling of a mono signal to 16 kHz (e.g. espeak-ng's 22.05 kHz output)."""
    from math import gcd

    from scipy.signal import resample_poly

    if rate == SAMPLE_RATE:
        return np.asarray(signal, np.float32)
    g = gcd(SAMPLE_RATE, int(rate))
    return resample_poly(signal, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
