"""The real `eyemotion` command (.venv/bin/eyemotion in a subprocess): stream --simulate publishes the
contract streams, markers push reaches inlets and drives the simulator, and every bad input of issue 2
that concerns the tracker gets one clear line, a non-zero exit and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
from eyemotion.acquisition.markers import parse_marker
from eyemotion.acquisition.simulator import GroundTruth

from eyemotion import streams

TESTS = Path(__file__).resolve().parent
EYEMOTION = Path(sys.executable).with_name("eyemotion")


def run(args: list[str], *, env: dict | None = None, timeout: float = 60, cwd: Path | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(EYEMOTION), *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "eyemotion.toml"
    path.write_text(text)
    return path


def fake_env(namespace: str, trackers: list[dict], clock_offset_s: float = 0.0) -> dict:
    return {"EYEMOTION_TITTA_MODULE": "fake_titta", "PYTHONPATH": str(TESTS),
            "FAKE_TITTA_TRACKERS": json.dumps(trackers), "FAKE_TITTA_NAMESPACE": namespace,
            "FAKE_TITTA_CLOCK_OFFSET_S": str(clock_offset_s)}


def wait_for(spec, namespace: str, timeout: float = 30.0, minimum: int = 1, proc=None) -> None:
    """Poll until `minimum` streams of `spec` exist (a resolve started before the producer exists may miss it)."""
    deadline = time.monotonic() + timeout
    while len(streams.find(spec, namespace=namespace, timeout=1.0, minimum=minimum)) < minimum:
        assert time.monotonic() < deadline, f"no {spec.name} within {timeout} s"
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the producer exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")


def assert_one_clear_line(result, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("eyemotion: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_help_documents_the_commands():
    for args, words in ((["stream", "--help"], ["--simulate", "Ctrl-C", "simulate_disconnect"]),
                        (["devices", "--help"], ["trackers", "microphones"]),
                        (["markers", "push", "--help"], ["KEY=VALUE", "JSON"])):
        result = run(args)
        assert result.returncode == 0
        for w in words:
            assert w in result.stdout


@pytest.mark.parametrize("toml, fragments", [
    ("[simulator]\nmode = 'joystick'\n", ["simulator.mode", "'random' or 'mouse'"]),
    ("[simulator]\nseed = 'abc'\n", ["simulator.seed must be an integer"]),
    ("[tracker]\nfrequncy = 250\n", ["unknown key tracker.frequncy"]),
    ("[tracker\nfrequency = 250\n", ["not valid TOML"]),
    ("[tracker]\nfrequency = 100\n", ["100 Hz", "60, 120, 250"]),  # the simulated Fusion's rates
])
def test_bad_config_is_one_clear_line(tmp_path, toml, fragments):
    result = run(["--config", str(write_config(tmp_path, toml)), "stream", "--simulate", "--seconds", "1"])
    assert_one_clear_line(result, *fragments)


def test_tracker_not_found_with_the_real_sdk(tmp_path):
    """No tracker is attached here: the real TittaPy finds none, and the message says so."""
    cfg = write_config(tmp_path, "[tracker]\nserial = 'TPFC2-999'\n")
    result = run(["--config", str(cfg), "stream", "--sources", "tracker", "--seconds", "1"])
    assert_one_clear_line(result, "serial 'TPFC2-999'", "found: none")


def test_tracker_bad_inputs_with_the_fake_sdk(tmp_path, namespace):
    trackers = [{"serial": "TPFC2-A"}, {"serial": "TPFC2-B", "address": "tet-tcp://169.254.5.5"}]
    env = fake_env(namespace, trackers)
    cases = [
        ("[tracker]\naddress = 'tet-tcp://10.1.1.1'\n", env,
         ["address 'tet-tcp://10.1.1.1'", "TPFC2-A at tobii-prp://TPFC2-A", "TPFC2-B at tet-tcp://169.254.5.5"]),
        ("[tracker]\nserial = 'TPFC2-C'\n", env, ["serial 'TPFC2-C'", "found:", "TPFC2-B"]),
        ("[tracker]\nserial = 'TPFC2-B'\nfrequency = 90\n", env, ["does not support 90 Hz", "60, 120, 250"]),
        ("[tracker]\nserial = 'TPFC2-A'\n", fake_env(namespace, trackers, clock_offset_s=0.005),
         ["clock", "differ by 5.0 ms"]),
    ]
    for toml, case_env, fragments in cases:
        cfg = write_config(tmp_path, f"[lsl]\nnamespace = '{namespace}'\n" + toml)
        result = run(["--config", str(cfg), "stream", "--sources", "tracker,markers", "--seconds", "2"], env=case_env)
        assert_one_clear_line(result, *fragments)


def test_bad_cli_arguments(tmp_path):
    assert_one_clear_line(run(["stream", "--simulate", "--sources", "tracker,eeg"]), "unknown source(s) eeg")
    assert_one_clear_line(run(["stream", "--truth", str(tmp_path / "t.npz")]), "--truth", "--simulate")
    assert_one_clear_line(run(["markers", "push", "annotation", "oops"]), "KEY=VALUE")


def test_stream_simulate_publishes_contract_streams_and_follows_cli_markers(tmp_path, namespace):
    cfg = write_config(tmp_path, f"[lsl]\nnamespace = '{namespace}'\n[simulator]\nloss_per_min = 0\n")
    truth = tmp_path / "truth.npz"
    proc = subprocess.Popen([str(EYEMOTION), "--config", str(cfg), "stream", "--simulate", "--seconds", "20",
                             "--truth", str(truth)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(streams.GAZE_RAW, namespace, proc=proc)
        wait_for(streams.CAMERA, namespace, proc=proc)
        wait_for(streams.AUDIO, namespace, proc=proc)
        wait_for(streams.MARKERS, namespace, minimum=2, proc=proc)
        gaze = streams.open_inlet(streams.GAZE_RAW, namespace=namespace, processing=pylsl.proc_none)
        camera = streams.open_inlet(streams.CAMERA, namespace=namespace)
        assert streams.check_info(streams.CAMERA, camera.info()) == []
        audio = streams.open_inlet(streams.AUDIO, namespace=namespace)
        assert streams.check_info(streams.AUDIO, audio.info()) == []
        ginfo = gaze.info()
        assert streams.check_info(streams.GAZE_RAW, ginfo) == []
        assert ginfo.source_id() == f"TittaLSL:Tobii_gaze@SIM-FUSION-0001#{namespace}"
        # every source has its own markers stream (the command's, tracker's, camera's, microphone's): wait for
        # the tracker's, which carries device_lost / device_restored
        infos, deadline = [], time.monotonic() + 30
        while not any("/tracker-" in i.source_id() for i in infos) and time.monotonic() < deadline:
            infos = streams.find(streams.MARKERS, namespace=namespace, timeout=1, minimum=4)
        assert any("/tracker-" in i.source_id() for i in infos), [i.source_id() for i in infos]
        markers = [pylsl.StreamInlet(i, processing_flags=pylsl.proc_none) for i in infos]
        for m in markers:
            assert streams.check_info(streams.MARKERS, m.info()) == []
            m.open_stream(timeout=5)
        gaze.open_stream(timeout=5)
        pushed = run(["--config", str(cfg), "markers", "push", "clip_onset", "clip=c7", "emotion=fear",
                      "--source", "runner", "--wait", "15"])
        assert pushed.returncode == 0, pushed.stderr
        assert '"emotion": "fear"' in pushed.stdout
        pushed = run(["--config", str(cfg), "markers", "push", "simulate_disconnect", "seconds=1.5",
                      "--wait", "15"])
        assert pushed.returncode == 0, pushed.stderr
        stamps, events = [], []
        while proc.poll() is None:
            stamps += gaze.pull_chunk(timeout=0.1)[1]
            for m in markers:
                texts, _ = m.pull_chunk(timeout=0.0)
                events += [parse_marker(t[0]) for t in texts]
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    stamps = np.asarray(stamps)
    assert np.all(np.diff(stamps) > 0) and np.diff(stamps).max() > 1.3
    names = [e["event"] for e in events]
    assert "device_lost" in names and "device_restored" in names
    t_truth, tr = GroundTruth.load(truth)
    fear = tr.emotion == streams.CLASSES.index("fear")
    assert fear.any() and not fear[:250].any()  # conditioned once the CLI marker arrived
    assert np.all(np.isin(stamps, t_truth))


def test_devices_lists_trackers_cameras_and_microphones(namespace):
    env = fake_env(namespace, [{"serial": "TPFC2-A"}, {"serial": "TPFC2-B", "frequencies": [60.0, 120.0]}])
    result = run(["devices", "--json"], env=env)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert [t["serial"] for t in listing["trackers"]] == ["TPFC2-A", "TPFC2-B"]
    assert listing["trackers"][1]["frequencies"] == [60.0, 120.0]
    assert isinstance(listing["cameras"], list) and isinstance(listing["microphones"], list)
    table = run(["devices"], env=env)
    assert table.returncode == 0 and "serial=TPFC2-B" in table.stdout and "supports 60, 120" in table.stdout
