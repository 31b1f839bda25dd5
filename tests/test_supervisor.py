"""The supervisor with real child processes: restart after SIGKILL with gap markers, hung nodes,
ordered shutdown, and session end when a session-ending child finishes."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pylsl
import pytest

from acquisition.markers import MarkerOutlet, parse_marker
from eyemotion import streams
from eyemotion.nodes import ChildSpec, Supervisor

NODE = """
import sys, time
from eyemotion.config import config_from_dict
from eyemotion.nodes import Node
class Ticker(Node):
    name = "ticker"
    def step(self):
        time.sleep(0.02)
    def close(self):
        open(sys.argv[1], "a").write("closed\\n")
Ticker(config_from_dict({})).run()
"""

HANG = """
import os, pathlib, time
pathlib.Path(os.environ["EYEMOTION_HEARTBEAT"]).touch()
time.sleep(60)
"""


def _markers(inlet, wait=2.0):
    out, end = [], time.monotonic() + wait
    while time.monotonic() < end:
        samples, stamps = inlet.pull_chunk(timeout=0.1)
        out += [(parse_marker(s[0]), t) for s, t in zip(samples, stamps)]
    return out


@pytest.fixture
def marker_pair(namespace):
    outlet = MarkerOutlet("supervisor", namespace=namespace)
    inlet = streams.open_inlet(streams.MARKERS, namespace=namespace)
    inlet.open_stream(timeout=5)
    return outlet, inlet


def test_killed_node_restarts_and_the_gap_is_marked(tmp_path, marker_pair):
    outlet, inlet = marker_pair
    closed = tmp_path / "closed.txt"
    child = ChildSpec("ticker", [sys.executable, "-c", NODE, str(closed)], streams=("eyemotion_test",))
    sup = Supervisor([child], tmp_path / "sup", markers=outlet, min_backoff_s=0.2)
    sup.start()
    try:
        time.sleep(1.5)
        first_pid = sup.states["ticker"].process.pid
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sup.poll()
            proc = sup.states["ticker"].process
            if proc is not None and proc.pid != first_pid:
                break
            time.sleep(0.05)
        assert sup.states["ticker"].process.pid != first_pid
        restart = sup.states["ticker"].restarts[0]
        assert restart["reason"] == "killed by SIGKILL"
        got = _markers(inlet)
        events = [m["event"] for m, _ in got]
        assert events == ["node_restart", "node_gap"]
        gap = got[1][0]
        assert gap["node"] == "ticker" and gap["streams"] == ["eyemotion_test"]
        assert 0 < gap["duration"] < 5 and gap["end"] > gap["start"]
    finally:
        sup.shutdown()
    # the restarted node was stopped cleanly (SIGINT -> Node.close ran)
    assert closed.read_text().count("closed") == 1
    assert json.dumps(sup.report())  # serialisable for the session summary


def test_hung_node_is_killed_and_restarted(tmp_path):
    child = ChildSpec("hang", [sys.executable, "-c", HANG])
    sup = Supervisor([child], tmp_path, heartbeat_timeout_s=1.0, startup_grace_s=0.5, min_backoff_s=0.1)
    sup.start()
    try:
        deadline = time.monotonic() + 15
        while not sup.states["hang"].restarts and time.monotonic() < deadline:
            sup.poll()
            time.sleep(0.1)
        assert sup.states["hang"].restarts[0]["reason"] == "no heartbeat (hung)"
    finally:
        sup.shutdown()


def test_shutdown_order_and_session_end(tmp_path):
    order = tmp_path / "order.txt"
    stopper = ("import signal, sys, time\n"
               "def bye(*_):\n"
               f"    open({str(order)!r}, 'a').write(sys.argv[1] + '\\n'); sys.exit(0)\n"
               "signal.signal(signal.SIGINT, bye)\n"
               "while True: time.sleep(0.05)\n")
    children = [
        ChildSpec("recorder", [sys.executable, "-c", stopper, "recorder"], stop_rank=9, heartbeat=False),
        ChildSpec("source", [sys.executable, "-c", stopper, "source"], stop_rank=5, heartbeat=False),
        ChildSpec("runner", [sys.executable, "-c", "import time; time.sleep(1.0)"], ends_session=True,
                  heartbeat=False, restart=False),
    ]
    sup = Supervisor(children, tmp_path / "sup")
    sup.start()
    assert sup.run(duration=20) == "runner finished"
    sup.shutdown()
    assert order.read_text().split() == ["source", "recorder"]


def test_crash_loop_backs_off(tmp_path):
    child = ChildSpec("crash", [sys.executable, "-c", "import sys; sys.exit(3)"], heartbeat=False)
    sup = Supervisor([child], tmp_path, min_backoff_s=0.1, max_backoff_s=0.4)
    sup.start()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        sup.poll()
        time.sleep(0.02)
    sup.shutdown()
    restarts = sup.states["crash"].restarts
    assert restarts and all(r["reason"] == "exit code 3" for r in restarts)
    assert sup.states["crash"].backoff_s == pytest.approx(0.4)
    assert 3 <= len(restarts) <= 14  # backoff bounded the rate (unbounded would be hundreds)
    assert pylsl.local_clock() > restarts[0]["died_lsl"]


def test_a_node_that_refuses_to_run_stops_the_session_with_its_reason(tmp_path):
    refuse = "import sys; print('eyemotion: error: camera 7 cannot be opened; available: none'); sys.exit(2)"
    children = [ChildSpec("camera", [sys.executable, "-c", refuse], heartbeat=False),
                ChildSpec("other", [sys.executable, "-c", "import time; time.sleep(30)"], heartbeat=False)]
    sup = Supervisor(children, tmp_path)
    sup.start()
    try:
        reason = sup.run(duration=20)
    finally:
        sup.shutdown()
    assert reason == "stopped: camera: camera 7 cannot be opened; available: none"
    assert sup.states["camera"].restarts == []  # not restarted: restarting cannot fix a refusal


@pytest.mark.parametrize("camera_lost_for_good", [False, True])
def test_the_session_check_flags_a_stream_that_stopped_before_the_end(tmp_path, camera_lost_for_good):
    """No sample is missing from a camera that simply stopped at 4 s of a 20-s session, yet the session is
    not whole: the check says so, unless the camera's loss was marked (device_lost, never restored)."""
    import numpy as np
    from eyemotion.acquisition.replay import XdfWriter

    from eyemotion.session import RECORDING_XDF, create_session_folder
    from eyemotion.session_runner import verify_session

    folder = create_session_folder(tmp_path, "P001", "S01")
    t0 = 100.0
    with XdfWriter(folder / RECORDING_XDF) as w:
        w.add_stream(1, streams.stream_info(streams.AUDIO).as_xml())
        w.add_stream(2, streams.stream_info(streams.CAMERA, rate=30.0).as_xml())
        w.add_stream(3, streams.stream_info(streams.MARKERS).as_xml())
        n = 20 * 16000
        w.write_samples(1, t0 + np.arange(n) / 16000, np.zeros((n, 1), np.float32))
        w.write_samples(2, t0 + np.arange(120) / 30.0, np.arange(120.0)[:, None])
        marks = [(t0 + 4.1, {"event": "device_lost", "source": "camera", "device": "camera"})] \
            if camera_lost_for_good else []
        marks.append((t0 + 20.0, {"event": "session_end", "source": "supervisor", "reason": "duration"}))
        w.write_samples(3, [t for t, _ in marks], [[json.dumps(m)] for _, m in marks])
    problems = verify_session(folder, {"nodes": {}}, expect_predictions=False)
    early = [p for p in problems if "before the session ended" in p]
    if camera_lost_for_good:
        assert early == []
    else:
        assert early == ["eyemotion_camera stopped 16.0 s before the session ended, outside any marked gap"]
    assert not any("eyemotion_audio stopped" in p for p in problems)


def test_beating_keeps_the_heartbeat_fresh_during_a_slow_step(tmp_path, monkeypatch):
    """`beating()` touches the heartbeat file from a thread (a node compiling on first use stays alive)."""
    from eyemotion.nodes import HEARTBEAT_ENV, HEARTBEAT_S, beating

    beat = tmp_path / "beat"
    monkeypatch.setenv(HEARTBEAT_ENV, str(beat))
    with beating():
        time.sleep(4 * HEARTBEAT_S)  # the slow step: the main thread does not beat
        assert beat.exists()
        first = beat.stat().st_mtime_ns
        time.sleep(3 * HEARTBEAT_S)
        assert beat.stat().st_mtime_ns > first
    stopped = beat.stat().st_mtime_ns
    time.sleep(3 * HEARTBEAT_S)
    assert beat.stat().st_mtime_ns == stopped  # the thread ended with the block
    monkeypatch.delenv(HEARTBEAT_ENV)
    with beating():  # without a supervisor: nothing to touch
        pass
