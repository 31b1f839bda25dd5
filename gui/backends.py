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
    """Plays a recorded session for the dashboard, with the live pipeline's nodes supervised beside it
    (`eyemotion.acquisition.replay_pipeline.ReplayPipeline`); positions are seconds from its start.

    `predictions`: "recomputed" (the nodes re-compute faces and predictions with today's models) or
    "recorded" (the recorded eyemotion_face and eyemotion_emotion are replayed). `pipeline=False` replays
    the raw streams alone.
    """

    SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

    def __init__(self, source: str | Path, config: Config, speed: float = 1.0, pipeline: bool = True,
                 predictions: str = "recomputed") -> None:
        module, why = _module("eyemotion.acquisition.replay_pipeline")
        if module is None:
            raise UserError(f"replay is not available ({why})")
        self.source = Path(source)
        self.pipe = module.ReplayPipeline(source, config, speed=speed, predictions=predictions, nodes=pipeline)
        self.controller = self.pipe.controller
        self.predictions = predictions
        self._pending: float | None = None  # a seek made while paused, applied on play
        self.config = config

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

    @property
    def state(self) -> str:
        return self.pipe.state

    def stream_clock(self) -> float:
        return self.controller.stream_clock()

    def health(self) -> dict[str, tuple[str, str]]:
        return self.pipe.health()

    def start(self) -> None:
        self.pipe.start()

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
        self.pipe.close()


class RecorderBackend:
    """Starts and stops LabRecorder recordings into new session folders `sessions/<participant>/<id>/`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._recorder = None
        self.folder: Path | None = None

    @property
    def recording(self) -> bool:
        return self._recorder is not None and bool(self._recorder.recording)

    def start(self, participant: str, consent: dict | None = None) -> Path:
        """Create the session folder and start recording every contract stream; UserError if it cannot.
        `consent` is what the experimenter confirmed (eyemotion.consent); nothing is recorded without it."""
        from eyemotion.consent import read_participant

        if not (consent or {}).get("given"):
            raise UserError("the participant's informed consent is not confirmed: nothing is recorded")
        if read_participant(Path(self.config.recorder.sessions_dir) / participant).get("withdrawn"):
            raise UserError(f"participant {participant} withdrew consent: nothing is recorded")
        from eyemotion.acquisition.recorder import Recorder

        from eyemotion.session import SESSION_JSON, create_session_folder

        folder = create_session_folder(
            self.config.recorder.sessions_dir, participant, started_from="dashboard", consent=consent
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
