"""Gaze panel: the stimulus screen in its true aspect ratio (config `[screen]`, in mm) with the gaze point,
a short trail, the recent fixations as circles sized by their duration, the saccades as lines, and a
heat-map toggle showing the current clip's fixation map (`eyemotion.inference.eyesignal.maps`, the eye
fixation maps of 002, Sec. III), started afresh at each `clip_onset` marker.

Positions come from eyemotion_gaze (cleaned, with event codes); without it the raw Tobii_gaze stream
gives the gaze point and trail (no fixations then)."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from eyemotion.gui import theme
from eyemotion.gui.models import FIXATION, SACCADE, EventSegmenter, SessionState, gaze_point
from eyemotion.gui.panel import Panel, label, plot, set_text
from eyemotion.inference.eyesignal.maps import FixationMapper, MapGrid
from PyQt6.QtCore import QRectF
from PyQt6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsRectItem,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
)

from eyemotion.streams import GAZE_CLEAN

N_FIXATIONS = 12
N_SACCADES = 8
HEAT_EVERY_S = 1.0
#: Fixation circles grow 4 px per 1/15 s of duration, from 8 px up to 68 px (1 s): 16 sizes only.
#: pyqtgraph's ScatterPlotItem renders each distinct (symbol, size, pen, brush) once into its symbol
#: atlas and keeps it (rebuilding only past 1000 entries); sizes straight from the fixation durations
#: would add a new multi-kB symbol with nearly every fixation and grow the dashboard's memory.
FIXATION_SIZE_STEP_PX = 4


def fixation_size(duration_s: float) -> int:
    """Circle diameter (px) for a fixation: 8 px + 60 px per second, capped at 68 px, in 4 px steps."""
    px = 60 * min(1.0, max(0.0, duration_s))
    return 8 + FIXATION_SIZE_STEP_PX * round(px / FIXATION_SIZE_STEP_PX)


class GazePanel(Panel):
    title = "Gaze"
    watches = ("gaze_clean", "gaze_raw")

    def __init__(self, monitor, config, session: SessionState) -> None:
        super().__init__(monitor, config)
        self.session = session
        screen = config.screen
        self.w_mm, self.h_mm = screen.width_mm, screen.height_mm
        self.view = plot()
        self.view.showGrid(x=False, y=False)  # the screen frame is reference enough; a grid costs per frame
        self.view.setAspectLocked(True)
        self.view.invertY(True)
        self.view.setRange(xRange=(0, self.w_mm), yRange=(0, self.h_mm), padding=0.03)
        self.view.setLabel("bottom", "x", units="mm")
        self.view.setLabel("left", "y", units="mm")
        self.view.setMouseEnabled(False, False)
        frame = QGraphicsRectItem(0, 0, self.w_mm, self.h_mm)
        frame.setPen(pg.mkPen(theme.MUTED, width=2))
        frame.setBrush(pg.mkBrush("#111317"))
        self.view.addItem(frame)
        self.heat = pg.ImageItem()
        self.heat.setRect(QRectF(0, 0, self.w_mm, self.h_mm))
        lut = np.zeros((256, 4), np.ubyte)
        ramp = np.linspace(0, 1, 256)
        lut[:, 0] = 255
        lut[:, 1] = (255 * np.clip(ramp * 1.6 - 0.3, 0, 1)).astype(np.ubyte)
        lut[:, 3] = (200 * np.sqrt(ramp)).astype(np.ubyte)
        self.heat.setLookupTable(lut)
        self.heat.setVisible(False)
        self.view.addItem(self.heat)
        self.saccades = pg.PlotCurveItem(pen=pg.mkPen(theme.ACCENT, width=1), connect="pairs")
        self.fixations = pg.ScatterPlotItem(
            pen=pg.mkPen(theme.GOOD, width=1.5), brush=pg.mkBrush(63, 185, 80, 50)
        )
        self.trail = pg.PlotCurveItem(pen=pg.mkPen("#f2cc60", width=1))  # 1 px: the fastest pen
        for item in (self.saccades, self.fixations, self.trail):
            self.view.addItem(item)
        # the gaze point: a plain ellipse of fixed pixel size, moved with setPos (cheaper than a scatter)
        self.point = QGraphicsEllipseItem(-7, -7, 14, 14)
        self.point.setPen(pg.mkPen("w", width=2))
        self.point.setBrush(pg.mkBrush(theme.BAD))
        self.point.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.point.setVisible(False)
        self.view.addItem(self.point)
        self.heat_button = QPushButton("Heat map (H)")
        self.heat_button.setCheckable(True)
        self.heat_button.toggled.connect(self.set_heat_map)
        self.source = label("no gaze stream", muted=True, dynamic=40)
        top = QHBoxLayout()
        top.addWidget(self.source, 1)
        top.addWidget(self.heat_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        self.segmenter = EventSegmenter()
        self.mapper: FixationMapper | None = None
        self._clips_seen = 0
        self._clean_seen = 0
        self._heat_at = -math.inf
        self.last_point = (math.nan, math.nan)  # normalised display coordinates
        self.shown_fixations = 0
        self.shown_saccades = 0
        self._segments_drawn = -1

    def set_heat_map(self, on: bool) -> None:
        self.heat_button.setChecked(on)
        self.heat.setVisible(on)
        self._heat_at = -math.inf

    def reset(self) -> None:
        super().reset()
        self.segmenter = EventSegmenter()
        self.mapper = None
        self._segments_drawn = -1
        self._clean_seen = self.monitor["gaze_clean"].data.total

    def refresh(self, now: float) -> None:
        clean_feed, raw_feed = self.monitor["gaze_clean"], self.monitor["gaze_raw"]
        use_clean = clean_feed.data.total > 0 and clean_feed.connected
        if clean_feed.data.total > 0:
            data, stamps, self._clean_seen = clean_feed.data.since(self._clean_seen)
            if len(stamps):
                self.segmenter.push(stamps, data[:, GAZE_CLEAN.index("event")], gaze_point(data, clean=True))
                self._map(clean_feed.nominal_rate, stamps, data)
        feed = clean_feed if use_clean else raw_feed
        set_text(
            self.source,
            "cleaned gaze (eyemotion_gaze)"
            if use_clean
            else "raw gaze (Tobii_gaze): no fixations without eyemotion_gaze"
            if raw_feed.data.total
            else "no gaze stream",
        )
        data, stamps = feed.data.window(self.config.dashboard.trail_s)
        xy = gaze_point(data, clean=use_clean) * (self.w_mm, self.h_mm)
        if len(xy):
            self.trail.setData(xy[:, 0], xy[:, 1], connect="finite")
            finite = np.isfinite(xy).all(axis=1)
            if finite.any():
                last = xy[finite][-1]
                self.point.setPos(float(last[0]), float(last[1]))
                self.point.setVisible(True)
                self.last_point = (last[0] / self.w_mm, last[1] / self.h_mm)
        if self.segmenter.closed == self._segments_drawn:
            return self._refresh_heat(now)
        self._segments_drawn = self.segmenter.closed
        fix = self.segmenter.recent(FIXATION, N_FIXATIONS)
        fix = [f for f in fix if math.isfinite(f.x)]
        if fix:
            sizes = [fixation_size(f.duration) for f in fix]  # 1 s fixation -> 68 px
            self.fixations.setData([f.x * self.w_mm for f in fix], [f.y * self.h_mm for f in fix], size=sizes)
        self.shown_fixations = len(fix)
        sac = [
            s for s in self.segmenter.recent(SACCADE, N_SACCADES) if all(map(math.isfinite, s.start + s.end))
        ]
        if sac:
            xs = np.array([(s.start[0], s.end[0]) for s in sac]).ravel() * self.w_mm
            ys = np.array([(s.start[1], s.end[1]) for s in sac]).ravel() * self.h_mm
            self.saccades.setData(xs, ys)
        self.shown_saccades = len(sac)
        self._refresh_heat(now)

    def _refresh_heat(self, now: float) -> None:
        if self.heat.isVisible() and now - self._heat_at >= HEAT_EVERY_S:
            self._heat_at = now
            trial = self.mapper.trial_map() if self.mapper is not None else np.zeros((2, 2))
            peak = trial.max()
            self.heat.setImage(trial / peak if peak > 0 else trial, levels=(0, 1))
            self.heat.setRect(QRectF(0, 0, self.w_mm, self.h_mm))

    def _map(self, rate: float, stamps: np.ndarray, data: np.ndarray) -> None:
        """Feed the fixation map; a new clip starts a new map."""
        if self.mapper is None and rate > 0:
            grid = MapGrid.of(self.config.eyesignal, self.config.screen)
            self.mapper = FixationMapper(rate, slice_s=1.0, grid=grid)
        if self.mapper is None:
            return
        if self.session.clip_onsets != self._clips_seen:
            self._clips_seen = self.session.clip_onsets
            self.mapper.reset_trial()
        self.mapper.push(stamps, data)
