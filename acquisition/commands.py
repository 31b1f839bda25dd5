"""CLI: `eyemotion devices`, `eyemotion stream [--simulate]` and `eyemotion markers push`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from eyemotion import UserError
from eyemotion.config import Config

log = logging.getLogger(__name__)

SOURCES = ("tracker", "camera", "microphone", "markers")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "devices", help="list eye trackers, cameras and microphones",
        description="List the Tobii eye trackers (TittaPy), the cameras that OpenCV can open and the "
                    "microphones PortAudio offers, with the values to put in eyemotion.toml.")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_devices)

    p = subparsers.add_parser(
        "stream", help="publish the eye tracker, camera, microphone and markers on LSL until Ctrl-C",
        description="Start the acquisition sources and publish their LSL streams until Ctrl-C: the Tobii "
                    "eye tracker through TittaLSL (or the simulated one with --simulate), the camera, the "
                    "microphone and eyemotion_markers. The camera runs the face pipeline (eyemotion_face, eyemotion_preview) "
                    "as in a session, unless --no-face. With --simulate the camera plays a generated demo "
                    "video and the microphone is a generated speech-like signal, unless [camera] source / "
                    "[microphone] device name real ones. "
                    "The simulated tracker follows clip_onset/clip_offset markers (emotion conditioning) "
                    "and drops out on `eyemotion markers push simulate_disconnect seconds=N`.")
    p.add_argument("--simulate", action="store_true", help="use the simulated eye tracker and demo media")
    p.add_argument("--sources", default=",".join(SOURCES), metavar="LIST",
                   help=f"comma-separated subset of {','.join(SOURCES)} (default: all)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--truth", metavar="PATH", help="simulator: write per-sample ground truth (.npz or .csv)")
    p.add_argument("--output-dir", metavar="DIR", help="camera: write camera.mkv into this folder")
    p.add_argument("--no-face", action="store_true",
                   help="camera: without the face pipeline (no eyemotion_face / eyemotion_preview)")
    p.set_defaults(func=cmd_stream)

    p = subparsers.add_parser("markers", help="push events onto eyemotion_markers",
                              description="Work with the eyemotion_markers stream.")
    msub = p.add_subparsers(dest="markers_command", metavar="ACTION", required=True)
    push = msub.add_parser(
        "push", help="push one JSON marker",
        description="Push one marker {\"event\": EVENT, \"source\": SOURCE, key: value, ...} onto "
                    "eyemotion_markers. Values are read as JSON when they parse (numbers, true, null, "
                    "\"quoted\") and as text otherwise, e.g. `eyemotion markers push annotation "
                    "text=\"looked away\"` or `eyemotion markers push clip_onset emotion=fear`. The marker "
                    "is sent once a consumer (recorder, simulator, dashboard) is connected, or after --wait.")
    push.add_argument("event", help="event name, e.g. annotation, clip_onset, simulate_disconnect")
    push.add_argument("fields", nargs="*", metavar="KEY=VALUE", help="extra fields of the marker")
    push.add_argument("--source", default="cli", help="the marker's source field (default: cli)")
    push.add_argument("--wait", type=float, default=3.0,
                      help="seconds to wait for consumers before pushing (default: 3)")
    push.set_defaults(func=cmd_markers_push)


# -- markers ----------------------------------------------------------------------------------------
def parse_fields(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values parsed as JSON when possible, else kept as text."""
    fields: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UserError(f"marker field {item!r} is not KEY=VALUE with a plain key; e.g. emotion=fear")
        if key in ("event", "source"):
            raise UserError(f"marker field {key!r} is set by the command; pass the event as the first "
                            "argument and the sender with --source")
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value
    return fields


