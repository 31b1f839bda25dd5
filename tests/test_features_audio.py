"""eGeMAPS audio features on real synthesised speech (espeak-ng, resampled to 16 kHz): finite functionals,
speech vs silence detected, LLD sequences, gaps, and chunk invariance."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from eyemotion.inference.features.audio import (
    N_EGEMAPS,
    SAMPLE_RATE,
    AudioSettings,
    EgemapsFeatures,
    egemaps_llds,
    egemaps_windows,
    resample_to_16k,
)
from eyemotion.inference.features.windows import FeatureWindows

SETTINGS = AudioSettings(window_s=2.0, hop_s=1.0)


@pytest.fixture(scope="module")
def speech_then_silence(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, float]:
    """About 4.5 s of espeak-ng speech at 16 kHz followed by 4 s of silence (a faint noise floor)."""
    assert shutil.which("espeak-ng"), "espeak-ng is part of the test environment (setup.sh installs it)"
    wav = tmp_path_factory.mktemp("audio") / "speech.wav"
    text = "The quick brown fox jumps over the lazy dog. I am feeling really happy about this wonderful day."
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
    signal, rate = sf.read(wav, dtype="float32")
    speech = resample_to_16k(signal, rate)
    noise = np.random.default_rng(0).normal(0, 1e-4, 4 * SAMPLE_RATE).astype(np.float32)
    return np.concatenate([speech, noise]), len(speech) / SAMPLE_RATE


def test_speech_gives_finite_features_and_silence_is_detected(speech_then_silence) -> None:
    signal, speech_s = speech_then_silence
    t = 100.0 + np.arange(len(signal)) / SAMPLE_RATE
    fw = egemaps_windows(t, signal, SETTINGS)
    assert fw.values.shape[1] == N_EGEMAPS == len(fw.names) == 88
    assert fw.valid.all() and np.isfinite(fw.values).all()
    starts = fw.times - SETTINGS.window_s - 100.0
    in_speech = fw.times - 100.0 <= speech_s - 0.3
    in_silence = starts >= speech_s + 0.05
    assert in_speech.sum() >= 2 and in_silence.sum() >= 1
    assert fw.extra["speech"][in_speech].all()
    assert not fw.extra["speech"][in_silence].any()
    assert (fw.extra["voiced_ratio"][in_speech] > 0.2).all()
    assert (fw.extra["level_dbfs"][in_silence] < -60).all()
    loudness = fw.values[:, fw.names.index("loudness_sma3_amean")]
    assert loudness[in_speech].min() > 5 * loudness[in_silence].max()


def test_streaming_equals_offline(speech_then_silence) -> None:
    signal, _ = speech_then_silence
    signal = signal[: 6 * SAMPLE_RATE]
    t = 7.25 + np.arange(len(signal)) / SAMPLE_RATE
    offline = egemaps_windows(t, signal, SETTINGS)
    extractor, parts = EgemapsFeatures(SETTINGS), []
    for i in range(0, len(signal), 320):  # 20-ms chunks, as the microphone node pushes them
        parts.append(extractor.push(t[i:i + 320], signal[i:i + 320]))
    online = FeatureWindows.concat(parts, offline.names, tuple(offline.extra))
    assert len(online) == len(offline) >= 3
    np.testing.assert_array_equal(online.times, offline.times)
    np.testing.assert_array_equal(online.values, offline.values)
    np.testing.assert_array_equal(online.extra["speech"], offline.extra["speech"])


def test_a_gap_in_the_stream_makes_the_window_invalid() -> None:
    rng = np.random.default_rng(1)
    n = 6 * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    keep = (t < 2.2) | (t >= 3.0)  # 0.8 s of samples lost
    fw = egemaps_windows(t[keep], rng.normal(0, 0.1, n)[keep].astype(np.float32), SETTINGS)
    by_end = dict(zip(np.round(fw.times).astype(int), fw.valid))
    assert by_end[2] and not by_end[3] and not by_end[4] and by_end[5]
    assert np.isnan(fw.values[~fw.valid]).all() and not fw.extra["speech"][~fw.valid].any()


def test_lld_sequence(speech_then_silence) -> None:
    signal, _ = speech_then_silence
    starts, values, names = egemaps_llds(signal[: 2 * SAMPLE_RATE])
    assert values.shape == (len(starts), 25) and len(names) == 25 and "Loudness_sma3" in names
    assert len(starts) > 150 and np.all(np.diff(starts) == pytest.approx(0.01))
    assert np.isfinite(values).all()


def test_resampling_keeps_duration() -> None:
    x = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    y = resample_to_16k(x, 22050)
    assert len(y) == SAMPLE_RATE and y.dtype == np.float32


def test_settings_outside_the_documented_range_are_refused() -> None:
    from eyemotion.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="features.audio_window_s"):
        config_from_dict({"features": {"audio_window_s": 10.0}})
    with pytest.raises(ConfigError, match="features.gaze_hop_s"):
        config_from_dict({"features": {"gaze_hop_s": 2.0}})


def test_voiced_frame_pooling_ignores_pauses() -> None:
    """Real speech (a RAVDESS utterance) with 2 s of quiet room noise before and after: the pooled functionals
    stay near the utterance's own, the unpooled ones are diluted."""
    from pathlib import Path

    speech, rate = sf.read(Path(__file__).parent / "data" / "ravdess" / "03-01-04-01-01-01-01.flac", dtype="float32")
    assert rate == SAMPLE_RATE
    room = np.random.default_rng(2).normal(0, 3e-4, 2 * SAMPLE_RATE).astype(np.float32)  # about -70 dBFS
    padded = np.concatenate([room, speech, room])
    ex = EgemapsFeatures(SETTINGS)
    k = ex.names.index("loudness_sma3_amean")
    alone, padded_pooled, padded_raw = ex.pooled_functionals(speech)[0], ex.pooled_functionals(padded)[0], \
        ex.functionals(padded)
    assert abs(padded_pooled[k] - alone[k]) < 0.15 * alone[k]
    assert padded_raw[k] < 0.8 * alone[k]
    speech_flag, voiced, level = ex.utterance(padded)[1:]
    assert speech_flag and voiced > 0.05 and level > -60  # quiet sad speech passes the gate
