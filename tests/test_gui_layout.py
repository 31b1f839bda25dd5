"""Dashboard layout faults (issue 16, Sec. 5), one screenshot test per fault, checked geometrically: labels
that must not overlap, texts that must not be elided, tick labels that must fit their spacing, legends that
must not cover the bars, and the words the panels use. Real widgets offscreen at 1680x1050, fed by real LSL
streams (tests/streamgen.py); screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import re

import pytest
from eyemotion.gui import theme
from eyemotion.gui.models import SessionState, readable_marker
from eyemotion.gui.window import Dashboard
from PyQt6.QtCore import QPointF, QRect, QSettings
from PyQt6.QtGui import QFontMetrics
from PyQt6.QtWidgets import QApplication, QLabel, QWidget
from streamgen import ContractPublisher, publish_all
from streamgen import markers as runner_markers
from test_gui import wait_all_ok

from eyemotion.streams import AUDIO, EMOTION, EVENT_CODES, FACE, GAZE_CLEAN, GAZE_RAW, MARKERS

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def live_window(qtbot, config, namespace, tmp_path):
    """A dashboard at 1680x1050 with every contract stream live and runner markers every 0.25 s."""
    theme.apply(QApplication.instance())
    pubs = publish_all(
        namespace,
        keys=tuple(s.key for s in (GAZE_RAW, GAZE_CLEAN, AUDIO, FACE, EMOTION)) + ("camera", "preview", "eye_events"),
    )
    pubs.append(ContractPublisher(MARKERS, namespace=namespace, event_rate=4.0, device="runner",
                                  generator=lambda t, spec: runner_markers(t, spec, step_s=0.25)).start())
    settings = QSettings(str(tmp_path / "dashboard.ini"), QSettings.Format.IniFormat)
    window = Dashboard(config, settings=settings, recorder=None)
    qtbot.addWidget(window)
    window.resize(1680, 1050)
    window.show()
    wait_all_ok(qtbot, window)
    qtbot.wait(3000)
    yield window
    window.ask_before_closing = False
    window.shutdown()
    for p in pubs:
        p.stop()


def rect_in(window: QWidget, widget: QWidget) -> QRect:
    return QRect(widget.mapTo(window, widget.rect().topLeft()), widget.size())


def plain(label: QLabel) -> str:
    return re.sub(r"<[^>]+>", "", label.text()).replace("&nbsp;", " ")


def label_faults(window: QWidget, panel: QWidget) -> list[str]:
    """Overlapping visible labels, and labels whose text does not fit (elided or cut)."""
    labels = [w for w in panel.findChildren(QLabel) if w.isVisible() and w.text()]
    faults = []
    for i, a in enumerate(labels):
        ra = rect_in(window, a)
        for b in labels[i + 1:]:
            inter = ra.intersected(rect_in(window, b))
            if inter.width() > 1 and inter.height() > 1:
                faults.append(f"{plain(a)!r} overlaps {plain(b)!r}")
        metrics = QFontMetrics(a.font())
        inner = a.contentsRect().width() - 2 * a.margin() - 8  # style sheet padding
        if a.wordWrap():
            need = a.heightForWidth(a.width())
            if need > a.height() + 2:
                faults.append(f"{plain(a)!r} is cut: needs {need} px height, has {a.height()}")
        elif metrics.horizontalAdvance(plain(a)) > inner + 8:
            faults.append(f"{plain(a)!r} is elided: needs {metrics.horizontalAdvance(plain(a))} px, has {inner}")
    return faults


def tick_faults(plot, axis: str = "bottom") -> list[str]:
    """Neighbouring tick labels of an axis with fixed ticks that would overlap at the drawn scale."""
    ax = plot.getAxis(axis)
    ticks = ax._tickLevels[0] if ax._tickLevels else []
    vb = plot.getViewBox()
    metrics = QFontMetrics(ax.style.get("tickFont") or QApplication.font())
    horizontal = axis in ("bottom", "top")
    placed = []
    for value, text in ticks:
        point = vb.mapViewToScene(QPointF(value, 0) if horizontal else QPointF(0, value))
        size = metrics.horizontalAdvance(text) if horizontal else metrics.height()
        placed.append((point.x() if horizontal else point.y(), size, text))
    placed.sort()
    return [f"{a[2]!r} and {b[2]!r} overlap" for a, b in zip(placed, placed[1:])
            if b[0] - a[0] < (a[1] + b[1]) / 2 + 2] + ([] if True else [placed])


def shot(window, artifacts_dir, name: str) -> None:
    path = artifacts_dir / name
    window.grab().save(str(path))
    assert path.stat().st_size > 30_000


def test_session_panel_labels_do_not_overlap(live_window, artifacts_dir):
    window = live_window
    shot(window, artifacts_dir, "layout_session_panel.png")
    panel = window.session_panel
    assert panel.elapsed.text().startswith("elapsed") and "free disk" in panel.disk.text()
    a, b = rect_in(window, panel.elapsed), rect_in(window, panel.disk)
    assert not a.intersects(b), "elapsed is drawn over free disk"
    assert label_faults(window, panel) == []


def test_bar_and_timeline_ticks_do_not_overlap_and_legends_do_not_cover_bars(live_window, artifacts_dir):
    window = live_window
    shot(window, artifacts_dir, "layout_emotion_ticks_legends.png")
    emotion, face = window.emotion_panel, window.face_panel
    for plot in (emotion.bars, face.fer):
        assert tick_faults(plot) == []
        assert plot.getPlotItem().legend is None, "a legend inside the bar plot covers the bars"
        assert tick_faults(plot, "left") == [], (plot.height(), plot.getViewBox().viewRange(), plot.getViewBox().sceneBoundingRect())
    assert tick_faults(emotion.timeline, "left") == []
    # the legends are labels outside the plots, naming every line colour of the timeline
    assert not rect_in(window, emotion.legend).intersects(rect_in(window, emotion.bars))
    for c in ("neutral", "happiness", "sadness", "anger", "disgust", "fear", "surprise"):
        assert c in plain(emotion.timeline_legend)
    assert not rect_in(window, emotion.timeline_legend).intersects(rect_in(window, emotion.timeline))


def test_no_label_is_elided_or_overlapping_in_any_panel(live_window, artifacts_dir):
    window = live_window
    shot(window, artifacts_dir, "layout_no_elided_labels.png")
    faults = {p.title: label_faults(window, p) for p in window.panels}
    assert {k: v for k, v in faults.items() if v} == {}
    # the texts the issue saw cut: axis titles and the face label
    assert window.eye_panel.pupil.getAxis("left").label.toPlainText() in ("", " ")
    assert "pupil diameter (mm)" in plain(window.eye_panel.pupil_legend)
    assert "face model (FER2013) top:" in window.face_panel.face_label.text()
    for name in EVENT_CODES:  # the event legend follows the contract's classes
        assert name in plain(window.eye_panel.event_legend)


def test_the_estimate_is_an_estimate_with_the_self_report_beside_it(live_window, artifacts_dir, qtbot):
    window = live_window
    shot(window, artifacts_dir, "layout_estimate_and_self_report.png")
    emotion = window.emotion_panel
    qtbot.waitUntil(lambda: emotion.last is not None, timeout=5000)
    texts = " ".join(plain(w) for w in emotion.findChildren(QLabel))
    assert "felt" not in texts.lower()
    assert "ER estimate" in plain(emotion.legend) and "face model" in plain(emotion.legend)
    assert "ER estimate" in emotion.gap_label.text()
    # the simulated-training note stays, because the shipped models' cards say so
    assert emotion.model_note.isVisible() and "simulated" in emotion.model_note.text()
    # a self-report (runner's rating_response) appears beside the estimate
    window.session.push(1.0, json.dumps({"event": "trial_start", "source": "runner", "trial": 9, "clip": "c9",
                                         "emotion": "fear"}))
    window.session.push(2.0, json.dumps({"event": "rating_response", "source": "runner", "trial": 9,
                                         "scale": "emotion", "value": 6, "label": "fear"}))
    window.session.push(2.5, json.dumps({"event": "rating_response", "source": "runner", "trial": 9,
                                         "scale": "valence", "value": 3}))
    emotion.refresh(0.0)
    assert "self-report" in emotion.report_label.text() and "fear" in emotion.report_label.text()
    assert "valence 3" in emotion.report_label.text()
    assert not rect_in(window, emotion.report_label).intersects(rect_in(window, emotion.gap_label))


def test_trial_and_clip_are_paired_and_markers_are_readable(live_window, artifacts_dir, qtbot):
    state = SessionState()
    state.push(1.0, json.dumps({"event": "trial_start", "trial": 2, "clip": "demo_anger", "emotion": "anger"}))
    state.push(2.0, json.dumps({"event": "clip_onset", "trial": 2, "clip": "demo_anger", "emotion": "anger"}))
    state.push(5.0, json.dumps({"event": "trial_start", "trial": 3, "clip": "demo_fear", "emotion": "fear"}))
    assert (state.trial, state.clip, state.clip_emotion, state.clip_playing) == (3, "demo_fear", "fear", False)
    row = readable_marker(65.5, json.dumps({"event": "clip_onset", "source": "runner", "trial": 3,
                                            "clip": "demo_fear", "psychopy_time": 3.2}), t0=0.0)
    assert row == "+01:05.5  runner  clip onset  trial 3 · clip demo_fear"
    window = live_window
    shot(window, artifacts_dir, "layout_trial_clip_markers.png")
    events = window.session_panel.events
    qtbot.waitUntil(lambda: events.count() > 0, timeout=5000)
    for i in range(events.count()):
        text = events.item(i).text()
        assert not text.lstrip().startswith("{") and re.match(r"[+-]\d\d:\d\d\.\d", text), text


def test_simulated_sources_raise_a_banner_that_stays(qtbot, config, namespace, tmp_path, artifacts_dir):
    theme.apply(QApplication.instance())
    from eyemotion.acquisition.simulator import SimulatedTracker

    settings = QSettings(str(tmp_path / "dashboard.ini"), QSettings.Format.IniFormat)
    window = Dashboard(config, settings=settings, recorder=None)
    qtbot.addWidget(window)
    window.resize(1680, 1050)
    window.show()
    assert not window.sim_bar.isVisible()
    tracker = SimulatedTracker(config)
    import threading

    thread = threading.Thread(target=tracker.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    try:
        qtbot.waitUntil(lambda: window.sim_bar.isVisible(), timeout=20000)
        assert "SIMULATED DATA" in window.sim_banner.text() and "Tobii_gaze" in window.sim_banner.text()
        shot(window, artifacts_dir, "layout_simulated_banner.png")
    finally:
        tracker.request_stop()
        thread.join(10)
    qtbot.wait(4000)  # the tracker is gone: the banner stays
    assert window.sim_bar.isVisible() and "Tobii_gaze" in window.sim_banner.text()
    window.ask_before_closing = False
    window.shutdown()


def test_node_health_is_never_an_empty_box(live_window):
    panel = live_window.session_panel
    assert panel.health.count() >= 1
    panel.node_health = lambda: {"eyesignal": ("ok", "running (pid 1)"), "inference": ("restarted", "1 restart")}
    panel.refresh(0.0)
    texts = [panel.health.item(i).text() for i in range(panel.health.count())]
    assert "eyesignal: ok  running (pid 1)" in texts and any(t.startswith("inference: restarted") for t in texts)


def test_label_faults_finds_an_elided_and_an_overlapping_label(qtbot):
    """The geometric check itself can fail."""
    parent = QWidget()
    qtbot.addWidget(parent)
    parent.resize(200, 100)
    a = QLabel("a label far too long for forty pixels", parent)
    a.setGeometry(0, 0, 40, 20)
    b = QLabel("other", parent)
    b.setGeometry(20, 5, 60, 20)
    parent.show()
    faults = label_faults(parent, parent)
    assert any("overlaps" in f for f in faults) and any("elided" in f for f in faults)


@pytest.mark.parametrize("speed", [2.0, 4.0])
def test_replay_at_higher_speed_fills_the_timelines_and_the_speed_box_tells_the_truth(
    qtbot, config, tmp_path, artifacts_dir, speed
):
    """At 2x and 4x the replayed stamps run ahead of the wall clock; the panels draw on the replay's
    stream clock, so the voice-level history and the pupil and event timelines stay filled."""
    from test_gui import write_session

    from eyemotion.session import update_session_json

    theme.apply(QApplication.instance())
    folder = tmp_path / "sessions" / "P001" / "20260101T100000"
    folder.mkdir(parents=True)
    update_session_json(folder, participant="P001", session_id=folder.name)
    write_session(folder, seconds=40.0)
    settings = QSettings(str(tmp_path / "dashboard.ini"), QSettings.Format.IniFormat)
    window = Dashboard(config, settings=settings, recorder=None)
    qtbot.addWidget(window)
    window.resize(1680, 1050)
    window.show()
    try:
        assert window.open_replay(folder, speed=speed, pipeline=False)
        panel = window.replay_panel
        assert panel.speed.currentData() == speed and panel.speed.currentText() == f"{speed:g}×"
        qtbot.waitUntil(lambda: window.replay.position > 20.0, timeout=30000)  # well past the 10 s windows
        qtbot.wait(500)
        ahead = window.monitor.data_now() - __import__("pylsl").local_clock()
        assert ahead > 5.0, "at this speed the replayed stamps are ahead of the wall clock"
        assert window.eye_panel.pupil_points > 100, "the pupil timeline is empty"
        assert window.eye_panel.events.image is not None
        levels = window.face_panel.level_curve.getData()[0]
        assert levels is not None and len(levels) > 20 and levels.min() > -11, "the voice-level history is empty"
        assert f"playing {speed:g}×" in panel.position.text()
        shot(window, artifacts_dir, f"layout_replay_{speed:g}x.png")
    finally:
        window.ask_before_closing = False
        window.shutdown()
