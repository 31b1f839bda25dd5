"""Model input builders (EMERT window, crossmodal window) and normalisation statistics saved with a model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from eyemotion.inference.features.builders import (
    CrossmodalWindowBuilder,
    EmertWindowBuilder,
    even_indices,
)
from eyemotion.inference.features.normalisation import NormStats, load_norm_stats, save_norm_stats
from eyemotion.inference.features.windows import FeatureWindows
from eyemotion.inference.runtime import ModelError

from eyemotion.streams import FACE, FACE_EMBEDDING_DIM, GAZE_CLEAN

EMB = FACE.index("embedding_000")


def face_samples(times: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """eyemotion_face samples whose embedding is filled with the frame time (to see which were picked)."""
    s = np.full((len(times), FACE.channel_count), np.nan)
    s[:, 0] = 1.0 if present is None else present
    s[:, EMB:EMB + FACE_EMBEDDING_DIM] = times[:, None]
    return s


def test_even_indices() -> None:
    np.testing.assert_array_equal(even_indices(100, 8), [0, 14, 28, 42, 57, 71, 85, 99])
    np.testing.assert_array_equal(even_indices(3, 8), [0, 0, 1, 1, 1, 1, 2, 2])
    assert len(even_indices(0, 8)) == 0


def test_emert_window_picks_8_face_32_gaze_32_fixation_frames_evenly() -> None:
    builder = EmertWindowBuilder(window_s=4.0, gaze_channels=GAZE_CLEAN.channel_count, map_shape=(9, 16))
    face_t = 10 + np.arange(0, 6, 1 / 12)  # 12 Hz, 6 s
    gaze_t = 10 + np.arange(0, 6, 1 / 250)
    map_t = 10 + np.arange(0, 6, 1 / 30)
    builder.push_face(face_t, face_samples(face_t))
    builder.push_gaze(gaze_t, np.repeat(gaze_t[:, None], GAZE_CLEAN.channel_count, axis=1))
    builder.push_fixation(map_t, np.repeat(map_t, 9 * 16).reshape(-1, 9, 16))
    w = builder.window(end=15.0)
    assert w.face.shape == (8, 128) and w.gaze.shape == (32, GAZE_CLEAN.channel_count)
    assert w.fixation.shape == (32, 9, 16)
    assert w.face_present and w.gaze_present and w.fixation_present
    in_face = face_t[(face_t >= 11) & (face_t < 15)]
    np.testing.assert_allclose(w.face[:, 0], in_face[even_indices(len(in_face), 8)])
    in_gaze = gaze_t[(gaze_t >= 11) & (gaze_t < 15)]
    np.testing.assert_allclose(w.gaze[:, 0], in_gaze[even_indices(len(in_gaze), 32)])
    assert w.gaze[0, 0] == pytest.approx(11.0) and w.gaze[-1, 0] == pytest.approx(15 - 1 / 250)
    assert np.all(np.diff(w.fixation[:, 0, 0]) > 0)


def test_emert_window_without_faces_marks_the_modality_absent() -> None:
    builder = EmertWindowBuilder(window_s=4.0, gaze_channels=3, map_shape=(2, 2))
    t = np.arange(0, 5, 0.1)
    builder.push_face(t, face_samples(t, present=np.zeros(len(t))))
    builder.push_gaze(t, np.ones((len(t), 3)))
    w = builder.window(4.5)
    assert not w.face_present and np.isnan(w.face).all()
    assert w.gaze_present and not w.fixation_present


def test_emert_builder_is_chunk_invariant() -> None:
    t = np.arange(0, 8, 1 / 250)
    data = np.random.default_rng(0).normal(size=(len(t), 4))
    whole = EmertWindowBuilder(4.0, 4, (1, 1), keep_s=math.inf)
    whole.push_gaze(t, data)
    live = EmertWindowBuilder(4.0, 4, (1, 1))
    for i in range(0, len(t), 37):
        live.push_gaze(t[i:i + 37], data[i:i + 37])
        end = np.floor(t[min(i + 36, len(t) - 1)] * 4) / 4  # ask for the newest complete quarter second
        if end >= 4:
            np.testing.assert_array_equal(live.window(end).gaze, whole.window(end).gaze)


def gaze_stats_windows(ends: np.ndarray, valid: np.ndarray | None = None) -> FeatureWindows:
    names = tuple(f"g{i}" for i in range(103))
    values = np.repeat(ends[:, None], 103, axis=1)
    return FeatureWindows(names, ends, values, np.ones(len(ends), bool) if valid is None else valid)


def test_crossmodal_window_pairs_each_frame_with_the_gaze_statistics_ending_before_it() -> None:
    builder = CrossmodalWindowBuilder(window_s=4.0, frames=16, audio_steps=4)
    face_t = 20 + np.arange(0, 6, 1 / 12) + 0.01
    builder.push_face(face_t, face_samples(face_t))
    gaze_ends = 20 + np.round(np.arange(0.1, 6.01, 0.1), 3)
    valid = np.ones(len(gaze_ends), bool)
    valid[30] = False  # the window ending at 23.1 s was invalid
    builder.push_gaze_stats(gaze_stats_windows(gaze_ends, valid))
    audio_ends = 20 + np.arange(1.0, 6.01, 1.0)
    speech = np.array([0, 0, 0, 1, 0, 0], float)
    builder.push_audio(FeatureWindows(tuple(f"a{i}" for i in range(88)), audio_ends,
                                      np.repeat(audio_ends[:, None], 88, axis=1), np.ones(6, bool),
                                      {"speech": speech}))
    w = builder.window(end=25.0)
    assert w.face.shape == (16, 128) and w.gaze.shape == (16, 103) and w.visual_present.all()
    assert w.early_fusion.shape == (16, 231)
    face_times = w.face[:, 0]
    for ft, g in zip(face_times, w.gaze[:, 0]):
        latest = gaze_ends[gaze_ends <= ft].max()
        if np.isclose(latest, 23.1):
            assert np.isnan(g)
        else:
            assert g == pytest.approx(latest)
    in_window = gaze_ends[(gaze_ends >= 21.0) & (gaze_ends <= 25.0) & valid]
    np.testing.assert_allclose(w.gaze_mean, np.full(103, in_window.mean()))
    face, gaze_mean = w.model_level_fusion_averaged
    assert face.shape == (16, 128) and gaze_mean.shape == (103,)
    assert w.audio.shape == (4, 88)
    np.testing.assert_allclose(w.audio[:, 0], [22.0, 23.0, 24.0, 25.0])
    assert w.audio_present  # the sub-window ending at 24 s holds speech
    silent = builder.window(end=23.5)
    assert not silent.audio_present


def test_crossmodal_window_without_a_face() -> None:
    builder = CrossmodalWindowBuilder(window_s=4.0, frames=8, audio_steps=2)
    w = builder.window(end=10.0)
    assert not w.visual_present.any() and np.isnan(w.early_fusion).all() and not w.audio_present
    assert w.audio.shape == (2, 88)


def test_normalisation_statistics_are_saved_with_the_model_and_loaded_back(tmp_path: Path) -> None:
    model = tmp_path / "gaze_model.onnx"
    model.write_bytes(b"")
    model.with_suffix(".json").write_text(json.dumps({"name": "x", "inputs": []}))
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 2.0, (50, 16, 3))
    train[0, 0, 1] = np.nan
    stats = NormStats.fit(train, ("a", "b", "c"))
    np.testing.assert_allclose(stats.mean[0], train[..., 0].mean())
    np.testing.assert_allclose(stats.std[1], np.nanstd(train[..., 1]))
    save_norm_stats(model, "gaze", stats)
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["name"] == "x" and card["normalisation"]["gaze"]["names"] == ["a", "b", "c"]
    loaded = load_norm_stats(model, "gaze")
    x = np.array([[5.0, np.nan, 7.0]])
    out = loaded.apply(x)
    assert out.dtype == np.float32 and out[0, 1] == 0.0
    np.testing.assert_allclose(out, stats.apply(x))
    constant = NormStats.fit(np.ones((10, 2)), ("u", "v"))
    np.testing.assert_array_equal(constant.apply(np.ones((1, 2))), [[0, 0]])
    with pytest.raises(ModelError, match="normalisation statistics 'audio'"):
        load_norm_stats(model, "audio")
    with pytest.raises(ModelError, match="features"):
        loaded.apply(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="no finite training value"):
        NormStats.fit(np.full((3, 2), np.nan), ("u", "v"))
