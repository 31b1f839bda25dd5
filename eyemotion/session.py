"""Session folders: `sessions/<participant>/<session-id>/` (see ARCHITECTURE.md, "A session on disk").

    session.json   participant pseudonym, protocol, devices, screen, calibration, versions, start/end, notes
    recording.xdf  every stream, written by LabRecorder
    camera.mp4     the webcam video (frame i = sample i of eyemotion_camera)
    trials.csv     the runner's trial table

`session.json` is only ever changed through `update_session_json`, which merges keys and replaces the
file atomically, so several nodes can add their part and a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eyemotion import UserError, __version__

SESSION_JSON = "session.json"
RECORDING_XDF = "recording.xdf"
CAMERA_MP4 = "camera.mp4"
TRIALS_CSV = "trials.csv"

_PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_lock = threading.Lock()


class SessionError(UserError):
    """A session folder that is missing, incomplete or malformed."""


def check_participant_id(participant: str) -> str:
    """Refuse ids that are not short pseudonyms (letters, digits, '-', '_'; no spaces, no names with dots)."""
    if not _PSEUDONYM.match(participant or ""):
        raise SessionError(
            f"participant id {participant!r} is not a pseudonym: use 1-32 letters, digits, '-' or '_' "
            "(e.g. P001), never a real name"
        )
    return participant


def new_session_id(now: datetime | None = None) -> str:
    """A sortable id such as `20261123T094501`."""
    return (now or datetime.now()).strftime("%Y%m%dT%H%M%S")


def create_session_folder(root: str | Path, participant: str, session_id: str | None = None,
                          **fields: Any) -> Path:
    """Create `root/<participant>/<session-id>/` with an initial `session.json`; return the folder."""
    check_participant_id(participant)
    sid = session_id or new_session_id()
    folder = Path(root) / participant / sid
    try:
        folder.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise SessionError(f"session folder {folder} already exists; pick another session id or resume it") from None
    except OSError as exc:
        raise SessionError(f"cannot create session folder {folder} ({exc}); check the sessions directory") from None
    update_session_json(folder, participant=participant, session_id=sid, eyemotion_version=__version__,
                        created=datetime.now(timezone.utc).isoformat(), **fields)
    return folder


def read_session_json(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / SESSION_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionError(f"{path} not found: {folder} is not a session folder "
                           "(expected sessions/<participant>/<session-id>/)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionError(f"{path} is not valid JSON ({exc}); restore it from a backup or re-create it") from None
    if not isinstance(data, dict):
        raise SessionError(f"{path} must hold a JSON object")
    return data


def update_session_json(folder: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into `session.json` (top-level keys; dicts are merged one level deep), atomically."""
    path = Path(folder) / SESSION_JSON
    with _lock:
        data = read_session_json(folder) if path.exists() else {}
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        tmp = path.with_name(f".{SESSION_JSON}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str), encoding="utf-8")
        os.replace(tmp, path)
    return data
