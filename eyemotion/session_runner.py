"""`eyemotion run` and `eyemotion demo`: one session, every node a supervised child process.

Start order (each step waits until the previous step's streams are visible on LSL):

    1. sources      tracker (Tobii via TittaLSL, or the simulator), camera (+ face pipeline), microphone
    2. processors   eye signal, live inference
    3. front ends   stimulus runner (opens its marker stream, then waits for the recording), dashboard
    4. recorder     LabRecorder records every contract stream of this session's namespace

Shutdown runs the other way round and the recorder stops last, so the XDF holds everything up to the end.
The session ends when the runner finishes its protocol, when the dashboard is closed, on Ctrl-C, or after
`--duration`. The effective config is written to `<session>/eyemotion.toml` and every child reads it, so
a session folder documents exactly how it was made; child logs go to `<session>/logs/`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from eyemotion import UserError, plural, streams
from eyemotion.config import DEFAULT_CONFIG_NAME, Config
from eyemotion.nodes import ChildSpec, Supervisor
from eyemotion.session import create_session_folder, read_session_json, update_session_json

log = logging.getLogger(__name__)

SUMMARY_JSON = "session_summary.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="run a session: every node supervised, recorded with LabRecorder",
        description="Run one session with the devices of the config: the tracker ([tracker]), camera "
                    "([camera]), microphone ([microphone]), eye-signal processing, live inference, the "
                    "dashboard, the stimulus runner and LabRecorder, each as a supervised process that is "
                    "restarted if it dies. Ends when the protocol is done, the dashboard is closed or Ctrl-C; "
                    "the recording is finalised last and a summary is written to the session folder.")
    run.add_argument("--protocol", required=True, help="protocol .toml (or 'demo')")
    run.add_argument("--participant", required=True, help="participant pseudonym, e.g. P001 (never a name)")
    run.add_argument("--consent-by", metavar="NAME",
                     help="the experimenter who confirmed the participant's informed consent (stored in "
                          "session.json with the time); without it `run` asks on the terminal and refuses to "
                          "record when nobody confirms (--auto-respond and demo confirm automatically)")
    run.add_argument("--simulate", action="store_true",
                     help="simulate the sources (tracker, and camera/microphone where the config names none); "
                          "without it only real devices are used, unless the loaded config file itself sets "
                          "[tracker] simulate = true or a video file as [camera] source")
    _common(run)
    run.set_defaults(func=cmd_run, demo=False)

    demo = subparsers.add_parser(
        "demo", help="the whole session with simulated devices (no hardware needed)",
        description="A complete session with the simulated Tobii Pro Fusion (conditioned on the clips), a "
                    "generated camera video, the virtual microphone and the generated demo clips: the "
                    "dashboard and the PsychoPy window are shown. Without a display (or with --headless) it "
                    "runs unattended (offscreen Qt, Xvfb for PsychoPy, automatic answers), then checks its "
                    "own session folder and prints the summary.")
    demo.add_argument("--participant", default="DEMO01", help="participant pseudonym (default DEMO01)")
    demo.add_argument("--protocol", default="demo", help="protocol .toml (default: the generated demo)")
    _common(demo)
    demo.set_defaults(func=cmd_run, demo=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--headless", action="store_true",
                   help="no windows: offscreen dashboard, PsychoPy on Xvfb, automatic answers")
    p.add_argument("--duration", type=float, metavar="S",
                   help="end the session S seconds after the recording started")
    p.add_argument("--sessions-dir", help="root of the session folders (default: [recorder] sessions_dir)")
    p.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    p.add_argument("--auto-respond", action="store_true", help="answer the ratings automatically")


# -- building the session -------------------------------------------------------------------------------
def _have_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Xvfb:
    """A private X server for PsychoPy in headless sessions."""

    def __init__(self) -> None:
        binary = shutil.which("Xvfb")
        if binary is None:
            raise UserError("a headless session needs Xvfb for the PsychoPy window; install it "
                            "(apt-get install xvfb, or run setup.sh)")
        for number in range(99, 160):
            if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
                break
        self.display = f":{number}"
        self.proc = subprocess.Popen([binary, self.display, "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise UserError(f"Xvfb could not start on {self.display}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _cli(config_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "eyemotion.cli", "--config", str(config_path), *args]


def processing_children(config_path: Path, *, inference: bool = True) -> list[ChildSpec]:
    """The processing nodes (eye signal, live inference) of a session; a replay runs the same ones."""
    children = [ChildSpec("eyesignal", _cli(config_path, "node", "eyesignal"), stop_rank=5,
                          streams=(streams.GAZE_CLEAN.name, streams.EYE_EVENTS.name))]
    if inference:
        children.append(ChildSpec("inference", _cli(config_path, "node", "inference"), stop_rank=4,
                                  streams=(streams.EMOTION.name,)))
    return children


def plan_children(config: Config, config_path: Path, folder: Path, participant: str, protocol: str, *,
                  simulate: bool, headless: bool, dashboard: bool, auto_respond: bool,
                  display: str | None, mic_env: dict[str, str] | None) -> list[ChildSpec]:
    """The supervised children of one session, in start order (see the module docstring)."""
    sim = ["--simulate"] if simulate else []
    children = [
        ChildSpec("tracker", _cli(config_path, "node", "tracker", *sim, "--session", str(folder)),
                  stop_rank=6, streams=(streams.GAZE_RAW.name,)),
        ChildSpec("camera", _cli(config_path, "node", "camera", *sim, "--session", str(folder)), stop_rank=6,
                  streams=(streams.CAMERA.name, streams.FACE.name, streams.PREVIEW.name)),
        ChildSpec("microphone", _cli(config_path, "node", "microphone", *([] if mic_env else sim)), stop_rank=6,
                  streams=(streams.AUDIO.name,), env=mic_env or {}),
        *processing_children(config_path),
    ]
    runner = ["stimuli", "run", protocol, "--participant", participant, "--session", str(folder)]
    if headless or auto_respond:
        runner.append("--auto-respond")
    if headless:
        runner += ["--windowed", "--null-audio"]
    env = {"DISPLAY": display} if display else {}
    children.append(ChildSpec("runner", _cli(config_path, *runner), stop_rank=1, ends_session=True,
                              heartbeat=False, streams=(streams.MARKERS.name,), env=env, stop_timeout_s=15,
                              restart_args=("--resume",)))  # a restarted runner continues at the next trial
    if dashboard:
        dash_env = {"QT_QPA_PLATFORM": "offscreen"} if headless else {}
        children.append(ChildSpec("dashboard", _cli(config_path, "dashboard", "--participant", participant),
                                  stop_rank=2, ends_session=not headless, heartbeat=False, env=dash_env))
    children.append(ChildSpec(
        "recorder", _cli(config_path, "record", "--participant", participant, "--session-id", folder.name,
                         "--sessions-dir", str(folder.parent.parent), "--protocol", protocol),
        stop_rank=10, heartbeat=False, restart=False, stop_timeout_s=30))
    return children


def _wait_streams(names: list[str], namespace: str, timeout: float, supervisor: Supervisor) -> None:
    """Wait until every stream in `names` is visible (keeping the supervisor polling meanwhile)."""
    deadline = time.monotonic() + timeout
    missing = list(names)
    while missing and time.monotonic() < deadline:
        supervisor.poll()
        if supervisor.fatal:
            raise UserError(f"the session cannot start: {supervisor.fatal}")
        missing = [n for n in missing
                   if not streams.find(streams.BY_NAME[n], namespace=namespace, timeout=0.5)]
    if missing:
        raise UserError(f"these streams did not appear within {timeout:.0f} s: {', '.join(missing)}; "
                        f"see the node logs in {supervisor.workdir / 'logs'}")


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be > 0")
    headless = args.headless or not _have_display()
    if headless and not args.headless and not args.demo:  # never answer for a real participant unasked
        raise UserError("no display found: a real session shows the clips and the rating scales on the participant's "
                        "screen; start it from the lab PC's desktop (DISPLAY), or pass --headless for an unattended "
                        "test run (automatic answers)")
    if not args.headless and headless:
        print("eyemotion: no display found: running headless (offscreen dashboard, PsychoPy on Xvfb, "
              "automatic answers); pass --headless to silence this note")
    from eyemotion.config import config_file
    from eyemotion.node_commands import simulated_sources
    from eyemotion.preflight import preflight

    loaded = config_file(getattr(args, "config", None))
    print(f"config: {loaded.resolve()}" if loaded else
          f"config: no {DEFAULT_CONFIG_NAME} in {Path.cwd()}; using the defaults (pass --config FILE)")
    simulate = args.demo or getattr(args, "simulate", False)
    # a real session never simulates by default: only --simulate or the loaded file's [tracker] simulate = true
    tracker_sim = simulate or config.tracker.simulate
    config = config.replace(tracker=replace(config.tracker, simulate=tracker_sim))
    simulated = simulated_sources(config, simulate=simulate)
    print("simulated sources: " + (", ".join(simulated) + " (NOT a real recording of these)" if simulated
                                   else "none (real devices)"))
    if not config.lsl.namespace:  # keep this session's streams apart from any other on the network
        config = config.replace(lsl=replace(config.lsl, namespace=f"s{uuid.uuid4().hex[:8]}"))
    # the runner starts before the recorder and holds its protocol until the recording runs
    config = config.replace(stimuli=replace(config.stimuli, wait_for_recorder_s=max(
        config.stimuli.wait_for_recorder_s, config.recorder.start_timeout_s + 120)))
    root = Path(args.sessions_dir or config.recorder.sessions_dir)
    from eyemotion.consent import ask_consent  # nothing is recorded without consent

    automatic = "demo session" if args.demo else ("--auto-respond" if args.auto_respond else None)
    consent = ask_consent(args.participant, consent_by=getattr(args, "consent_by", None), automatic=automatic,
                          interactive=sys.stdin.isatty())
    if consent["method"] == "automatic":
        print(f"eyemotion: consent confirmed automatically ({automatic}); a real participant's consent is "
              "confirmed with --consent-by NAME or on the terminal")
    preflight(config, participant=args.participant, protocol=args.protocol, sessions_root=root,
              simulated=simulated)  # nothing is created or started while a problem is left
    folder = create_session_folder(root, args.participant, demo=args.demo, consent=consent, config=config.to_dict(),
                                   simulated_sources=simulated)
    config_path = folder / "eyemotion.toml"
    config_path.write_text(config.to_toml())
    print(f"session folder: {folder}")

    mic, display_server = None, None
    try:
        mic_env = None
        if simulate and not config.microphone.device:
            mic, mic_env = _virtual_microphone(config, folder)
        display = None
        if headless:
            display_server = Xvfb()
            display = display_server.display
        children = plan_children(config, config_path, folder, args.participant, args.protocol,
                                 simulate=simulate, headless=headless, dashboard=not args.no_dashboard,
                                 auto_respond=args.auto_respond or args.demo, display=display, mic_env=mic_env)
        summary = supervise(children, config, folder, duration=args.duration)
    except (UserError, KeyboardInterrupt) as exc:
        if not (read_session_json(folder).get("recording") or {}).get("start"):
            mark_aborted(folder, str(exc).splitlines()[0] if str(exc) else "interrupted before the recording")
            print(f"eyemotion: the session did not start; {folder} is marked aborted ({ABORTED_TXT}, "
                  f"session.json 'aborted'), its logs are in {folder / 'logs'}", file=sys.stderr)
        raise
    finally:
        if mic is not None:
            mic.stop()
        if display_server is not None:
            display_server.stop()
    summary["simulated_sources"] = simulated
    problems = verify_session(folder, summary)
    print(format_summary(summary))
    from eyemotion.report import write_report_safely  # a failing report never costs the session

    report = write_report_safely(folder, config)
    if report is not None:
        print(f"session report: {report / 'index.html'}")
    for p in problems:
        print(f"eyemotion: check failed: {p}", file=sys.stderr)
    return 1 if problems else 0


ABORTED_TXT = "ABORTED.txt"


def mark_aborted(folder: Path, reason: str) -> None:
    """Mark a session that failed to start: `aborted` in session.json and ABORTED.txt beside it (the logs
    stay in logs/ for the diagnosis; nothing else of it is a recording)."""
    from datetime import UTC, datetime

    when = datetime.now(UTC).isoformat()
    update_session_json(folder, aborted={"reason": reason, "time": when}, end_reason=f"aborted: {reason}")
    (folder / ABORTED_TXT).write_text(f"This session failed to start ({when}) and holds no usable recording:\n"
                                      f"{reason}\nSee logs/ for the nodes' output.\n", encoding="utf-8")


def _virtual_microphone(config: Config, folder: Path):
    """The demo microphone: a generated speech-like WAV served by the ALSA virtual device (real
    PortAudio path); None where ALSA is missing (the node then generates audio itself)."""
    from eyemotion.acquisition.media import write_test_wav
    from eyemotion.acquisition.virtual_mic import VIRTUAL_MIC_NAME, VirtualMic, alsa_available

    if not alsa_available():
        log.warning("ALSA is not available: the demo microphone generates its audio instead")
        return None, None
    wav = Path(tempfile.gettempdir()) / "eyemotion-demo-speech.wav"
    if not wav.exists():
        write_test_wav(wav, 30.0, kind="speech-like")
    mic = VirtualMic(wav, loop=True).start()
    env = {**mic.env}
    # the node selects the virtual device by name; children read the config file, so set it there
    cfg = config.replace(microphone=replace(config.microphone, device=VIRTUAL_MIC_NAME))
    (folder / "eyemotion.toml").write_text(cfg.to_toml())
    return mic, env


# how long a start-up group may take to show its streams: importing PsychoPy, Qt and onnxruntime took over
# 75 s on a loaded 2-core machine (a node that dies or hangs meanwhile is caught by the supervisor anyway)
START_WAIT_S = 180.0


def supervise(children: list[ChildSpec], config: Config, folder: Path, *, duration: float | None) -> dict:
    from eyemotion.acquisition.markers import MarkerOutlet

    ns = config.lsl.namespace
    markers = MarkerOutlet("supervisor", namespace=ns)
    sup = Supervisor(children, folder, markers=markers)
    by_name = {c.name: c for c in children}
    groups = [["tracker", "camera", "microphone"], ["eyesignal", "inference"], ["runner", "dashboard"],
              ["recorder"]]
    expected = {"tracker": [streams.GAZE_RAW.name], "camera": [streams.CAMERA.name],
                "microphone": [streams.AUDIO.name], "eyesignal": [streams.GAZE_CLEAN.name],
                "inference": [streams.EMOTION.name]}
    stop_requested = []
    previous = {sig: signal.signal(sig, lambda *_: (stop_requested.append(1), sup.request_stop()))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    recording_from = None
    reason = "not started"
    try:
        for group in groups:
            names = [n for n in group if n in by_name]
            for name in names:
                sup._spawn(sup.states[name])
            want = [s for n in names for s in expected.get(n, [])]
            if want:
                _wait_streams(want, ns, config.recorder.start_timeout_s + START_WAIT_S, sup)
            if "runner" in names:  # its markers must exist before LabRecorder looks for streams
                _wait_runner_markers(ns, config.recorder.start_timeout_s + START_WAIT_S, sup)
            if "recorder" in names:
                _wait_recording(folder, sup, timeout=config.recorder.start_timeout_s + 30)
            if stop_requested:
                break
        markers.push("session_start", participant=folder.parent.name, session=folder.name)
        recording_from = time.monotonic()
        # --duration counts from here, when every node runs and the recording has started, so that a slow
        # start-up (a loaded machine takes tens of seconds to import PsychoPy, Qt and onnxruntime) does not
        # eat into the session
        reason = sup.run(duration=duration) if not stop_requested else "stop requested"
    finally:
        ended = time.monotonic()  # the session's end; the shutdown below is not recorded time
        markers.push("session_end", reason=reason)
        time.sleep(0.5)  # let the recorder take the last marker
        sup.shutdown()
        shutil.rmtree(folder / "pids", ignore_errors=True)  # the children's pid files are stale now
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    update_session_json(folder, end_reason=reason)
    return {"reason": reason, "nodes": sup.report(), "wall_s": time.monotonic() - started,
            "recorded_s": ended - recording_from if recording_from is not None else 0.0}


def _wait_runner_markers(namespace: str, timeout: float, sup: Supervisor) -> None:
    source_id = streams.MARKERS.source_id(namespace, device=f"{socket.gethostname()}/runner")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sup.poll()
        if sup.fatal or sup.states["runner"].finished:
            raise UserError(f"the stimulus runner stopped before the session began: "
                            f"{sup.fatal or 'see ' + str(sup.workdir / 'logs' / 'runner.log')}")
        if streams.find(streams.MARKERS, namespace=namespace, source_id=source_id, timeout=0.5):
            return
    raise UserError(f"the stimulus runner's markers did not appear within {timeout:.0f} s; "
                    f"see {sup.workdir / 'logs' / 'runner.log'}")


def _wait_recording(folder: Path, sup: Supervisor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sup.poll()
        if (read_session_json(folder).get("recording") or {}).get("start"):
            return
        if sup.states["recorder"].finished:
            break
        time.sleep(0.2)
    raise UserError(f"the recorder did not start; see {folder / 'logs' / 'recorder.log'}")


# -- after the session ------------------------------------------------------------------------------------
def summarise(folder: Path, supervisor_report: dict) -> dict:
    """Samples per stream, gaps, restarts and predictions of a finished session."""
    from eyemotion.session import Session

    session = Session.load(folder)
    per_stream = {}
    for name, stream in session.streams.items():
        t = stream.time_stamps
        span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
        per_stream[name] = {"samples": len(t), "seconds": round(span, 3),
                            "effective_rate": round((len(t) - 1) / span, 3) if span > 0 else None}
    markers = session.markers
    gaps = [m.fields for m in markers.events("node_gap")] + [m.fields for m in markers.events("device_lost")]
    return {"streams": per_stream, "gaps": gaps,
            "restarts": {n: len(r["restarts"]) for n, r in supervisor_report["nodes"].items()},
            "predictions": per_stream.get(streams.EMOTION.name, {}).get("samples", 0),
            "gaze_to_prediction_ms": gaze_to_prediction_ms(markers),
            "trials": len(session.trials)}


def gaze_to_prediction_ms(markers) -> dict | None:
    """Percentiles of the delay from the newest sample a prediction used to its push, as the inference
    node reported it in its `inference_latency` markers; None when it reported none."""
    import numpy as np

    delays = [d for m in markers.events("inference_latency") for d in m.fields.get("delays_ms", [])
              if isinstance(d, (int, float))]
    if not delays:
        return None
    d = np.asarray(delays, float)
    return {"n": len(d), "p50": round(float(np.percentile(d, 50)), 1),
            "p95": round(float(np.percentile(d, 95)), 1), "max": round(float(d.max()), 1)}


def format_summary(summary: dict) -> str:
    lines = [(f"session ended: {summary['reason']} after {summary.get('recorded_s', 0):.0f} s recorded "
              f"({summary['wall_s']:.0f} s with the start-up)")]
    if summary.get("simulated_sources"):
        lines.append(f"simulated sources: {', '.join(summary['simulated_sources'])}")
    s = summary.get("session")
    if s:
        lines.append(f"{'stream':28s} {'samples':>9s} {'seconds':>8s} {'rate':>9s}")
        for name, info in sorted(s["streams"].items()):
            rate = f"{info['effective_rate']:.2f}" if info["effective_rate"] else "-"
            lines.append(f"{name:28s} {info['samples']:9d} {info['seconds']:8.1f} {rate:>9s}")
        lines.append(f"trials: {s['trials']}   predictions: {s['predictions']}   gaps: {len(s['gaps'])}   "
                     f"restarts: {sum(s['restarts'].values())}")
        if s.get("gaze_to_prediction_ms"):
            d = s["gaze_to_prediction_ms"]
            lines.append(f"gaze sample -> prediction delay: p50 {d['p50']:.0f} ms, p95 {d['p95']:.0f} ms, "
                         f"max {d['max']:.0f} ms ({d['n']} predictions)")
    return "\n".join(lines)


STREAM_END_TOLERANCE_S = 10.0  # a stream's last sample may precede session_end by this much (predictions lag
# the gaze by the eye-signal delay, 1.5 s, and more on a starved machine)


def verify_session(folder: Path, summary: dict, *, expect_predictions: bool = True) -> list[str]:
    """Check a finished session folder end to end; writes `session_summary.json`; returns the problems.

    Checked: every stream is recorded and runs until the session ends; no sample was lost (consecutive
    tracker device times and camera frame indices, audio stamps without holes, except inside marked gaps);
    `trials.csv` agrees with the flip-stamped markers within 1 ms; predictions were made; the clocks agree
    (recorded gaze stamps equal the simulator's own stamps for the same samples, when its ground truth is there).
    """
    from eyemotion.session import Session

    problems: list[str] = []
    try:
        summary["session"] = summarise(folder, summary)
        session = Session.load(folder, dejitter=False)  # raw stamps, to see every hole
    except UserError as exc:
        (folder / SUMMARY_JSON).write_text(json.dumps(summary, indent=2, default=str))
        return [str(exc)]
    checks = summary["session"]["checks"] = {}
    wanted = [streams.GAZE_RAW, streams.GAZE_CLEAN, streams.CAMERA, streams.FACE, streams.AUDIO, streams.MARKERS]
    if expect_predictions:
        wanted.append(streams.EMOTION)
    for spec in wanted:
        if len(session.streams.get(spec.name, ())) == 0:
            problems.append(f"{spec.name} has no recorded samples")
    gaps = _marked_gaps(session)
    lost = checks["lost_samples"] = {}
    if streams.GAZE_RAW.name in session.streams:
        g = session.stream(streams.GAZE_RAW.name)
        lost["Tobii_gaze"] = _holes(g.channel("device_time_stamp"), 1.0 / g.nominal_srate, g.time_stamps, gaps)
    if streams.CAMERA.name in session.streams:
        c = session.stream(streams.CAMERA.name)
        lost["eyemotion_camera"] = _holes(c.channel("frame_index"), 1.0, c.time_stamps, gaps)
    if streams.AUDIO.name in session.streams:
        a = session.stream(streams.AUDIO.name)
        lost["eyemotion_audio"] = _holes(a.time_stamps, 1.0 / streams.AUDIO.nominal_rate, a.time_stamps, gaps)
    problems += [f"{name}: {plural(n, 'sample')} lost outside marked gaps" for name, n in lost.items() if n]
    ends = [m.time for m in session.markers.events("session_end") if m.source == "supervisor"]
    if ends:  # every stream ran to the end (a stream that died for good loses no sample but stops early)
        early = checks["streams_ended_early_s"] = {}
        for spec in wanted:
            t = session.streams.get(spec.name)
            if spec is streams.MARKERS or t is None or len(t) == 0:
                continue
            last = t.time_stamps[-1]
            marked = any(start <= last + 1.0 and stop >= ends[-1] for start, stop in gaps)  # e.g. a lost device
            if ends[-1] - last > STREAM_END_TOLERANCE_S and not marked:
                early[spec.name] = round(float(ends[-1] - last), 1)
        problems += [f"{name} stopped {s:.1f} s before the session ended, outside any marked gap"
                     for name, s in early.items()]
    onsets = {m.fields.get("trial"): m.time for m in session.markers.events("clip_onset")}
    mismatched = [t["trial"] for t in session.trials
                  if t.get("trial") not in onsets or abs(onsets[t["trial"]] - float(t["clip_onset_lsl"])) > 1e-3]
    checks["trials_matching_markers"] = len(session.trials) - len(mismatched)
    if mismatched:
        problems.append(f"trials.csv rows {mismatched} have no clip_onset marker at their onset (within 1 ms)")
    if expect_predictions and summary["session"]["predictions"] == 0:
        problems.append("no emotion predictions were recorded")
    truth = folder / "simulator_truth.npz"
    if truth.exists() and streams.GAZE_RAW.name in session.streams:
        checks["clock_error_ms"] = _clock_error_ms(truth, session.stream(streams.GAZE_RAW.name))
        if checks["clock_error_ms"] is None or checks["clock_error_ms"] > 1.0:
            problems.append(f"recorded gaze stamps differ from the tracker's own by {checks['clock_error_ms']} ms")
    (folder / SUMMARY_JSON).write_text(json.dumps(summary, indent=2, default=str))
    return problems


def _marked_gaps(session) -> list[tuple[float, float]]:
    """(start, end) LSL times of gaps the session marked itself: node restarts, device drop-outs, audio
    overflows (the microphone marks the audio it dropped when the marker is pushed, right after the hole)."""
    gaps = [(float(m.fields["start"]), float(m.fields["end"])) for m in session.markers.events("node_gap")
            if isinstance(m.fields.get("start"), (int, float)) and isinstance(m.fields.get("end"), (int, float))]
    gaps += [(float(m.fields["start"]) if isinstance(m.fields.get("start"), (int, float)) else m.time, m.time)
             for m in session.markers.events("audio_overflow")]  # start: where the hole began, when the mark knows
    lost = [m.time for m in session.markers.events("device_lost")]
    back = [m.time for m in session.markers.events("device_restored")]
    for t0 in lost:
        later = [t for t in back if t >= t0]
        gaps.append((t0, later[0] if later else math.inf))
    return gaps


def _holes(values, step: float, stamps, gaps: list[tuple[float, float]]) -> int:
    """Samples missing from a sequence that should advance by `step`, outside the marked gaps."""
    import numpy as np

    values, stamps = np.asarray(values, float), np.asarray(stamps, float)
    if len(values) < 2:
        return 0
    jumps = np.diff(values) / step
    missing = np.rint(jumps) - 1
    lost = 0
    for i in np.flatnonzero(jumps > 1.5):
        t0, t1 = stamps[i], stamps[i + 1]
        if not any(g0 - 1.0 <= t1 and t0 <= g1 + 1.0 for g0, g1 in gaps):
            lost += int(missing[i])
    return lost


def _clock_error_ms(truth_path: Path, gaze) -> float | None:
    """Largest difference between recorded gaze stamps and the simulator's stamps of the same samples."""
    import numpy as np

    truth = np.load(truth_path)
    own = truth["timestamp"]
    if not len(own):
        return None
    # the truth covers every run of the tracker (TruthLog appends across restarts): compare the samples it covers
    half = 0.5 / gaze.nominal_srate
    covered = (gaze.time_stamps >= own[0] - half) & (gaze.time_stamps <= own[-1] + half)
    recorded = gaze.time_stamps[covered]
    idx = np.searchsorted(own, recorded)
    idx = np.clip(idx, 0, len(own) - 1)
    idx = np.where(np.abs(own[np.maximum(idx - 1, 0)] - recorded) < np.abs(own[idx] - recorded),
                   np.maximum(idx - 1, 0), idx)
    if not len(idx):
        return None
    # the same samples, not merely the same clock grid: the true gaze matches the recorded gaze
    x = gaze.channel("x.position_on_display_area.gaze_point.left_eye")[covered]
    if np.nanmedian(np.abs(truth["x"][idx] - x)) > 0.02:
        return None
    return round(float(np.max(np.abs(own[idx] - recorded))) * 1e3, 4)
