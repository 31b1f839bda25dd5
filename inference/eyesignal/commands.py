"""`eyemotion eyesignal ...`: run the eye-signal node, print the validation figures, reprocess offline."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from eyemotion import UserError, plural
from eyemotion.config import Config

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eyesignal", help="online eye-signal processing: blinks, saccades, pupil, fixations",
        description="Online eye-signal processing: Tobii_gaze -> eyemotion_gaze (+ eyemotion_eye_events).")
    sub = parser.add_subparsers(dest="eyesignal_command", metavar="ACTION", required=True)

    run = sub.add_parser(
        "run", help="run the eye-signal node on the live Tobii_gaze stream",
        description="Read Tobii_gaze (real or simulated, through the stream contract), correct blinks, gaps and "
                    "the pupil, classify fixations/saccades (I-VT), and publish eyemotion_gaze and "
                    "eyemotion_eye_events with the raw timestamps after a fixed delay (in the stream's desc). "
                    "Parameters: the [eyesignal] and [screen] sections of the config. Stop with Ctrl-C.")
    run.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    run.add_argument("--session", metavar="DIR", help="take the screen geometry from DIR/session.json")
    run.add_argument("--source-id", default="", help="use the Tobii_gaze stream with this source_id")
    run.set_defaults(func=_run)

    val = sub.add_parser(
        "validate", help="print the validation figures against the simulator and pymovements",
        description="Process seeded simulated recordings at each rate and print, against the ground truth: "
                    "per-sample Cohen's kappa for fixation, saccade and blink, blink precision/recall, the "
                    "pupil RMSE inside interpolated blinks, and the sample agreement of our I-VT with "
                    "pymovements' I-VT on the same positions and parameters. Then, on real data coded by 12 "
                    "experts (Hooge et al. 2018, Tobii TX300 at 300 Hz): fixation F1 (overlap matching), kappa "
                    "and onset/offset timing against every coder, for us, REMoDNaV and pymovements' I-VT, beside "
                    "the coders' own spread. Then, on real data coded sample by sample by one expert (Zemblys et "
                    "al. 2018, EyeLink 1000 Plus, fed at 250 Hz): kappa per class (fixation, saccade, PSO, "
                    "blink), event counts and median durations, for the expert, us, REMoDNaV and I-VT. With "
                    "--gazecom, on videos of natural scenes coded by two experts with smooth pursuit (GazeCom): "
                    "kappa for fixation, saccade and pursuit and the share of pursuit called fixation.")
    val.add_argument("--rates", default="60,120,250", help="comma-separated tracker rates in Hz (default 60,120,250)")
    val.add_argument("--duration", type=float, default=300.0, metavar="S", help="seconds per recording (default 300)")
    val.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    val.add_argument("--pursuit-share", type=float, default=None, metavar="SHARE",
                     help="share of simulated viewing events that follow a moving target (default: [simulator] "
                          "pursuit_share, 0.1; 0 = static images)")
    val.add_argument("--json", metavar="FILE",
                     help="also write the figures as JSON (simulator, hooge2018, zemblys2018, gazecom)")
    val.add_argument("--hooge", metavar="DIR", default=None,
                     help="data folder of github.com/dcnieho/humanFixationClassification (ETdata/, coderSettings/) "
                          "for the real-data table (default: the 4-recording subset in tests/data/hooge2018)")
    val.add_argument("--zemblys", metavar="DIR", default=None,
                     help="etdata/lookAtPoint_EL of github.com/r-zemblys/irf for the second real-data table "
                          "(default: the 2-recording subset in tests/data/zemblys2018)")
    val.add_argument("--gazecom", metavar="PATH", default=None,
                     help="a GazeCom ARFF file (example_data/input.arff of "
                          "github.com/MikhailStartsev/deep_em_classifier) or a folder of them, for the smooth-pursuit "
                          "table (default: not run; no GazeCom data is committed, its licence is GPL-3.0)")
    val.set_defaults(func=_validate)

    proc = sub.add_parser(
        "process", help="reprocess a recorded session's Tobii_gaze offline",
        description="Read Tobii_gaze from an XDF recording (or a session folder's recording.xdf), run the same "
                    "processing as the live node on the whole recording, and write eyemotion_gaze as CSV and "
                    "the eye events as JSON lines.")
    proc.add_argument("path", help="recording.xdf or a session folder")
    proc.add_argument("--out", metavar="DIR", help="output folder (default: next to the recording)")
    proc.set_defaults(func=_process)


def _run(args: argparse.Namespace, config: Config) -> int:
    from eyemotion.inference.eyesignal.node import EyeSignalNode, screen_from_session

    screen = screen_from_session(args.session, config.screen) if args.session else config.screen
    EyeSignalNode(config, screen=screen, source_id=args.source_id).run(duration=args.duration)
    return 0


def _validate(args: argparse.Namespace, config: Config) -> int:
    from eyemotion.inference.eyesignal.validate import format_table, validate

    try:
        rates = tuple(float(r) for r in args.rates.split(",") if r.strip())
    except ValueError:
        raise UserError(f"--rates {args.rates!r} is not a comma-separated list of numbers, e.g. 60,120,250") from None
    if not rates or any(r <= 0 for r in rates) or args.duration <= 0:
        raise UserError("--rates and --duration must be positive")
    share = config.simulator.pursuit_share if args.pursuit_share is None else args.pursuit_share
    if not 0 <= share <= 1:
        raise UserError(f"--pursuit-share {share:g} is not a share; give one within 0-1 (0 = static images)")
    from eyemotion.inference.eyesignal import gazecom, hooge, zemblys

    # loaded once, before the simulation runs: a wrong path fails at once
    hooge_recs, zemblys_recs = hooge.load(args.hooge), zemblys.load(args.zemblys)
    gazecom_recs = gazecom.load(args.gazecom) if args.gazecom else None
    figures = validate(rates, args.duration, args.seed, config.eyesignal, config.screen, progress=True,
                       pursuit_share=share)

    print(f"eye-signal validation: {args.duration:g} s simulated per rate, seed {args.seed}, pursuit share {share:g} "
          "(SIMULATED data)")
    print(format_table(figures))
    print()
    real = hooge.validate(hooge_recs, config.eyesignal)
    print(hooge.format_table(real))
    print()
    coded = zemblys.validate(zemblys_recs, config.eyesignal)
    print(zemblys.format_table(coded))
    print()
    pursuit = gazecom.validate(gazecom_recs, config.eyesignal) if gazecom_recs else None
    print(gazecom.format_table(pursuit) if pursuit else f"GazeCom smooth-pursuit table: not run; pass --gazecom with "
          f"{gazecom.FETCH_HINT}")
    if args.json:
        Path(args.json).write_text(json.dumps({"simulator": [f.as_dict() for f in figures],
                                               "hooge2018": real.as_dict(), "zemblys2018": coded.as_dict(),
                                               "gazecom": pursuit.as_dict() if pursuit else None}, indent=2))
    return 0


def _process(args: argparse.Namespace, config: Config) -> int:
    import numpy as np
    import pyxdf
    from eyemotion.inference.eyesignal.processor import EyeSignalOutput, EyeSignalProcessor
    from tqdm import tqdm

    from eyemotion.outputs import check_output_folder, staged_output
    from eyemotion.streams import GAZE_CLEAN, GAZE_RAW

    path = Path(args.path)
    xdf = path / "recording.xdf" if path.is_dir() else path
    if not xdf.is_file():
        raise UserError(f"{xdf} not found; pass a recording.xdf or a session folder that has one")
    folder = check_output_folder(Path(args.out) if args.out else xdf.parent)
    screen = config.screen
    if path.is_dir() and (path / "session.json").exists():
        from eyemotion.inference.eyesignal.node import screen_from_session

        screen = screen_from_session(path, screen)
    try:
        streams, _ = pyxdf.load_xdf(str(xdf), select_streams=[{"name": GAZE_RAW.name}], dejitter_timestamps=False)
    except Exception as exc:  # noqa: BLE001  (pyxdf raises plain Exceptions for unreadable files)
        if "No matching streams" in str(exc):  # a valid XDF without the eye tracker's stream
            streams = []
        else:
            raise UserError(f"{xdf} cannot be read as XDF ({exc}); check the file") from None
    if not streams:
        try:
            names = sorted({s["name"] for s in pyxdf.resolve_streams(str(xdf))})
        except Exception:  # noqa: BLE001
            names = []
        raise UserError(f"{xdf} has no {GAZE_RAW.name} stream (it has: {', '.join(names) or 'no streams'}); "
                        f"eyesignal process needs the eye tracker's raw {GAZE_RAW.name} stream (TittaLSL or "
                        "`eyemotion stream --simulate`)")
    stream = streams[0]
    rate = float(stream["info"]["nominal_srate"][0])
    t, raw = np.asarray(stream["time_stamps"]), np.asarray(stream["time_series"], dtype=np.float64)
    proc = EyeSignalProcessor(rate, config.eyesignal, screen)
    step = int(rate * 60) or 1
    parts = [proc.push(t[i:i + step], raw[i:i + step])
             for i in tqdm(range(0, len(t), step), desc="eyesignal", unit="min")]
    out = EyeSignalOutput.concat([*parts, proc.flush()])
    csv, events = folder / "eyemotion_gaze.csv", folder / "eyemotion_eye_events.jsonl"
    with staged_output(folder) as stage:  # atomic: both files appear complete, or neither
        np.savetxt(stage / csv.name, np.column_stack((out.timestamps, out.samples)), delimiter=",", fmt="%.10g",
                   header=",".join(["timestamp", *GAZE_CLEAN.labels]), comments="")
        (stage / events.name).write_text("".join(json.dumps({"timestamp": ts, **ev}) + "\n" for ts, ev in out.events))
    print(f"{plural(len(out.timestamps), 'sample')} -> {csv}; {plural(len(out.events), 'event')} -> {events}")
    return 0
