"""The base of every dashboard panel: redraw only when one of its feeds changed (or on its own clock)."""

from __future__ import annotations

import math

import pyqtgraph as pg
from eyemotion.gui import theme
from eyemotion.gui.feeds import StreamMonitor
from PyQt6.QtWidgets import QGraphicsItem, QLabel, QSizePolicy, QWidget

from eyemotion.config import Config


class Panel(QWidget):
    """A dock's content. Subclasses set `title`, `watches` (feed keys) and implement `refresh(now)`.

    `tick(now)` is called by the window's redraw timer; it calls `refresh` only when a watched feed got new
    samples, or every `period_s` when set (for ages and clocks that change without new data).
    """

    title = "panel"
    watches: tuple[str, ...] = ()
    #: refresh(now) gets the data's clock (`StreamMonitor.data_now`: a replay's stream time) instead of
    #: the wall clock; panels that show ages of arrivals (the streams table) keep the wall clock
    data_clock = True
    period_s: float | None = None
    min_interval_s: float = 0.0  # at most this often, however fast the data comes

    def __init__(self, monitor: StreamMonitor, config: Config) -> None:
        super().__init__()
        self.monitor = monitor
        self.config = config
        self._seen: tuple[int, ...] | None = None
        self._last_refresh = -math.inf
        self.refreshes = 0

    def tick(self, now: float, data_now: float | None = None) -> bool:
        """`now`: LSL wall clock (throttling); `data_now`: the data's clock (default `now`)."""
        if now - self._last_refresh < self.min_interval_s:
            return False
        seen = tuple(self.monitor[k].data.total for k in self.watches)
        due = self.period_s is not None and now - self._last_refresh >= self.period_s
        if seen == self._seen and not due:
            return False
        self._seen = seen
        self._last_refresh = now
        self.refresh(data_now if self.data_clock and data_now is not None else now)
        self.refreshes += 1
        return True

    def refresh(self, now: float) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget derived state (after a replay seek)."""
        self._seen = None


def label(text: str = "", *, bold: bool = False, muted: bool = False, dynamic: int = 0) -> QLabel:
    """A label; `dynamic` ones (text changing while running) take that minimum width in characters and
    never resize the layout around them, which would re-render every neighbouring plot's axes."""
    widget = QLabel(text)
    if dynamic:
        widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        widget.setMinimumWidth(widget.fontMetrics().averageCharWidth() * dynamic)
    style = []
    if bold:
        style.append("font-weight: bold")
    if muted:
        style.append(f"color: {theme.MUTED}")
    if style:
        widget.setStyleSheet("; ".join(style))
    return widget


def plot(**kwargs) -> pg.PlotWidget:
    """A PlotWidget that does not react to the mouse wheel by accident and shows a light grid."""
    widget = pg.PlotWidget(**kwargs)
    widget.showGrid(x=True, y=True, alpha=0.15)
    widget.setMenuEnabled(False)
    widget.hideButtons()
    for name in ("left", "bottom", "right", "top"):
        # axes (with their grid and tick text) are re-rendered only when their range changes, else blitted
        widget.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    return widget


def set_text(widget: QLabel, text: str, style: str | None = None) -> None:
    """Change a label only when its text/style differ (setStyleSheet re-polishes the widget)."""
    if widget.text() != text:
        widget.setText(text)
    if style is not None and widget.styleSheet() != style:
        widget.setStyleSheet(style)


def fmt(value: float, spec: str = ".1f", none: str = "–") -> str:
    return none if value is None or not math.isfinite(value) else format(value, spec)
