"""The stimulus runner: instructions, calibration/validation, then per trial a baseline fixation cross,
the clip, the self-reports and an inter-trial interval (002_cbeb04dbce786b8c.txt, Sec. III-A).

Every screen change is marked on `eyemotion_markers` at the flip that shows it (see `timing`), and
`trials.csv` is rewritten after every trial, so an abort or a crash keeps all finished trials and
`--resume` continues at the next one. Esc asks for confirmation (the clip pauses meanwhile), then
saves and exits.

Key input goes through a key source: PsychoPy's keyboard/mouse for people, or `AutoKeys`, which "presses"
the keys a participant would (deterministic answers from `sam.auto_answer`) so whole sessions run
unattended under Xvfb.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pylsl
from eyemotion.stimuli import audio as clip_audio
from eyemotion.stimuli.calibration import (
    CAL_GRID,
    CAL_LAYOUTS,
    VAL_POINTS,
    ValidationResult,
    judge,
    titta_calibrate,
    validation_quality,
)
from eyemotion.stimuli.protocol import Protocol, ScheduledTrial, build_schedule, participant_number
from eyemotion.stimuli.sam import RatingScreen, ScaleSpec, auto_answer, scale_specs, to_unit
from eyemotion.stimuli.timing import FlipStamper, Pacer, clock_offset, frame_stats, to_lsl
from eyemotion.stimuli.tracking import TrackerMonitor
from eyemotion.stimuli.trials import TrialRecord, read_trials, write_trials

from eyemotion import UserError, __version__, plural
from eyemotion.config import Config
from eyemotion.session import (
    SESSION_JSON,
    SessionError,
    create_session_folder,
    read_session_json,
    update_session_json,
)

log = logging.getLogger(__name__)

EXIT_ABORTED = 3


class DisplayError(UserError):
    """No display to open the stimulus window on."""


class Aborted(Exception):
    """The experimenter confirmed Esc."""


@dataclass
class RunOptions:
    participant: str
    auto_respond: bool = False
    resume: bool = False
    session: Path | None = None  # an existing session folder to use (e.g. made by the recorder)
    calibrate: bool = True
    fullscreen: bool = True
    window_size: tuple[int, int] | None = None
    abort_at: tuple[int, str] | None = None  # auto-respond: press Esc + confirm at (trial, phase)


@dataclass
class RunOutcome:
    status: str  # complete | aborted
    folder: Path
    trials_done: int
    trials_total: int


def limit_malloc_arenas() -> None:
    """Make glibc's malloc use one arena for every thread (as MALLOC_ARENA_MAX=1); call before threads start.

    Each clip gets its own ffpyplayer MediaPlayer (PsychoPy's MovieStim), whose decoder threads come and
    go per trial and allocate frames in per-thread malloc arenas; the arenas fragment and the runner's
    resident memory grew by about 120 KB per trial (a 30-min soak: +7 %), although Python's heap stays
    flat (tracemalloc). With one arena that memory is reused and the growth stops. Only the arena limit
    applies once arenas exist, so this has to run before PsychoPy, PortAudio or LSL start threads.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, 1)  # M_ARENA_MAX (malloc.h)
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        log.debug("mallopt unavailable; malloc arenas left as they are")


