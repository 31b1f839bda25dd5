"""`eyemotion sessions`: list the sessions of a sessions folder, summarise one, mark a participant withdrawn.

    eyemotion sessions [DIR]                         one line per session
    eyemotion sessions show SESSION                  what a session holds
    eyemotion sessions withdraw P001 --by NAME       the participant withdrew consent: export refuses them

Everything is read from each folder's `session.json`, `trials.csv` and `session_summary.json`; nothing
loads the recording, so listing hundreds of sessions takes a moment.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from eyemotion import UserError
from eyemotion.config import Config

SUMMARY_JSON = "session_summary.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sessions", help="list sessions, show one, or mark a participant withdrawn",
        description="`eyemotion sessions [DIR]` lists the sessions under DIR (default: [recorder] sessions_dir): "
                    "participant, session id, date, protocol, duration, trials done, simulated/imported/real (ABORTED: failed to start), "
                    "consent and whether it was exported. `eyemotion sessions show SESSION` summarises one session. "
                    "`eyemotion sessions withdraw PARTICIPANT --by NAME` records that the participant withdrew "
                    "consent; `eyemotion export` then refuses their sessions.")
    p.add_argument("args", nargs="*", metavar="DIR | show SESSION | withdraw PARTICIPANT",
                   help="a sessions folder to list, or `show SESSION`, or `withdraw PARTICIPANT`")
    p.add_argument("--dir", help="sessions folder for `withdraw` (default: [recorder] sessions_dir)")
    p.add_argument("--by", default="", help="`withdraw`: who records the withdrawal (experimenter)")
    p.add_argument("--reason", default="", help="`withdraw`: optional note")
    p.set_defaults(func=cmd_sessions)


def cmd_sessions(args: argparse.Namespace, config: Config) -> int:
    words = list(args.args)
    if words and words[0] == "show":
        if len(words) != 2:
            raise UserError("usage: eyemotion sessions show SESSION (a session folder)")
        print(show(Path(words[1])))
        return 0
    if words and words[0] == "withdraw":
        if len(words) != 2:
            raise UserError("usage: eyemotion sessions withdraw PARTICIPANT --by NAME")
        from eyemotion.consent import withdraw

        root = Path(args.dir or config.recorder.sessions_dir)
        marked = withdraw(root, words[1], by=args.by, reason=args.reason)
        print(f"participant {words[1]} marked withdrawn ({len(marked)} session(s)); export will refuse them")
        return 0
    if len(words) > 1:
        raise UserError("usage: eyemotion sessions [DIR] | show SESSION | withdraw PARTICIPANT")
    root = Path(words[0] if words else config.recorder.sessions_dir)
    rows = list_sessions(root)
    if not rows:
        print(f"no sessions under {root}")
        return 0
    print(format_table(rows))
    return 0


# -- reading ------------------------------------------------------------------------------------------------
def find_sessions(root: Path) -> list[Path]:
    """Session folders under `root` (`<participant>/<session-id>/session.json`; also `root` itself or one level)."""
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; pass the sessions folder (e.g. sessions/)")
    found = {p.parent for depth in ("session.json", "*/session.json", "*/*/session.json") for p in root.glob(depth)}
    return sorted(found)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe(folder: Path) -> dict[str, Any]:
    """The facts `sessions` lists about one folder (from its JSON and CSV files only)."""
    from eyemotion.consent import withdrawn
    from eyemotion.report import protocol_name
    from eyemotion.session import read_trials

    meta = _read_json(folder / "session.json")
    summary = _read_json(folder / SUMMARY_JSON)
    rec = meta.get("recording") if isinstance(meta.get("recording"), dict) else {}
    runner = meta.get("runner") if isinstance(meta.get("runner"), dict) else {}
    duration = None
    if isinstance(rec.get("lsl_start"), (int, float)) and isinstance(rec.get("lsl_end"), (int, float)):
        duration = rec["lsl_end"] - rec["lsl_start"]
    elif (summary.get("session") or {}).get("streams"):
        duration = max((s.get("seconds") or 0) for s in summary["session"]["streams"].values())
    try:
        n_trials = len(read_trials(folder / "trials.csv"))
    except UserError:
        n_trials = 0
    done = runner.get("trials_done", n_trials)
    trials = f"{done}/{runner['trials_total']}" if runner.get("trials_total") else str(done)
    return {
        "participant": meta.get("participant") or folder.parent.name,
        "session": meta.get("session_id") or folder.name,
        "date": _date(rec.get("start") or meta.get("created")),
        "protocol": protocol_name(meta) or "-",
        "duration": "-" if duration is None else f"{duration / 60:.1f} min",
        "trials": trials,
        "kind": kind(meta),
        "consent": consent_text(folder, meta, withdrawn),
        "exported": ", ".join(sorted((meta.get("exports") or {}).keys())) or "no",
        "report": (folder / "report" / "index.html").exists(),
        "path": folder,
    }


def _date(text: Any) -> str:
    try:
        return datetime.fromisoformat(str(text)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(text or "-")


def kind(meta: dict[str, Any]) -> str:
    if meta.get("aborted"):  # a session that failed to start (eyemotion.session_runner.mark_aborted)
        return "ABORTED"
    if meta.get("imported"):
        return "imported"
    sources = meta.get("simulated_sources")
    if isinstance(sources, list):
        return f"simulated ({', '.join(sources)})" if sources else "real"
    if meta.get("demo") or meta.get("simulated"):
        return "simulated"
    tracker = next((d for d in meta.get("devices") or [] if isinstance(d, dict) and d.get("stream") == "Tobii_gaze"),
                   {})
    firmware = str((tracker.get("acquisition") or {}).get("firmware_version", ""))
    return "simulated" if firmware.startswith("simulated") or "@SIM-" in str(tracker.get("source_id", "")) else "real"


def consent_text(folder: Path, meta: dict[str, Any], withdrawn_fn: Any) -> str:
    try:
        if withdrawn_fn(folder, meta):
            return "WITHDRAWN"
    except UserError:
        return "unreadable participant.json"
    consent = meta.get("consent")
    if isinstance(consent, dict) and consent.get("method") == "imported":
        return "source lab's"
    if isinstance(consent, dict) and consent.get("given"):
        return "automatic" if consent.get("method") == "automatic" else f"by {consent.get('confirmed_by')}"
    return "not recorded"


def list_sessions(root: Path) -> list[dict[str, Any]]:
    return [describe(folder) for folder in find_sessions(root)]


COLUMNS = ("participant", "session", "date", "protocol", "duration", "trials", "kind", "consent", "exported")


def format_table(rows: list[dict[str, Any]]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    return "\n".join(lines)


def show(folder: Path) -> str:
    """A few lines that summarise one session folder."""
    from eyemotion.session import read_session_json, read_trials

    meta = read_session_json(folder)  # refuses a folder that is not a session
    d = describe(folder)
    summary = _read_json(folder / SUMMARY_JSON).get("session") or {}
    lines = [f"session {d['participant']}/{d['session']}  ({folder})",
             f"  date {d['date']}   protocol {d['protocol']}   duration {d['duration']}   trials {d['trials']}",
             (f"  kind {d['kind']}   consent {d['consent']}   exported {d['exported']}   "
              f"report {'report/index.html' if d['report'] else 'none (eyemotion report SESSION)'}")]
    imported = meta.get("imported")
    if isinstance(imported, dict):
        lines.append(f"  imported from {imported.get('source')} with mapping {imported.get('mapping')}")
        for m in imported.get("missing", []):
            lines.append(f"    missing: {m}")
    streams = meta.get("streams") or []
    if streams:
        lines.append("  streams: " + ", ".join(sorted({s.get("name", "?") for s in streams if isinstance(s, dict)})))
    cal = (meta.get("calibration") or {}).get("accepted") if isinstance(meta.get("calibration"), dict) else None
    if isinstance(cal, dict):
        lines.append(f"  calibration: accuracy {cal.get('accuracy_deg', float('nan')):.2f} deg, precision "
                     f"{cal.get('precision_deg', float('nan')):.2f} deg")
    if summary:
        lat = summary.get("gaze_to_prediction_ms") or {}
        lines.append(f"  gaps {len(summary.get('gaps') or [])}   restarts {sum((summary.get('restarts') or {}).values())}"
                     f"   predictions {summary.get('predictions')}" + (f"   latency p50 {lat['p50']} ms" if lat else ""))
    for t in read_trials(folder / "trials.csv"):
        lines.append(f"  trial {t.get('trial')}: {t.get('clip_id')} intended {t.get('target_emotion')}, reported "
                     f"{t.get('felt_emotion') or '-'} (valence {t.get('valence')}, arousal {t.get('arousal')}, "
                     f"intensity {t.get('intensity')})")
    return "\n".join(lines)
