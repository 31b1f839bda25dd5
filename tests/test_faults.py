"""Fault injection in real headless demo sessions (issue 9, item 4).

One long `eyemotion demo --headless` session takes its faults one after another, spaced out so that each
is checked on its own: every node SIGKILLed in turn (tracker, camera, microphone, eyesignal, inference,
dashboard, stimulus runner), the simulated tracker disconnecting, the camera's video file vanishing,
the microphone node's main thread stalling until its capture queue overflows (real `queue_full`), and
the whole microphone process stalling (SIGSTOP). Two short sessions end the way a lab session must not
go on: the recorder is SIGKILLed (not restarted: a second LabRecorder must not overwrite
`recording.xdf`, so the session stops cleanly), and its disk runs low (through the recorder's
fault-injection hook `$EYEMOTION_FAULT_DISK_FREE_FILE`).

After the sessions the tests read the session folders: the demo's own `verify_session` passed (no
sample lost outside a marked gap, trials.csv matches the markers, predictions, clocks), each fault left
the markers it must (`node_restart`/`node_gap`, `device_lost`/`device_restored`, `audio_overflow`,
`node_died`, `disk_low`), and in the calm stretch before each fault every sample is in the XDF: device
times, frame indices and audio stamps advance without a hole.

Each session gets its own LSL namespace (made like conftest's `namespace` fixture; the sessions are
module-scoped, which function-scoped fixtures cannot be).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pylsl
import pytest
from eyemotion.stimuli.commands import DEMO_PROTOCOL

from eyemotion.config import LslConfig, config_from_dict
from eyemotion.session import Session, read_session_json

pytestmark = pytest.mark.timeout(600)

KILLED_NODES = ("tracker", "camera", "microphone", "eyesignal", "inference", "dashboard", "runner")
NODE_STREAM = {"tracker": "Tobii_gaze", "camera": "eyemotion_camera", "microphone": "eyemotion_audio",
               "eyesignal": "eyemotion_gaze", "inference": "eyemotion_emotion", "runner": "eyemotion_markers"}
SETTLE_S = 5.0  # calm time after a node is back before the next fault


# -- one demo session as a child process -----------------------------------------------------------------
@dataclass
class Fault:
    name: str
    start: float  # LSL time the fault was injected
    end: float = 0.0  # LSL time it was over (device back, node running again)
    info: dict = field(default_factory=dict)


class DemoSession:
    """`eyemotion demo --headless` in its own namespace, with a private camera video and a long protocol."""

    def __init__(self, root: Path, duration: float, env: dict[str, str] | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.namespace = namespace = f"t{os.getpid()}x{uuid.uuid4().hex[:8]}"
        self.video = root / "camera-source.mp4"
        self._private_video()
        config = config_from_dict({})
        config = config.replace(lsl=LslConfig(namespace=namespace, scope="machine"),
                                camera=replace(config.camera, source=str(self.video), loop=True))
        (root / "eyemotion.toml").write_text(config.to_toml())
        protocol = self._long_protocol()
        self.log = open(root / "demo.log", "wb")  # noqa: SIM115 (open for the child's whole life)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eyemotion.cli", "--config", str(root / "eyemotion.toml"), "demo", "--headless",
             "--duration", str(duration), "--protocol", str(protocol), "--sessions-dir", str(root / "sessions")],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=root)
        self.folder = self._wait_recording()
        self.faults: list[Fault] = []

    def _private_video(self) -> None:
        """A 4-s looped demo video of our own, so the test can make it vanish."""
        from eyemotion.acquisition.media import write_test_video

        cam = config_from_dict({}).camera
        write_test_video(self.video, n_frames=int(4 * cam.fps), fps=cam.fps, size=(cam.width, cam.height), face=True)

    def _long_protocol(self) -> Path:
        """The demo protocol with long baselines and pauses: the session outlasts every fault."""
        text = DEMO_PROTOCOL.read_text()
        for key, value in (("baseline_s = 2.0", "baseline_s = 12.0"), ("iti_s = 1.0", "iti_s = 8.0")):
            assert key in text, f"the demo protocol no longer has {key!r}"
            text = text.replace(key, value)
        text = text.replace('conditions = "demo_conditions.csv"',
                            f'conditions = "{DEMO_PROTOCOL.parent / "demo_conditions.csv"}"')
        path = self.root / "long-demo.toml"
        path.write_text(text)
        return path

    def _wait_recording(self, timeout: float = 240.0) -> Path:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the demo ended before recording:\n{self.output()}"
            for info in (self.root / "sessions").glob("*/*/session.json"):
                if (read_session_json(info.parent).get("recording") or {}).get("start"):
                    return info.parent
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"the demo did not start recording within {timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.root / "demo.log").read_text(errors="replace")[-6000:]

    def pid(self, name: str) -> int:
        return int((self.folder / "pids" / name).read_text())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 90.0) -> None:
        """Until the supervisor started a new `name` and (for a Node) it heartbeats, i.e. it runs again."""
        deadline = time.monotonic() + timeout
        while self.pid(name) == old_pid:
            assert time.monotonic() < deadline and self.alive(), f"{name} was not restarted:\n{self.output()}"
            time.sleep(0.1)
        beat = self.folder / "heartbeats" / name
        if name in ("runner", "dashboard"):  # not Nodes: no heartbeat; give them time to open their window
            time.sleep(6.0)
            return
        while not beat.exists():
            assert time.monotonic() < deadline and self.alive(), f"{name} did not run again:\n{self.output()}"
            time.sleep(0.1)

    def finish(self, timeout: float = 300.0) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the demo did not end within {timeout:.0f} s:\n{self.output()}")
        self.log.close()
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- fault helpers -------------------------------------------------------------------------------------------
_PTRACE_SEIZE, _PTRACE_INTERRUPT, _PTRACE_DETACH, _WALL = 0x4206, 0x4207, 17, 0x40000000


def stall_thread(tid: int, seconds: float) -> bool:
    """Stop one thread (not its process) for `seconds` with ptrace; False where ptrace is not permitted.

    For the microphone node the main thread (the one that pushes to LSL) stops while PortAudio's
    callback thread keeps capturing, so the node's own bounded queue fills and drops blocks.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(_PTRACE_SEIZE, tid, None, None) != 0:
        return False
    try:
        libc.ptrace(_PTRACE_INTERRUPT, tid, None, None)
        status = ctypes.c_int()
        libc.waitpid(tid, ctypes.byref(status), _WALL)
        time.sleep(seconds)
    finally:
        libc.ptrace(_PTRACE_DETACH, tid, None, None)
    return True