def cmd_markers_push(args: argparse.Namespace, config: Config) -> int:
    from eyemotion.acquisition.markers import MarkerOutlet, encode_marker

    fields = parse_fields(args.fields)
    text = encode_marker(args.event, args.source, **fields)  # refuse a bad marker before touching LSL
    outlet = MarkerOutlet(args.source, namespace=config.lsl.namespace)
    deadline = time.monotonic() + max(args.wait, 0.0)
    while not outlet.have_consumers() and time.monotonic() < deadline:
        time.sleep(0.05)
    if outlet.have_consumers():
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))  # let late consumers connect too
    else:
        log.warning("no consumer of eyemotion_markers within %.1f s; pushing anyway", args.wait)
    stamp = outlet.push(args.event, **fields)
    time.sleep(0.5)  # keep the outlet until consumers have pulled the sample
    print(f"{stamp:.6f} {text}")
    return 0


# -- devices ----------------------------------------------------------------------------------------
def _try(what: str, fn) -> tuple[list[dict], str]:
    try:
        return fn(), ""
    except (ImportError, AttributeError) as exc:
        return [], f"{what} listing unavailable ({exc})"
    except UserError as exc:
        return [], str(exc)


def _list_trackers() -> list[dict]:
    from dataclasses import asdict

    from eyemotion.acquisition.tobii import find_trackers

    return [asdict(t) for t in find_trackers()]


def _list_cameras() -> list[dict]:
    from eyemotion.acquisition.camera import list_cameras

    return list_cameras()


def _list_microphones() -> list[dict]:
    from eyemotion.acquisition.microphone import list_microphones

    return list_microphones()


def cmd_devices(args: argparse.Namespace, config: Config) -> int:
    result = {}
    notes = {}
    for key, fn in (("trackers", _list_trackers), ("cameras", _list_cameras), ("microphones", _list_microphones)):
        result[key], notes[key] = _try(key, fn)
    if args.json:
        print(json.dumps({**result, "notes": {k: v for k, v in notes.items() if v}}, indent=2, default=str))
        return 0
    print("Eye trackers ([tracker] address or serial):")
    for t in result["trackers"]:
        rates = ", ".join(f"{f:g}" for f in t["frequencies"])
        print(f"  {t['model']}  serial={t['serial']}  address={t['address']}  {t['frequency']:g} Hz "
              f"(supports {rates})  firmware {t['firmware']}")
    _none(result["trackers"], notes["trackers"], "no Tobii tracker found (use `eyemotion stream --simulate`)")
    print("Cameras ([camera] source):")
    for c in result["cameras"]:
        print("  " + "  ".join(f"{k}={v}" for k, v in c.items()))
    _none(result["cameras"], notes["cameras"], "no camera opens (a video file works as [camera] source)")
    print("Microphones ([microphone] device):")
    for m in result["microphones"]:
        print("  " + "  ".join(f"{k}={v}" for k, v in m.items()))
    _none(result["microphones"], notes["microphones"], "no microphone input found")
    return 0


def _none(items: list, note: str, default: str) -> None:
    if not items:
        print(f"  ({note or default})")


# -- stream -----------------------------------------------------------------------------------------
def parse_sources(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SOURCES]
    if bad or not chosen:
        raise UserError(f"unknown source(s) {', '.join(bad) or '(none)'} in --sources; "
                        f"choose from {', '.join(SOURCES)}")
    return chosen


def demo_video(config: Config) -> Path:
    """The generated demo camera video (640x480, 30 fps, 20 s, with a face), cached in the temp folder."""
    import tempfile

    from eyemotion.acquisition.media import write_test_video

    cam = config.camera
    path = Path(tempfile.gettempdir()) / f"eyemotion-demo-camera-{cam.width}x{cam.height}-{cam.fps:g}.mp4"
    if not path.exists():
        tmp = path.with_name(path.stem + f".{threading.get_ident()}.mp4")
        write_test_video(tmp, n_frames=int(20 * cam.fps), fps=cam.fps, size=(cam.width, cam.height), face=True)
        tmp.replace(path)
    return path


