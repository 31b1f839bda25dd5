"""CLI: `eyemotion record`, `eyemotion replay` and `eyemotion export`."""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import threading
import time
from pathlib import Path

from eyemotion import UserError, plural
from eyemotion.config import Config

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "record", help="record the session's LSL streams to sessions/<participant>/<id>/recording.xdf",
        description="Record every eyemotion stream in [lsl] namespace (and on [lsl] hostname) with LabRecorder "
                    "into sessions/<participant>/<session-id>/recording.xdf, until Ctrl-C or --seconds. "
                    "Refuses to start while a [recorder] required stream is missing or the disk has less than "
                    "[recorder] min_free_gb free; reports stalls and stops cleanly when the disk fills. "
                    "Writes session.json (streams, devices, screen, software versions, start/end). Start the "
                    "sources first, e.g. `eyemotion stream --simulate --output-dir sessions/P001/S01` (that "
                    "folder's camera.mkv is kept) and then `eyemotion record --participant P001 --session-id S01 "
                    "--consent-by NAME`. Nothing is recorded without the participant's consent (--consent-by, or a "
                    "session folder made by `eyemotion run`) or for a participant who withdrew.")
    p.add_argument("--participant", required=True, help="pseudonymous participant id, e.g. P001 (never a name)")
    p.add_argument("--session-id", help="session folder name (default: the start time, e.g. 20261123T094501)")
    p.add_argument("--sessions-dir", help="root folder of the sessions (default: [recorder] sessions_dir)")
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--require", metavar="NAMES",
                   help="comma-separated streams that must be present (default: [recorder] required; '' = none)")
    p.add_argument("--protocol", default="", help="protocol name stored in session.json")
    p.add_argument("--notes", default="", help="free-text notes stored in session.json")
    p.add_argument("--consent-by", metavar="NAME",
                   help="the experimenter who confirmed the participant's informed consent (required unless the "
                        "session folder already records it, as `eyemotion run` does)")
    p.set_defaults(func=cmd_record)

    p = subparsers.add_parser(
        "replay", help="re-publish a recorded session's raw streams on LSL",
        description="Replay SESSION (a session folder or an .xdf file): its raw streams (Tobii_gaze, "
                    "eyemotion_camera, eyemotion_audio, eyemotion_markers, eyemotion_face) are published again "
                    "with their recorded layout and desc plus desc/eyemotion/replay = 1, in [lsl] namespace. "
                    "Timestamps are shifted to now and keep their relative timing exactly. Derived streams "
                    "and streams outside the contract are skipped with a warning.")
    p.add_argument("session", help="session folder or recording .xdf")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed, 0.25-20 (default 1)")
    p.add_argument("--start", type=float, help="start at this many seconds into the recording")
    p.add_argument("--end", type=float, help="stop at this many seconds into the recording")
    p.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    p.add_argument("--wait-consumers", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for every stream to have a consumer before playing")
    p.set_defaults(func=cmd_replay)

    p = subparsers.add_parser(
        "export", help="export a session to BIDS eye tracking or to plain CSV",
        description="Export SESSION. --bids OUT writes (or adds to) a BIDS dataset with eye-tracking physio "
                    "files (BEP020, BIDS 1.11: *_recording-eye1/eye2_physio.tsv.gz + JSON, physio events with "
                    "fixations, saccades, blinks and marker messages, events and the trials' self-reports in "
                    "beh/, the live predictions under derivatives/eyemotion/); participants.tsv/.json are merged "
                    "(the lab's columns kept), Authors/License come from the config's [export] section. --csv OUT "
                    "writes one CSV per stream plus trials.csv and NOTES.txt (which sources were simulated). "
                    "Both are written atomically: a failure leaves nothing partial and a retry succeeds.")
    p.add_argument("session", help="session folder (sessions/<participant>/<session-id>), or a bare .xdf with "
                                   "--participant and --session")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--bids", metavar="OUT", help="BIDS dataset folder to write into")
    what.add_argument("--csv", metavar="OUT", help="folder for the CSV files")
    p.add_argument("--task", default="emotion", help="BIDS task label, letters and digits (default: emotion)")
    p.add_argument("--participant", help="BIDS: the participant of a bare .xdf without session.json (e.g. P001)")
    p.add_argument("--session", dest="session_id", metavar="ID",
                   help="BIDS: the session of a bare .xdf without session.json (e.g. S01)")
    p.add_argument("--overwrite", action="store_true", help="replace this session's files if already exported")
    p.set_defaults(func=cmd_export)


def _session_folder(args: argparse.Namespace, config: Config) -> tuple[Path, bool]:
    """The session folder to record into, and whether it was created here (an existing one may hold the
    camera.mkv of `eyemotion stream --output-dir`)."""
    from eyemotion.session import (
        RECORDING_XDF,
        SESSION_JSON,
        check_participant_id,
        check_session_id,
        create_session_folder,
        new_session_id,
        update_session_json,
    )

    root = Path(args.sessions_dir or config.recorder.sessions_dir)
    participant = check_participant_id(args.participant)
    sid = check_session_id(args.session_id or new_session_id())
    folder = root / participant / sid
    fields = {"protocol": args.protocol, "notes": args.notes}
    if folder.exists():  # e.g. made by `eyemotion stream --output-dir` for camera.mkv
        if (folder / RECORDING_XDF).exists():
            raise UserError(f"{folder} already has a recording; pick another --session-id")
        if not (folder / SESSION_JSON).exists():
            update_session_json(folder, participant=participant, session_id=sid, **fields)
        return folder, False
    return create_session_folder(root, participant, sid, **fields), True


def _require_consent(args: argparse.Namespace, config: Config) -> dict | None:
    """Nothing is recorded without the participant's consent: the consent record to store (from --consent-by),
    or None when the session folder already holds a given consent (`eyemotion run` writes it first)."""
    from eyemotion.consent import ConsentError, consent_record, read_participant
    from eyemotion.session import SESSION_JSON, check_participant_id, read_session_json

    root = Path(args.sessions_dir or config.recorder.sessions_dir)
    participant = check_participant_id(args.participant)
    withdrawn = read_participant(root / participant).get("withdrawn")
    if withdrawn:
        raise ConsentError(f"participant {participant} withdrew consent ({withdrawn.get('at')}): nothing is recorded")
    folder = root / participant / args.session_id if args.session_id else None
    if folder is not None and (folder / SESSION_JSON).exists():
        consent = read_session_json(folder).get("consent")
        if isinstance(consent, dict) and consent.get("given"):
            return None
    if not args.consent_by:
        raise ConsentError(f"no consent recorded for participant {participant}: pass --consent-by NAME (the "
                           "experimenter who confirmed the participant's informed consent)")
    return consent_record(args.consent_by, "option")


def cmd_record(args: argparse.Namespace, config: Config) -> int:
    from eyemotion.acquisition.recorder import Recorder
    from tqdm import tqdm

    from eyemotion.session import RECORDING_XDF

    required = None if args.require is None else tuple(n for n in args.require.split(",") if n)
    consent = _require_consent(args, config)
    folder, created = _session_folder(args, config)
    if consent is not None:
        from eyemotion.session import update_session_json

        update_session_json(folder, consent=consent)
    try:
        recorder = Recorder(config, folder, required=required)
        recorder.start()
    except BaseException:  # nothing was recorded: a failed attempt leaves no stray session folder
        if created and not (folder / RECORDING_XDF).exists():
            shutil.rmtree(folder, ignore_errors=True)
            if not any(folder.parent.iterdir()):
                folder.parent.rmdir()
        raise
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"recording {plural(len(recorder.streams), 'stream')} to {recorder.xdf} (Ctrl-C to stop)")
    start = time.monotonic()
    try:
        with tqdm(total=args.seconds, unit="s", desc="recording", bar_format=None if args.seconds else
                  "{desc}: {n:.0f} s {postfix}") as bar:
            while not stop.is_set() and recorder.recording:
                elapsed = time.monotonic() - start
                if args.seconds is not None and elapsed >= args.seconds:
                    break
                stop.wait(min(1.0, args.seconds - elapsed) if args.seconds else 1.0)
                bar.n = round(time.monotonic() - start, 1)
                bar.set_postfix_str(f"{recorder.xdf.stat().st_size / 1e6:.1f} MB, {recorder.stalls} stalls")
    finally:
        recorder.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"saved {recorder.xdf}")
    if recorder.failed or recorder.stop_reason == "disk_low":
        raise UserError(f"the recording ended early ({recorder.failed or recorder.stop_reason}); "
                        f"what was recorded is in {recorder.xdf}")
    return 0


