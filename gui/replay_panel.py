"""Replay controls: play, pause, speed and a scrub slider over a recorded session (ReplayBackend)."""

from __future__ import annotations

from collections.abc import Callable

from eyemotion.gui.backends import ReplayBackend
from eyemotion.gui.panel import Panel, label, set_text
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QSlider

SLIDER_STEPS = 1000


class ReplayPanel(Panel):
    title = "Replay"
    period_s = 0.2

    def __init__(self, monitor, config, on_seek: Callable[[float], None] | None = None) -> None:
        super().__init__(monitor, config)
        self.backend: ReplayBackend | None = None
        self.on_seek = on_seek
        self.play_button = QPushButton("▶ Play (Space)")
        self.play_button.clicked.connect(self.toggle)
        self.speed = QComboBox()
        for s in ReplayBackend.SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(ReplayBackend.SPEEDS.index(1.0))
        self.speed.currentIndexChanged.connect(lambda _: self.set_speed(self.speed.currentData()))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.sliderReleased.connect(lambda: self.seek(self._slider_seconds()))
        self.position = label(
            "replay not available: start with `eyemotion dashboard --replay SESSION` "
            "or File ▸ Open session (Ctrl+O)",
            muted=True,
        )
        self.position.setMinimumWidth(260)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 4, 4, 4)
        row.addWidget(self.play_button)
        row.addWidget(self.speed)
        row.addWidget(self.slider, 1)
        row.addWidget(self.position)
        self.set_backend(None)

    def set_backend(self, backend: ReplayBackend | None) -> None:
        self.backend = backend
        for w in (self.play_button, self.speed, self.slider):
            w.setEnabled(backend is not None)
        if backend is not None:
            self.position.setText(f"0.0 / {backend.duration:.1f} s")
            self._show_speed(backend.speed)

    def _show_speed(self, speed: float) -> None:
        """Put the speed box on the backend's true speed (a speed not offered is added to the box)."""
        index = self.speed.findData(speed)
        if index < 0:
            self.speed.addItem(f"{speed:g}×", speed)
            index = self.speed.count() - 1
        if index != self.speed.currentIndex():
            self.speed.blockSignals(True)
            self.speed.setCurrentIndex(index)
            self.speed.blockSignals(False)

    def _slider_seconds(self) -> float:
        return self.slider.value() / SLIDER_STEPS * (self.backend.duration if self.backend else 0.0)

    def toggle(self) -> None:
        if self.backend is None:
            return
        self.backend.play() if self.backend.paused else self.backend.pause()
        self.refresh(0.0)

    def seek(self, seconds: float) -> None:
        if self.backend is None:
            return
        self.backend.seek(seconds)
        if self.on_seek is not None:
            self.on_seek(seconds)

    def step(self, delta_s: float) -> None:
        if self.backend is not None:
            self.seek(self.backend.position + delta_s)

    def set_speed(self, speed: float) -> None:
        if self.backend is not None and speed:
            self.backend.set_speed(float(speed))

    def refresh(self, now: float) -> None:
        b = self.backend
        if b is None:
            return
        self.play_button.setText("▶ Play (Space)" if b.paused or b.finished else "❚❚ Pause (Space)")
        if not self.slider.isSliderDown() and b.duration > 0:
            self.slider.setValue(int(SLIDER_STEPS * b.position / b.duration))
        self._show_speed(b.speed)
        state = "finished" if b.finished else "paused" if b.paused else f"playing {b.speed:g}×"
        if b.error is not None:
            state = f"failed: {b.error}"
        set_text(self.position, f"{b.position:.1f} / {b.duration:.1f} s  {state}")
