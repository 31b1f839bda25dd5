"""Participant consent: recorded at the start of a real session, withdrawn per participant, honoured by export.

`session.json` holds `consent = {"given": true, "confirmed_by": ..., "confirmed_at": ISO time, "method": ...}`
(method "terminal" when the experimenter typed their name at `eyemotion run`, "option" for `--consent-by`,
"automatic" for demo and auto-respond sessions, which say so). A participant who withdraws is marked in
`<sessions>/<participant>/participant.json` and in the `consent` of each of their sessions; `eyemotion export`
refuses their sessions. The recording itself is left as it is: deleting data is the lab's decision under its
ethics approval, not an export's.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eyemotion import UserError

PARTICIPANT_JSON = "participant.json"


class ConsentError(UserError):
    """Consent missing or withdrawn."""


def consent_record(confirmed_by: str, method: str) -> dict[str, Any]:
    """What session.json stores about the consent given at the start of a session."""
    who = (confirmed_by or "").strip()
    if not who:
        raise ConsentError("consent must be confirmed by a named experimenter; pass --consent-by NAME")
    return {"given": True, "confirmed_by": who, "confirmed_at": datetime.now(UTC).isoformat(), "method": method}


def ask_consent(participant: str, *, consent_by: str | None, automatic: str | None,
                interactive: bool) -> dict[str, Any]:
    """The consent record of a session about to start, or ConsentError (nothing is recorded without it).

    `automatic` names why no person confirms (a demo or an auto-respond run); `consent_by` is the experimenter's
    name given on the command line; otherwise the experimenter confirms on the terminal (when there is one).
    """
    if consent_by:
        return consent_record(consent_by, "option")
    if automatic:
        return consent_record(f"automatic ({automatic})", "automatic")
    if not interactive:
        raise ConsentError(f"no consent recorded for participant {participant}: pass --consent-by NAME (the "
                           "experimenter who confirmed the participant's informed consent)")
    answer = input(f"Participant {participant}: has the participant given informed consent? "
                   "Type your name (experimenter) to confirm, or press Enter to stop: ")
    if not answer.strip():
        raise ConsentError(f"consent not confirmed for participant {participant}: nothing was recorded")
    return consent_record(answer, "terminal")


def withdrawn(folder: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The withdrawal record that applies to a session folder (its own or its participant's), else None."""
    consent = meta.get("consent")
    if isinstance(consent, dict) and consent.get("withdrawn"):
        return consent["withdrawn"]
    record = read_participant(Path(folder).parent)
    return record.get("withdrawn") or None


def check_exportable(folder: Path, meta: dict[str, Any]) -> None:
    """Refuse (one line) to export a session whose participant withdrew consent."""
    w = withdrawn(folder, meta)
    if w:
        who = meta.get("participant") or Path(folder).parent.name
        raise ConsentError(f"participant {who} withdrew consent ({w.get('at', '?')}, recorded by {w.get('by', '?')}): "
                           "their sessions are not exported")


def read_participant(participant_folder: Path) -> dict[str, Any]:
    path = Path(participant_folder) / PARTICIPANT_JSON
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConsentError(f"{path} is not valid JSON ({exc}); fix it before exporting this participant") from None
    return data if isinstance(data, dict) else {}


def withdraw(root: Path, participant: str, *, by: str, reason: str = "") -> list[Path]:
    """Mark `participant` withdrawn under the sessions root; returns the sessions marked."""
    from eyemotion.session import SESSION_JSON, check_participant_id, update_session_json

    check_participant_id(participant)
    folder = Path(root) / participant
    if not folder.is_dir():
        raise ConsentError(f"no sessions of participant {participant} under {root}; check the id and --dir")
    if not by.strip():
        raise ConsentError("say who records the withdrawal: --by NAME")
    record = {"at": datetime.now(UTC).isoformat(), "by": by.strip(), "reason": reason}
    data = {**read_participant(folder), "participant": participant, "withdrawn": record}
    path = folder / PARTICIPANT_JSON
    tmp = path.with_name(f".{PARTICIPANT_JSON}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    marked = []
    for session in sorted(p.parent for p in folder.glob(f"*/{SESSION_JSON}")):
        from eyemotion.session import read_session_json

        consent = read_session_json(session).get("consent")
        consent = consent if isinstance(consent, dict) else {"recorded_before_withdrawal": consent}
        update_session_json(session, consent={**consent, "withdrawn": record})
        marked.append(session)
    return marked
