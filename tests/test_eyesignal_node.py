"""The eye-signal node live on real LSL streams: the simulated tracker, a stream with bad samples, the refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
from eyemotion.acquisition.simulator import SimulatedTracker, simulate_recording
from eyemotion.inference.eyesignal.node import EyeSignalNode
from eyemotion.inference.eyesignal.processor import OUT, process_recording

from eyemotion import streams
from eyemotion.streams import EYE_EVENTS, GAZE_CLEAN, GAZE_RAW, ContractError, stream_info

ROOT = Path(__file__).resolve().parent.parent


class Collector:
    """Pulls every sample of an inlet in a thread until stopped (then drains it)."""

    def __init__(self, inlet: pylsl.StreamInlet) -> None:
        self.inlet, self.data, self.stamps = inlet, [], []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        idle = 0
        while idle < 3:
            data, ts = self.inlet.pull_chunk(timeout=0.1)
            self.data += data
            self.stamps += ts
            idle = idle + 1 if (self._stop.is_set() and not ts) else 0

    def stop(self) -> Collector:
        self._stop.set()
        self.thread.join(10)
        return self


class Opened(EyeSignalNode):
    """The node, opened by the test itself before `run()` (which then only steps and closes)."""

    def open(self) -> None:
        pass


def start(node, duration: float) -> threading.Thread:
    thread = threading.Thread(target=node.run, kwargs={"duration": duration, "handle_signals": False}, daemon=True)
    thread.start()
    return thread


def test_live_node_on_the_simulated_tracker_equals_offline(config, namespace):
    tracker = SimulatedTracker(config)
    tracker_thread = start(tracker, 12.0)
    raw_in = streams.open_inlet(GAZE_RAW, namespace=namespace, timeout=30, processing=pylsl.proc_none)
    raw_in.open_stream(timeout=10)
    raw = Collector(raw_in)

    node = Opened(config)
    EyeSignalNode.open(node)  # open first, so our inlets are connected before its first output
    gaze_in = streams.open_inlet(GAZE_CLEAN, namespace=namespace, timeout=10, processing=pylsl.proc_none)
    info = gaze_in.info()
    assert streams.check_info(GAZE_CLEAN, info) == []
    delay = int(streams.desc_value(info, "eyemotion", "delay_samples"))
    assert delay == node.processor.delay_samples and float(streams.desc_value(info, "eyemotion", "delay_s")) > 1.0
    gaze_in.open_stream(timeout=5)
    gaze = Collector(gaze_in)
    events_in = streams.open_inlet(EYE_EVENTS, namespace=namespace, timeout=10, processing=pylsl.proc_none)
    events_in.open_stream(timeout=5)
    events = Collector(events_in)
    node_thread = start(node, 6.0)

    node_thread.join(30)
    assert not node_thread.is_alive() and node.errors == 0
    tracker_thread.join(30)
    raw, gaze, events = raw.stop(), gaze.stop(), events.stop()

    out_t, out = np.asarray(gaze.stamps), np.asarray(gaze.data)
    raw_t, raw_x = np.asarray(raw.stamps), np.asarray(raw.data)
    assert node.samples_out == node.samples_in > 1000  # every input sample came out (after the flush)
    assert len(out_t) == node.samples_out  # and we received all of them
    # the node's inputs are a stretch of what our raw inlet saw; its output carries their timestamps
    # (after its own clock-sync correction, a few microseconds here), so reprocess that stretch offline
    start_i = int(np.argmin(np.abs(raw_t - out_t[0])))
    assert abs(raw_t[start_i] - out_t[0]) < 0.001
    stretch = raw_x[start_i:start_i + len(out_t)]
    assert np.allclose(raw_t[start_i:start_i + len(out_t)], out_t, rtol=0, atol=0.001)
    offline = process_recording(out_t, stretch, 250.0, config.eyesignal, config.screen)
    assert np.array_equal(offline.samples, out, equal_nan=True)  # online == offline, bit for bit
    assert set(np.unique(out[:, OUT["event"]])) >= {1, 2}  # fixations and saccades in 6 s of viewing
    assert [json.dumps(e, allow_nan=False) for _, e in offline.events] == [e[0] for e in events.data]

    decoded = [json.loads(e[0]) for e in events.data]
    assert any(e["event"] == "fixation" and e["phase"] == "offset" and e["duration_ms"] >= 60 for e in decoded)
    assert any(e["event"] == "saccade" and e["phase"] == "offset" and e["amplitude_deg"] > 0 for e in decoded)


def test_live_node_survives_bad_samples(config, namespace):
    rate = 120.0
    t, raw, _ = simulate_recording(8.0, rate, seed=7)
    raw = raw.copy()
    raw[50:60, GAZE_RAW.index("x.position_on_display_area.gaze_point.left_eye")] = np.inf
    raw[70, GAZE_RAW.index("diameter.pupil.right_eye")] = -1.0
    raw[80, GAZE_RAW.index("y.position_on_display_area.gaze_point.right_eye")] = 40.0
    offsets = t.copy()
    offsets[200] = offsets[199]  # duplicate timestamp
    offsets[300:303] = offsets[250]  # backwards
    offsets[600:] += 0.5  # a time gap
    offsets[800:] = offsets[800] + np.arange(len(t) - 800) / 60.0  # the tracker now runs at 60 Hz
    outlet = pylsl.StreamOutlet(stream_info(GAZE_RAW, namespace=namespace, rate=rate, device="BAD-1"))

    node = Opened(config)
    EyeSignalNode.open(node)
    events_in = streams.open_inlet(EYE_EVENTS, namespace=namespace, timeout=10, processing=pylsl.proc_none)
    events_in.open_stream(timeout=5)
    events = Collector(events_in)
    node_thread = start(node, 7.0)
    deadline = time.monotonic() + 5
    while not outlet.have_consumers() and time.monotonic() < deadline:
        time.sleep(0.05)
    base = pylsl.local_clock() - offsets[0]
    for i in range(0, len(t), 24):  # about 4 s of data, pushed in 0.1 s chunks as fast as it goes
        outlet.push_chunk(raw[i:i + 24], (offsets[i:i + 24] + base).tolist())
        time.sleep(0.02)
    node_thread.join(30)
    events = events.stop()
    assert not node_thread.is_alive() and node.errors == 0
    assert node.samples_in == len(t) and node.samples_out == len(t) - 1 - 3
    reasons = [json.loads(e[0]).get("reason") for e in events.data]
    assert reasons.count("timestamps") == 2 and "time_gap" in reasons and "rate_change" in reasons


def test_wrong_layout_is_refused(config, namespace):
    info = pylsl.StreamInfo(GAZE_RAW.name, GAZE_RAW.type, 10, 250.0, pylsl.cf_double64, f"bad#{namespace}")
    outlet = pylsl.StreamOutlet(info)  # noqa: F841  (kept alive while resolving)
    with pytest.raises(ContractError, match="10 channels, expected 37"):
        EyeSignalNode(config).open()


def test_cli_without_a_stream_fails_in_one_line(tmp_path, namespace):
    cfg = tmp_path / "eyemotion.toml"
    cfg.write_text(f'[lsl]\nnamespace = "{namespace}"\nresolve_timeout_s = 0.5\n')
    proc = subprocess.run([sys.executable, "-m", "eyemotion.cli", "--config", str(cfg), "eyesignal", "run",
                           "--duration", "1"], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("eyemotion: error:")]
    assert len(lines) == 1 and "no Tobii_gaze stream found" in lines[0] and "Traceback" not in proc.stderr


def write_gaze_xdf(path: Path, t: np.ndarray, raw: np.ndarray, rate: float) -> None:
    from eyemotion.acquisition.replay import XdfWriter

    with XdfWriter(path) as w:
        w.add_stream(1, stream_info(GAZE_RAW, namespace="recorded", rate=rate, device="SIM-1").as_xml())
        for i in range(0, len(t), 500):
            w.write_samples(1, t[i:i + 500], raw[i:i + 500])


def test_live_node_on_a_replayed_session(tmp_path, config, namespace):
    from eyemotion.acquisition.replay import ReplayController

    t, raw, _ = simulate_recording(8.0, 250.0, seed=3)
    write_gaze_xdf(tmp_path / "recording.xdf", t + 100.0, raw, 250.0)
    replay = ReplayController(tmp_path / "recording.xdf", namespace=namespace, speed=4.0)
    replay.open()
    node = Opened(config)
    EyeSignalNode.open(node)
    gaze_in = streams.open_inlet(GAZE_CLEAN, namespace=namespace, timeout=10, processing=pylsl.proc_none)
    gaze_in.open_stream(timeout=5)
    gaze = Collector(gaze_in)
    deadline = time.monotonic() + 10
    while not all(o.have_consumers() for o in replay._outlets.values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    node_thread = start(node, 60.0)
    replay.start()
    replay.wait(30)
    deadline = time.monotonic() + 20
    while node.samples_in < len(t) and time.monotonic() < deadline:  # the last chunks may still be in transit
        time.sleep(0.05)
    node.request_stop()
    node_thread.join(30)
    gaze = gaze.stop()
    assert node.errors == 0 and node.samples_in == len(t) == node.samples_out == len(gaze.stamps)
    out_t, out = np.asarray(gaze.stamps), np.asarray(gaze.data)
    offset = out_t[0] - (t[0] + 100.0)
    assert np.allclose(np.diff(out_t), np.diff(t), atol=1e-6)  # re-timed to now, relative timing kept
    offline = process_recording(t + 100.0, raw, 250.0, config.eyesignal, config.screen).samples
    assert np.mean(out[:, OUT["event"]] == offline[:, OUT["event"]]) > 0.99  # only float rounding of t + offset
    assert np.allclose(out[:, OUT["x"]], offline[:, OUT["x"]], equal_nan=True, atol=1e-9)
    assert abs(offset) > 1.0


def test_process_command_reprocesses_a_recording(tmp_path):
    from eyemotion.cli import main

    t, raw, _ = simulate_recording(20.0, 120.0, seed=4)
    session = tmp_path / "P001" / "S1"
    session.mkdir(parents=True)
    write_gaze_xdf(session / "recording.xdf", t + 10.0, raw, 120.0)
    assert main(["eyesignal", "process", str(session), "--out", str(tmp_path / "out")]) == 0
    table = np.loadtxt(tmp_path / "out" / "eyemotion_gaze.csv", delimiter=",", skiprows=1)
    header = (tmp_path / "out" / "eyemotion_gaze.csv").read_text().splitlines()[0].split(",")
    assert header == ["timestamp", *GAZE_CLEAN.labels]
    expected = process_recording(t + 10.0, raw, 120.0)
    assert np.allclose(table[:, 0], expected.timestamps, rtol=1e-12)
    assert np.allclose(table[:, 1:], expected.samples, rtol=1e-9, equal_nan=True)
    lines = (tmp_path / "out" / "eyemotion_eye_events.jsonl").read_text().splitlines()
    assert len(lines) == len(expected.events) > 50 and json.loads(lines[0])["timestamp"] > 10.0
    assert main(["eyesignal", "process", str(tmp_path / "nothing")]) == 2
