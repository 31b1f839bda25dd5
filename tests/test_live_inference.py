"""The live inference node: live equals offline over real LSL, missing modalities, model errors via the CLI.

The shipped models (models/emert.onnx, models/crossmodal-*.onnx) run through onnxruntime; the input streams
are a short simulated recording (eyemotion_gaze from the simulator + eye-signal processor, eyemotion_face
from the real face model on expression crops, speech-like eyemotion_audio) published through real outlets.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
from eyemotion.inference.live import (
    SHIPPED_CROSSMODAL,
    SHIPPED_EMERT,
    InferenceNode,
    Predictor,
    WindowInputs,
    crossmodal_paths,
    predict_offline,
    window_period_s,
)
from eyemotion.models.simulate_sessions import T0, SimulationSettings, simulate_session

from eyemotion.cli import main
from eyemotion.streams import AUDIO, EMOTION, FACE, GAZE_CLEAN, open_inlet, stream_info

SECONDS = 11.0


@pytest.fixture(scope="module")
def recording():
    """One simulated participant watching one 9-s happiness clip (streams shifted to start at 0)."""
    from eyemotion.config import Config

    settings = SimulationSettings(participants=1, clip_s=9.0, pause_s=1.0, emotions=("happiness",), seed=3)
    streams, _ = simulate_session(0, settings, Config())
    gaze = (streams.gaze[0] - T0, streams.gaze[1], streams.gaze[2])
    face = (streams.face[0] - T0, streams.face[1])
    audio = (streams.audio[0] - T0, streams.audio[1])
    return gaze, face, audio


def shifted(arrays: tuple, offset: float) -> tuple:
    return (arrays[0] + offset, *arrays[1:])


def run_node(node: InferenceNode) -> threading.Thread:
    thread = threading.Thread(target=node.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    return thread


def wait_connected(node: InferenceNode, names: set[str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not names <= node.connected:
        assert time.monotonic() < deadline, f"the node found only {node.connected}, expected {names}"
        time.sleep(0.05)


def publish(outlets: dict, streams: dict, start: float, speed: float = 2.0, chunk_s: float = 0.05) -> None:
    """Push every stream in time order, chunk by chunk, at `speed` x real time."""
    t, end = start, max(float(a[0][-1]) for a in streams.values())
    wall0 = time.monotonic()
    while t <= end + chunk_s:
        for key, arrays in streams.items():
            ts = arrays[0]
            lo, hi = np.searchsorted(ts, [t, t + chunk_s], side="left")
            if hi > lo:
                data = np.ascontiguousarray(arrays[1][lo:hi].reshape(hi - lo, -1))
                outlets[key].push_chunk(data, ts[lo:hi].tolist())
        t += chunk_s
        delay = (t - start) / speed - (time.monotonic() - wall0)
        if delay > 0:
            time.sleep(delay)


def collect(inlet: pylsl.StreamInlet, until_quiet_s: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    rows, stamps = [], []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < until_quiet_s:
        data, ts = inlet.pull_chunk(timeout=0.2)
        if ts:
            rows += data
            stamps += ts
            quiet_since = time.monotonic()
    return np.array(stamps), np.array(rows, dtype=np.float64).reshape(len(stamps), EMOTION.channel_count)


def test_replayed_streams_through_the_node_give_the_offline_predictions(config, recording) -> None:
    gaze, face, audio = recording
    # a start that keeps every sample off the window grid by half an audio sample (no boundary ties)
    offset = math.floor(pylsl.local_clock()) + 3.0 + 1 / 32000
    streams = {"gaze": shifted(gaze, offset), "face": shifted(face, offset), "audio": shifted(audio, offset)}
    ns = config.lsl.namespace
    outlets = {"gaze": pylsl.StreamOutlet(stream_info(GAZE_CLEAN, namespace=ns, rate=gaze[2])),
               "face": pylsl.StreamOutlet(stream_info(FACE, namespace=ns)),
               "audio": pylsl.StreamOutlet(stream_info(AUDIO, namespace=ns))}
    node = InferenceNode(config)
    thread = run_node(node)
    try:
        wait_connected(node, {GAZE_CLEAN.name, FACE.name, AUDIO.name})
        inlet = open_inlet(EMOTION, namespace=ns, timeout=10, processing=0)  # stamps as pushed
        assert "emert.onnx sha256:" in inlet.info().desc().child("eyemotion").child_value("emert")
        publish(outlets, streams, start=offset)
        ends, live = collect(inlet)
    finally:
        node.request_stop()
        thread.join(10)
    period = window_period_s(config)
    assert len(ends) >= 12, f"only {len(ends)} predictions for {SECONDS:.0f} s of data"
    np.testing.assert_allclose(ends / period, np.round(ends / period), atol=1e-6)  # on the window grid
    assert np.all(np.diff(ends) > 0)
    offline = predict_offline(config, ends, gaze=streams["gaze"], face=streams["face"], audio=streams["audio"])
    assert all(p is not None for p in offline)
    want = np.array([np.asarray(p.sample(), np.float32) for p in offline], dtype=np.float64)
    np.testing.assert_allclose(live, want, rtol=0, atol=1e-6, equal_nan=True)
    full = live[:, -3:].all(axis=1)
    assert full[-5:].all(), "the last windows use face, gaze and audio"
    np.testing.assert_allclose(live[:, :7].sum(axis=1), 1.0, atol=1e-4)
    assert node.delays_s and len(node.delays_s) == len(ends)


def test_a_missing_modality_degrades_gracefully(config, recording) -> None:
    gaze, face, audio = recording
    predictor = Predictor(config)
    ends = np.arange(6.0, 9.01, 1.0)
    only_audio = predict_offline(config, ends, audio=audio, predictor=predictor)
    only_gaze = predict_offline(config, ends, gaze=gaze, predictor=predictor)
    only_face = predict_offline(config, ends, face=face, predictor=predictor)
    for p in only_audio:
        assert (p.uses_face, p.uses_gaze, p.uses_audio) == (False, False, True)
        assert set(p.parts) == {"crossmodal-audio"}
        assert np.isnan(p.fer7).all() and math.isnan(p.valence)
        assert p.er7.sum() == pytest.approx(1, abs=1e-4)
    for p in only_gaze:
        assert (p.uses_face, p.uses_gaze, p.uses_audio) == (False, True, False)
        assert set(p.parts) == {"emert"} and np.isnan(p.fer7).all() and -1 <= p.valence <= 1
    for p in only_face:
        assert (p.uses_face, p.uses_gaze, p.uses_audio) == (True, False, False)
        assert set(p.parts) == {"emert", "crossmodal-visual"} and np.isfinite(p.fer7).all()
    assert predict_offline(config, ends, predictor=predictor) == [None] * len(ends)
    both = predict_offline(config, ends, gaze=gaze, face=face, audio=audio, predictor=predictor)
    # the shipped joint graph's audio branch is not the shipped (real-speech) audio graph: late fusion instead
    assert not predictor.joint_ok
    assert all(set(p.parts) == {"emert", "crossmodal-visual", "crossmodal-audio"} for p in both)


def test_the_node_runs_on_gaze_alone_and_survives_its_stream_vanishing(config, recording) -> None:
    gaze = recording[0]
    offset = math.floor(pylsl.local_clock()) + 3.0 + 1 / 32000
    stream = shifted(gaze, offset)
    outlet = pylsl.StreamOutlet(stream_info(GAZE_CLEAN, namespace=config.lsl.namespace, rate=gaze[2]))
    node = InferenceNode(config)
    thread = run_node(node)
    try:
        wait_connected(node, {GAZE_CLEAN.name})
        inlet = open_inlet(EMOTION, namespace=config.lsl.namespace, timeout=10, processing=0)
        half = stream[0] < offset + 7.0
        publish({"gaze": outlet}, {"gaze": (stream[0][half], stream[1][half])}, start=offset, speed=4.0)
        del outlet  # the producer goes away: the node keeps running without it
        ends, live = collect(inlet, until_quiet_s=2.0)
        deadline = time.monotonic() + 10
        while GAZE_CLEAN.name in node.connected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert GAZE_CLEAN.name not in node.connected and thread.is_alive()
    finally:
        node.request_stop()
        thread.join(10)
    assert len(ends) >= 5
    np.testing.assert_array_equal(live[:, -3:], np.tile([0, 1, 0], (len(ends), 1)))
    assert np.isnan(live[:, 7:14]).all() and np.isfinite(live[:, 14:16]).all()


def test_window_inputs_do_not_depend_on_chunking(config, recording) -> None:
    gaze, face, _ = recording
    whole = WindowInputs(config, keep_s=math.inf)
    whole.push_gaze(*gaze)
    whole.push_face(*face)
    live = WindowInputs(config)
    ends = np.arange(5.0, 10.01, window_period_s(config))
    got = {}
    for t in np.arange(0, 11, 0.37):
        g = (gaze[0] >= t) & (gaze[0] < t + 0.37)
        f = (face[0] >= t) & (face[0] < t + 0.37)
        live.push_gaze(gaze[0][g], gaze[1][g], gaze[2])
        live.push_face(face[0][f], face[1][f])
        done = t + 0.37 - 0.05  # every stream has a sample after this
        for end in ends[(ends <= done) & (ends > done - 0.37)]:
            got[end] = live.inputs(float(end))
    assert len(got) >= 8
    for end, w in got.items():
        want = whole.inputs(float(end))
        for key in ("face", "eye", "fixation"):  # fixation maps and gaze slopes use BLAS (matmul, dot):
            np.testing.assert_allclose(w.emert[key], want.emert[key], rtol=1e-6, atol=1e-9)  # no byte identity
        np.testing.assert_allclose(w.crossmodal["visual_gaze"], want.crossmodal["visual_gaze"], rtol=1e-6, atol=1e-9)
        sums = want.emert["fixation"].sum(axis=(1, 2))
        assert np.all((np.abs(sums - 1) < 1e-9) | (sums == 0)) and (sums > 0).any()


def test_missing_or_corrupt_models_are_one_line_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.onnx"
    assert main(["infer", "--emert-model", str(missing), "--seconds", "1"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.onnx not found" in err
    corrupt = tmp_path / "emert.onnx"
    corrupt.write_bytes(b"this is not an onnx graph")
    shutil.copy(SHIPPED_EMERT.with_suffix(".json"), corrupt.with_suffix(".json"))
    assert main(["infer", "--emert-model", str(corrupt), "--seconds", "1"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be loaded" in err
    stem = tmp_path / "cm"
    for part, path in crossmodal_paths(SHIPPED_CROSSMODAL).items():
        if part != "audio":
            shutil.copy(path, stem.with_name(f"cm-{part}.onnx"))
            shutil.copy(path.with_suffix(".json"), stem.with_name(f"cm-{part}.json"))
    assert main(["infer", "--crossmodal-model", str(stem), "--seconds", "1"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cm-audio.onnx not found" in err