def cmd_replay(args: argparse.Namespace, config: Config) -> int:
    from eyemotion.acquisition.replay import ReplayController
    from tqdm import tqdm

    if args.start is not None and args.end is not None and args.start >= args.end:
        raise UserError(f"--start {args.start:g} s is after --end {args.end:g} s; give --start smaller than --end")
    replay = ReplayController(args.session, namespace=config.lsl.namespace, speed=args.speed, start=args.start,
                              end=args.end, loop=args.loop)
    replay.open()
    if args.wait_consumers > 0 and not replay.wait_for_consumers(args.wait_consumers):
        log.warning("not every replayed stream has a consumer after %g s; playing anyway", args.wait_consumers)
    end = replay.duration if args.end is None else min(args.end, replay.duration)
    previous = {sig: signal.signal(sig, lambda *_: replay.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with tqdm(total=None if args.loop else round(end - replay.start_s, 1), unit="s", desc="replay") as bar:
            replay.start()
            while not replay.wait(0.5):
                bar.n = round(replay.position - replay.start_s, 1)
                bar.refresh()
    finally:
        replay.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("replayed " + ", ".join(f"{sid}: {n}" for sid, n in replay.stats.pushed.items()) + " samples")
    return 0


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from eyemotion.acquisition.export import export_bids, export_csv

    from eyemotion.session import check_participant_id, check_session_id

    if args.participant:
        check_participant_id(args.participant)
    if args.session_id:
        check_session_id(args.session_id)
    if args.bids and not (args.task.isascii() and args.task.isalnum()):
        raise UserError(f"--task {args.task!r} is not a BIDS label: use letters and digits only, e.g. "
                        f"--task {''.join(c for c in args.task if c.isascii() and c.isalnum()) or 'emotion'}")
    if args.bids:
        files = export_bids(args.session, args.bids, config, task=args.task, overwrite=args.overwrite,
                            participant=args.participant, session_id=args.session_id)
        print(f"wrote {plural(len(files), 'file')} into the BIDS dataset {args.bids}")
    else:
        files = export_csv(args.session, args.csv, overwrite=args.overwrite)
        print(f"wrote {len(files)} CSV files into {args.csv}")
    return 0
