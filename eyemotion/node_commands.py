"""`eyemotion node`, `eyemotion run`, `eyemotion demo` and `eyemotion bench`: a whole session.

`eyemotion node KIND` runs one node in its own process (this is what the supervisor starts; it is also
handy on a lab PC that hosts a single device). `run` and `demo` build the list of nodes for a session and
hand it to the supervisor (`eyemotion.nodes.Supervisor`); see `eyemotion.session_runner`.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from eyemotion import UserError
from eyemotion.config import Config

NODE_KINDS = ("tracker", "camera", "microphone", "eyesignal", "inference", "video")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "node", help="run one node (a source or processor) until Ctrl-C; the supervisor starts these",
        description="Run one eyemotion node in this process until Ctrl-C (or --duration). The supervisor of "
                    "`eyemotion run`/`demo` starts each node this way; on a multi-PC setup a lab PC can host "
                    "one node, e.g. `eyemotion node tracker` on the tracker PC.")
    p.add_argument("kind", choices=NODE_KINDS)
    p.add_argument("--simulate", action="store_true",
                   help="tracker: the simulated Tobii Pro Fusion; microphone: generated audio")
    p.add_argument("--session", type=Path, help="session folder (camera.mkv, simulator ground truth go there; "
                   "video: the replayed session whose camera.mkv is analysed)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--no-face", action="store_true", help="camera, video: do not run the face pipeline")
    p.set_defaults(func=cmd_node)

    from eyemotion import bench_report, session_runner

    session_runner.register(subparsers)
    bench_report.register(subparsers)


SOURCES = ("tracker", "camera", "microphone")


def simulated_sources(config: Config, *, simulate: bool) -> list[str]:
    """The sources of a session that are not live devices, as `build_node` builds them: the simulated tracker
    (`simulate` or `[tracker] simulate`), a camera playing a video file (the demo video when `simulate` and no
    `[camera] source`), generated or virtual-device audio. Written to session.json as `simulated_sources`."""
    from eyemotion.acquisition.camera import CameraSource
    from eyemotion.acquisition.virtual_mic import VIRTUAL_MIC_NAME

    out = []
    if simulate or config.tracker.simulate:
        out.append("tracker")
    if (simulate and config.camera.source == "0") or CameraSource.parse(config.camera.source).kind == "file":
        out.append("camera")
    if (simulate and not config.microphone.device) or VIRTUAL_MIC_NAME in config.microphone.device:
        out.append("microphone")
    return out


def build_node(kind: str, config: Config, *, simulate: bool = False, session: Path | None = None,
               face: bool = True):
    """The node of `kind`, constructed but not opened."""
    if kind == "tracker":
        if simulate or config.tracker.simulate:
            from eyemotion.acquisition.simulator import SimulatedTracker

            truth = session / "simulator_truth.npz" if session else None
            return SimulatedTracker(config, truth_path=truth)
        from eyemotion.acquisition.tobii import TobiiTracker

        return TobiiTracker(config)
    if kind == "camera":
        from eyemotion.acquisition.camera import CameraNode

        analyzers = ()
        if face:
            from eyemotion.inference.features.face import camera_analyzers

            analyzers = camera_analyzers(config)
        if simulate and config.camera.source == "0":
            from eyemotion.acquisition.commands import demo_video

            config = config.replace(camera=replace(config.camera, source=str(demo_video(config)), loop=True))
        return CameraNode(config, output_dir=session, analyzers=analyzers)
    if kind == "microphone":
        from eyemotion.acquisition.microphone import GeneratedAudioNode, MicrophoneNode

        if simulate and not config.microphone.device:
            return GeneratedAudioNode(config)
        return MicrophoneNode(config)
    if kind == "eyesignal":
        from eyemotion.inference.eyesignal.node import EyeSignalNode

        return EyeSignalNode(config)
    if kind == "inference":
        from eyemotion.inference.live import InferenceNode

        return InferenceNode(config)
    if kind == "video":
        from eyemotion.acquisition.replay_pipeline import VideoFrameNode

        if session is None:
            raise UserError("node video needs --session SESSION (the replayed session folder)")
        return VideoFrameNode(config, session, face=face)
    raise UserError(f"unknown node kind {kind!r}; choose from {', '.join(NODE_KINDS)}")


def cmd_node(args: argparse.Namespace, config: Config) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be > 0")
    node = build_node(args.kind, config, simulate=args.simulate, session=args.session, face=not args.no_face)
    node.run(args.duration)
    return 0
