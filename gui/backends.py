"""Thin adapters between the dashboard and the session machinery it drives.

- `ReplayBackend` wraps `eyemotion.acquisition.replay.ReplayController` (play, pause, seek, speed).
- `RecorderBackend` wraps the LabRecorder recorder of `eyemotion.acquisition.recorder` (start/stop into a
  new session folder).

When a module is not installed, `open_recorder` returns None with the reason, and the panel shows
"not available" instead of a control.
"""

from __future__ import annotations

import importlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from eyemotion.config import Config

log = logging.getLogger(__name__)


def _module(name: str):
    try:
        return importlib.import_module(name), ""
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None, f"{name} is not installed"


class ReplayBackend:
    """Plays a recorded session through LSL for the dashboard; positions are seconds from its start."""

    SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

    def __init__(self, source: str | Path, config: Config, speed: float = 1.0) -> None:
        module, why = _module("eyemotion.acquisition.replay")
        if module is None:
            from eyemotion import UserError

            raise UserError(f"replay is not available ({why})")
        self.source = Path(source)
        self.controller = module.ReplayController(source, namespace=config.lsl.namespace, speed=speed)

    @property
    def duration(self) -> float:
        return float(self.controller.duration)

    @property
    def position(self) -> float:
        return float(self.controller.position)

    @property
    def paused(self) -> bool:
        return bool(self.controller.paused)

    @property
    def speed(self) -> float:
        return float(self.controller.speed)

    @property
    def finished(self) -> bool:
        return self.controller.finished.is_set()

    @property
    def error(self) -> BaseException | None:
        return self.controller.error

    def start(self) -> None:
        self.controller.start()

    def play(self) -> None:
        if self.finished:
            return
        self.controller.resume()

    def pause(self) -> None:
        self.controller.pause()

    def seek(self, position_s: float) -> None:
        self.controller.seek(min(max(0.0, position_s), self.duration))

    def set_speed(self, speed: float) -> None:
        self.controller.set_speed(speed)

    def close(self) -> None:
        self.controller.close()


@dataclass
class RecordingState:
    recording: bool
    folder: Path | None
    started: float = math.nan  # time.monotonic() at start


class RecorderBackend:
    """Starts and stops LabRecorder recordings of every contract stream into new session folders."""

    def __init__(self, recorder: object, config: Config) -> None:
        self._recorder = recorder
        self.config = config

    @property
    def recording(self) -> bool:
        return bool(getattr(self._recorder, "recording", False))

    @property
    def folder(self) -> Path | None:
        folder = getattr(self._recorder, "folder", None)
        return Path(folder) if folder else None

    def start(self, participant: str) -> Path:
        return Path(self._recorder.start(participant))

    def stop(self) -> None:
        self._recorder.stop()


def open_recorder(config: Config) -> tuple[RecorderBackend | None, str]:
    """The recorder for the session panel, or (None, why it is not available)."""
    module, why = _module("eyemotion.acquisition.recorder")
    if module is None:
        return None, why
    return RecorderBackend(module.Recorder(config), config), ""
