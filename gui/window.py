"""The dashboard's main window: dock panels over one `StreamMonitor`, a throttled redraw timer, the
remembered layout (QSettings), keyboard shortcuts, replay, and a safe close while recording.

Redraws follow pyqtgraph's performance guidance: every plot item is created once and updated with
`setData`/`setOpts`; a panel redraws only when one of its streams got new samples (or on its own slow
clock); long traces are clipped to the view and downsampled; the timer runs at `[dashboard] fps`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path

import pylsl
from eyemotion.gui import theme
from eyemotion.gui.backends import RecorderBackend, ReplayBackend, open_recorder
from eyemotion.gui.emotion_panel import EmotionPanel
from eyemotion.gui.eye_panel import EyePanel
from eyemotion.gui.face_panel import FacePanel
from eyemotion.gui.feeds import StreamMonitor
from eyemotion.gui.gaze_panel import GazePanel
from eyemotion.gui.models import SessionState
from eyemotion.gui.panel import Panel, set_text
from eyemotion.gui.replay_panel import ReplayPanel
from eyemotion.gui.session_panel import SessionPanel
from eyemotion.gui.streams_panel import StreamsPanel
from PyQt6.QtCore import QSettings, Qt, QTimer
from PyQt6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence, QShortcut
from PyQt6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QSizePolicy, QToolBar

from eyemotion import UserError
from eyemotion.config import Config

log = logging.getLogger(__name__)

SETTINGS_ORG, SETTINGS_APP = "eyemotion", "dashboard"


def simulated_in_session(source: str | Path) -> list[str]:
    """The simulated sources a session folder's session.json names (`simulated_sources`; a demo session
    without that list: "demo session")."""
    from eyemotion.session import read_session_json

    folder = Path(source) if Path(source).is_dir() else Path(source).parent
    try:
        meta = read_session_json(folder)
    except (UserError, OSError):
        return []
    listed = meta.get("simulated_sources")
    if isinstance(listed, list):
        return [str(x) for x in listed]
    return ["demo session (simulated devices)"] if meta.get("demo") or meta.get("simulated") else []
LAYOUT_VERSION = 2  # 2: the emotion panel got taller (a remembered v1 layout is not restored)
_AUTO = object()


class Dashboard(QMainWindow):
    """The eyemotion dashboard. `recorder=_AUTO` uses the installed recorder; pass None for none."""

    def __init__(
        self,
        config: Config,
        *,
        settings: QSettings | None = None,
        participant: str = "",
        recorder: RecorderBackend | None | object = _AUTO,
        marker_outlet: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.settings = settings or QSettings(SETTINGS_ORG, SETTINGS_APP)
        self.setWindowTitle("eyemotion dashboard — live")
        self.setObjectName("eyemotion-dashboard")
        self.setDockNestingEnabled(True)
        # closing during a recording asks first, where someone can answer: offscreen (a headless session,
        # a test) a modal question would wait forever, so the recording is stopped cleanly without asking
        self.ask_before_closing = QGuiApplication.platformName() != "offscreen"
        self.monitor = StreamMonitor(config)
        self.session = SessionState()
        self.markers = None
        if marker_outlet:
            from eyemotion.acquisition.markers import MarkerOutlet

            self.markers = MarkerOutlet("dashboard", namespace=config.lsl.namespace)
        why = "no recorder given"
        if recorder is _AUTO:
            recorder, why = open_recorder(config)
        self.replay: ReplayBackend | None = None
        self.streams_panel = StreamsPanel(self.monitor, config)
        self.gaze_panel = GazePanel(self.monitor, config, self.session)
        self.eye_panel = EyePanel(self.monitor, config)
        self.face_panel = FacePanel(self.monitor, config)
        self.emotion_panel = EmotionPanel(self.monitor, config, self.session)
        self.session_panel = SessionPanel(
            self.monitor,
            config,
            self.session,
            recorder,
            why,  # type: ignore[arg-type]
            markers=self.markers,
            participant=participant,
        )
        self.replay_panel = ReplayPanel(self.monitor, config, on_seek=self._after_seek)
        self.panels: list[Panel] = [
            self.streams_panel,
            self.gaze_panel,
            self.eye_panel,
            self.face_panel,
            self.emotion_panel,
            self.session_panel,
            self.replay_panel,
        ]
        self.docks: dict[str, QDockWidget] = {}
        self._build_docks()
        self._build_actions()
        self.alert = QLabel()
        self.statusBar().addPermanentWidget(self.alert)
        # a banner that stays once any source was simulated (issue 13 Sec. 2): never mistaken for real data
        self.simulated: list[str] = []
        self.sim_banner = QLabel()
        self.sim_banner.setObjectName("simulated-banner")
        self.sim_banner.setStyleSheet(
            f"background: {theme.WARN}; color: black; font-weight: bold; padding: 4px 8px"
        )
        banner_bar = QToolBar("simulated data", self)
        banner_bar.setObjectName("simulated-banner-bar")
        banner_bar.setMovable(False)
        banner_bar.setFloatable(False)
        self.sim_banner.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        banner_bar.addWidget(self.sim_banner)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, banner_bar)
        self.sim_bar = banner_bar
        banner_bar.setVisible(False)
        self._sim_checked = -1e9
        self.resize(1680, 1050)
        self._default_state = self.saveState(LAYOUT_VERSION)
        self._sized = self.restore_layout()
        self._markers_seen = 0
        self.frame_times: deque[float] = deque(maxlen=600)  # seconds per redraw pass
        self.frames = 0
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.redraw)
        self.monitor.start()
        self.timer.start(int(round(1000 / config.dashboard.fps)))

    # -- layout -------------------------------------------------------------------------------------
    def _dock(self, panel: Panel, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(panel.title, self)
        dock.setObjectName(f"dock-{panel.title.lower().replace(' ', '-')}")
        dock.setWidget(panel)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        self.docks[panel.title] = dock
        return dock

    def _build_docks(self) -> None:
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self._dock(self.streams_panel, Qt.DockWidgetArea.TopDockWidgetArea)
        gaze = self._dock(self.gaze_panel, left)
        eye = self._dock(self.eye_panel, left)
        face = self._dock(self.face_panel, right)
        emotion = self._dock(self.emotion_panel, right)
        session = self._dock(self.session_panel, right)
        self._dock(self.replay_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.splitDockWidget(gaze, eye, Qt.Orientation.Vertical)
        self.splitDockWidget(face, session, Qt.Orientation.Horizontal)
        self.splitDockWidget(face, emotion, Qt.Orientation.Vertical)
        self._default_sizes()

    def _default_sizes(self) -> None:
        d = self.docks
        gaze, eye, face, emotion, session = (
            d["Gaze"],
            d["Eye signals"],
            d["Face and voice"],
            d["Emotion"],
            d["Session"],
        )
        streams, replay = d["Streams"], d["Replay"]
        self.resizeDocks([gaze, face, session], [500, 730, 450], Qt.Orientation.Horizontal)
        self.resizeDocks([gaze, eye], [470, 330], Qt.Orientation.Vertical)
        self.resizeDocks([face, emotion], [330, 480], Qt.Orientation.Vertical)
        self.resizeDocks([streams], [180], Qt.Orientation.Vertical)
        self.resizeDocks([replay], [50], Qt.Orientation.Vertical)

    def _build_actions(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        view_menu = menu.addMenu("&View")
        self._action(file_menu, "Open session for replay…", "Ctrl+O", self._choose_replay)
        self._action(file_menu, "Start/stop recording", "Ctrl+R", self.session_panel.toggle_recording)
        self._action(file_menu, "Quit", "Ctrl+Q", self.close)
        self._action(
            view_menu,
            "Heat map",
            "H",
            lambda: self.gaze_panel.set_heat_map(not self.gaze_panel.heat_button.isChecked()),
        )
        self._action(
            view_menu,
            "Full screen",
            "F11",
            lambda: self.showNormal() if self.isFullScreen() else self.showFullScreen(),
        )
        self._action(view_menu, "Reset layout", "Ctrl+Shift+L", self.reset_layout)
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        replay_menu = menu.addMenu("&Replay")
        self._action(replay_menu, "Play/pause", "Space", self.replay_panel.toggle)
        self._action(replay_menu, "Back 5 s", "Left", lambda: self.replay_panel.step(-5))
        self._action(replay_menu, "Forward 5 s", "Right", lambda: self.replay_panel.step(5))
        self.annotation_shortcuts = []
        for i, name in enumerate(self.config.dashboard.annotations):
            shortcut = QShortcut(QKeySequence(str(i + 1)), self)
            shortcut.activated.connect(lambda n=name: self.session_panel.annotate(n))
            self.annotation_shortcuts.append(shortcut)

    def _action(self, menu, text: str, keys: str, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(keys))
        action.triggered.connect(lambda _=False: slot())
        menu.addAction(action)
        self.addAction(action)
        return action

    def restore_layout(self) -> bool:
        """Restore the remembered geometry and dock layout; False when there is none."""
        geometry, state = self.settings.value("geometry"), self.settings.value("state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        return state is not None and self.restoreState(state, LAYOUT_VERSION)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._sized:  # default dock sizes need the shown window's size
            self._sized = True
            self._default_sizes()

    def save_layout(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("state", self.saveState(LAYOUT_VERSION))
        self.settings.sync()

    def reset_layout(self) -> None:
        self.restoreState(self._default_state, LAYOUT_VERSION)
        for dock in self.docks.values():
            dock.setVisible(True)
        self._default_sizes()

    # -- redraw -------------------------------------------------------------------------------------
    def redraw(self) -> None:
        start = time.perf_counter()
        now = pylsl.local_clock()
        data_now = self.monitor.data_now()  # a replay's stream time: its stamps run ahead at 2x/4x
        events, self._markers_seen = self.monitor["markers"].data.since(self._markers_seen)
        for ev in events:
            self.session.push(ev.timestamp, ev.text)
        for panel in self.panels:
            if panel.isVisible():
                try:
                    panel.tick(now, data_now)
                except Exception:
                    log.exception("%s panel failed to redraw", panel.title)
        bad = self.streams_panel.alerted
        set_text(
            self.alert,
            "⚠ " + ", ".join(bad) if bad else "all streams live",
            f"color: {theme.BAD if bad else theme.GOOD}; font-weight: bold",
        )
        if now - self._sim_checked >= 1.0:
            self._sim_checked = now
            self._check_simulated()
        self.frames += 1
        self.frame_times.append(time.perf_counter() - start)

    def _check_simulated(self) -> None:
        """Show (and keep) the simulated-data banner: streams marked simulated, or a replayed session
        whose session.json lists simulated sources (or is a demo)."""
        found = list(self.monitor.simulated_sources())
        if self.replay is not None:
            found += simulated_in_session(self.replay.source)
        new = [n for n in dict.fromkeys(found) if n not in self.simulated]
        if not new:
            return
        self.simulated += new
        set_text(
            self.sim_banner,
            "⚠ SIMULATED DATA: " + ", ".join(self.simulated) + ". Not a real participant or device; "
            "do not use it for analysis.",
        )
        self.sim_bar.setVisible(True)

    # -- replay -------------------------------------------------------------------------------------
    def _choose_replay(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Open a session folder to replay", self.config.recorder.sessions_dir
        )
        if folder:
            self.open_replay(folder)

    def open_replay(self, source: str | Path, speed: float = 1.0, predictions: str = "recomputed",
                    pipeline: bool = True) -> bool:
        """Replay a session folder (or .xdf) with the live pipeline's nodes; a folder that cannot be
        replayed gets a clear dialog."""
        try:
            backend = ReplayBackend(source, self.config, speed=speed, predictions=predictions, pipeline=pipeline)
            backend.start()
        except UserError as exc:
            log.error("cannot replay %s: %s", source, exc)
            self.error_dialog = QMessageBox(
                QMessageBox.Icon.Critical,
                "Cannot replay this session",
                f"{source}\n\n{exc}",
                QMessageBox.StandardButton.Ok,
                self,
            )
            self.error_dialog.open()  # not modal-blocking: the window stays live
            self.replay_panel.position.setText(f"cannot replay: {exc}")
            return False
        if self.replay is not None:
            self.replay.close()
        self.replay = backend
        self.monitor.data_clock = backend.stream_clock  # at 2x/4x the replayed stamps run ahead of the wall
        self.replay_panel.set_backend(backend)
        self.session_panel.node_health = backend.health
        if predictions == "recomputed":
            self.emotion_panel.set_source("re-computed", "re-computed now by the nodes with the installed models")
        else:
            self.emotion_panel.set_source("recorded", "recorded during the session (replayed from recording.xdf)")
        self.setWindowTitle(f"eyemotion dashboard — replay {source}")
        self._after_seek(0.0)
        return True

    def _after_seek(self, _seconds: float) -> None:
        for feed in self.monitor.feeds.values():
            feed.reset_data()
        self._markers_seen = 0
        for panel in self.panels:
            panel.reset()

    # -- closing ------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session_panel.busy and self.ask_before_closing:
            answer = QMessageBox.question(
                self,
                "Recording in progress",
                "A recording is running. Stop it cleanly and close the dashboard?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.session_panel.stop_recording()  # waits for a start in progress; nothing when not recording
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop redrawing, reading and replaying, and remember the layout (idempotent)."""
        if not self.timer.isActive() and not self.monitor.running:
            return
        self.timer.stop()
        self.save_layout()
        if self.replay is not None:
            self.replay.close()
            self.replay = None
            self.monitor.data_clock = pylsl.local_clock
        self.monitor.stop()
