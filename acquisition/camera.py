"""The camera node: webcam (or video file, or URL) -> `camera.mkv` + one `eyemotion_camera` sample per frame.

Frame i of the video is the `eyemotion_camera` sample with value i. The video is Matroska, which stays
readable when the node is killed (an MP4 is unreadable without the index written at its end), and a
restarted node never overwrites it: it writes the next segment, `camera-1.mkv`, `camera-2.mkv`, ..., counts
frames from 0 again and adds the segment to `camera_segments.csv` (`eyemotion.session.Session.camera_segments`
pairs each file with its recorded samples). Each sample is stamped in LSL
time right after `grab()` returns, i.e. when the frame has arrived; decoding (`retrieve()`) and writing
come after the stamp. A file source is paced at its own fps (and loops with `[camera] loop`), so it
behaves like a webcam.

When the source vanishes (a device or URL whose read fails, a file that is deleted or renamed) the node
pushes `device_lost` on `eyemotion_markers`, tries to reopen it with exponential backoff (0.25 s, doubling
up to `[camera] reconnect_max_s`) and pushes `device_restored` (with the gap length) when frames flow
again. The video file stays open across the gap, so the frames before and after it are kept.

Per-frame analysers (the face pipeline publishes `eyemotion_face` and `eyemotion_preview` from here)
are callables `analyzer(frame_bgr, timestamp, frame_index)`, optionally with a `close()` method. A worker
thread hands them the *latest* frame at `[camera] analyze_hz`; frames that arrive while they work are
skipped for them, never for the video file or the stream, so a slow analyser cannot stall capture.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
from eyemotion.acquisition.markers import MarkerOutlet

from eyemotion import UserError
from eyemotion.config import Config
from eyemotion.nodes import Node
from eyemotion.session import add_camera_segment, next_camera_video
from eyemotion.streams import CAMERA, stream_info

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.25

Analyzer = Callable[[np.ndarray, float, int], Any]


class CameraError(UserError):
    """A camera, video file or URL that cannot be opened."""


@dataclass(frozen=True)
class CameraSource:
    """What `[camera] source` names: a device index, a video file or a URL."""

    kind: str  # "device", "file" or "url"
    value: str

    @classmethod
    def parse(cls, source: str) -> CameraSource:
        text = str(source).strip()
        if text.isdigit():
            return cls("device", text)
        if "://" in text:
            return cls("url", text)
        return cls("file", text)

    @property
    def index(self) -> int:
        return int(self.value)

    @property
    def path(self) -> Path:
        return Path(self.value).expanduser()

    def describe(self) -> str:
        return {"device": f"camera {self.value}", "file": f"video file {self.value}", "url": f"URL {self.value}"}[
            self.kind]


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 to /dev/null meanwhile: OpenCV's capture backends print `[ERROR:0@...] ... out of
    range` lines from C++ for every index that is not a camera, whatever its log level."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _quiet_opencv() -> None:
    """Keep OpenCV from logging a warning for every index that is not a camera."""
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # builds without the logging module
        pass


def _open_device(index: int, config: Config | None = None):
    import cv2

    _quiet_opencv()
    cap = cv2.VideoCapture(index)
    if cap.isOpened() and config is not None:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, config.camera.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, config.camera.height)
        cap.set(cv2.CAP_PROP_FPS, config.camera.fps)
    return cap


def list_cameras(max_index: int = 8) -> list[dict]:
    """The camera devices among indices 0..max_index-1 that open: index, size, fps and backend."""
    import cv2

    found = []
    for index in range(max_index):
        with quiet_stderr():
            cap = _open_device(index)
        try:
            if cap.isOpened():
                found.append({
                    "index": index,
                    "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                    "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                    "fps": float(cap.get(cv2.CAP_PROP_FPS)),
                    "backend": cap.getBackendName(),
                })
        finally:
            cap.release()
    return found


def open_capture(source: CameraSource, config: Config, *, explain: bool = True):
    """Open `source` with cv2.VideoCapture; CameraError (one line, with the fix) when it does not open.

    `explain=False` skips the listing of cameras (used for quiet reopen attempts).
    """
    import cv2

    _quiet_opencv()
    if source.kind == "device":
        cap = _open_device(source.index, config)
        if cap.isOpened():
            return cap
        cap.release()
        if not explain:
            raise CameraError(f"camera {source.index} cannot be opened")
        others = [str(c["index"]) for c in list_cameras()]
        listing = f"cameras that open: {', '.join(others)}" if others else "no camera opens on this computer"
        raise CameraError(f"camera {source.index} cannot be opened ({listing}); set [camera] source to one "
                          f"of them, or to a video file")
    if source.kind == "file":
        if not source.path.is_file():
            raise CameraError(f"video file {source.path} not found; set [camera] source to an existing "
                              f"video file, a camera index or a URL")
        cap = cv2.VideoCapture(str(source.path))
        if cap.isOpened():
            return cap
        cap.release()
        raise CameraError(f"video file {source.path} cannot be decoded by OpenCV; convert it to mp4 "
                          f"(H.264 or MPEG-4) or pick another file")
    timeout_ms = int(config.camera.open_timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    cap = cv2.VideoCapture(source.value, cv2.CAP_FFMPEG, params)
    if cap.isOpened():
        return cap
    cap.release()
    raise CameraError(f"URL {source.value} does not open as a video stream (within "
                      f"{config.camera.open_timeout_s:g} s); check the address, the network and the camera")


class AnalyzerWorker:
    """Runs per-frame analysers on the latest frame, at most `rate_hz` times per second, in a thread."""

    def __init__(self, analyzers: Sequence[Analyzer], rate_hz: float) -> None:
        self.analyzers = list(analyzers)
        self.period = 1.0 / rate_hz
        self._latest: tuple[np.ndarray, float, int] | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._failed: set[int] = set()
        self.calls = 0
        self._thread = threading.Thread(target=self._loop, name="camera-analyzers", daemon=True)

    def start(self) -> None:
        if self.analyzers:
            self._thread.start()

    def offer(self, frame: np.ndarray, timestamp: float, index: int) -> None:
        """Make `frame` the latest one (never blocks on the analysers)."""
        if not self.analyzers:
            return
        with self._cond:
            self._latest = (frame, timestamp, index)
            self._cond.notify()

    def _loop(self) -> None:
        next_due = 0.0
        while True:
            with self._cond:
                while self._latest is None and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                frame, timestamp, index = self._latest
                self._latest = None
            for k, analyzer in enumerate(self.analyzers):
                try:
                    analyzer(frame, timestamp, index)
                except Exception:  # an analyser bug must not stop the camera
                    if k not in self._failed:
                        log.exception("camera analyser %r failed (further errors are counted silently)", analyzer)
                    self._failed.add(k)
            self.calls += 1
            next_due = max(next_due + self.period, time.monotonic())
            delay = next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(5)
        for analyzer in self.analyzers:
            close = getattr(analyzer, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("closing camera analyser %r failed", analyzer)


class CameraNode(Node):
    """Webcam/file/URL -> `camera.mkv` (or its next segment) in `output_dir` (None: no video) + `eyemotion_camera`.

    `open()` may be called before `run()` (it is idempotent), e.g. so that consumers connect first.
    """

    name = "camera"

    def __init__(self, config: Config, output_dir: Path | None = None, analyzers: Sequence[Analyzer] = ()) -> None:
        super().__init__(config)
        self.source = CameraSource.parse(config.camera.source)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.worker = AnalyzerWorker(analyzers, config.camera.analyze_hz)
        self.frames = 0  # samples pushed = frames written
        self.gaps = 0
        self.fps = 0.0
        self.size: tuple[int, int] | None = None
        self._cap = None
        self._writer = None
        self.video_path: Path | None = None  # the segment this run writes, chosen by open()
        self._outlet: pylsl.StreamOutlet | None = None
        self._markers: MarkerOutlet | None = None
        self._opened = False
        self._next_due = 0.0
        self._file_pos = 0  # frame position inside a file source (to resume after a gap)
        self._file_frames = 0
        self._lost_since: float | None = None  # LSL time of the loss
        self._retry_at = 0.0
        self._backoff = BACKOFF_START_S
        self._attempts = 0

    # -- Node --------------------------------------------------------------------------------------
    def open(self) -> None:
        if self._opened:
            return
        import cv2

        self._cap = open_capture(self.source, self.config)
        if self.source.kind == "file":
            self.fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or self.config.camera.fps
            self._file_frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        else:
            reported = float(self._cap.get(cv2.CAP_PROP_FPS))
            self.fps = reported if 0 < reported <= 240 else self.config.camera.fps
        width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or self.config.camera.width
        height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or self.config.camera.height
        self.size = (width, height)
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.video_path = next_camera_video(self.output_dir)
            self._writer = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                           self.size)
            if not self._writer.isOpened():
                raise CameraError(f"cannot write {self.video_path}; check that the folder is writable")
            add_camera_segment(self.output_dir, self.video_path, pylsl.local_clock(), self.fps, self.size)
        namespace = self.config.lsl.namespace
        self._outlet = pylsl.StreamOutlet(stream_info(
            CAMERA, namespace=namespace, rate=self.fps,
            extra={"source": self.source.describe(), "video": self.video_path.name if self.video_path else "",
                   "width": str(width), "height": str(height),
                   "simulated": "true" if self.source.kind == "file" else "false"}))  # a file is no live camera
        self._markers = MarkerOutlet("camera", namespace=namespace)
        self.worker.start()
        self._next_due = time.monotonic()
        self._opened = True
        log.info("camera: %s, %dx%d at %.3g fps -> %s", self.source.describe(), width, height, self.fps,
                 self.video_path or "no video file")

    def step(self) -> None:
        if self._lost_since is not None:
            self._try_reopen()
            return
        if self.source.kind == "file":
            if not self.source.path.exists():
                self._lose("file disappeared")
                return
            delay = self._next_due - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 0.1))
                if delay > 0.1:
                    return
        if not self._cap.grab():
            self._on_grab_failed()
            return
        stamp = pylsl.local_clock()
        ok, frame = self._cap.retrieve()
        if not ok or frame is None:
            self._on_grab_failed()
            return
        self._file_pos += 1
        self._emit(frame, stamp)
        if self.source.kind == "file":
            self._next_due = max(self._next_due + 1.0 / self.fps, time.monotonic() - 0.5)

    def close(self) -> None:
        self.worker.stop()
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        log.info("camera: %d frames, %d gaps", self.frames, self.gaps)

    # -- helpers -----------------------------------------------------------------------------------
    def _emit(self, frame: np.ndarray, stamp: float) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:  # e.g. a device restored at another size
            import cv2

            frame = cv2.resize(frame, self.size)
        if self._writer is not None:
            self._writer.write(frame)
        self._outlet.push_sample([float(self.frames)], stamp)
        self.worker.offer(frame, stamp, self.frames)
        self.frames += 1

    def _on_grab_failed(self) -> None:
        import cv2

        if self.source.kind == "file" and self.source.path.exists():
            if not self.config.camera.loop:
                log.info("camera: end of %s after %d frames", self.source.path, self.frames)
                self.request_stop()
                return
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._file_pos = 0
            if not self._cap.grab():  # rewinding did not help: reopen the file
                self._lose("rewind failed")
                return
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            return
        self._lose("read failed")

    def _lose(self, why: str) -> None:
        self._lost_since = pylsl.local_clock()
        self.gaps += 1
        self._attempts = 0
        self._backoff = BACKOFF_START_S
        self._retry_at = time.monotonic() + self._backoff
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        log.warning("camera: %s lost (%s) after frame %d; reopening with backoff", self.source.describe(), why,
                    self.frames - 1)
        self._markers.push("device_lost", timestamp=self._lost_since, device="camera",
                           what=self.source.describe(), reason=why, last_frame=self.frames - 1)

    def _try_reopen(self) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            time.sleep(min(self._retry_at - now, 0.1))
            return
        self._attempts += 1
        try:
            cap = open_capture(self.source, self.config, explain=False)
        except CameraError as exc:
            self._backoff = min(self._backoff * 2, self.config.camera.reconnect_max_s)
            self._retry_at = time.monotonic() + self._backoff
            log.info("camera: reopen attempt %d failed (%s); next in %.2g s", self._attempts, exc, self._backoff)
            return
        if self.source.kind == "file":
            import cv2

            if self._file_frames:
                self._file_pos %= self._file_frames
            cap.set(cv2.CAP_PROP_POS_FRAMES, self._file_pos)
        self._cap = cap
        restored = pylsl.local_clock()
        gap = restored - self._lost_since
        self._lost_since = None
        self._next_due = time.monotonic()
        log.warning("camera: %s restored after %.2f s (%d attempts)", self.source.describe(), gap, self._attempts)
        self._markers.push("device_restored", timestamp=restored, device="camera", what=self.source.describe(),
                           gap_s=round(gap, 4), attempts=self._attempts, next_frame=self.frames)