def kill_node(session: DemoSession, name: str) -> Fault:
    old = session.pid(name)
    fault = Fault(f"kill {name}", pylsl.local_clock(), info={"pid": old})
    os.kill(old, signal.SIGKILL)
    session.wait_restarted(name, old)
    fault.end = pylsl.local_clock()
    return fault


def tracker_disconnect(session: DemoSession) -> Fault:
    """`simulate_disconnect seconds=3` on the session's markers, as `eyemotion markers push` sends it, from an
    outlet held until the simulator (which scans for marker streams every second) has subscribed."""
    from eyemotion.acquisition.markers import MarkerOutlet

    outlet = MarkerOutlet("faulttest", namespace=session.namespace)
    deadline = time.monotonic() + 30
    while not outlet.have_consumers() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3.0)  # every marker consumer (the simulator among them) has found and opened it
    fault = Fault("tracker disconnect", pylsl.local_clock())
    outlet.push("simulate_disconnect", seconds=3)
    time.sleep(3.5)
    fault.end = pylsl.local_clock()
    return fault


def camera_vanishes(session: DemoSession) -> Fault:
    away = session.video.with_suffix(".away")
    fault = Fault("camera vanishes", pylsl.local_clock())
    session.video.rename(away)
    time.sleep(3.0)
    away.rename(session.video)
    time.sleep(8.0)  # the node retries with backoff (0.25 s doubling): it is back within a few seconds
    fault.end = pylsl.local_clock()
    return fault


