"""Emotion panel: the 7 ER (felt emotion) and FER (face) probabilities side by side, the emotion gap
highlighted where face and felt emotion disagree (EMERT's point, 002 Sec. I and Fig. 7), a timeline of
the ER predictions with the clip and trial markers, a valence/arousal circumplex with a fading trail,
and which modalities the last prediction used."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from eyemotion.gui import theme
from eyemotion.gui.models import Prediction, SessionState, prediction
from eyemotion.gui.panel import Panel, label, plot, set_text
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QGridLayout, QHBoxLayout

from eyemotion.streams import CLASSES, EMOTION

TRAIL = 24
MARKER_LINES = 16
MODALITIES = ("face", "gaze", "audio")


class EmotionPanel(Panel):
    title = "Emotion"
    watches = ("emotion", "markers")

    def __init__(self, monitor, config, session: SessionState) -> None:
        super().__init__(monitor, config)
        self.session = session
        self.history_s = config.dashboard.history_s
        self.bars = plot()
        self.bars.setYRange(0, 1, padding=0.02)
        self.bars.setXRange(-0.6, 6.6, padding=0)
        self.bars.setMouseEnabled(False, False)
        self.bars.getAxis("bottom").setTicks([[(i, c[:3]) for i, c in enumerate(CLASSES)]])
        self.bars.addLegend(offset=(-4, 4), labelTextColor=theme.TEXT)
        x = np.arange(7)
        self.er_bars = pg.BarGraphItem(
            x=x - 0.2, height=np.zeros(7), width=0.38, brush=theme.ACCENT, name="ER (felt)"
        )
        self.fer_bars = pg.BarGraphItem(
            x=x + 0.2, height=np.zeros(7), width=0.38, brush="#f2cc60", name="FER (face)"
        )
        self.bars.addItem(self.er_bars)
        self.bars.addItem(self.fer_bars)
        self.gap_label = label("emotion gap: –", bold=True, dynamic=40)
        self.gap_label.setWordWrap(True)
        self.gap_label.setFixedHeight(
            2 * self.gap_label.fontMetrics().height() + 8
        )  # two lines, never reflows
        self.timeline = plot()
        self.timeline.setYRange(0, 1, padding=0.02)
        self.timeline.setXRange(-self.history_s, 0, padding=0)
        self.timeline.setLabel("left", "ER p")
        self.timeline.setLabel("bottom", "time", units="s")
        self.timeline.setMouseEnabled(False, False)
        self.gap_fill = pg.PlotCurveItem(pen=None, brush=pg.mkBrush(248, 81, 73, 55), fillLevel=0)
        self.timeline.addItem(self.gap_fill)
        self.curves = {c: self.timeline.plot(pen=pg.mkPen(theme.CLASS_COLOURS[c], width=2)) for c in CLASSES}
        self.lines = []
        for _ in range(MARKER_LINES):  # a fixed pool, reused: items are never re-created while running
            line = pg.InfiniteLine(
                angle=90,
                pen=pg.mkPen(theme.MUTED, style=Qt.PenStyle.DashLine),
                label="",
                labelOpts={"position": 0.92, "color": theme.TEXT, "rotateAxis": (1, 0)},
            )
            line.setVisible(False)
            self.timeline.addItem(line)
            self.lines.append(line)
        self.circumplex = plot()
        self.circumplex.setAspectLocked(True)
        self.circumplex.setRange(xRange=(-1.15, 1.15), yRange=(-1.15, 1.15), padding=0)
        self.circumplex.setLabel("bottom", "valence")
        self.circumplex.setLabel("left", "arousal")
        self.circumplex.setMouseEnabled(False, False)
        angle = np.linspace(0, 2 * np.pi, 97)
        self.circumplex.plot(np.cos(angle), np.sin(angle), pen=pg.mkPen(theme.MUTED))
        self.circumplex.addItem(pg.InfiniteLine(0, angle=90, pen=pg.mkPen(theme.MUTED)))
        self.circumplex.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen(theme.MUTED)))
        self.va_trail = pg.ScatterPlotItem(pen=None)
        # made once: pyqtgraph caches one rendered symbol per brush object (its symbol atlas), so new
        # brushes at every redraw would keep filling that cache
        self._trail_sizes = np.linspace(5, 16, TRAIL)
        self._trail_brushes = [pg.mkBrush(77, 163, 255, int(a)) for a in np.linspace(30, 255, TRAIL)]
        self.circumplex.addItem(self.va_trail)
        self.modality_labels = {m: label(m, bold=True) for m in MODALITIES}
        mods = QHBoxLayout()
        mods.addWidget(label("modalities:", muted=True))
        for w in self.modality_labels.values():
            mods.addWidget(w)
        mods.addStretch(1)
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.addWidget(self.bars, 0, 0)
        grid.addWidget(self.circumplex, 0, 1)
        grid.addWidget(self.gap_label, 1, 0, 1, 2)
        grid.addWidget(self.timeline, 2, 0, 1, 2)
        grid.addLayout(mods, 3, 0, 1, 2)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(2, 2)
        self.last: Prediction | None = None
        self._er = [EMOTION.index(f"er_{c}") for c in CLASSES]
        self._fer = [EMOTION.index(f"fer_{c}") for c in CLASSES]
        self.markers_shown: list[str] = []

    def refresh(self, now: float) -> None:
        data, stamps = self.monitor["emotion"].data.window(self.history_s, until=now)
        if len(stamps):
            self.last = last = prediction(data[-1])
            self.er_bars.setOpts(height=last.er, pens=self._outline(last.er_class if last.gap else ""))
            self.fer_bars.setOpts(height=last.fer, pens=self._outline(last.fer_class if last.gap else ""))
            if last.gap:
                set_text(
                    self.gap_label,
                    f"⚠ EMOTION GAP: face shows {last.fer_class}, felt emotion is "
                    f"{last.er_class} (distance {last.gap_size:.2f})",
                    f"background: {theme.BAD}; color: white; font-weight: bold; padding: 3px",
                )
            else:
                set_text(
                    self.gap_label,
                    f"face and felt emotion agree: {last.er_class}",
                    f"color: {theme.GOOD}; font-weight: bold; padding: 3px",
                )
            t = stamps - now
            er = np.nan_to_num(data[:, self._er])
            fer = np.nan_to_num(data[:, self._fer])
            for i, c in enumerate(CLASSES):
                self.curves[c].setData(t, er[:, i])
            gaps = (er.argmax(1) != fer.argmax(1)) & (er.sum(1) > 0) & (fer.sum(1) > 0)  # as Prediction.gap
            self.gap_fill.setData(
                np.repeat(t, 2)[1:], np.repeat(np.where(gaps, 1.0, 0.0), 2)[:-1], fillLevel=0
            )
            va = data[-TRAIL:][:, [EMOTION.index("valence"), EMOTION.index("arousal")]]
            va = np.clip(np.nan_to_num(va), -1, 1)
            n = len(va)  # the newest point is the largest and most opaque
            self.va_trail.setData(
                va[:, 0], va[:, 1], size=self._trail_sizes[-n:], brush=self._trail_brushes[-n:]
            )
            for m, w in self.modality_labels.items():
                on = m in last.modalities
                colours = ("#2e7d32", theme.TEXT) if on else ("#3a3f4b", theme.MUTED)
                set_text(
                    w,
                    m,
                    "font-weight: bold; padding: 2px 6px; border-radius: 3px; "
                    f"background: {colours[0]}; color: {colours[1]}",
                )
        recent = [(s, text) for s, text in self.session.timeline if now - s <= self.history_s][-MARKER_LINES:]
        for line, (stamp, text) in zip(self.lines, recent):
            line.setValue(stamp - now)
            text = text if text.startswith("clip ") and text != "clip end" else ""  # no clutter
            if line.label.format != text:
                line.label.setFormat(text)
            line.setVisible(True)
        for line in self.lines[len(recent) :]:
            line.setVisible(False)
        self.markers_shown = [text for _, text in recent]

    @staticmethod
    def _outline(cls: str) -> list:
        return [pg.mkPen("w", width=3) if c == cls else pg.mkPen(None) for c in CLASSES]
