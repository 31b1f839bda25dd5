"""`eyemotion stimuli ...`: run a protocol, check one, make the demo clips."""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import replace
from pathlib import Path

from eyemotion import UserError, plural

log = logging.getLogger(__name__)

DEMO_PROTOCOL = Path(__file__).resolve().parent / "demo" / "demo.toml"


def protocol_path(name: str) -> Path:
    """`demo` means the shipped demo protocol; anything else is a path."""
    return DEMO_PROTOCOL if name == "demo" else Path(name)


def _window_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"window size must look like 1280x720, not {text!r}")
    return int(m[1]), int(m[2])


def _abort_at(text: str) -> tuple[int, str]:
    m = re.fullmatch(r"(\d+):(baseline|clip)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"--abort-at must look like 2:clip or 2:baseline, not {text!r}")
    return int(m[1]), m[2]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("stimuli", help="the PsychoPy stimulus runner (clips, SAM ratings, markers)",
                              description="The PsychoPy stimulus runner: protocols, calibration, clips, SAM ratings.")
    sub = p.add_subparsers(dest="stimuli_command", metavar="ACTION", required=True)

    run = sub.add_parser(
        "run", help="run a protocol for one participant",
        description="Run PROTOCOL (a .toml, or 'demo') for one participant: instructions, eye-tracker calibration "
                    "and validation, then per trial a fixation baseline, the clip (with sound), SAM valence/arousal, "
                    "felt emotion and intensity, and an inter-trial interval. Every screen change is marked on "
                    "eyemotion_markers at the screen flip; sessions/<participant>/<id>/trials.csv is rewritten after "
                    "every trial. Esc asks to confirm, then saves and exits (exit code 3); --resume continues at "
                    "the next trial. Needs a display (use xvfb-run -a for headless runs).")
    run.add_argument("protocol", help="protocol .toml file, or 'demo' for the shipped demo protocol")
    run.add_argument("--participant", "-p", required=True, help="participant pseudonym, e.g. P001 (its number "
                     "counterbalances the block order)")
    run.add_argument("--auto-respond", action="store_true",
                     help="answer every screen automatically and deterministically (CI, demos under Xvfb)")
    run.add_argument("--resume", action="store_true", help="continue the participant's unfinished session")
    run.add_argument("--session", type=Path, help="use this existing session folder (e.g. made by `eyemotion record`)")
    run.add_argument("--no-calibration", action="store_true", help="skip calibration/validation")
    run.add_argument("--simulate", action="store_true",
                     help="the tracker is the simulator (`eyemotion stream --simulate`): calibrate by following its "
                          "gaze instead of Titta's calibration on a real Tobii")
    run.add_argument("--windowed", action="store_true", help="a window instead of full screen")
    run.add_argument("--window-size", type=_window_size, metavar="WxH", help="window size in pixels (with --windowed)")
    run.add_argument("--null-audio", action="store_true",
                     help="send clip sound to an ALSA null device (machines without a sound card)")
    run.add_argument("--abort-at", type=_abort_at, metavar="TRIAL:PHASE", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a protocol and print a participant's schedule",
                           description="Validate PROTOCOL (every setting and clip) without opening a window, and "
                                       "print the trial order for --participant.")
    check.add_argument("protocol", help="protocol .toml file, or 'demo'")
    check.add_argument("--participant", "-p", default="P001")
    check.set_defaults(func=cmd_check)

    demo = sub.add_parser("make-demo-clips", help="generate the labelled demo clip set",
                          description="Write one short clip per emotion (H.264 picture + AAC sound, emotion-specific "
                                      "colour, brightness, motion and tones) plus conditions.csv into OUT.")
    demo.add_argument("out", type=Path, help="output folder")
    demo.add_argument("--seconds", type=float, default=6.0,
                      help="clip length (default 6 s: a 4-s model window plus 2 s, so dataset build finds windows)")
    demo.add_argument("--fps", type=float, default=25.0, help="frame rate (default 25)")
    demo.add_argument("--size", type=_window_size, default=(320, 240), metavar="WxH", help="frame size (320x240)")
    demo.set_defaults(func=cmd_make_demo_clips)


def cmd_run(args: argparse.Namespace, config) -> int:
    from eyemotion.stimuli.protocol import load_protocol
    from eyemotion.stimuli.runner import EXIT_ABORTED, Runner, RunOptions, check_display, limit_malloc_arenas

    from eyemotion.session import check_participant_id

    limit_malloc_arenas()  # first, before any library starts a thread (see its docstring)

    check_participant_id(args.participant)
    if args.null_audio:
        from eyemotion.stimuli.audio import use_null_audio

        use_null_audio()
    protocol = load_protocol(protocol_path(args.protocol))  # every problem, before any window
    check_display()
    if args.abort_at and not args.auto_respond:
        raise UserError("--abort-at only works with --auto-respond")
    if args.simulate:
        config = config.replace(tracker=replace(config.tracker, simulate=True))
    options = RunOptions(participant=args.participant, auto_respond=args.auto_respond, resume=args.resume,
                         session=args.session, calibrate=not args.no_calibration,
                         fullscreen=config.stimuli.fullscreen and not args.windowed,
                         window_size=args.window_size, abort_at=args.abort_at)
    outcome = Runner(protocol, config, options).run()
    print(f"{outcome.status}: {outcome.trials_done}/{outcome.trials_total} trials in {outcome.folder}")
    if outcome.status == "aborted":
        print(f"resume with: eyemotion stimuli run {args.protocol} -p {args.participant} --resume")
        return EXIT_ABORTED
    return 0


def cmd_check(args: argparse.Namespace, config) -> int:
    from eyemotion.stimuli.protocol import build_schedule, load_protocol

    from eyemotion.session import check_participant_id

    check_participant_id(args.participant)
    protocol = load_protocol(protocol_path(args.protocol))
    print(f"protocol {protocol.name!r}: {plural(len(protocol.conditions), 'clip')}, all readable")
    for t in build_schedule(protocol, args.participant):
        c = t.condition
        print(f"{t.trial:3d}  block {t.block_index} {t.block:<10} {c.clip_id:<20} {c.emotion:<10} "
              f"{c.duration_s:6.1f} s  {c.fps:g} fps  {'audio' if c.has_audio else 'silent'}")
    return 0


def cmd_make_demo_clips(args: argparse.Namespace, config) -> int:
    from eyemotion.stimuli.democlips import make_demo_clips

    out = make_demo_clips(args.out, seconds=args.seconds, fps=args.fps, size=args.size, progress=True)
    print(f"demo clips and conditions.csv written to {out}")
    return 0