def microphone_queue_overflow(session: DemoSession) -> Fault:
    mic = session.pid("microphone")
    fault = Fault("microphone queue overflow", pylsl.local_clock())
    fault.info["ptrace"] = stall_thread(mic, 4.0)  # queue_s = 2 s: half the stall overflows
    fault.end = pylsl.local_clock() + 1.5
    return fault


def microphone_process_stall(session: DemoSession) -> Fault:
    mic = session.pid("microphone")
    fault = Fault("microphone process stall", pylsl.local_clock())
    os.kill(mic, signal.SIGSTOP)
    time.sleep(3.0)
    os.kill(mic, signal.SIGCONT)
    fault.end = pylsl.local_clock() + 2.5  # ALSA catches up in a burst or two after the stall
    return fault


# -- the sessions ------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    code: int
    output: str
    folder: Path
    faults: dict[str, Fault]
    session: Session | None = None

    def loaded(self) -> Session:
        if self.session is None:
            self.session = Session.load(self.folder, dejitter=False)  # raw stamps, to see every hole
        return self.session

    def summary(self) -> dict:
        return json.loads((self.folder / "session_summary.json").read_text())


@pytest.fixture(scope="module")
def long_session(tmp_path_factory) -> Outcome:
    session = DemoSession(tmp_path_factory.mktemp("faults"), duration=420)
    faults: dict[str, Fault] = {}
    try:
        time.sleep(SETTLE_S + 2)
        # device faults first: their markers come from the nodes' own marker outlets, recorded since the start
        steps = [("tracker disconnect", lambda: tracker_disconnect(session)),
                 ("camera vanishes", lambda: camera_vanishes(session)),
                 ("microphone queue overflow", lambda: microphone_queue_overflow(session)),
                 ("microphone process stall", lambda: microphone_process_stall(session))]
        steps += [(f"kill {n}", lambda n=n: kill_node(session, n)) for n in KILLED_NODES]
        for name, inject in steps:
            assert session.alive(), f"the session ended before '{name}':\n{session.output()}"
            faults[name] = inject()
            time.sleep(SETTLE_S)
    finally:
        session.stop()  # SIGINT: the supervisor shuts down in order, then verifies the session
    code = session.finish()
    return Outcome(code, session.output(), session.folder, faults)


def test_the_session_survives_every_fault_and_verifies(long_session):
    """The demo's own end-to-end check passes: nothing lost outside marked gaps, trials, predictions, clocks."""
    assert long_session.code == 0, long_session.output
    summary = long_session.summary()
    assert summary["session"]["checks"]["lost_samples"] == {"Tobii_gaze": 0, "eyemotion_camera": 0,
                                                            "eyemotion_audio": 0}
    assert summary["session"]["checks"]["clock_error_ms"] <= 1.0
    assert summary["session"]["predictions"] > 0
    assert not [w for w in long_session.loaded().warnings if "did not end cleanly" in w]


@pytest.mark.parametrize("node", KILLED_NODES)
def test_a_killed_node_restarts_and_its_gap_is_marked(long_session, node):
    fault = long_session.faults[f"kill {node}"]
    session = long_session.loaded()
    restarts = [m for m in session.markers.events("node_restart") if m.fields["node"] == node]
    assert restarts and restarts[0].fields["reason"] == "killed by SIGKILL"
    assert fault.start <= restarts[0].time <= fault.end
    gaps = [m.fields for m in session.markers.events("node_gap") if m.fields["node"] == node]
    assert gaps and fault.start - 0.5 <= gaps[0]["start"] <= gaps[0]["end"] <= fault.end
    assert long_session.summary()["session"]["restarts"][node] >= 1
    if node in NODE_STREAM:  # its stream was recorded before the kill and again after the restart
        stamps = session.stream(NODE_STREAM[node]).time_stamps
        assert np.any(stamps < fault.start) and np.any(stamps > fault.end)
    if node == "runner":  # continued the same session (--resume) rather than starting it over
        starts = session.markers.events("session_start")
        resumed = [m for m in starts if m.source == "runner" and m.time > fault.start]
        assert resumed and resumed[0].fields["resumed"] is True


