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
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from eyemotion.config import Config

HEARTBEAT_ENV = "EYEMOTION_HEARTBEAT"
USER_ERROR_EXIT = 2  # the CLI's exit code for a UserError (see eyemotion.UserError.exit_code)
HEARTBEAT_S = 0.5

log = logging.getLogger(__name__)


def heartbeat_file() -> Path | None:
    """The file the supervisor asked this process to touch (`EYEMOTION_HEARTBEAT`), if any."""
    beat_file = os.environ.get(HEARTBEAT_ENV)
    return Path(beat_file) if beat_file else None


class beating:
    """Context manager: touch the supervisor's heartbeat file every `HEARTBEAT_S` from a thread, for a slow step
    that cannot return within the heartbeat timeout (e.g. compiling on first use)."""

    def __init__(self) -> None:
        self._beat = heartbeat_file()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        if self._beat is not None:
            self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(HEARTBEAT_S):
            self._beat.touch()


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
        beat = heartbeat_file()
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


# ------------------------------------------------------------------------------------------------------
# Supervisor
# ------------------------------------------------------------------------------------------------------


@dataclass
class ChildSpec:
    """One supervised child process.

    `stop_rank`: children stop in increasing rank (the recorder has the highest, so the XDF is finalised
    last). `ends_session`: a normal exit (code 0) of this child ends the session (the runner finishing
    its protocol, the dashboard being closed). `heartbeat`: the child touches `$EYEMOTION_HEARTBEAT`
    (every `Node.run` does); one silent for `heartbeat_timeout_s` is killed and restarted as hung.
    `streams`: names of the streams it publishes, named in the gap marker when it restarts.
    `restart_args`: appended to `argv` when the child is restarted (the stimulus runner continues its
    session with `--resume` instead of starting the protocol again).
    A child with `restart=False` that dies (not a normal exit) stops the session: nothing can take over
    its work (the recorder: a second LabRecorder must not overwrite `recording.xdf`).
    """

    name: str
    argv: list[str]
    stop_rank: int = 0
    restart: bool = True
    ends_session: bool = False
    heartbeat: bool = True
    streams: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    stop_timeout_s: float = 10.0
    restart_args: tuple[str, ...] = ()


@dataclass
class ChildState:
    spec: ChildSpec
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: list[dict] = field(default_factory=list)
    next_start: float = 0.0  # monotonic time of the pending restart (backoff)
    backoff_s: float = 0.0
    finished: bool = False  # exited normally and is not to be restarted
    died_at_lsl: float | None = None


