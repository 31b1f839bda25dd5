"""Eye-signal panel: the pupil diameter in mm over the last 10 s, raw against corrected (blinks
interpolated, 002 Sec. III-B), with blinks shaded; a colour timeline of the eye events (fixation,
saccade, blink, loss); and the valid-sample and tracking-loss shares over the last 10 s."""

from __future__ import annotations

import warnings

import numpy as np
import pyqtgraph as pg
from eyemotion.gui import theme
from eyemotion.gui.models import BLINK, EyeQuality, eye_quality, raw_quality
from eyemotion.gui.panel import Panel, label, plot, set_text
from PyQt6.QtCore import QRectF
from PyQt6.QtWidgets import QHBoxLayout, QVBoxLayout

from eyemotion.streams import EVENT_CODES, GAZE_CLEAN, GAZE_RAW

WINDOW_S = 10.0
MAX_TIMELINE_COLUMNS = 1200


class EyePanel(Panel):
    title = "Eye signals"
    watches = ("gaze_clean", "gaze_raw")
    min_interval_s = 1 / 15  # a 10 s trace moves < 2 px per frame at 15 fps

    def __init__(self, monitor, config) -> None:
        super().__init__(monitor, config)
        self.pupil = plot()
        self.pupil.setXRange(-WINDOW_S, 0, padding=0)
        self.pupil.setMouseEnabled(False, False)
        self.pupil_legend = label(
            "pupil diameter (mm): <span style='color:#f0f0f0'>━</span>&nbsp;raw "
            f"<span style='color:{theme.ACCENT}'>━</span>&nbsp;corrected "
            "<span style='color:#d29922'>▒</span>&nbsp;blink"
        )
        self.blinks = pg.PlotCurveItem(pen=None, brush=pg.mkBrush(210, 153, 34, 70), fillLevel=0)
        self.raw = pg.PlotDataItem(pen=pg.mkPen("#f0f0f0", width=1))
        self.corrected = pg.PlotDataItem(
            pen=pg.mkPen(theme.ACCENT, width=1)
        )  # 1 px: fastest
        for item in (self.raw, self.corrected):
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
        self.pupil.addItem(self.blinks)
        self.pupil.addItem(self.corrected)
        self.pupil.addItem(self.raw)
        self.timeline = plot()
        self.timeline.setFixedHeight(70)
        self.timeline.hideAxis("left")
        self.timeline.setLabel("bottom", "time (s)")
        self.timeline.setXLink(self.pupil)
        self.timeline.setYRange(0, 1, padding=0)
        self.timeline.setMouseEnabled(False, False)
        self.events = pg.ImageItem()
        self._colours = np.array([pg.mkColor(c).getRgb() for c in theme.EVENT_COLOURS], np.ubyte)
        self.timeline.addItem(self.events)
        # the event legend comes from the contract's EVENT_CODES (a class added there appears here)
        self.event_legend = label(
            "events: "
            + " ".join(
                f"<span style='color:{theme.EVENT_COLOURS[code]}'>■</span>&nbsp;{name}"
                for name, code in sorted(EVENT_CODES.items(), key=lambda kv: kv[1])
            )
        )
        self.event_legend.setWordWrap(True)
        legend = QHBoxLayout()
        legend.addWidget(self.event_legend, 1)
        self.valid_label = label(bold=True)
        self.loss_label = label(bold=True)
        for w in (self.valid_label, self.loss_label):
            w.setMinimumWidth(90)  # "valid 100%" fits: the text changes, the layout does not
        legend.addWidget(self.valid_label)
        legend.addWidget(self.loss_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.pupil_legend)
        layout.addWidget(self.pupil, 1)
        layout.addWidget(self.timeline)
        layout.addLayout(legend)
        self.quality = EyeQuality(float("nan"), float("nan"))
        self.n_blink_samples = 0
        self._y_range = (0.0, 0.0)
        self.pupil_points = 0

    def refresh(self, now: float) -> None:
        clean_feed = self.monitor["gaze_clean"]
        if clean_feed.data.total:
            data, stamps = clean_feed.data.window(WINDOW_S, until=now)
            t = stamps - now
            raw = data[:, GAZE_CLEAN.index("pupil_raw")]
            corrected = data[:, GAZE_CLEAN.index("pupil")]
            events = np.nan_to_num(data[:, GAZE_CLEAN.index("event")]).astype(int)
            self.quality = eye_quality(data)
        else:
            data, stamps = self.monitor["gaze_raw"].data.window(WINDOW_S, until=now)
            t = stamps - now
            pupils = (
                np.stack([data[:, GAZE_RAW.index(f"diameter.pupil.{e}_eye")] for e in ("left", "right")])
                if len(data)
                else np.empty((2, 0))
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN columns -> NaN
                raw = np.nanmean(pupils, axis=0) if pupils.size else np.empty(0)
            corrected = np.full_like(raw, np.nan)
            events = np.zeros(len(raw), int)
            self.quality = raw_quality(data)
        self.raw.setData(t, raw, connect="finite")
        self.corrected.setData(t, corrected, connect="finite")
        self.pupil_points = int(np.isfinite(raw).sum() + np.isfinite(corrected).sum())
        finite = np.concatenate([raw[np.isfinite(raw)], corrected[np.isfinite(corrected)]])
        lo, hi = np.percentile(finite, [1, 99]) if finite.size else (2.0, 8.0)
        lo, hi = (
            np.floor(2 * lo - 0.5) / 2,
            np.ceil(2 * hi + 0.5) / 2,
        )  # 0.5 mm steps: the axis rarely changes
        if (lo, hi) != self._y_range:
            self._y_range = (lo, hi)
            self.pupil.setYRange(lo, hi, padding=0)
        blink = events == BLINK
        self.n_blink_samples = int(blink.sum())
        self.blinks.setData(*_bands(t, blink, lo, hi), fillLevel=lo)
        if len(t) > 1:
            step = max(1, len(events) // MAX_TIMELINE_COLUMNS)
            codes = np.clip(events[::step], 0, len(theme.EVENT_COLOURS) - 1)
            self.events.setImage(self._colours[codes][None, :, :], autoLevels=False)
            self.events.setRect(QRectF(t[0], 0, t[-1] - t[0], 1))
        q = self.quality
        set_text(self.valid_label, f"valid {_pct(q.valid_share)}")
        set_text(
            self.loss_label,
            f"loss {_pct(q.loss_share)}",
            f"font-weight: bold; color: {theme.BAD if q.loss_share > 0.2 else theme.TEXT}",
        )


def _pct(share: float) -> str:
    return "–" if not np.isfinite(share) else f"{100 * share:.0f}%"


def _bands(t: np.ndarray, mask: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Outline of the runs of `mask` as boxes from `lo` to `hi` (a few points, cheap to fill)."""
    if not mask.any():
        return np.array([0.0]), np.array([lo])
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    starts, stops = t[edges[::2]], t[np.minimum(edges[1::2], len(t) - 1)]
    xs = np.stack([starts, starts, stops, stops], axis=1).ravel()
    ys = np.tile([lo, hi, hi, lo], len(starts))
    return xs, ys