def test_tracker_disconnect_is_marked_and_the_gap_is_the_only_hole(long_session):
    fault = long_session.faults["tracker disconnect"]
    session = long_session.loaded()
    lost = [m for m in session.markers.events("device_lost")
            if m.fields.get("device") == "tracker" and fault.start <= m.time <= fault.end]
    back = [m for m in session.markers.events("device_restored")
            if m.fields.get("device") == "tracker" and lost and m.time > lost[0].time]
    assert lost and back and back[0].time - lost[0].time == pytest.approx(3.0, abs=0.5)
    gaze = session.stream("Tobii_gaze")
    inside = (gaze.time_stamps > lost[0].time + 0.1) & (gaze.time_stamps < back[0].time - 0.1)
    assert not inside.any()  # the device sent nothing while disconnected
    assert np.any(gaze.time_stamps > back[0].time)  # and continues after


def test_camera_vanishing_is_marked_and_no_video_is_lost_to_the_kill(long_session):
    import cv2

    fault = long_session.faults["camera vanishes"]
    session = long_session.loaded()
    lost = [m for m in session.markers.events("device_lost")
            if m.fields.get("device") == "camera" and fault.start <= m.time <= fault.end]
    back = [m for m in session.markers.events("device_restored")
            if m.fields.get("device") == "camera" and lost and m.time > lost[0].time]
    assert lost and back and back[0].time - lost[0].time >= 2.5
    camera = session.stream("eyemotion_camera")
    frames, stamps = camera.channel("frame_index"), camera.time_stamps
    across = frames[(stamps > fault.start - 5) & (stamps < long_session.faults["kill camera"].start)]
    assert np.all(np.diff(across) == 1)  # across the vanishing the frame numbering continues without a hole
    assert back[0].fields["next_frame"] == lost[0].fields["last_frame"] + 1
    # the SIGKILLed node's camera.mkv stays readable (Matroska needs no closing index) up to about the kill;
    # the restarted node wrote camera-1.mkv, counting from 0, and closed it cleanly at the end
    killed, restarted = session.camera_segments
    assert (killed.path.name, restarted.path.name) == ("camera.mkv", "camera-1.mkv")
    assert np.all(np.diff(restarted.frame_index) == 1)

    def readable_frames(path) -> int:
        video, n = cv2.VideoCapture(str(path)), 0
        while video.grab():
            n += 1
        return n

    assert readable_frames(killed.path) >= killed.frame_index.max() + 1 - 2 * camera.nominal_srate
    assert readable_frames(restarted.path) == restarted.frame_index.max() + 1


def test_microphone_queue_overflow_is_marked(long_session):
    fault = long_session.faults["microphone queue overflow"]
    if not fault.info["ptrace"]:
        pytest.skip("ptrace is not permitted here (CAP_SYS_PTRACE / Yama): cannot stall one thread of the node")
    marks = [m for m in long_session.loaded().markers.events("audio_overflow")
             if m.fields["kind"] == "queue_full" and fault.start <= m.time <= fault.end + 2]
    assert marks and marks[0].fields["dropped_blocks"] > 0


def test_microphone_process_stall_is_marked(long_session):
    fault = long_session.faults["microphone process stall"]
    marks = [m for m in long_session.loaded().markers.events("audio_overflow")
             if fault.start <= m.time <= fault.end + 2]
    assert marks, "a 3-s stall of the microphone left no audio_overflow marker"


