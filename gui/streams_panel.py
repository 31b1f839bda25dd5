"""Streams panel: for every contract stream its state (colour and text), rates, last-sample age, gaps,
dropped samples and LSL clock offset, plus an alert line naming every missing, stale or incompatible one."""

from __future__ import annotations

from eyemotion.gui import theme
from eyemotion.gui.feeds import StreamStatus
from eyemotion.gui.panel import Panel, fmt, set_text
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QBrush, QColor
from PyQt6.QtWidgets import QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout

COLUMNS = (
    "stream",
    "state",
    "nominal Hz",
    "effective Hz",
    "last sample",
    "samples",
    "gaps / dropped",
    "clock offset",
    "source / reason",
)


class StreamsPanel(Panel):
    title = "Streams"
    period_s = 0.5
    min_interval_s = 0.5  # ages and rates: twice a second is plenty

    def __init__(self, monitor, config) -> None:
        super().__init__(monitor, config)
        self.alert = QLabel()
        self.alert.setWordWrap(True)
        self.alert.setObjectName("alert")
        self.table = QTableWidget(len(monitor.feeds), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(19)
        self.table.setMinimumHeight(19 * len(monitor.feeds) + 30)  # every stream visible without scrolling
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)  # sized now and then, not per cell
        header.setStretchLastSection(True)
        for row in range(self.table.rowCount()):
            for col in range(len(COLUMNS)):
                item = QTableWidgetItem("")
                if 1 < col < 8:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.alert)
        layout.addWidget(self.table)
        self.statuses: list[StreamStatus] = []
        self._sized = 0
        self.alerted: list[str] = []

    data_clock = False  # ages of arrivals: wall clock

    def refresh(self, now: float) -> None:
        self.statuses = [f.status(now) for f in self.monitor.feeds.values()]
        for row, st in enumerate(self.statuses):
            colour = QColor(theme.STATE_COLOURS[st.state])
            periodic = st.nominal_rate > 0
            cells = (
                st.name,
                st.state.value,
                fmt(st.nominal_rate, ".0f") if periodic else "irregular",
                fmt(st.effective_rate, ".1f"),
                f"{fmt(st.last_age, '.2f')} s",
                str(st.samples),
                f"{st.gaps} / {st.dropped}" if periodic else "–",
                f"{fmt(st.clock_offset * 1000, '+.2f')} ms",
                st.reason
                if st.reason and st.state.value != "ok"
                else st.source_id + (f"  ({st.reason})" if st.reason else ""),
            )
            for col, text in enumerate(cells):
                item = self.table.item(row, col)
                if item.text() != text:
                    item.setText(text)
            state_item = self.table.item(row, 1)
            state_item.setForeground(QBrush(colour))
            self.table.item(row, 0).setForeground(QBrush(colour))
        if self._sized < 3 or self.refreshes % 20 == 0:  # fit the columns at start, then every ~10 s
            self._sized += 1
            self.table.resizeColumnsToContents()
        bad = [st for st in self.statuses if st.state.is_alert]
        self.alerted = [st.name for st in bad]
        if bad:
            groups: dict[str, list[str]] = {}
            for st in bad:
                groups.setdefault(st.state.value, []).append(st.name)
            text = "⚠ " + "; ".join(f"{state}: {', '.join(names)}" for state, names in groups.items())
            style = f"background: {theme.BAD}; color: white; font-weight: bold; padding: 4px;"
        else:
            text = "✔ all streams live"
            style = f"background: {theme.GOOD}; color: black; font-weight: bold; padding: 4px;"
        set_text(self.alert, text, style)
