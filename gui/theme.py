"""A readable dark theme for the dashboard (Qt palette + pyqtgraph defaults) and the state colours."""

from __future__ import annotations

import pyqtgraph as pg
from eyemotion.gui.feeds import State
from PyQt6.QtGui import QColor, QPalette
from PyQt6.QtWidgets import QApplication

from eyemotion.streams import CLASSES, EVENT_CODES

BACKGROUND = "#1b1d22"
PANEL = "#23262d"
TEXT = "#e4e6eb"
MUTED = "#9aa0aa"
ACCENT = "#4da3ff"
GOOD = "#3fb950"
WARN = "#d29922"
BAD = "#f85149"

STATE_COLOURS = {
    State.OK: GOOD,
    State.WAITING: WARN,
    State.STALE: BAD,
    State.MISSING: BAD,
    State.INCOMPATIBLE: "#c678dd",
}

#: One colour per emotion class (CLASSES order), used by every emotion plot.
CLASS_COLOURS = dict(
    zip(CLASSES, ("#9aa0aa", "#f2cc60", "#4da3ff", "#f85149", "#56d364", "#c678dd", "#ff9f43"))
)

#: Colour of each eye-event class by name; a class added to `streams.EVENT_CODES` without one is grey.
EVENT_COLOUR_BY_NAME = {
    "unclassified": "#3a3f4b",
    "fixation": GOOD,
    "saccade": ACCENT,
    "blink": WARN,
    "loss": BAD,
    "pso": "#c678dd",
    "pursuit": "#56d3c4",
}
#: Event code of eyemotion_gaze (`streams.EVENT_CODES`) -> colour, indexed by code.
EVENT_COLOURS = tuple(
    next((EVENT_COLOUR_BY_NAME.get(n, MUTED) for n, c in EVENT_CODES.items() if c == code), MUTED)
    for code in range(max(EVENT_CODES.values()) + 1)
)


def apply(app: QApplication) -> None:
    """Fusion style with a dark palette; pyqtgraph plots on the same background, without antialiasing."""
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: PANEL,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BACKGROUND,
        QPalette.ColorRole.AlternateBase: PANEL,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: "#2d313a",
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#000000",
        QPalette.ColorRole.ToolTipBase: PANEL,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: MUTED,
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(MUTED))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor(MUTED))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(MUTED))
    app.setPalette(pal)
    font = app.font()
    font.setPointSize(max(font.pointSize(), 10))
    app.setFont(font)
    app.setStyleSheet(
        f"QDockWidget::title {{ background: #2d313a; padding: 3px 6px; color: {TEXT}; }}"
        f"QToolTip {{ color: {TEXT}; background: {PANEL}; border: 1px solid {MUTED}; }}"
    )
    configure_pyqtgraph()


def configure_pyqtgraph() -> None:
    pg.setConfigOptions(
        background=BACKGROUND, foreground=TEXT, antialias=False, useOpenGL=False, imageAxisOrder="row-major"
    )