def test_nothing_recorded_before_a_fault_is_lost(long_session):
    """From when a stream is recorded again after one fault until the next fault, every sample is in the
    XDF: device times, frame indices and audio stamps advance at the stream's rate without a hole, except
    where the session marked one itself (on 2 loaded cores the microphone may stall for a moment: it marks
    that with `audio_overflow`, and verify_session accepts exactly such marked holes)."""
    from eyemotion.session_runner import _holes, _marked_gaps

    session = long_session.loaded()
    marked = _marked_gaps(session)
    gaze, camera, audio = (session.stream(n) for n in ("Tobii_gaze", "eyemotion_camera", "eyemotion_audio"))
    faults = sorted(long_session.faults.values(), key=lambda f: f.start)
    previous_end = session.stream("eyemotion_markers").time_stamps[0]
    for fault in faults:
        for stream, values, step in ((gaze, gaze.channel("device_time_stamp"), 1.0 / gaze.nominal_srate),
                                     (camera, camera.channel("frame_index"), 1.0),
                                     (audio, audio.time_stamps, 1.0 / audio.nominal_srate)):
            later = stream.time_stamps[stream.time_stamps > previous_end + 0.5]
            t0, t1 = later[0], fault.start - 0.2  # from when the recording has the stream again
            assert t1 - t0 > 1.0, f"{stream.name} is not recorded again before {fault.name}"
            sel = (stream.time_stamps >= t0) & (stream.time_stamps <= t1)
            # recorded throughout (a starved file-paced camera may run slower; loss is checked by the holes)
            assert sel.sum() >= 0.5 * (t1 - t0) * stream.nominal_srate, f"{stream.name} before {fault.name}"
            earlier = [g for g in marked if g[1] < fault.start - 0.2]  # over before this fault: its own excuse nothing
            lost = _holes(values[sel], step, stream.time_stamps[sel], earlier)
            assert lost == 0, f"{stream.name} lost {lost} samples before {fault.name}"
        previous_end = fault.end


def test_a_killed_recorder_stops_the_session_and_keeps_the_recording(tmp_path):
    """The recorder is not restarted (a new LabRecorder would overwrite recording.xdf): its death ends the
    session cleanly; LabRecorderCLI sees its stdin close and writes the footers of what it has."""
    session = DemoSession(tmp_path, duration=300)
    time.sleep(8.0)
    kill_at = pylsl.local_clock()
    labrecorder = read_session_json(session.folder)["recording"]["labrecorder_pid"]
    os.kill(session.pid("recorder"), signal.SIGKILL)
    session.finish(timeout=180)
    summary = json.loads((session.folder / "session_summary.json").read_text())
    assert summary["reason"].startswith("stopped: recorder died (killed by SIGKILL)")
    assert not Path(f"/proc/{labrecorder}").exists()  # no orphan left writing
    loaded = Session.load(session.folder, dejitter=False)
    gaze = loaded.stream("Tobii_gaze")
    before = gaze.time_stamps < kill_at - 0.2
    assert before.sum() > 5 * gaze.nominal_srate
    assert np.all(np.diff(gaze.channel("device_time_stamp")[before]) < 1.5 / gaze.nominal_srate)
    assert summary["session"]["checks"]["lost_samples"]["Tobii_gaze"] == 0


def test_low_disk_stops_the_recording_cleanly(tmp_path):
    free = tmp_path / "fault-free-gb"
    session = DemoSession(tmp_path, duration=300, env={"EYEMOTION_FAULT_DISK_FREE_FILE": str(free)})
    time.sleep(8.0)
    low_at = pylsl.local_clock()
    free.write_text("0.01")  # below [recorder] min_free_gb
    session.finish(timeout=180)
    meta = read_session_json(session.folder)
    assert meta["recording"]["stop_reason"] == "disk_low"
    assert meta["end_reason"].startswith("stopped: recorder")
    loaded = Session.load(session.folder, dejitter=False)
    assert not [w for w in loaded.warnings if "did not end cleanly" in w]  # every footer written
    disk_low = loaded.markers.events("disk_low")
    assert disk_low and disk_low[0].time >= low_at and disk_low[0].fields["free_gb"] < 0.1
    stop = [m for m in loaded.markers.events("recording_stop") if m.fields.get("reason") == "disk_low"]
    assert stop and stop[0].time >= disk_low[0].time
    gaze = loaded.stream("Tobii_gaze")
    before = gaze.time_stamps < low_at
    assert before.sum() > 5 * gaze.nominal_srate
    assert np.all(np.diff(gaze.channel("device_time_stamp")[before]) < 1.5 / gaze.nominal_srate)