class StreamMarkers:
    """The `markers` source of `eyemotion stream`: eyemotion_markers with stream_start / stream_stop."""

    name = "markers"

    def __init__(self, config: Config, simulate: bool) -> None:
        self.config = config
        self.simulate = simulate
        self.outlet = None

    def open(self) -> None:
        from eyemotion.acquisition.markers import MarkerOutlet

        self.outlet = MarkerOutlet("stream", namespace=self.config.lsl.namespace)
        self.outlet.push("stream_start", simulated=self.simulate)

    def step(self) -> None:
        time.sleep(0.1)

    def close(self) -> None:
        if self.outlet is not None:
            self.outlet.push("stream_stop")
            time.sleep(0.2)
            self.outlet = None


def build_sources(config: Config, chosen: list[str], *, simulate: bool, truth: str | None,
                  output_dir: str | None, face: bool = True) -> list:
    """The source nodes of `eyemotion stream`, not yet opened."""
    nodes: list = []
    if "tracker" in chosen:
        if simulate:
            from eyemotion.acquisition.simulator import SimulatedTracker

            nodes.append(SimulatedTracker(config, truth_path=truth))
        else:
            from eyemotion.acquisition.tobii import TobiiTracker

            nodes.append(TobiiTracker(config))
    if "camera" in chosen:
        # the one camera node of `node camera` and of a session: with the face analysers (eyemotion_face,
        # eyemotion_preview) unless face=False, and the demo video when simulating without a camera source
        from eyemotion.node_commands import build_node

        try:
            nodes.append(build_node("camera", config, simulate=simulate,
                                    session=Path(output_dir) if output_dir else None, face=face))
        except ImportError as exc:
            raise UserError(f"the camera node is not available ({exc}); pass --sources without camera") from None
    if "microphone" in chosen:
        try:
            from eyemotion.acquisition.microphone import GeneratedAudioNode, MicrophoneNode
        except ImportError as exc:
            raise UserError(f"the microphone node is not available ({exc}); pass --sources without "
                            "microphone") from None
        # the demo needs no sound card: generated speech-like audio unless [microphone] device names one
        use_generator = simulate and not config.microphone.device
        nodes.append(GeneratedAudioNode(config) if use_generator else MicrophoneNode(config))
    if "markers" in chosen:
        nodes.append(StreamMarkers(config, simulate))
    return nodes


def run_sources(nodes: list, seconds: float | None = None, stop: threading.Event | None = None) -> None:
    """Open every node (in order, here, so a bad setup fails before anything streams), then step each in
    its own thread until `stop`, Ctrl-C/SIGTERM or `seconds`; close them all. A node's error stops all
    and is re-raised."""
    stop = stop or threading.Event()
    opened = []
    try:
        for node in nodes:
            node.open()
            opened.append(node)
    except BaseException:
        for node in reversed(opened):
            _close(node)
        raise
    errors: list[BaseException] = []

    def loop(node) -> None:
        try:
            while not stop.is_set():
                node.step()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            log.error("%s failed: %s", node.name, exc)
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=loop, args=(n,), name=n.name, daemon=True) for n in opened]
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    for t in threads:
        t.start()
    log.info("streaming %s%s; Ctrl-C to stop", ", ".join(n.name for n in opened),
             f" for {seconds:g} s" if seconds else "")
    try:
        end = time.monotonic() + seconds if seconds else None
        while not stop.is_set() and (end is None or time.monotonic() < end):
            stop.wait(0.2)
        stop.set()
        for t in threads:
            t.join(5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for node in reversed(opened):
            _close(node)
    if errors:
        raise errors[0]


def _close(node) -> None:
    try:
        node.close()
    except Exception:
        log.exception("closing %s failed", node.name)


def cmd_stream(args: argparse.Namespace, config: Config) -> int:
    chosen = parse_sources(args.sources)
    if args.truth and not args.simulate:
        raise UserError("--truth only applies to the simulated tracker; add --simulate")
    if args.seconds is not None and args.seconds <= 0:
        raise UserError("--seconds must be > 0")
    nodes = build_sources(config, chosen, simulate=args.simulate, truth=args.truth, output_dir=args.output_dir,
                          face=not args.no_face)
    run_sources(nodes, args.seconds)
    return 0
