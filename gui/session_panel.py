"""Session panel: participant, start/stop recording through the recorder, elapsed time, free disk, the
current trial and clip and the progress through the protocol (from the runner's markers), annotation
hotkeys that push `annotation` markers, and node health from the supervisor's markers."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from eyemotion.gui import theme
from eyemotion.gui.backends import RecorderBackend
from eyemotion.gui.models import SessionState, readable_marker
from eyemotion.gui.panel import Panel, label, set_text
from PyQt6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from eyemotion import UserError

log = logging.getLogger(__name__)
HEALTH_COLOURS = {
    "ok": theme.GOOD,
    "restarted": theme.WARN,
    "gap": theme.WARN,
    "lost": theme.BAD,
    "stopped": theme.MUTED,
}


def free_disk_gb(folder: str | Path) -> float:
    """Free space where `folder` is (or would be created), in GB."""
    path = Path(folder).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free / 1e9


class SessionPanel(Panel):
    title = "Session"
    watches = ("markers",)
    period_s = 1.0

    def __init__(
        self,
        monitor,
        config,
        session: SessionState,
        recorder: RecorderBackend | None,
        recorder_missing: str = "",
        markers=None,
        participant: str = "",
    ) -> None:
        super().__init__(monitor, config)
        self.session = session
        self.recorder = recorder
        self.markers = markers  # a MarkerOutlet("dashboard") or None
        self.participant = QLineEdit(participant)
        self.participant.setPlaceholderText("participant pseudonym, e.g. P001")
        self.record_button = QPushButton("● Record  (Ctrl+R)")
        self.record_button.clicked.connect(self.toggle_recording)
        self.record_state = label(muted=True)
        self.record_state.setWordWrap(True)
        if recorder is None:
            self.record_button.setEnabled(False)
            self.record_state.setText(f"recording not available: {recorder_missing}")
        # one line each, full width: dynamic texts never run into a neighbour
        self.elapsed = label("elapsed –", dynamic=26)
        self.disk = label("free disk –", dynamic=26)
        self.trial = label("trial –", bold=True, dynamic=26)
        self.clip = label("clip –", dynamic=26)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("protocol –")
        self.annotation_buttons = []
        notes = QHBoxLayout()
        for i, name in enumerate(config.dashboard.annotations):
            button = QPushButton(f"{i + 1}: {name}")
            button.setToolTip(f"push an annotation marker '{name}' (key {i + 1})")
            button.clicked.connect(lambda _=False, n=name: self.annotate(n))
            button.setEnabled(markers is not None)
            notes.addWidget(button)
            self.annotation_buttons.append(button)
        self.health = QListWidget()
        self.health.setMaximumHeight(90)
        self.node_health = None  # a callable -> {node: (state, detail)}: the replay's supervised nodes
        self.events = QListWidget()
        self.events.setMaximumHeight(140)
        self.events.setWordWrap(True)  # whole rows, never cut at the panel's edge
        self.health.setWordWrap(True)
        top = QGridLayout()
        top.addWidget(label("participant"), 0, 0)
        top.addWidget(self.participant, 0, 1)
        top.addWidget(self.record_button, 0, 2)
        top.addWidget(self.record_state, 1, 0, 1, 3)
        top.addWidget(self.elapsed, 2, 0, 1, 3)
        top.addWidget(self.disk, 3, 0, 1, 3)
        top.addWidget(self.trial, 4, 0, 1, 3)
        top.addWidget(self.clip, 5, 0, 1, 3)
        top.addWidget(self.progress, 6, 0, 1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(label("annotations (keys 1-9)", muted=True))
        layout.addLayout(notes)
        layout.addWidget(label("node health (supervisor)", muted=True))
        layout.addWidget(self.health)
        layout.addWidget(label("recent markers", muted=True))
        layout.addWidget(self.events)
        self.started_at: float | None = None
        self._starting: threading.Thread | None = None
        self._start_result: Path | BaseException | None = None
        self.annotations_sent: list[str] = []
        self._health_shown: dict | None = None
        self._events_seen = 0

    # -- actions ------------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.recorder is not None and self.recorder.recording

    def toggle_recording(self) -> None:
        if self.recording:
            self.stop_recording()
        else:
            self.start_recording()

    @property
    def busy(self) -> bool:
        """Recording, or a recording is starting."""
        return self.recording or self._starting is not None

    def start_recording(self) -> None:
        """Start recording in a worker thread (finding streams and starting LabRecorder take seconds)."""
        if self.recorder is None or self.busy:
            return
        participant = self.participant.text().strip()
        consent = self.ask_consent(participant)
        if consent is None:
            set_text(self.record_state, "not recording: the participant's consent was not confirmed",
                     f"color: {theme.BAD}")
            return
        self._starting = threading.Thread(
            target=self._start_worker, args=(participant, consent), daemon=True, name="dashboard-record-start"
        )
        self.record_button.setEnabled(False)
        self.participant.setEnabled(False)
        set_text(
            self.record_state,
            "starting the recording (finding streams, starting LabRecorder) …",
            f"color: {theme.WARN}",
        )
        self._starting.start()

    def ask_consent(self, participant: str) -> dict | None:
        """The experimenter confirms the participant's informed consent by typing their name (None: not
        confirmed, nothing is recorded). An offscreen dashboard (tests, headless demos) has nobody to ask: it
        confirms automatically, and session.json says so."""
        from PyQt6.QtGui import QGuiApplication
        from PyQt6.QtWidgets import QInputDialog

        from eyemotion.consent import consent_record

        if QGuiApplication.platformName() == "offscreen":
            return consent_record("automatic (offscreen dashboard)", "automatic")
        name, ok = QInputDialog.getText(self, "Informed consent", f"Participant {participant or '?'}: has the "
                                        "participant given informed consent?\nType your name (experimenter) to confirm:")
        return consent_record(name, "dashboard") if ok and name.strip() else None

    def _start_worker(self, participant: str, consent: dict | None = None) -> None:
        try:
            self._start_result = self.recorder.start(participant, consent=consent)
        except UserError as exc:
            self._start_result = exc
        except Exception as exc:
            log.exception("starting the recording failed")
            self._start_result = exc

    def wait_started(self, timeout: float | None = None) -> None:
        """Block until a pending start finished (used when closing) and show its outcome."""
        if self._starting is not None:
            self._starting.join(timeout)
            self._finish_start()

    def _finish_start(self) -> None:
        if self._starting is None or self._starting.is_alive():
            return
        self._starting, result = None, self._start_result
        self.record_button.setEnabled(True)
        if isinstance(result, BaseException):
            self.participant.setEnabled(True)
            set_text(self.record_state, f"not recording: {result}", f"color: {theme.BAD}")
            return
        self.started_at = time.monotonic()
        self.record_button.setText("■ Stop recording  (Ctrl+R)")
        set_text(self.record_state, f"recording to {result}", f"color: {theme.BAD}; font-weight: bold")

    def tick(self, now: float, data_now: float | None = None) -> bool:
        self._finish_start()
        return super().tick(now, data_now)

    def stop_recording(self) -> None:
        self.wait_started()
        if self.recorder is None or not self.recording:
            return
        folder = self.recorder.folder
        self.recorder.stop()  # the recorder marks recording_start/stop on its own markers stream
        self.started_at = None
        self.record_button.setText("● Record  (Ctrl+R)")
        set_text(self.record_state, f"saved {folder}", f"color: {theme.GOOD}")
        self.participant.setEnabled(True)

    def annotate(self, name: str) -> None:
        if self.markers is None:
            return
        self.markers.push("annotation", label=name)
        self.annotations_sent.append(name)
        log.info("annotation %s", name)

    # -- display ------------------------------------------------------------------------------------
    def refresh(self, now: float) -> None:
        if self.started_at is not None:
            s = int(time.monotonic() - self.started_at)
            set_text(self.elapsed, f"elapsed {s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}")
        else:
            set_text(self.elapsed, "elapsed – (not recording)")
        gb = free_disk_gb(self.config.recorder.sessions_dir)
        low = gb < self.config.recorder.min_free_gb
        set_text(
            self.disk,
            f"free disk {gb:.1f} GB{'  ⚠ LOW' if low else ''}",
            f"color: {theme.BAD if low else theme.TEXT}",
        )
        s = self.session
        of = f" of {s.n_trials}" if s.n_trials else ""
        set_text(self.trial, f"trial {s.trial if s.trial is not None else '–'}{of}")
        set_text(
            self.clip,
            f"clip {s.clip or '–'}"
            + (f" ({s.clip_emotion})" if s.clip_emotion else "")
            + ("  ▶ playing" if s.clip_playing else ""),
        )
        if s.progress == s.progress:  # not NaN
            self.progress.setValue(int(1000 * s.progress))
            self.progress.setFormat(f"protocol {100 * s.progress:.0f}%")
        health = {node: (state, detail) for node, (state, detail, _) in s.health.items()}
        if self.node_health is not None:  # the replay's own nodes, from their supervisor
            health.update(self.node_health())
        if health != self._health_shown:
            self._health_shown = health
            self.health.clear()
            for node, (state, detail) in sorted(health.items()):
                self.health.addItem(f"{node}: {state}  {detail}")
                self.health.item(self.health.count() - 1).setForeground(
                    _colour(HEALTH_COLOURS.get(state, theme.TEXT))
                )
            if not health:
                self.health.addItem("no node messages yet (the supervisor reports starts, restarts, gaps)")
        log_ = self.monitor["markers"].data
        if log_.total != self._events_seen:
            self._events_seen = log_.total
            self.events.clear()
            for ev in log_.last(6)[::-1]:
                self.events.addItem(readable_marker(ev.timestamp, ev.text, s.t0))


def _colour(name: str):
    from PyQt6.QtGui import QColor

    return QColor(name)
