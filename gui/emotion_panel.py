"""Emotion panel: the model's 7-class emotion estimate (ER) beside the face model's expression
probabilities, the emotion gap highlighted where they disagree (EMERT's point, 002 Sec. I and Fig. 7),
the participant's self-report of the trial beside the estimate, a timeline of the ER estimate with the clip
and trial markers and a legend, a valence/arousal circumplex with a fading trail, and which modalities the
last estimate used.

The estimate is never called the felt emotion: the felt emotion is what the participant reports. Each side
of the gap names its source. Unless the loaded EMERT's FER head was trained on real labels (its model
card), the face side is the pretrained face model (eyemotion_face, face_fer.onnx), not EMERT's FER head.
Models whose cards say they were trained on simulated data get a permanent note that their estimates are
not valid for real participants."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from eyemotion.gui import theme
from eyemotion.gui.models import Prediction, SessionState, model_cards, prediction, trained_on_simulated
from eyemotion.gui.panel import Panel, label, plot, set_text
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QGridLayout, QHBoxLayout

from eyemotion.streams import CLASSES, EMOTION, FACE

TRAIL = 24
MARKER_LINES = 16
MODALITIES = ("face", "gaze", "audio")
ER_COLOUR, FACE_COLOUR = theme.ACCENT, "#f2cc60"
#: three letters per class: seven fit under the bars from ~260 px
SHORT = {c: c[:3] for c in CLASSES}


def _swatch(colour: str, text: str) -> str:
    return f"<span style='color:{colour}'>■</span>&nbsp;{text}"


class EmotionPanel(Panel):
    title = "Emotion"
    watches = ("emotion", "face", "markers")
    min_interval_s = 0.2  # predictions come at 2 Hz; the face side at ~12 Hz needs no more than 5 redraws/s

    def __init__(self, monitor, config, session: SessionState) -> None:
        super().__init__(monitor, config)
        self.session = session
        self.history_s = config.dashboard.history_s
        cards = model_cards(config)
        self.simulated_models = sorted(n for n, c in cards.items() if trained_on_simulated(c))
        emert = cards.get("emert", {})
        #: EMERT's FER head is shown only when it was trained on real labels; else the face model's
        self.fer_from_emert = bool(emert) and not trained_on_simulated(emert)
        self.face_source = "EMERT FER head" if self.fer_from_emert else "face model (FER2013)"
        self.legend = label(
            _swatch(ER_COLOUR, "ER estimate") + "&nbsp;&nbsp; " + _swatch(FACE_COLOUR, self.face_source)
        )
        self.legend.setWordWrap(True)
        self.bars = plot()
        self.bars.setYRange(0, 1, padding=0.02)
        self.bars.setXRange(-0.6, 6.6, padding=0)
        self.bars.setMouseEnabled(False, False)
        self.bars.getAxis("bottom").setTicks([[(i, SHORT[c]) for i, c in enumerate(CLASSES)]])
        self.bars.setMinimumWidth(280)
        x = np.arange(7)
        self.er_bars = pg.BarGraphItem(x=x - 0.2, height=np.zeros(7), width=0.38, brush=ER_COLOUR)
        self.fer_bars = pg.BarGraphItem(x=x + 0.2, height=np.zeros(7), width=0.38, brush=FACE_COLOUR)
        self.bars.addItem(self.er_bars)
        self.bars.addItem(self.fer_bars)
        self.source_label = label("estimates: live", muted=True)
        self.source_label.setToolTip("where the shown ER estimates come from")
        self.model_note = label()
        self.model_note.setWordWrap(True)
        if self.simulated_models:
            self.model_note.setText("⚠ models trained on simulated data: not valid for real participants")
            self.model_note.setToolTip("trained on simulated data (model cards): " + ", ".join(self.simulated_models))
            self.model_note.setStyleSheet(f"color: {theme.WARN}; font-weight: bold")
        self.model_note.setVisible(bool(self.simulated_models))
        self.gap_label = label("emotion gap: –", bold=True)
        self.gap_label.setWordWrap(True)

        self.report_label = label("self-report: –")
        self.report_label.setWordWrap(True)
        self.timeline = plot()
        self.timeline.setYRange(0, 1, padding=0.02)
        self.timeline.setXRange(-self.history_s, 0, padding=0)
        self.timeline.setLabel("bottom", "time (s)")
        self.timeline.getAxis("bottom").setTickSpacing(max(5.0, round(self.history_s / 6 / 5) * 5), 5.0)
        self.timeline.getAxis("left").setTicks([[(0, "0"), (0.5, ".5"), (1, "1")]])
        self.timeline.setMouseEnabled(False, False)
        self.gap_fill = pg.PlotCurveItem(pen=None, brush=pg.mkBrush(248, 81, 73, 55), fillLevel=0)
        self.timeline.addItem(self.gap_fill)
        self.curves = {c: self.timeline.plot(pen=pg.mkPen(theme.CLASS_COLOURS[c], width=2)) for c in CLASSES}
        self.timeline_legend = label(
            "ER estimate: "
            + " ".join(_swatch(theme.CLASS_COLOURS[c], c) for c in CLASSES)
            + " <span style='color:#f85149'>▒</span>&nbsp;gap"
        )
        self.timeline_legend.setToolTip("ER estimate over time: " + ", ".join(CLASSES) + "; red: emotion gap")
        self.timeline_legend.setWordWrap(True)
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
        self.circumplex.getAxis("bottom").setTicks([[(-1, "-1"), (0, "0"), (1, "1")]])
        self.circumplex.getAxis("left").setTicks([[(-1, "-1"), (0, "0"), (1, "1")]])
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
        grid.setVerticalSpacing(3)
        grid.addWidget(self.model_note, 0, 0, 1, 2)
        grid.addWidget(self.legend, 1, 0, 1, 2)
        self.bars.getAxis("left").setTicks([[(0, "0"), (1, "1")]])
        grid.addWidget(self.bars, 2, 0)
        grid.addWidget(self.circumplex, 2, 1)
        grid.addWidget(self.gap_label, 3, 0, 1, 2)
        grid.addWidget(self.report_label, 4, 0, 1, 2)
        grid.addWidget(self.timeline, 5, 0, 1, 2)
        grid.addWidget(self.timeline_legend, 6, 0, 1, 2)
        mods.addWidget(self.source_label)
        grid.addLayout(mods, 7, 0, 1, 2)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        grid.setRowStretch(2, 1)
        grid.setRowStretch(5, 1)
        self.bars.setMinimumHeight(110)
        self.timeline.setMinimumHeight(110)
        self.last: Prediction | None = None
        self.face_probs = np.zeros(7)
        self._er = [EMOTION.index(f"er_{c}") for c in CLASSES]
        self._fer = [EMOTION.index(f"fer_{c}") for c in CLASSES]
        self._face_fer = [FACE.index(f"fer_{c}") for c in CLASSES]
        self.markers_shown: list[str] = []

    def set_source(self, short: str, detail: str = "") -> None:
        """Say where the shown estimates come from (live, recorded, re-computed)."""
        set_text(self.source_label, f"estimates: {short}")
        self.source_label.setToolTip(detail or short)

    def _face_side(self, stamps: np.ndarray, data: np.ndarray) -> np.ndarray:
        """The face side of the gap at each estimate's stamp: EMERT's FER head (trained on real labels)
        or the newest face-model sample at or before the stamp (zeros where there is none)."""
        if self.fer_from_emert:
            return np.nan_to_num(data[:, self._fer])
        faces, face_t = self.monitor["face"].data.window(self.history_s + 5, until=stamps[-1] + 1e-6)
        if not len(face_t):
            return np.zeros((len(stamps), 7))
        probs = np.nan_to_num(faces[:, self._face_fer])
        idx = np.searchsorted(face_t, stamps, side="right") - 1
        out = probs[np.clip(idx, 0, None)]
        out[idx < 0] = 0.0
        return out

    def refresh(self, now: float) -> None:
        data, stamps = self.monitor["emotion"].data.window(self.history_s, until=now)
        if len(stamps):
            face = self._face_side(stamps, data)
            base = prediction(data[-1])
            self.last = last = Prediction(base.er, face[-1], base.valence, base.arousal, base.modalities)
            self.face_probs = face[-1]
            self.er_bars.setOpts(height=last.er, pens=self._outline(last.er_class if last.gap else ""))
            self.fer_bars.setOpts(height=last.fer, pens=self._outline(last.fer_class if last.gap else ""))
            face_name = "face model" if not self.fer_from_emert else "EMERT FER head"
            if not last.fer.any():
                set_text(self.gap_label, f"ER estimate: {last.er_class} (no face to compare)",
                         f"color: {theme.TEXT}; font-weight: bold; padding: 3px")
            elif last.gap:
                set_text(
                    self.gap_label,
                    f"⚠ EMOTION GAP: {face_name} shows {last.fer_class}, ER estimate is "
                    f"{last.er_class} (distance {last.gap_size:.2f})",
                    f"background: {theme.BAD}; color: white; font-weight: bold; padding: 3px",
                )
            else:
                set_text(
                    self.gap_label,
                    f"{face_name} and ER estimate agree: {last.er_class}",
                    f"color: {theme.GOOD}; font-weight: bold; padding: 3px",
                )
            t = stamps - now
            er = np.nan_to_num(data[:, self._er])
            for i, c in enumerate(CLASSES):
                self.curves[c].setData(t, er[:, i])
            gaps = (er.argmax(1) != face.argmax(1)) & (er.sum(1) > 0) & (face.sum(1) > 0)  # as Prediction.gap
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
        set_text(self.report_label, self._report_text())
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

    def _report_text(self) -> str:
        s = self.session
        report = s.self_report()
        if not report:
            return "self-report (participant): – (not rated yet)"
        trial = s.trial if s.trial in s.reports else max(s.reports)
        parts = [f"{report['emotion']}" if "emotion" in report else "emotion –"]
        parts += [f"{k} {report[k]}" for k in ("valence", "arousal", "intensity") if k in report]
        return f"self-report (participant, trial {trial}): " + " · ".join(str(p) for p in parts)

    @staticmethod
    def _outline(cls: str) -> list:
        return [pg.mkPen("w", width=3) if c == cls else pg.mkPen(None) for c in CLASSES]
