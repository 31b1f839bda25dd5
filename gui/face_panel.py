"""Face and voice panel: the camera preview (eyemotion_preview) with the face box and the 7 FER
probabilities (eyemotion_face), and the microphone's level meter, level history and voice activity."""

from __future__ import annotations

import binascii
import math

import cv2
import numpy as np
import pyqtgraph as pg
from eyemotion.gui import theme
from eyemotion.gui.models import FaceState, LevelMeter, face_state
from eyemotion.gui.panel import Panel, fmt, label, plot, set_text
from eyemotion.inference.features.face import decode_preview
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QGraphicsRectItem, QGridLayout

from eyemotion.streams import CLASSES

LEVEL_WINDOW_S = 0.05
LEVEL_HISTORY_S = 10.0
FLOOR_DB = -80.0


def preview_rgb(text: str) -> np.ndarray | None:
    """An RGB image from a preview sample (decoded by the producer's own `decode_preview`), None if broken."""
    try:
        return cv2.cvtColor(decode_preview(text), cv2.COLOR_BGR2RGB)
    except (ValueError, binascii.Error):
        return None


class FacePanel(Panel):
    title = "Face and voice"
    watches = ("preview", "face", "audio")
    min_interval_s = 1 / 15  # previews come at 5 Hz, faces at 10-15 Hz; the meter needs no more

    def __init__(self, monitor, config) -> None:
        super().__init__(monitor, config)
        self.camera = plot()
        self.camera.showGrid(x=False, y=False)
        self.camera.hideAxis("left")
        self.camera.hideAxis("bottom")
        self.camera.setAspectLocked(True)
        self.camera.invertY(True)
        self.camera.setMouseEnabled(False, False)
        self.image = pg.ImageItem()
        self.camera.addItem(self.image)
        self.box = QGraphicsRectItem(0, 0, 1, 1)
        self.box.setPen(pg.mkPen(theme.GOOD, width=2))
        self.box.setVisible(False)
        self.camera.addItem(self.box)
        self.no_preview = pg.TextItem("no camera preview", color=theme.MUTED, anchor=(0.5, 0.5))
        self.camera.addItem(self.no_preview)
        self.no_preview.setPos(80, 60)
        self.camera.setRange(xRange=(0, 160), yRange=(0, 120), padding=0)
        self.fer = plot()
        self.fer.setYRange(0, 1, padding=0)
        self.fer.setMouseEnabled(False, False)
        self.fer.getAxis("bottom").setTicks([[(i, c[:2]) for i, c in enumerate(CLASSES)]])
        self.fer.getAxis("left").setTicks([[(0, "0"), (1, "1")]])
        self.fer.setMinimumHeight(110)  # the bars of the face model (FER2013), named by face_label
        self.fer_bars = pg.BarGraphItem(
            x=np.arange(7),
            height=np.zeros(7),
            width=0.7,
            brushes=[pg.mkBrush(theme.CLASS_COLOURS[c]) for c in CLASSES],
        )
        self.fer.addItem(self.fer_bars)
        # the level meter: one horizontal bar in a small plot (a QProgressBar repaints synchronously)
        self.meter = plot()
        self.meter.setFixedHeight(40)
        self.meter.hideAxis("left")
        self.meter.setXRange(FLOOR_DB, 0, padding=0)
        self.meter.setYRange(0, 1, padding=0)
        self.meter.setMouseEnabled(False, False)
        self.meter_bar = pg.BarGraphItem(
            x0=[FLOOR_DB], y0=[0.15], width=[0.0], height=[0.7], brush=theme.GOOD, pen=None
        )
        self.meter.addItem(self.meter_bar)
        self.meter.addItem(
            pg.InfiniteLine(
                pos=config.dashboard.voice_threshold_db,
                angle=90,
                pen=pg.mkPen(theme.WARN, style=Qt.PenStyle.DashLine),
            )
        )
        self.vad = label("voice: –", bold=True, dynamic=30)
        self.levels = plot()
        self.levels.setFixedHeight(80)
        self.levels.setYRange(FLOOR_DB, 0, padding=0)
        self.levels.setXRange(-LEVEL_HISTORY_S, 0, padding=0)
        self.levels.setLabel("left", "dBFS")
        self.levels.setMouseEnabled(False, False)
        self.level_curve = pg.PlotCurveItem(
            pen=pg.mkPen(theme.ACCENT, width=1), brush=pg.mkBrush(77, 163, 255, 60), fillLevel=FLOOR_DB
        )
        self.threshold = pg.InfiniteLine(
            angle=0,
            pos=config.dashboard.voice_threshold_db,
            pen=pg.mkPen(theme.WARN, style=Qt.PenStyle.DashLine),
        )
        self.levels.addItem(self.level_curve)
        self.levels.addItem(self.threshold)
        self.face_label = label("face: –", dynamic=30)
        self.face_label.setToolTip("eyemotion_face: the pretrained face model (face_fer.onnx, FER2013)")
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.addWidget(self.camera, 0, 0)
        grid.addWidget(self.fer, 0, 1)
        grid.addWidget(self.face_label, 1, 0, 1, 2)
        grid.addWidget(self.vad, 2, 0, 1, 2)
        grid.addWidget(self.meter, 3, 0, 1, 2)
        grid.addWidget(self.levels, 4, 0, 1, 2)
        grid.setRowStretch(0, 1)
        self._preview_seen = 0
        self.image_shape: tuple[int, ...] | None = None
        self.face: FaceState | None = None
        self.level_db = -120.0
        self.voice = False
        self.meter_model: LevelMeter | None = None
        self._audio_seen = 0
        self._face_seen = 0

    def refresh(self, now: float) -> None:
        self._refresh_preview()
        self._refresh_face()
        self._refresh_audio(now)

    def _refresh_preview(self) -> None:
        log = self.monitor["preview"].data
        if log.total == self._preview_seen:
            return
        self._preview_seen = log.total
        last = log.last(1)
        image = preview_rgb(last[0].text) if last else None
        if image is None:
            return
        if self.image_shape != image.shape:
            h, w = image.shape[:2]
            self.camera.setRange(xRange=(0, w), yRange=(0, h), padding=0)
            self.no_preview.setVisible(False)
        self.image_shape = image.shape
        self.image.setImage(image, autoLevels=False, levels=(0, 255))

    def _refresh_face(self) -> None:
        ring = self.monitor["face"].data
        if ring.total == self._face_seen:
            return
        self._face_seen = ring.total
        data, _ = ring.last(1)
        if not len(data):
            return
        self.face = face = face_state(data[0])
        self.fer_bars.setOpts(height=face.fer)
        h, w = (self.image_shape or (120, 160))[:2]
        x, y, bw, bh = face.box
        show = face.present and all(map(math.isfinite, face.box))
        self.box.setVisible(show)
        if show:
            self.box.setRect(x * w, y * h, bw * w, bh * h)
        top = CLASSES[int(np.argmax(face.fer))] if face.fer.any() else "–"
        set_text(self.face_label, f"face: {'present' if face.present else 'not found'} · face model (FER2013) top: {top}")

    def reset(self) -> None:
        super().reset()
        self.meter_model = None
        self._face_seen = self._preview_seen = 0

    def _refresh_audio(self, now: float) -> None:
        feed = self.monitor["audio"]
        if feed.data.total == 0:
            return
        if self.meter_model is None:
            rate = feed.nominal_rate or 16000.0
            self.meter_model = LevelMeter(
                int(rate * LEVEL_WINDOW_S), keep=int(LEVEL_HISTORY_S / LEVEL_WINDOW_S)
            )
            self._audio_seen = max(0, feed.data.total - int(rate * LEVEL_HISTORY_S))
        data, stamps, self._audio_seen = feed.data.since(self._audio_seen)
        self.meter_model.push(data[:, 0], stamps)
        if not self.meter_model.levels:
            return
        self.level_db = self.meter_model.level_db
        self.voice = self.level_db > self.config.dashboard.voice_threshold_db
        level = max(FLOOR_DB, self.level_db)
        colour = theme.BAD if level > -6 else theme.WARN if level > -20 else theme.GOOD
        self.meter_bar.setOpts(width=[level - FLOOR_DB], brush=colour)
        colour = theme.GOOD if self.voice else theme.MUTED
        set_text(
            self.vad,
            f"<span style='color:{colour}'>●</span> voice {'active' if self.voice else 'silent'}"
            f"  ({fmt(self.level_db, '.0f')} dBFS)",
        )
        levels = np.array(self.meter_model.levels)
        self.level_curve.setData(levels[:, 0] - now, np.maximum(FLOOR_DB, levels[:, 1]))