def check_display() -> None:
    """Refuse to start without a display (one clear line, before PsychoPy is imported)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DisplayError("no display available ($DISPLAY is not set): run on the stimulus PC's desktop, or "
                           "headless under Xvfb, e.g. `xvfb-run -a eyemotion stimuli run PROTOCOL --auto-respond`")


# -- key sources ------------------------------------------------------------------------------------

class PsychoPyKeys:
    """Keyboard (and mouse clicks, reported as key 'mouse' with the position) from the window."""

    def __init__(self, win: Any) -> None:
        from psychopy import event

        self._event = event
        self.mouse = event.Mouse(win=win, visible=False)
        self._was_down = False
        event.clearEvents()

    def screen(self, name: str, **ctx: Any) -> None:
        self.mouse.setVisible(name == "rating")

    def poll(self) -> list[tuple[str, float, Any]]:
        keys = [(k, to_lsl(t), None) for k, t in self._event.getKeys(timeStamped=True)]
        down = bool(self.mouse.getPressed()[0])
        if down and not self._was_down:
            keys.append(("mouse", pylsl.local_clock(), tuple(self.mouse.getPos())))
        self._was_down = down
        return keys


class AutoKeys:
    """Presses the keys a participant would, at deterministic times after each screen appears."""

    def __init__(self, participant: str, abort_at: tuple[int, str] | None = None) -> None:
        self.participant = participant
        self.abort_at = abort_at
        self._queue: list[tuple[float, str]] = []
        self._anchor: float | None = None
        self._aborting = False

    def screen(self, name: str, **ctx: Any) -> None:
        now = 0.0  # key times are relative to the screen's first flip (anchored in poll)
        self._anchor = None
        self._queue = []
        trial = ctx.get("trial")
        if self.abort_at is not None and (trial, name) == self.abort_at:
            self.abort_at = None
            self._aborting = True
            self._queue = [(now + 0.5, "escape")]
        elif name == "confirm_quit":
            self._queue = [(now + 0.2, "y" if self._aborting else "n")]
        elif name == "instructions":
            self._queue = [(now + 0.1, "space")]
        elif name == "validation_result":
            self._queue = [(now + 0.2, "space" if ctx["accept"] else "r")]
        elif name == "rating":
            spec: ScaleSpec = ctx["spec"]
            value, rt = auto_answer(ctx["emotion"], self.participant, trial, spec, felt=ctx.get("felt"))
            self._queue = [(now + rt, str(value)), (now + rt + 0.05, "return")]

    def poll(self) -> list[tuple[str, float, Any]]:
        now = pylsl.local_clock()
        if self._anchor is None:
            self._anchor = now
            self._queue = [(t + now, k) for t, k in self._queue]
        due = [(k, t, None) for t, k in self._queue if t <= now]
        self._queue = [(t, k) for t, k in self._queue if t > now]
        return due


# -- the runner -------------------------------------------------------------------------------------

@dataclass
class _ClipState:
    onset: float = math.nan
    offset: float = math.nan
    paused_s: float = 0.0
    pts: set = field(default_factory=set)


class Runner:
    def __init__(self, protocol: Protocol, config: Config, options: RunOptions) -> None:
        self.protocol = protocol
        self.config = config
        self.options = options
        self.settings = config.stimuli
        self.schedule: list[ScheduledTrial] = build_schedule(protocol, options.participant)
        self.records: list[TrialRecord] = []
        self.folder: Path | None = None
        self.win = None
        self.markers = None
        self.monitor: TrackerMonitor | None = None
        self.refresh_hz = self.settings.refresh_hz
        self._current_trial: int | None = None
        self.clip_flips: dict[int, list[float]] = {}  # flip times during each clip (for benchmarks)

    # -- session folder -----------------------------------------------------------------------------
    def _find_resumable(self) -> Path:
        root = Path(self.config.recorder.sessions_dir) / self.options.participant
        candidates = sorted(p.parent for p in root.glob(f"*/{SESSION_JSON}"))
        for folder in reversed(candidates):
            info = read_session_json(folder)
            if info.get("runner", {}).get("status") not in (None, "complete"):
                return folder
        raise SessionError(f"no unfinished session of {self.options.participant} under {root}; "
                           "start a new one without --resume")

    def open_session(self) -> int:
        """Create or reopen the session folder; return the index of the first trial to run."""
        opts = self.options
        if opts.session is not None:
            folder = Path(opts.session)
            if not (folder / SESSION_JSON).is_file():
                raise SessionError(f"{folder} is not a session folder (no {SESSION_JSON}); "
                                   "create it with `eyemotion record` or omit --session")
        elif opts.resume:
            folder = self._find_resumable()
        else:
            folder = create_session_folder(self.config.recorder.sessions_dir, opts.participant)
        info = read_session_json(folder)
        records = read_trials(folder)
        if records and not opts.resume:
            raise SessionError(f"{folder} already holds {plural(len(records), 'trial')}; pass --resume to continue it")
        old = info.get("protocol", {}).get("digest")
        if opts.resume and old and old != self.protocol.digest:
            raise SessionError(f"{folder} was run with a different protocol (digest {old}, now "
                               f"{self.protocol.digest}); resume with the same protocol files")
        for rec, planned in zip(records, self.schedule):
            if rec.clip_id != planned.condition.clip_id:
                raise SessionError(f"{folder}/trials.csv trial {rec.trial} is {rec.clip_id!r} but the schedule has "
                                   f"{planned.condition.clip_id!r}; the participant id or protocol changed")
        if len(records) >= len(self.schedule):
            raise SessionError(f"session {folder} is already complete ({plural(len(records), 'trial')})")
        self.folder, self.records = folder, records
        update_session_json(folder, protocol=self.protocol.summary(), screen=dict(vars(self.protocol.screen)),
                            participant_number=participant_number(opts.participant))
        return len(records)

    def _runner_json(self, **fields: Any) -> None:
        info = read_session_json(self.folder).get("runner", {})
        info.update(fields)
        update_session_json(self.folder, runner=info)

    # -- window and basics --------------------------------------------------------------------------
    def open_window(self) -> None:
        check_display()
        os.environ["SDL_AUDIODRIVER"] = "dummy"  # ffpyplayer must never open the sound card (see audio.py)
        from psychopy import prefs

        prefs.hardware["audioLib"] = ["sounddevice"]
        from psychopy import logging as plog

        plog.console.setLevel(plog.ERROR)
        from psychopy import visual

        try:
            import pyglet.canvas  # pyglet 1.5 (PsychoPy's); pyglet 2 calls it pyglet.display

            screen = pyglet.canvas.get_display().get_default_screen()
            display_size = (screen.width, screen.height)
        except Exception as exc:  # noqa: BLE001 - pyglet's NoSuchDisplayException and friends
            raise DisplayError(f"cannot open display {os.environ.get('DISPLAY', '')!r} ({exc}); start the X server "
                               "or run under Xvfb (xvfb-run -a ...)") from None
        spec = self.protocol.screen
        size = self.options.window_size or (min(spec.width_px, display_size[0]), min(spec.height_px, display_size[1]))
        self.win = visual.Window(size=size, fullscr=self.options.fullscreen, screen=self.settings.screen_index,
                                 color=spec.background, colorSpace="hex", units="height", winType="pyglet",
                                 allowGUI=not self.options.fullscreen, checkTiming=False, pos=(0, 0))
        self.win.mouseVisible = False
        self.pacer = Pacer(self.settings.refresh_hz)
        self.refresh_hz = self.pacer.calibrate(self.win)
        self.stamper = FlipStamper(self.win, self.markers.push)
        self.keys = AutoKeys(self.options.participant, self.options.abort_at) if self.options.auto_respond \
            else PsychoPyKeys(self.win)
        from psychopy import visual as v

        self.text = v.TextStim(self.win, "", height=0.035, color="#dddddd", wrapWidth=1.3, units="height")
        self.cross = v.ShapeStim(self.win, vertices="cross", size=0.05, fillColor="#dddddd", lineColor="#dddddd",
                                 units="height")
        self._screens = [(s, RatingScreen(self.win, s)) for s in scale_specs(self.protocol.ratings)]

    def flip(self, draw: Callable[[], None] | None = None, *, on_pause: Callable[[], None] | None = None,
             on_resume: Callable[[], None] | None = None, escape: bool = True) -> list[tuple[str, float, Any]]:
        """Draw, flip (stamped), poll keys and the tracker; Esc asks to confirm (Aborted if confirmed)."""
        if draw is not None:
            draw()
        self.stamper.before_flip()
        self.pacer.wait()
        self.win.flip()
        if self._signalled:
            raise Aborted(f"stopped by {self._signalled}")
        self._tracker_events()
        keys = self.keys.poll()
        if escape and any(k == "escape" for k, _, _ in keys):
            if on_pause:
                on_pause()
            self.confirm_quit()
            if on_resume:
                on_resume()
            return []
        return keys

    def show(self, name: str, draw: Callable[[], None] | None, *, seconds: float | None = None,
             until_keys: tuple[str, ...] = (), **ctx: Any) -> tuple[str, float] | None:
        """Show a screen for `seconds` and/or until one of `until_keys`; returns (key, lsl time)."""
        self.keys.screen(name, **ctx)
        start = None
        while True:
            keys = self.flip(draw)
            if start is None:
                start = self.stamper.last_flip_lsl
            for k, t, _ in keys:
                if k in until_keys:
                    return k, t
            if seconds is not None and self.stamper.last_flip_lsl - start >= seconds - 0.5 / self.refresh_hz:
                return None

    def confirm_quit(self) -> None:
        phase_trial = self._current_trial
        self.stamper.at_flip("pause", reason="escape", trial=phase_trial)
        self.text.text = "Quit the session?\n\nY = save and quit        N = continue"
        key = self._show_confirm()
        if key == "y":
            raise Aborted()
        self.stamper.at_flip("resume", reason="escape", trial=phase_trial)

    def _show_confirm(self) -> str:
        self.keys.screen("confirm_quit", trial=self._current_trial)
        while True:
            for k, _, _ in self.flip(self.text.draw, escape=False):
                if k in ("y", "n"):
                    return k

    def _tracker_events(self) -> None:
        if self.monitor is None or not self.monitor.present:
            return
        for event, ep in self.monitor.new_transitions():
            if ep.reason != "no samples":
                continue  # the tracker node marked it itself
            stamp = ep.start if event == "device_lost" else ep.end
            self.markers.push(event, timestamp=stamp, device="tracker", detected_by="runner",
                              reason=f"no Tobii_gaze samples for {self.monitor.lost_after_s:g} s",
                              trial=self._current_trial)

    # -- calibration --------------------------------------------------------------------------------
    def _target(self, pos: tuple[float, float], t: float) -> None:
        from psychopy import visual

        aspect = self.win.size[0] / self.win.size[1]
        xy = ((pos[0] - 0.5) * aspect, 0.5 - pos[1])
        radius = 0.012 + 0.025 * max(0.0, 1.0 - t / 0.6)
        visual.Circle(self.win, radius=radius, pos=xy, fillColor="#cc2222", lineColor=None, units="height").draw()
        visual.Circle(self.win, radius=0.004, pos=xy, fillColor="#ffffff", lineColor=None, units="height").draw()

    def _present_points(self, points: list[tuple[float, float]], phase: str) -> list[tuple[float, float]]:
        """Show each target for point_s; return each target's onset (LSL)."""
        cal = self.protocol.calibration
        onsets = []
        for i, pos in enumerate(points):
            if self.monitor is not None and self.monitor.simulated:
                w, h = self.win.size
                self.win.winHandle.set_mouse_position(int(pos[0] * w), int((1 - pos[1]) * h))
            self.keys.screen("calibration_point")
            self.stamper.at_flip("calibration_point", phase=phase, index=i + 1, x=pos[0], y=pos[1])
            t0 = time.perf_counter()
            while True:
                self.flip(lambda pos=pos, t0=t0: self._target(pos, time.perf_counter() - t0))
                if len(onsets) == i:
                    onsets.append(self.stamper.last_flip_lsl)
                if self.stamper.last_flip_lsl - onsets[i] >= cal.point_s:
                    break
        return onsets

    def calibrate(self) -> None:
        cal = self.protocol.calibration
        if not (cal.enabled and self.options.calibrate):
            return
        if not self.config.tracker.simulate:
            results = titta_calibrate(self.win, self.protocol, self.config.tracker, self.folder,
                                      self.options.participant)
            self._record_calibration(results)
            return
        if self.monitor is None or not self.monitor.present:
            log.warning("calibration skipped: no Tobii_gaze stream")
            update_session_json(self.folder, calibration={"skipped": "no Tobii_gaze stream"})
            return
        results: list[ValidationResult] = []
        for attempt in range(1, 100):
            self.stamper.at_flip("calibration", phase="start", attempt=attempt, method="simulated",
                                 points=cal.points)
            self._present_points([CAL_GRID[i] for i in CAL_LAYOUTS[cal.points]], "calibration")
            targets = VAL_POINTS[:cal.validation_points]
            onsets = self._present_points(targets, "validation")
            end = onsets[-1] + cal.point_s
            while pylsl.local_clock() < end + 0.1:  # let the last samples arrive
                time.sleep(0.01)
            per_point = [(tg, self.monitor.gaze(t + cal.point_s - cal.sample_s, t + cal.point_s))
                         for tg, t in zip(targets, onsets)]
            result = validation_quality(per_point, self.protocol.screen, self.monitor.rate, cal.sample_s,
                                        attempt, cal.points)
            result.good = judge(result, cal)
            result.time_lsl = pylsl.local_clock()
            results.append(result)
            self.markers.push("validation", timestamp=result.time_lsl, **result.as_dict())
            accept_default = result.good or attempt >= cal.max_attempts
            verdict = "GOOD" if result.good else "POOR"
            self.text.text = (f"Validation {attempt}: {verdict}\n\naccuracy {result.accuracy_deg:.2f} deg   "
                              f"precision {result.precision_deg:.2f} deg   data loss {result.data_loss_pct:.0f} %\n\n"
                              "SPACE = accept        R = calibrate again")
            key, _ = self.show("validation_result", self.text.draw, until_keys=("space", "r"), accept=accept_default)
            if key == "space":
                result.accepted = True
                if not result.good:
                    log.warning("validation accepted although poor (accuracy %.2f deg)", result.accuracy_deg)
                break
        self._record_calibration(results)

    def _record_calibration(self, results: list[ValidationResult]) -> None:
        used = next((r for r in results if r.accepted), results[-1] if results else None)
        update_session_json(self.folder, calibration={
            "method": used.method if used else "none", "attempts": [r.as_dict() for r in results],
            "accepted": used.as_dict() if used else None})
        if used is not None:
            self.markers.push("calibration", phase="accepted", **used.as_dict())

    # -- trials -------------------------------------------------------------------------------------
    def _pause_for_tracker(self) -> None:
        if (self.protocol.tracking.on_lost != "pause" or self.monitor is None or not self.monitor.lost()):
            return
        self.stamper.at_flip("pause", reason="tracker_lost", trial=self._current_trial)
        self.text.text = "Eye tracker lost - waiting for it to come back.\n\n(SPACE = continue anyway)"
        self.keys.screen("pause")
        while self.monitor.lost():
            if any(k == "space" for k, _, _ in self.flip(self.text.draw)):
                break
        self.stamper.at_flip("resume", reason="tracker_lost", trial=self._current_trial)
        self.flip()

    def run_trial(self, planned: ScheduledTrial) -> TrialRecord:
        from psychopy import visual

        c = planned.condition
        n = planned.trial
        self._current_trial = n
        rec = TrialRecord(participant=self.options.participant, trial=n, block=planned.block,
                          block_index=planned.block_index, clip_id=c.clip_id, clip=c.clip, target_emotion=c.emotion,
                          clip_duration_s=c.duration_s, clip_fps=c.fps, clip_frames=c.frames,
                          auto_responded=self.options.auto_respond, notes=c.notes)
        ids = {"trial": n, "clip": c.clip_id, "emotion": c.emotion, "block": planned.block}
        # load the clip (and its audio) before the trial's first flip, so the baseline timing is clean
        try:
            movie = visual.MovieStim(self.win, str(c.path), units="height", size=self._movie_size(c),
                                     autoStart=False, volume=0.0, loop=False)
        except Exception as exc:  # noqa: BLE001 - decoder errors
            raise UserError(f"clip {c.clip!r} cannot be played ({exc}); check or re-encode it "
                            "(the finished trials are saved)") from None
        player = self._open_audio(c, rec)
        try:
            # baseline
            self.keys.screen("baseline", trial=n)
            self.stamper.at_flip("trial_start", on_stamp=lambda t: setattr(rec, "trial_start_lsl", t), **ids)
            self.stamper.at_flip("baseline_onset", on_stamp=lambda t: setattr(rec, "baseline_onset_lsl", t), **ids)
            self.show("baseline", self.cross.draw, seconds=self.protocol.durations.baseline_s, trial=n)
            self._play_clip(movie, player, rec, ids)
            self._ratings(rec, ids)
            write_trials(self.folder, self.records + [rec])
            self.show("iti", None, seconds=self.protocol.durations.iti_s, trial=n)
            self.stamper.at_flip("trial_end", on_stamp=lambda t: setattr(rec, "trial_end_lsl", t), **ids)
            self.flip()
        finally:
            movie.unload()
            if player is not None:
                player.close()
        if self.monitor is not None and self.monitor.present:
            rec.tracker_lost_s = round(self.monitor.lost_during(rec.trial_start_lsl, rec.trial_end_lsl), 4)
            rec.tracker_lost = rec.tracker_lost_s > 0
        return rec

    def _movie_size(self, c: Any) -> tuple[float, float]:
        aspect_win = self.win.size[0] / self.win.size[1]
        aspect = (c.width / c.height) if c.height else 16 / 9
        h = min(1.0, aspect_win / aspect)
        return (h * aspect, h)

    def _open_audio(self, c: Any, rec: TrialRecord) -> clip_audio.ClipAudio | None:
        mode = self.settings.audio
        if not c.has_audio:
            rec.audio = "none"
            return None
        available = mode != "off" and clip_audio.output_available(self.settings.audio_device)
        if mode == "on" and not available:
            raise UserError(f"no audio output device {self.settings.audio_device or '(default)'}; connect one, set "
                            "[stimuli] audio_device, or audio = 'auto' to play clips silently")
        if not available:
            rec.audio = "silent"
            return None
        wav = clip_audio.extract_audio(c.path)
        if wav is None:
            rec.audio = "none"
            return None
        rec.audio = "played"
        return clip_audio.ClipAudio(wav, self.settings.audio_device)

    def _play_clip(self, movie: Any, player: clip_audio.ClipAudio | None, rec: TrialRecord,
                   ids: dict[str, Any]) -> None:
        state = _ClipState()
        paused_at: list[float] = []

        def pause() -> None:
            movie.pause(log=False)
            if player:
                player.pause(True)
            paused_at.append(pylsl.local_clock())

        def resume() -> None:
            state.paused_s += pylsl.local_clock() - paused_at.pop()
            if player:
                player.pause(False)
            movie.play(log=False)

        def onset(t: float) -> None:
            state.onset = t
            if player:
                player.trigger(t)

        self.keys.screen("clip", trial=rec.trial)
        movie.play(log=False)
        self.stamper.at_flip("clip_onset", on_stamp=onset, **ids, intended_s=round(rec.clip_duration_s, 4),
                             fps=rec.clip_fps)
        self.stamper.watch(True)
        limit = time.monotonic() + rec.clip_duration_s + 10.0
        period = 1.0 / self.refresh_hz
        while not movie.isFinished:
            # the offset flip is the first one at or after onset + duration (+ time paused)
            if (math.isfinite(state.onset) and self.stamper.last_flip_lsl + period
                    >= state.onset + state.paused_s + rec.clip_duration_s - 0.5 * period):
                break
            self.flip(movie.draw, on_pause=pause, on_resume=resume)
            state.pts.add(round(movie.pts, 4))
            if time.monotonic() > limit:
                log.error("clip %s did not finish in time; stopped", rec.clip_id)
                rec.notes = (rec.notes + "; " if rec.notes else "") + "playback stalled, stopped early"
                break
        flips = list(self.stamper.flips)
        self.stamper.watch(False)
        self.clip_flips[rec.trial] = flips

        def offset_fields(t: float) -> dict[str, Any]:
            state.offset = t
            return {"intended_s": round(rec.clip_duration_s, 4),
                    "measured_s": round(t - state.onset - state.paused_s, 4)}

        self.stamper.at_flip("clip_offset", fields_at=offset_fields, **ids)
        self.flip()
        stats = frame_stats(flips + [state.offset], self.refresh_hz)
        rec.clip_onset_lsl, rec.clip_offset_lsl = state.onset, state.offset
        rec.clip_last_flip_lsl = flips[-1] if flips else math.nan
        rec.clip_paused_s = round(state.paused_s, 4)
        rec.clip_measured_s = round(state.offset - state.onset - state.paused_s, 6)
        rec.clip_frames_shown = len(state.pts)
        rec.dropped_frames = int(stats["dropped"])
        rec.frame_interval_max_ms = round(stats["max_ms"], 3)
        if player is not None and player.onset_lsl is not None:
            rec.audio_onset_lsl = player.onset_lsl
            rec.audio_lag_ms = round(1000 * (player.onset_lsl - state.onset), 3)

    def _ratings(self, rec: TrialRecord, ids: dict[str, Any]) -> None:
        from eyemotion.streams import CLASSES

        timeout = self.protocol.durations.rating_timeout_s
        for spec, screen in self._screens:
            selected: int | None = None
            onset: list[float] = []
            self.keys.screen("rating", trial=rec.trial, spec=spec, emotion=rec.target_emotion,
                             felt=rec.felt_emotion or None)
            self.stamper.at_flip("rating_onset", on_stamp=onset.append, scale=spec.name, **ids)
            response: tuple[int | None, float] | None = None
            while response is None:
                keys = self.flip(lambda screen=screen, selected=selected: screen.draw(selected))
                if math.isnan(rec.rating_onset_lsl) and onset:
                    rec.rating_onset_lsl = onset[0]
                for k, t, pos in keys:
                    if k == "mouse":
                        hit = screen.option_at(pos) if pos is not None else None
                        if hit is not None:
                            response = (hit, t)
                            break
                        continue
                    selected, done = screen.handle_key(k, selected)
                    if done:
                        response = (selected, t)
                        break
                if response is None and timeout > 0 and onset and self.stamper.last_flip_lsl - onset[0] >= timeout:
                    response = (None, self.stamper.last_flip_lsl)
            value, t = response
            rt = t - onset[0]
            fields: dict[str, Any] = {"scale": spec.name, "value": value, "rt_s": round(rt, 4), **ids}
            if spec.name in ("valence", "arousal"):
                unit = to_unit(value, spec.n_points) if value is not None else math.nan
                setattr(rec, f"{spec.name}_sam", value)
                setattr(rec, spec.name, unit)
                setattr(rec, f"{spec.name}_rt_s", rt)
                fields["value_unit"] = None if value is None else round(unit, 4)
            elif spec.name == "emotion":
                rec.felt_emotion = CLASSES[value - 1] if value is not None else ""
                rec.felt_emotion_rt_s = rt
                fields["label"] = rec.felt_emotion
            else:
                rec.intensity, rec.intensity_rt_s = value, rt
            if value is None:
                fields["timed_out"] = True
            self.markers.push("rating_response", timestamp=t, **fields)
        rec.rating_end_lsl = pylsl.local_clock()

    # -- the whole session --------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        from eyemotion.acquisition.markers import MarkerOutlet

        check_display()
        self._catch_stop_signals()
        first = self.open_session()
        ns = self.config.lsl.namespace
        self.markers = MarkerOutlet("runner", namespace=ns)
        self._wait_for_recorder()
        self.monitor = TrackerMonitor(ns, self.protocol.tracking.lost_after_s,
                                      own_marker_source=self.markers.outlet.get_info().source_id())
        self.monitor.start(self.settings.tracker_timeout_s, self.protocol.tracking.required)
        started = datetime.now(UTC).isoformat()
        runs = read_session_json(self.folder).get("runner", {}).get("runs", [])
        status = "aborted"
        try:
            self.open_window()
            self._runner_json(status="running", auto_respond=self.options.auto_respond, refresh_hz=self.refresh_hz,
                              paced=self.pacer.active, clock_offset_lsl_minus_psychopy=clock_offset(),
                              window_size=[int(v) for v in self.win.size], eyemotion_version=__version__,
                              trials_total=len(self.schedule),
                              runs=runs + [{"start": started, "first_trial": first + 1}])
            self.stamper.at_flip("session_start", participant=self.options.participant, protocol=self.protocol.name,
                                 trials=len(self.schedule), first_trial=first + 1, resumed=first > 0 or
                                 self.options.resume, session=self.folder.name)
            self.flip()
            self._instructions()
            self.calibrate()
            self._pause_for_tracker()
            for planned in self.schedule[first:]:
                rec = self.run_trial(planned)
                self.records.append(rec)
                write_trials(self.folder, self.records)
                self._runner_json(trials_done=len(self.records))
                self._pause_for_tracker()
            self.stamper.at_flip("session_end", trials=len(self.records), status="complete")
            self.flip()
            status = "complete"
        except Aborted as exc:
            self.markers.push("abort", trial=self._current_trial, trials_done=len(self.records),
                              reason=str(exc) or "experimenter pressed Esc")
            log.warning("session aborted after %d of %d trials; resume with --resume", len(self.records),
                        len(self.schedule))
        finally:
            if self.folder is not None and self.records:
                write_trials(self.folder, self.records)
            runs = read_session_json(self.folder).get("runner", {}).get("runs", [])
            if runs:
                runs[-1].update(end=datetime.now(UTC).isoformat(), status=status,
                                trials_done=len(self.records))
            self._runner_json(status=status, trials_done=len(self.records), runs=runs)
            self.monitor.stop()
            if self.win is not None:
                self.win.close()
        return RunOutcome(status, self.folder, len(self.records), len(self.schedule))

    _signalled = ""

    def _catch_stop_signals(self) -> None:
        """SIGINT/SIGTERM (Ctrl-C, or the supervisor ending the session) save and exit like a confirmed Esc,
        at the next flip, instead of a KeyboardInterrupt inside PsychoPy."""
        def stop(signum, _frame) -> None:
            self._signalled = signal.Signals(signum).name

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, stop)

    def _wait_for_recorder(self) -> None:
        """Hold the start (up to `[stimuli] wait_for_recorder_s`) until the session is being recorded, so
        that no marker is lost: with a session folder handed in (`--session`, as `eyemotion run` does) until
        its session.json says the recording started; otherwise until something (e.g. LabRecorder's GUI)
        listens to our markers."""
        wait = self.settings.wait_for_recorder_s
        if wait <= 0:
            return

        def recording() -> bool:
            return bool((read_session_json(self.folder).get("recording") or {}).get("start"))

        ready = recording if self.options.session else self.markers.have_consumers
        end = time.monotonic() + wait
        while time.monotonic() < end and not ready() and not self._signalled:
            time.sleep(0.1)
        if not ready():
            log.warning("no recording after %.0f s; starting anyway (markers before the recorder starts are "
                        "not in the XDF)", wait)

    def _instructions(self) -> None:
        self.text.text = self.protocol.protocol.instructions
        self.stamper.at_flip("instructions_onset")
        seconds = self.protocol.durations.instructions_s or None
        self.show("instructions", self.text.draw, seconds=seconds, until_keys=("space", "return"))
