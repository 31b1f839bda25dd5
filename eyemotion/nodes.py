"""Nodes: processes that read and/or write LSL streams, and (later) their supervisor.

A node subclasses `Node` and implements `open()`, `step()` and `close()`. `run()` drives it: it opens
the node, calls `step()` until a stop is requested (SIGINT, SIGTERM, `request_stop()` or the optional
duration), then closes it. `step()` must return within about 100 ms so that stops and heartbeats stay
prompt.

Heartbeats: when the environment variable `EYEMOTION_HEARTBEAT` names a file, `run()` touches it at
least every `HEARTBEAT_S`; a supervisor treats a file older than a few heartbeats as a hung node.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

from eyemotion.config import Config

HEARTBEAT_ENV = "EYEMOTION_HEARTBEAT"
HEARTBEAT_S = 0.5

log = logging.getLogger(__name__)


class Node:
    """Base class of every eyemotion node (source, processor, sink)."""

    name = "node"

    def __init__(self, config: Config) -> None:
        self.config = config
        self._stop = threading.Event()

    # -- to implement -------------------------------------------------------------------------------
    def open(self) -> None:
        """Create outlets, resolve inlets, open devices. Raise UserError on a fixable problem."""

    def step(self) -> None:
        """Do one bounded unit of work (<~100 ms): pull, process, push."""
        raise NotImplementedError

    def close(self) -> None:
        """Release devices and files. Called once, also after an error in `step()`."""

    # -- driving ------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, duration: float | None = None, *, handle_signals: bool = True) -> None:
        """Open, step until stopped (or `duration` seconds), close. Heartbeats if the supervisor asks."""
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.request_stop())
        beat_file = os.environ.get(HEARTBEAT_ENV)
        beat = Path(beat_file) if beat_file else None
        self.open()
        log.info("%s running", self.name)
        end = time.monotonic() + duration if duration else None
        last_beat = 0.0
        try:
            while not self._stop.is_set():
                self.step()
                now = time.monotonic()
                if beat is not None and now - last_beat >= HEARTBEAT_S:
                    beat.touch()
                    last_beat = now
                if end is not None and now >= end:
                    break
        finally:
            self.close()
            log.info("%s stopped", self.name)