class Supervisor:
    """Starts the nodes as child processes, restarts dead or hung ones with backoff, reports on markers.

    Every restart pushes a `node_restart` marker and a `node_gap` marker spanning the time the node's
    streams were silent (LSL time from its death to its restart). Logs of each child go to
    `<workdir>/logs/<name>.log`; heartbeats to `<workdir>/heartbeats/<name>`; the current process id of each
    child to `<workdir>/pids/<name>`.
    """

    def __init__(self, children: list[ChildSpec], workdir: Path, *, markers=None,
                 heartbeat_timeout_s: float = 10.0, min_backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 startup_grace_s: float = 60.0) -> None:
        names = [c.name for c in children]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate child names: {names}")
        self.workdir = Path(workdir)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        (self.workdir / "heartbeats").mkdir(parents=True, exist_ok=True)
        (self.workdir / "pids").mkdir(parents=True, exist_ok=True)
        self.states = {c.name: ChildState(c) for c in children}
        self.markers = markers
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.startup_grace_s = startup_grace_s
        self.session_ended_by: str | None = None
        self.fatal: str = ""  # set when a child refused to run (exit code 2)
        self._stop = threading.Event()

    # -- process handling ---------------------------------------------------------------------------
    def _heartbeat_path(self, name: str) -> Path:
        return self.workdir / "heartbeats" / name

    def _spawn(self, st: ChildState) -> None:
        spec = st.spec
        beat = self._heartbeat_path(spec.name)
        beat.unlink(missing_ok=True)
        env = {**os.environ, **spec.env, HEARTBEAT_ENV: str(beat)}
        log_file = open(self.workdir / "logs" / f"{spec.name}.log", "ab")
        argv = [*spec.argv, *spec.restart_args] if st.restarts else spec.argv
        try:
            st.process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        finally:
            log_file.close()
        st.started_at = time.monotonic()
        pid_file = self.workdir / "pids" / spec.name  # for operators and fault tests: replaced whole, never half
        pid_file.with_suffix(".tmp").write_text(str(st.process.pid))
        pid_file.with_suffix(".tmp").replace(pid_file)
        log.info("started %s (pid %d)", spec.name, st.process.pid)

    def start(self, *, wait_between_s: float = 0.0) -> None:
        """Start every child in the given order."""
        for st in self.states.values():
            self._spawn(st)
            if wait_between_s:
                time.sleep(wait_between_s)

    def _log_tail(self, name: str, lines: int = 5) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        try:
            text = path.read_bytes()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def _push(self, event: str, **fields) -> None:
        if self.markers is not None:
            self.markers.push(event, **fields)

    def poll(self) -> None:
        """One monitoring pass: notice deaths and hangs, schedule and perform restarts."""
        import pylsl

        now = time.monotonic()
        for name, st in self.states.items():
            spec = st.spec
            if st.finished:
                continue
            proc = st.process
            if proc is None:
                if not st.restarts:  # not started yet (sessions start their children in groups)
                    continue
                if now >= st.next_start:
                    self._spawn(st)
                    gap_end = pylsl.local_clock()
                    restart = st.restarts[-1]
                    restart["restarted_lsl"] = gap_end
                    self._push("node_restart", node=name, exit_code=restart["exit_code"],
                               reason=restart["reason"], attempt=len(st.restarts))
                    self._push("node_gap", node=name, streams=list(spec.streams),
                               start=restart["died_lsl"], end=gap_end, duration=gap_end - restart["died_lsl"])
                continue
            code = proc.poll()
            hung = False
            if code is None and spec.heartbeat and now - st.started_at > self.startup_grace_s:
                beat = self._heartbeat_path(name)
                age = now - st.started_at if not beat.exists() else time.time() - beat.stat().st_mtime
                if age > self.heartbeat_timeout_s:
                    hung = True
                    log.warning("%s sent no heartbeat for %.1f s: killing it", name, age)
                    _kill_group(proc, signal.SIGKILL)
                    code = proc.wait()
            if code is None:
                if now - st.started_at > 2 * self.max_backoff_s:
                    st.backoff_s = 0.0  # a long healthy run resets the backoff
                continue
            st.process = None
            if code == 0 and not hung:
                st.finished = True
                log.info("%s finished", name)
                if spec.ends_session and self.session_ended_by is None:
                    self.session_ended_by = name
                continue
            reason = "no heartbeat (hung)" if hung else _describe_exit(code)
            if code == USER_ERROR_EXIT and not hung:
                # the node refused to start (a UserError: bad config, missing device ...): restarting
                # cannot help, so the session stops and says why
                st.finished = True
                self.fatal = f"{name}: {self._log_tail(name, 1).removeprefix('eyemotion: error: ')}"
                log.error("%s refused to run: %s", name, self.fatal)
                continue
            if not spec.restart or self._stop.is_set():
                st.finished = True
                log.error("%s died (%s); not restarted. Last output: %s", name, reason, self._log_tail(name))
                if not spec.restart and not self._stop.is_set():  # nothing takes over its work: stop cleanly
                    self.fatal = f"{name} died ({reason}) and is not restarted"
                    self._push("node_died", node=name, exit_code=code, reason=reason)
                continue
            st.backoff_s = min(self.max_backoff_s, max(self.min_backoff_s, st.backoff_s * 2))
            st.next_start = now + st.backoff_s
            st.restarts.append({"died_lsl": pylsl.local_clock(), "exit_code": code, "reason": reason})
            log.warning("%s died (%s); restarting in %.1f s. Last output: %s", name, reason, st.backoff_s,
                        self._log_tail(name))

    def request_stop(self) -> None:
        self._stop.set()

    def run(self, duration: float | None = None, poll_s: float = 0.2) -> str:
        """Supervise until a session-ending child exits normally, a stop is requested, or `duration`."""
        end = time.monotonic() + duration if duration else None
        while not self._stop.is_set():
            self.poll()
            if self.session_ended_by:
                return f"{self.session_ended_by} finished"
            if self.fatal:
                return f"stopped: {self.fatal}"
            if end is not None and time.monotonic() >= end:
                return "duration reached"
            if all(st.finished for st in self.states.values()):
                return "all nodes finished"
            time.sleep(poll_s)
        return "stop requested"

    def shutdown(self) -> None:
        """Stop the children in increasing `stop_rank` (SIGINT, then SIGTERM, then SIGKILL)."""
        self._stop.set()
        for st in sorted(self.states.values(), key=lambda s: s.spec.stop_rank):
            proc = st.process
            if proc is None or proc.poll() is not None:
                continue
            # polite signals go to the child alone (it stops its own children, e.g. the recorder lets
            # LabRecorderCLI write its footers); only the final SIGKILL takes the whole process group
            for sig, wait in ((signal.SIGINT, st.spec.stop_timeout_s), (signal.SIGTERM, 3.0),
                              (signal.SIGKILL, 3.0)):
                if sig == signal.SIGKILL:
                    _kill_group(proc, sig)
                else:
                    proc.send_signal(sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop on %s", st.spec.name, signal.Signals(sig).name)
            log.info("stopped %s (exit %s)", st.spec.name, proc.returncode)
            st.finished = True

    def report(self) -> dict:
        """Restarts per node (with reasons and gap times) for the session summary."""
        return {name: {"restarts": st.restarts, "exit_code": st.process.returncode if st.process else None}
                for name, st in self.states.items()}


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
