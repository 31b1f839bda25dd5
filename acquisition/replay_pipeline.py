"""Replay a session with the whole live pipeline: the recorded raw streams through `ReplayController`, and
the nodes of a live session (eye signal, live inference, the face pipeline on `camera.mkv`) as supervised
child processes (`eyemotion.nodes.Supervisor`, the session runner's node specs), so that a replay shows
everything a live session shows.

Predictions: `recomputed` (default) replays the raw streams only; the face pipeline runs on the recorded
video (`VideoFrameNode`) and the inference node re-computes eyemotion_emotion with the models installed now.
`recorded` also replays the recorded eyemotion_face and eyemotion_emotion and starts no inference; the
video node then serves only the camera preview. The dashboard labels which one is shown.

Timing: the replay's stamps are shifted by a whole number of inference window periods
(`ReplayController(align_s=...)`), so a re-computed window covers exactly the samples the live window
covered (the inference node puts window ends on an absolute grid of LSL time). A replay re-computed through
the nodes equals offline reprocessing (`tests/test_replay_pipeline.py`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from eyemotion import UserError
from eyemotion.config import Config
from eyemotion.nodes import Node
from eyemotion.streams import CAMERA, EMOTION, FACE, GAZE_CLEAN, PREVIEW

log = logging.getLogger(__name__)

PREDICTIONS = ("recomputed", "recorded")
#: seconds the replay waits for its nodes' streams before it plays anyway
NODES_TIMEOUT_S = 90.0
#: how long the replay's inference waits for a lagging input (wall seconds)
REPLAY_STALE_S = 15.0
#: how far (stream seconds) the replay's inference keeps inputs for a lagging one: 15 s at 4x
REPLAY_MAX_LAG_S = 60.0


def session_folder(source: str | Path) -> Path:
    path = Path(source)
    return path if path.is_dir() else path.parent


class VideoFrameNode(Node):
    """The replay's camera: replayed eyemotion_camera samples in, the recorded frame of each (found in the
    session's video segments, `Session.camera_segments`) to the face pipeline's analysers, which publish
    eyemotion_face (with `face`) and eyemotion_preview, stamped like the frame.

    Frames are analysed at `[face] rate_hz` / `[face] preview_rate_hz` of frame time (`RateGate`), exactly
    the frames that offline reprocessing (`features`, `face_table_from_video`) analyses.
    """

    name = "video"

    def __init__(self, config: Config, session: str | Path, *, face: bool = True) -> None:
        super().__init__(config)
        from eyemotion.session import Session

        folder = session_folder(session)
        loaded = Session.load(folder, dejitter=False, streams=[CAMERA.name])
        self.segments = loaded.camera_segments
        if not self.segments:
            raise UserError(f"{folder} has no camera video with eyemotion_camera samples; replay it without "
                            "the video node")
        self.face = face
        self.inlet = None
        self.analyzers: list = []
        self._gates: list = []
        self._capture = None
        self._segment = -1
        self._next = 0  # the frame index the capture reads next
        self._shift: float | None = None  # replayed stamp - recorded stamp of the last frame
        self.frames = 0  # frames analysed

    def open(self) -> None:
        from eyemotion.inference.features.face import FaceAnalyzer, PreviewAnalyzer, RateGate

        from eyemotion.streams import open_inlet

        cfg = self.config
        if self.face:
            self.analyzers.append(FaceAnalyzer(cfg))
            self._gates.append(RateGate(cfg.face.rate_hz))
        self.analyzers.append(PreviewAnalyzer(cfg))
        self._gates.append(RateGate(cfg.face.preview_rate_hz))
        self.inlet = open_inlet(CAMERA, namespace=cfg.lsl.namespace, timeout=30, processing=0)

    def locate(self, value: int, stamp: float) -> tuple[int, int] | None:
        """(segment, frame) of a replayed sample: the frame number `value` in the segment whose recorded
        stamp keeps the replay's shift (segments restart at frame 0 after a camera restart). Known limit:
        the first frame after a start or a seek that lands in a later segment is ambiguous when an earlier
        segment has the same frame number; the earlier one is taken."""
        best, best_err = None, np.inf
        for k, seg in enumerate(self.segments):
            i = int(np.searchsorted(seg.frame_index, value))
            if i < len(seg.frame_index) and seg.frame_index[i] == value:
                shift = stamp - float(seg.stamps[i])
                err = 0.0 if self._shift is None else abs(shift - self._shift)
                if err < best_err:
                    best, best_err, best_shift = (k, value), err, shift
        if best is not None:
            self._shift = best_shift
        return best

    def _frame(self, segment: int, index: int, wanted: bool):
        import cv2

        if segment != self._segment or index < self._next or index - self._next > 90:
            if segment != self._segment:
                if self._capture is not None:
                    self._capture.release()
                self._capture = cv2.VideoCapture(str(self.segments[segment].path))
                self._segment, self._next = segment, 0
            if index != self._next:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                self._next = index
        while self._next < index:
            self._capture.grab()
            self._next += 1
        self._next += 1
        if not wanted:
            self._capture.grab()
            return None
        ok, frame = self._capture.read()
        return frame if ok else None

    def step(self) -> None:
        values, stamps = self.inlet.pull_chunk(timeout=0.05, max_samples=16)
        for value, stamp in zip(values, stamps):
            where = self.locate(round(value[0]), float(stamp))
            if where is None:
                continue
            due = [gate(stamp) for gate in self._gates]
            frame = self._frame(*where, wanted=any(due))
            if frame is None:
                continue
            for analyzer, go in zip(self.analyzers, due):
                if go:
                    analyzer(frame, float(stamp), where[1])
            self.frames += 1

    def close(self) -> None:
        for analyzer in self.analyzers:
            analyzer.close()
        if self._capture is not None:
            self._capture.release()
        self.inlet = None


class ReplayPipeline:
    """A replayed session with its processing nodes, supervised; the dashboard's replay backend drives it.

    >>> pipe = ReplayPipeline("sessions/P001/20261123T094501", config, predictions="recomputed")
    >>> pipe.start()      # nodes start in the background; playback starts once their streams are up
    >>> pipe.controller.pause(); pipe.close()
    """

    def __init__(self, source: str | Path, config: Config, *, speed: float = 1.0,
                 predictions: str = "recomputed", nodes: bool = True) -> None:
        from eyemotion.acquisition.replay import REPLAYED, ReplayController
        from eyemotion.inference.live import window_period_s

        if predictions not in PREDICTIONS:
            raise UserError(f"--predictions {predictions!r}: choose {' or '.join(PREDICTIONS)}")
        self.config = config
        self.predictions = predictions
        self.folder = session_folder(source)
        recorded = predictions == "recorded"
        video = any(self.folder.glob("camera*.mkv"))
        # re-computed: the face comes from the video node (the recorded one only when there is no video)
        names = (*REPLAYED, EMOTION.name) if recorded else tuple(n for n in REPLAYED if n != FACE.name or not video)
        self.controller = ReplayController(source, namespace=config.lsl.namespace, speed=speed,
                                           align_s=window_period_s(config), names=names)
        replayed = {s.name for s in self.controller.streams}
        self.has_video = CAMERA.name in replayed and video
        self.want_nodes = nodes
        self.supervisor = None
        self.workdir: Path | None = None
        self.markers = None
        self.state = "not started"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def children(self, config_path: Path) -> list:
        """The supervised nodes: the session runner's processing nodes, plus the video node."""
        from eyemotion.nodes import ChildSpec
        from eyemotion.session_runner import _cli, processing_children

        children = processing_children(config_path, inference=self.predictions == "recomputed")
        if self.has_video:
            argv = _cli(config_path, "node", "video", "--session", str(self.folder))
            if self.predictions == "recorded":
                argv.append("--no-face")
            streams = (PREVIEW.name,) if self.predictions == "recorded" else (FACE.name, PREVIEW.name)
            children.insert(0, ChildSpec("video", argv, stop_rank=6, streams=streams))
        return children

    def node_config(self) -> Config:
        """The nodes' config: the dashboard's, with the recorded session's screen geometry, and an
        inference that waits up to REPLAY_STALE_S for a slow input (the face pipeline decodes the video
        and may fall behind at 2x/4x; live, a late input is written off after `[inference] stale_s`, which
        would make the replay's windows differ from the recording's)."""
        from dataclasses import replace

        from eyemotion.inference.eyesignal.node import screen_from_session

        try:
            screen = screen_from_session(self.folder, self.config.screen)
        except UserError:
            screen = self.config.screen
        inference = replace(self.config.inference, stale_s=max(self.config.inference.stale_s, REPLAY_STALE_S),
                            max_lag_s=max(self.config.inference.max_lag_s, REPLAY_MAX_LAG_S))
        return self.config.replace(screen=screen, inference=inference)

    def expected_streams(self) -> list:
        specs = [GAZE_CLEAN]
        if self.has_video:
            specs.append(PREVIEW)
        if self.predictions == "recomputed":
            specs.append(EMOTION)
        return specs

    def start(self) -> None:
        """Open the outlets, start the nodes, and play once their streams are up (in a thread)."""
        self.controller.open()
        if not self.want_nodes:
            self.state = "playing (no nodes)"
            self.controller.start()
            return
        from eyemotion.acquisition.markers import MarkerOutlet

        from eyemotion.nodes import Supervisor

        self.workdir = Path(tempfile.mkdtemp(prefix="eyemotion-replay-"))
        config_path = self.workdir / "eyemotion.toml"
        config_path.write_text(self.node_config().to_toml())
        self.markers = MarkerOutlet("supervisor", namespace=self.config.lsl.namespace)
        self.supervisor = Supervisor(self.children(config_path), self.workdir, markers=self.markers)
        self.supervisor.start()
        for name in self.supervisor.states:
            self.markers.push("node_started", node=name, detail="replay")
        self.state = "starting nodes"
        self._thread = threading.Thread(target=self._supervise, name="replay-supervisor", daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        from eyemotion.streams import find

        ns = self.config.lsl.namespace
        waiting = self.expected_streams()
        deadline = time.monotonic() + NODES_TIMEOUT_S
        while waiting and not self._stop.is_set() and time.monotonic() < deadline:
            self.supervisor.poll()
            waiting = [s for s in waiting if not find(s, namespace=ns, timeout=0.3)]
        if waiting:
            log.warning("replay plays without %s (node logs: %s)", ", ".join(s.name for s in waiting),
                        self.workdir / "logs")
        if self._stop.is_set():
            return
        time.sleep(1.0)  # the nodes' inlets subscribe to the replay's outlets
        self.state = "playing"
        self.controller.start()
        while not self._stop.wait(0.2):
            self.supervisor.poll()

    def health(self) -> dict[str, tuple[str, str]]:
        """Each node's state for the dashboard: running, restarted (n), finished, failed."""
        if self.supervisor is None:
            return {}
        out = {}
        for name, st in self.supervisor.states.items():
            if st.finished:
                out[name] = ("stopped", "finished" if st.process is None or st.process.returncode == 0
                             else f"exit {st.process.returncode}")
            elif st.process is None:
                out[name] = ("restarted", f"restarting (restart {len(st.restarts)})")
            elif st.restarts:
                out[name] = ("restarted", f"running, {len(st.restarts)} restart(s)")
            else:
                out[name] = ("ok", f"running (pid {st.process.pid})")
        return out

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.controller.close()
        if self.supervisor is not None:
            self.supervisor.shutdown()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
