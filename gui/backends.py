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
import threading
from pathlib import Path

from eyemotion import UserError
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
    """Plays a recorded session through LSL for the dashboard; positions are seconds from its start.

    A replay re-publishes the raw streams only. With `pipeline=True` the eye-signal node
    (`eyemotion.inference.eyesignal.node.EyeSignalNode`) runs beside it in this process, so the cleaned
    gaze, fixations, saccades and blinks follow the replay like they would live.
    """

    SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

    def __init__(self, source: str | Path, config: Config, speed: float = 1.0, pipeline: bool = True) -> None:
        module, why = _module("eyemotion.acquisition.replay")
        if module is None:
            raise UserError(f"replay is not available ({why})")
        self.source = Path(source)
        self.controller = module.ReplayController(source, namespace=config.lsl.namespace, speed=speed)
        self._pending: float | None = None  # a seek made while paused, applied on play
        self.config = config
        self.pipeline = pipeline
        self.nodes: list = []
        self._threads: list[threading.Thread] = []

    @property
    def duration(self) -> float:
        return float(self.controller.duration)

    @property
    def position(self) -> float:
        return float(self.controller.position if self._pending is None else self._pending)

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
        if self.pipeline:
            self._start_eyesignal()

    def _start_eyesignal(self) -> None:
        module, why = _module("eyemotion.inference.eyesignal.node")
        if module is None:
            log.warning("replay without cleaned gaze: %s", why)
            return
        folder = self.source if self.source.is_dir() else self.source.parent
        try:
            screen = module.screen_from_session(folder, self.config.screen)
        except UserError:
            screen = self.config.screen
        node = module.EyeSignalNode(self.config, screen=screen)
        thread = threading.Thread(target=self._run_node, args=(node,), name="replay-eyesignal", daemon=True)
        self.nodes.append(node)
        self._threads.append(thread)
        thread.start()

    @staticmethod
    def _run_node(node) -> None:
        try:
            node.run(handle_signals=False)
        except Exception:  # noqa: BLE001 - the replay goes on without this node; the streams panel shows it
            log.exception("%s node beside the replay failed", node.name)

    def play(self) -> None:
        if self.finished:
            return
        self.controller.resume()  # (resume re-anchors at the old position, so a pending seek comes after)
        if self._pending is not None:
            self.controller.seek(self._pending)
            self._pending = None

    def pause(self) -> None:
        self.controller.pause()

    def seek(self, position_s: float) -> None:
        target = min(max(0.0, position_s), self.duration)
        if self.paused:
            self._pending = target
        self.controller.seek(target)

    def set_speed(self, speed: float) -> None:
        self.controller.set_speed(speed)

    def close(self) -> None:
        for node in self.nodes:
            node.request_stop()
        for thread in self._threads:
            thread.join(5)
        self.controller.close()


class RecorderBackend:
    """Starts and stops LabRecorder recordings into new session folders `sessions/<participant>/<id>/`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._recorder = None
        self.folder: Path | None = None

    @property
    def recording(self) -> bool:
        return self._recorder is not None and bool(self._recorder.recording)

    def start(self, participant: str) -> Path:
        """Create the session folder and start recording every contract stream; UserError if it cannot."""
        from eyemotion.acquisition.recorder import Recorder

        from eyemotion.session import SESSION_JSON, create_session_folder

        folder = create_session_folder(
            self.config.recorder.sessions_dir, participant, started_from="dashboard"
        )
        recorder = Recorder(self.config, folder)
        try:
            recorder.start()
        except BaseException:
            if not recorder.xdf.exists():  # nothing recorded: leave no empty session behind
                (folder / SESSION_JSON).unlink(missing_ok=True)
                try:
                    folder.rmdir()
                except OSError:
                    pass
            raise
        self._recorder, self.folder = recorder, folder
        return folder

    def stop(self) -> None:
        if self._recorder is not None:
            self._recorder.stop("dashboard")
        self._recorder = None


def open_recorder(config: Config) -> tuple[RecorderBackend | None, str]:
    """The recorder for the session panel, or (None, why it is not available)."""
    module, why = _module("eyemotion.acquisition.recorder")
    if module is None:
        return None, why
    return RecorderBackend(config), ""
