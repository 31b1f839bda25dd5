"""The dashboard (eyemotion.gui): real Qt widgets offscreen, real LSL streams from tests/streamgen.py.

Screenshots of the window, live and in replay, go to test-artifacts/ (the `artifacts_dir` fixture).
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pylsl
import pytest
import streamgen
from eyemotion.gui import emotion_panel, theme
from eyemotion.gui.feeds import State
from eyemotion.gui.models import EventSegmenter, LevelMeter, SessionState, prediction
from eyemotion.gui.ring import RingBuffer
from eyemotion.gui.window import Dashboard
from PyQt6.QtCore import QSettings, Qt
from PyQt6.QtWidgets import QApplication
from streamgen import ContractPublisher, publish_all, viewing
from streamgen import markers as runner_markers

from eyemotion.config import DashboardConfig
from eyemotion.streams import AUDIO, CAMERA, EMOTION, FACE, GAZE_CLEAN, GAZE_RAW, MARKERS, stream_info

pytestmark = pytest.mark.timeout(120)


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
def make_dashboard(qtbot, config, tmp_path):
    """Build dashboards with their own QSettings file; all are shut down after the test, never modally."""

    theme.apply(QApplication.instance())
    made = []

    def make(cfg=None, **kwargs) -> Dashboard:
        kwargs.setdefault("recorder", None)
        settings = QSettings(str(tmp_path / "dashboard.ini"), QSettings.Format.IniFormat)
        window = Dashboard(cfg or config, settings=settings, **kwargs)
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:  # qtbot closes them again after this, when monkeypatch is already undone
        window.ask_before_closing = False  # offscreen, a modal question would wait forever
        window.session_panel.stop_recording()  # waits for a start still in progress, then stops
        window.shutdown()


@pytest.fixture
def publishers():
    pubs: list[ContractPublisher] = []
    yield pubs
    for p in pubs:
        p.stop()


def wait_state(qtbot, window: Dashboard, key: str, state: State, timeout: int = 15000) -> None:
    try:
        qtbot.waitUntil(lambda: window.monitor[key].status().state is state, timeout=timeout)
    except qtbot.TimeoutError:
        raise AssertionError(f"{key} is not {state.value}: {window.monitor[key].status()}") from None


def wait_all_ok(qtbot, window: Dashboard, timeout: int = 20000) -> None:
    try:
        qtbot.waitUntil(
            lambda: all(st.state is State.OK for st in window.monitor.statuses()), timeout=timeout
        )
    except qtbot.TimeoutError:
        bad = [
            f"{st.name}: {st.state.value} ({st.reason})"
            for st in window.monitor.statuses()
            if st.state is not State.OK
        ]
        raise AssertionError("not all streams ok: " + "; ".join(bad)) from None


# -- models (no Qt) ------------------------------------------------------------------------------------


def test_ring_buffer_keeps_the_newest_samples_in_order():
    ring = RingBuffer(5, 2)
    for i in range(7):
        ring.extend(np.array([[i, -i]]), np.array([float(i)]))
    data, stamps = ring.last()
    assert stamps.tolist() == [2, 3, 4, 5, 6] and data[:, 1].tolist() == [-2, -3, -4, -5, -6]
    _, window = ring.window(2.0)
    assert window.tolist() == [4, 5, 6]
    _new, new_stamps, total = ring.since(5)
    assert new_stamps.tolist() == [5, 6] and total == 7
    ring.extend(np.arange(20.0).reshape(10, 2), np.arange(10.0, 20.0))  # more than the capacity at once
    assert ring.last()[1].tolist() == [15, 16, 17, 18, 19]


def test_eye_event_segments_do_not_depend_on_chunking():
    t = 100 + np.arange(2000) / 250
    v = viewing(t)
    whole, chunked = EventSegmenter(), EventSegmenter()
    whole.push(t, v["event"], v["xy"])
    for part in np.array_split(np.arange(len(t)), 37):
        chunked.push(t[part], v["event"][part], v["xy"][part])
    assert list(whole.segments) == list(chunked.segments)
    fixations = [s for s in whole.segments if s.code == 1]
    assert len(fixations) > 10
    durations = [f.duration for f in fixations]
    assert (
        max(durations) < 0.32 and 0.29 < np.median(durations) < 0.32
    )  # 350 ms cycle minus the 40 ms saccade


def test_level_meter_does_not_depend_on_chunking_and_tracks_loudness():
    t = np.arange(16000) / 16000
    x = np.where(t < 0.5, 0.5 * np.sin(2 * np.pi * 200 * t), 0.001)
    whole, chunked = LevelMeter(800), LevelMeter(800)
    whole.push(x, t)
    for part in np.array_split(np.arange(len(t)), 13):
        chunked.push(x[part], t[part])
    assert whole.levels == chunked.levels
    levels = [db for _, db in whole.levels]
    assert levels[0] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.5)
    assert levels[-1] == pytest.approx(-60, abs=0.5)


def test_emotion_gap_is_flagged_when_face_and_felt_emotion_disagree():
    row = np.zeros(EMOTION.channel_count)
    row[EMOTION.index("er_sadness")] = 0.8
    row[EMOTION.index("er_neutral")] = 0.2
    row[EMOTION.index("fer_happiness")] = 0.9
    row[EMOTION.index("fer_sadness")] = 0.1
    row[EMOTION.index("uses_face")] = 1
    p = prediction(row)
    assert p.gap and p.er_class == "sadness" and p.fer_class == "happiness"
    assert p.gap_size == pytest.approx(0.9) and p.modalities == ("face",)
    row[EMOTION.index("fer_sadness")], row[EMOTION.index("fer_happiness")] = 0.9, 0.1
    assert not prediction(row).gap
    assert not prediction(np.full(EMOTION.channel_count, np.nan)).gap  # NaN: no claim, no crash


def test_session_state_follows_runner_and_supervisor_markers():
    s = SessionState()
    s.push(1.0, json.dumps({"event": "trial_start", "source": "runner", "trial": 2, "n_trials": 8}))
    s.push(
        1.5, json.dumps({"event": "clip_onset", "source": "runner", "clip": "sad_03", "emotion": "sadness"})
    )
    s.push(2.0, json.dumps({"event": "node_restart", "source": "supervisor", "node": "camera", "attempt": 1}))
    s.push(2.1, "not json")
    assert (s.trial, s.n_trials, s.clip, s.clip_emotion, s.clip_playing) == (2, 8, "sad_03", "sadness", True)
    assert s.progress == pytest.approx(0.25)
    assert s.health["camera"][0] == "restarted" and s.errors == 1
    s.push(3.0, json.dumps({"event": "clip_offset", "source": "runner"}))
    assert not s.clip_playing and [text for _, text in s.timeline] == ["trial 2", "clip sad_03", "clip end"]


# -- the window with live streams -----------------------------------------------------------------------


def test_every_panel_receives_live_data(
    make_dashboard, qtbot, config, namespace, publishers, artifacts_dir, caplog
):
    caplog.set_level(logging.ERROR)
    publishers += publish_all(
        namespace,
        keys=tuple(s.key for s in (GAZE_RAW, GAZE_CLEAN, AUDIO, FACE, EMOTION))
        + ("camera", "preview", "eye_events"),
    )
    fast_markers = ContractPublisher(
        MARKERS,
        namespace=namespace,
        event_rate=4.0,
        device="runner",
        generator=lambda t, spec: runner_markers(t, spec, step_s=0.25),
    )
    publishers.append(fast_markers.start())
    from eyemotion.acquisition.markers import MarkerOutlet

    supervisor = MarkerOutlet("supervisor", namespace=namespace)
    window = make_dashboard(participant="P001")
    wait_all_ok(qtbot, window)
    qtbot.waitUntil(lambda: window.monitor["markers"].status().streams >= 3, timeout=10000)
    supervisor.push("node_restart", node="camera", reason="exit code 1", attempt=1)
    qtbot.wait(4500)  # >= one simulated blink (every 4 s) inside the 10 s eye-signal window

    streams = window.streams_panel
    assert streams.alerted == [] and "all streams live" in streams.alert.text()
    gaze_row = streams.statuses[list(window.monitor.feeds).index("gaze_raw")]
    assert gaze_row.nominal_rate == 250 and 200 < gaze_row.effective_rate < 300
    assert not math.isnan(gaze_row.clock_offset)
    assert streams.table.item(0, 1).text() == "ok"

    gaze = window.gaze_panel
    assert all(0 <= c <= 1 for c in gaze.last_point)
    assert gaze.shown_fixations > 3 and gaze.shown_saccades > 3
    assert gaze.view.getViewBox().state["aspectLocked"]
    window.gaze_panel.set_heat_map(True)
    qtbot.waitUntil(lambda: gaze.heat.image is not None and gaze.heat.image.max() > 0, timeout=3000)
    assert gaze.heat.image.max() == pytest.approx(1.0)  # the clip's fixation map, scaled to its peak

    eye = window.eye_panel
    assert eye.pupil_points > 1000 and eye.n_blink_samples > 10
    assert 0.9 < eye.quality.valid_share <= 1 and eye.quality.loss_share < 0.1

    face = window.face_panel
    assert face.image_shape == (120, 160, 3)
    assert face.face.present and face.box.isVisible() and face.face.fer.sum() == pytest.approx(1, abs=1e-4)
    assert -60 < face.level_db < 0 and len(face.meter_model.levels) > 20

    emotion = window.emotion_panel
    assert emotion.last is not None and emotion.last.er.sum() == pytest.approx(1, abs=1e-4)
    assert set(emotion.last.modalities) >= {"face", "gaze"}
    assert any(m.startswith("clip ") for m in emotion.markers_shown)
    assert ("EMOTION GAP" in emotion.gap_label.text()) == emotion.last.gap

    session = window.session_panel
    assert window.session.n_trials == 7 and session.trial.text().startswith("trial ")
    # the fast runner clears the clip at each trial_start (every 1 s): wait for the next clip to be shown
    qtbot.waitUntil(lambda: window.session.clip.endswith("_01"), timeout=3000)
    assert session.progress.value() > 0
    assert "camera: restarted" in session.health.item(0).text()
    assert "free disk" in session.disk.text() and "GB" in session.disk.text()
    assert not session.record_button.isEnabled()  # no recorder given: shown as not available
    assert "not available" in session.record_state.text()

    assert not [r for r in caplog.records if "failed to redraw" in r.getMessage()]
    window.grab().save(str(artifacts_dir / "dashboard_live.png"))
    assert (artifacts_dir / "dashboard_live.png").stat().st_size > 50_000


def test_stale_and_lost_streams_raise_the_alert_and_clear_when_they_return(
    make_dashboard, qtbot, config, namespace, publishers
):
    cfg = config.replace(dashboard=DashboardConfig(stale_s=0.6))
    gaze = ContractPublisher(GAZE_RAW, namespace=namespace, rate=120).start()
    publishers.append(gaze)
    window = make_dashboard(cfg)
    wait_state(qtbot, window, "gaze_raw", State.OK)
    qtbot.waitUntil(lambda: "Tobii_gaze" not in window.streams_panel.alerted, timeout=3000)

    gaze.pause()
    wait_state(qtbot, window, "gaze_raw", State.STALE, 5000)
    qtbot.waitUntil(lambda: "Tobii_gaze" in window.streams_panel.alerted, timeout=3000)
    assert "stale: " in window.streams_panel.alert.text() and "Tobii_gaze" in window.alert.text()
    gaze.resume()
    wait_state(qtbot, window, "gaze_raw", State.OK, 5000)
    qtbot.waitUntil(lambda: "Tobii_gaze" not in window.streams_panel.alerted, timeout=3000)

    gaze.stop()  # the outlet goes away ...
    wait_state(qtbot, window, "gaze_raw", State.MISSING, 10000)
    qtbot.waitUntil(lambda: "Tobii_gaze" in window.streams_panel.alerted, timeout=3000)
    gaze.start()  # ... and comes back
    wait_state(qtbot, window, "gaze_raw", State.OK, 15000)
    qtbot.waitUntil(lambda: "Tobii_gaze" not in window.streams_panel.alerted, timeout=3000)


def test_wrong_layout_is_shown_incompatible_with_the_reason(make_dashboard, qtbot, namespace):
    info = pylsl.StreamInfo(
        EMOTION.name,
        EMOTION.type,
        5,
        0.0,
        pylsl.cf_float32,
        f"eyemotion:eyemotion_emotion@elsewhere#{namespace}",
    )
    outlet = pylsl.StreamOutlet(info)
    window = make_dashboard()
    wait_state(qtbot, window, "emotion", State.INCOMPATIBLE)
    status = window.monitor["emotion"].status()
    assert "has 5 channels, expected 19" in status.reason
    qtbot.waitUntil(lambda: "incompatible: " in window.streams_panel.alert.text(), timeout=3000)
    row = list(window.monitor.feeds).index("emotion")
    assert "expected 19" in window.streams_panel.table.item(row, 8).text()
    assert window.monitor["emotion"].data.total == 0  # never read
    del outlet


def test_nan_samples_are_drawn_without_errors(make_dashboard, qtbot, namespace, publishers, caplog):
    caplog.set_level(logging.ERROR)

    def nans(t, spec):
        return np.full((len(t), spec.channel_count), np.nan)

    for spec in (GAZE_CLEAN, FACE, EMOTION, AUDIO):
        publishers.append(ContractPublisher(spec, namespace=namespace, generator=nans).start())
    window = make_dashboard()
    for key in ("gaze_clean", "face", "emotion", "audio"):
        wait_state(qtbot, window, key, State.OK)
    refreshes = {p.title: p.refreshes for p in window.panels}
    qtbot.wait(1500)
    for panel in (window.gaze_panel, window.eye_panel, window.face_panel, window.emotion_panel):
        assert panel.refreshes > refreshes[panel.title]
    assert math.isnan(window.gaze_panel.last_point[0]) and window.gaze_panel.shown_fixations == 0
    assert not window.emotion_panel.last.gap and window.face_panel.level_db == -120.0
    assert not [r for r in caplog.records if "failed to redraw" in r.getMessage()]


def test_many_clips_keep_the_plot_items_and_symbol_caches_bounded(make_dashboard, namespace, monkeypatch):
    """A long session (here 150 one-second clips, fixations of ever new durations, predictions at 2 Hz)
    must not grow the dashboard: no plot items are added, and pyqtgraph's per-scatter symbol atlas (one
    rendered image per distinct size/pen/brush, kept until 1000 entries) holds only the few styles used."""
    warped = viewing
    monkeypatch.setattr(streamgen, "viewing", lambda t: warped(t + 0.12 * np.sin(np.asarray(t) * 0.9)))
    window = make_dashboard()
    gaze, emotion = window.monitor["gaze_clean"], window.monitor["emotion"]
    gaze._prepare(stream_info(GAZE_CLEAN, namespace=namespace, rate=250.0))
    emotion._prepare(stream_info(EMOTION, namespace=namespace))
    views = (window.gaze_panel.view, window.emotion_panel.timeline, window.emotion_panel.circumplex)
    items_before = [len(v.scene().items()) for v in views]
    sizes_seen: set[float] = set()
    t0 = 1000.0
    for clip in range(150):
        start = t0 + clip
        for stamp, text in ((start, "clip_onset"), (start + 0.9, "clip_offset")):
            window.session.push(stamp, json.dumps({"source": "runner", "event": text, "clip": f"c{clip}"}))
        k = np.arange(250)
        stamps = start + (k + 0.3 * np.sin(2.7 * k + clip)) / 250.0  # jittered, as LSL stamps are
        gaze.ingest(streamgen.gaze_clean(stamps), stamps)
        window.gaze_panel.refresh(stamps[-1])
        sizes_seen |= {round(60 * s.duration, 6) for s in window.gaze_panel.segmenter.segments}
        for half in (0.0, 0.5):
            emotion.ingest(streamgen.emotion(np.array([start + half])), [start + half])
            window.emotion_panel.refresh(start + half + 0.01)
    assert window.session.clip_onsets == 150 and window.gaze_panel.shown_fixations > 0
    assert len(sizes_seen) > 100  # the durations really vary: unquantised sizes would fill the atlas
    assert len(window.gaze_panel.fixations.fragmentAtlas) <= 16
    assert len(window.emotion_panel.va_trail.fragmentAtlas) <= emotion_panel.TRAIL
    assert "clip c149" in window.emotion_panel.markers_shown
    assert [len(v.scene().items()) for v in views] == items_before


def test_annotation_hotkey_pushes_a_marker(make_dashboard, qtbot, namespace):
    window = make_dashboard()
    infos = pylsl.resolve_bypred(
        f"name='{MARKERS.name}' and contains(source_id,'/dashboard#{namespace}')", 1, 10
    )
    assert infos, "the dashboard publishes its own markers stream"
    inlet = pylsl.StreamInlet(infos[0])
    inlet.open_stream(5)
    qtbot.waitUntil(window.markers.have_consumers, timeout=5000)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    window.gaze_panel.view.setFocus()  # not the participant field, where digits are typed, not hotkeys
    qtbot.keyClick(window.gaze_panel.view, Qt.Key.Key_2)
    sample, _ = inlet.pull_sample(timeout=5)
    assert sample is not None
    marker = json.loads(sample[0])
    assert marker == {"event": "annotation", "source": "dashboard", "label": "participant_moved"}
    assert window.session_panel.annotations_sent == ["participant_moved"]


def test_layout_is_remembered(make_dashboard, qtbot):
    first = make_dashboard()
    first.docks["Eye signals"].setVisible(False)
    first.close()
    second = make_dashboard()
    assert not second.docks["Eye signals"].isVisible() and second.docks["Gaze"].isVisible()
    second.reset_layout()
    assert second.docks["Eye signals"].isVisible()


# -- replay ---------------------------------------------------------------------------------------------


def write_session(folder, seconds: float = 20.0) -> None:
    """A small real recording.xdf (raw gaze at 120 Hz, camera frames, 16 kHz audio, face, markers) written in
    0.5 s chunks per stream, interleaved the way LabRecorder writes them."""
    from eyemotion.acquisition.replay import XdfWriter

    t0 = pylsl.local_clock() - 1000
    streams = (
        (1, GAZE_RAW, 1 / 120, streamgen.gaze_raw),
        (3, FACE, 0.1, streamgen.face),
        (4, CAMERA, 1 / 30, streamgen.camera),
        (5, AUDIO, 1 / 16000, streamgen.audio),
        (2, MARKERS, 0.5, lambda t: streamgen.markers(t, step_s=0.5)),
    )
    with XdfWriter(folder / "recording.xdf") as w:
        for sid, spec, period, _ in streams:
            rate = round(1 / period) if spec in (GAZE_RAW, CAMERA) else None
            w.add_stream(
                sid, stream_info(spec, namespace="rec", rate=rate, device="SIM" if rate else "").as_xml()
            )
        for start in np.arange(0, seconds, 0.5):
            for sid, spec, period, make in streams:
                t = t0 + np.arange(start, start + 0.5 - 1e-9, period)
                w.write_samples(sid, t, make(t))


def test_replay_controls_play_pause_and_seek(make_dashboard, qtbot, namespace, tmp_path, artifacts_dir):
    from eyemotion.session import update_session_json

    folder = tmp_path / "sessions" / "P001" / "20260101T100000"
    folder.mkdir(parents=True)
    update_session_json(folder, participant="P001", session_id=folder.name)
    write_session(folder)
    window = make_dashboard()
    assert window.open_replay(folder)
    panel = window.replay_panel
    assert panel.backend is not None and panel.slider.isEnabled()
    assert panel.backend.duration == pytest.approx(20, abs=0.1)
    wait_state(qtbot, window, "gaze_raw", State.OK)
    wait_state(qtbot, window, "face", State.OK)
    wait_state(qtbot, window, "audio", State.OK)
    wait_state(qtbot, window, "gaze_clean", State.OK)  # the real eye-signal node runs beside the replay
    qtbot.waitUntil(
        lambda: window.gaze_panel.shown_fixations > 2 and window.session.trial is not None, timeout=10000
    )
    qtbot.wait(2500)
    window.grab().save(str(artifacts_dir / "dashboard_replay.png"))

    panel.toggle()  # pause
    qtbot.waitUntil(lambda: panel.backend.paused, timeout=2000)
    qtbot.wait(200)  # the replay thread finishes the step it was in
    paused_at = panel.backend.position
    qtbot.wait(600)
    assert panel.backend.position == paused_at
    panel.seek(12.0)
    qtbot.waitUntil(lambda: abs(panel.backend.position - 12.0) < 0.05, timeout=3000)
    assert window.monitor["gaze_raw"].data.total == 0  # the panels start over from the seek point
    panel.refresh(0)
    assert panel.slider.value() == pytest.approx(600, abs=3) and "12.0 / 20.0 s" in panel.position.text()
    panel.toggle()  # play on from 12 s
    qtbot.waitUntil(
        lambda: panel.backend.position > 12.3 and window.monitor["gaze_raw"].data.total > 0, timeout=5000
    )
    panel.speed.setCurrentIndex(panel.speed.findData(4.0))
    assert panel.backend.speed == 4.0


def test_a_folder_that_cannot_be_replayed_gets_a_dialog(make_dashboard, qtbot, tmp_path):
    window = make_dashboard()
    assert not window.open_replay(tmp_path / "nowhere")
    assert window.error_dialog.isVisible() and "not found" in window.error_dialog.text()
    assert window.replay_panel.backend is None and "cannot replay" in window.replay_panel.position.text()
    window.error_dialog.close()


def test_cli_dashboard_help_and_bad_replay(capsys, config, tmp_path, monkeypatch):
    import argparse

    from eyemotion.gui import commands

    parser = argparse.ArgumentParser(prog="eyemotion")
    commands.register(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["dashboard", "--help"])
    assert "--replay SESSION" in capsys.readouterr().out
    monkeypatch.setenv("HOME", str(tmp_path))  # the QSettings of this run stay in tmp
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    args = parser.parse_args(
        [
            "dashboard",
            "--replay",
            str(tmp_path / "missing"),
            "--duration",
            "1.5",
            "--screenshot",
            str(tmp_path / "shot.png"),
        ]
    )
    assert args.func(args, config) == 2  # the dialog was shown, the window closed itself, exit code 2
    assert (tmp_path / "shot.png").stat().st_size > 10_000


# -- recording ------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_recording_start_stop_makes_a_session_and_close_asks_first(
    make_dashboard, qtbot, config, namespace, publishers, tmp_path, monkeypatch
):
    import dataclasses

    import pyxdf
    from eyemotion.gui.backends import RecorderBackend
    from PyQt6.QtWidgets import QMessageBox

    from eyemotion.session import read_session_json

    cfg = config.replace(
        recorder=dataclasses.replace(
            config.recorder, sessions_dir=str(tmp_path / "sessions"), min_free_gb=0.0
        )
    )
    publishers += [
        ContractPublisher(s, namespace=namespace, rate=r).start()
        for s, r in ((GAZE_RAW, 120.0), (CAMERA, None), (AUDIO, None))
    ]
    window = make_dashboard(cfg, recorder=RecorderBackend(cfg))
    panel = window.session_panel
    for key in ("gaze_raw", "camera", "audio"):
        wait_state(qtbot, window, key, State.OK)

    panel.participant.setText("John Smith")  # not a pseudonym: refused, visibly, nothing created
    panel.record_button.click()
    qtbot.waitUntil(lambda: "not recording" in panel.record_state.text(), timeout=10000)
    assert "pseudonym" in panel.record_state.text() and not (tmp_path / "sessions" / "John Smith").exists()

    panel.participant.setText("P042")
    panel.record_button.click()
    # LabRecorderCLI gets several tries to find every stream (acquisition/recorder.py): minutes when loaded
    qtbot.waitUntil(lambda: "starting the recording" not in panel.record_state.text(), timeout=150000)  # shown
    assert panel.recording, panel.record_state.text()
    folder = panel.recorder.folder
    assert folder.parent == tmp_path / "sessions" / "P042" and (folder / "session.json").exists()
    assert "recording to" in panel.record_state.text() and "Stop" in panel.record_button.text()
    qtbot.wait(2500)
    qtbot.waitUntil(lambda: "elapsed 0:00:0" in panel.elapsed.text(), timeout=3000)

    assert not window.ask_before_closing  # offscreen nobody could answer: it would stop without asking
    window.ask_before_closing = True  # as on a screen
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    window.close()  # "No": the window stays and keeps recording
    assert window.isVisible() and panel.recording
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.close()  # "Yes": the recording is stopped cleanly, then the window closes
    assert not window.isVisible() and not panel.recording

    streams, _ = pyxdf.load_xdf(str(folder / "recording.xdf"))
    by_name = {s["info"]["name"][0]: s for s in streams}
    assert {"Tobii_gaze", "eyemotion_camera", "eyemotion_audio"} <= set(by_name)
    assert len(by_name["Tobii_gaze"]["time_stamps"]) > 120
    meta = read_session_json(folder)
    assert meta["participant"] == "P042" and meta["recording"]["end"]
    assert meta["recording"]["stop_reason"] == "dashboard"


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_the_dashboard_process_closes_cleanly_on_a_stop_signal(tmp_path, namespace, sig):
    """The supervisor ends a session with SIGINT (then SIGTERM): the dashboard must close by itself."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = tmp_path / "eyemotion.toml"
    cfg.write_text(f'[lsl]\nnamespace = "{namespace}"\n')
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "eyemotion.cli", "--config", str(cfg), "dashboard"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not streams_found(namespace):
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        proc.send_signal(getattr(signal, sig))
        assert proc.wait(20) == 0
    finally:
        proc.kill()


def streams_found(namespace: str) -> bool:
    """The dashboard is up once its annotation marker outlet is visible."""
    from eyemotion.streams import find

    return bool(find(MARKERS, namespace=namespace, timeout=0.3))
