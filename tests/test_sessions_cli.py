"""`eyemotion sessions` (list, show, withdraw), consent at the start of `run`, and export honouring withdrawal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report import make_session

from eyemotion.cli import main
from eyemotion.config import load_config
from eyemotion.consent import ConsentError, ask_consent
from eyemotion.session import RECORDING_XDF, read_session_json, update_session_json


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("eyemotion: error:")]
    assert len(err) == 1
    return err[0]


def test_list_and_show(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "sessions"
    folder = make_session(root)
    update_session_json(folder, recording={"start": "2026-11-23T09:45:01+00:00", "lsl_start": 100.0, "lsl_end": 220.0},
                        consent={"given": True, "confirmed_by": "Dr A", "method": "option"})
    real = make_session(root, demo=False, participant="P002")
    update_session_json(real, simulated_sources=[])
    from eyemotion.session_runner import mark_aborted

    mark_aborted(make_session(root, demo=False, participant="P003"), "tracker: no Tobii found")
    capsys.readouterr()
    assert main(["sessions", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["participant", "session", "date", "protocol"]
    p1 = next(line for line in lines if line.startswith("P001"))
    assert "2026-11-23 09:45" in p1 and "2.0 min" in p1 and "simulated" in p1 and "by Dr A" in p1 and p1.endswith("no")
    p2 = next(line for line in lines if line.startswith("P002"))
    assert " real " in p2 and "not recorded" in p2
    assert "ABORTED" in next(line for line in lines if line.startswith("P003"))
    assert main(["sessions", "show", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "trial 2: demo_fear intended fear, reported happiness" in out and "restarts 1" in out


def test_withdrawn_participant_is_not_exported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "sessions"
    folder = make_session(root)
    assert main(["export", str(folder), "--csv", str(tmp_path / "csv")]) == 0
    assert "csv" in read_session_json(folder)["exports"]
    before = (folder / RECORDING_XDF).read_bytes()
    assert main(["sessions", "withdraw", "P001", "--dir", str(root), "--by", "Dr A", "--reason", "asked by email"]) == 0
    assert read_session_json(folder)["consent"]["withdrawn"]["by"] == "Dr A"
    assert json.loads((root / "P001" / "participant.json").read_text())["withdrawn"]["reason"] == "asked by email"
    capsys.readouterr()
    for what in (["--bids", str(tmp_path / "bids")], ["--csv", str(tmp_path / "csv2")]):
        assert main(["export", str(folder), *what]) != 0
        assert "withdrew consent" in _one_line_error(capsys)
    assert not (tmp_path / "bids").exists() and not (tmp_path / "csv2").exists()
    assert (folder / RECORDING_XDF).read_bytes() == before  # the recording is left as it was
    assert main(["sessions", str(root)]) == 0
    assert "WITHDRAWN" in capsys.readouterr().out


def test_withdraw_needs_a_known_participant_and_a_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "sessions"
    make_session(root)
    assert main(["sessions", "withdraw", "P999", "--dir", str(root), "--by", "Dr A"]) != 0
    assert "no sessions of participant P999" in _one_line_error(capsys)
    assert main(["sessions", "withdraw", "P001", "--dir", str(root)]) != 0
    assert "--by NAME" in _one_line_error(capsys)


def test_consent_records_who_and_when() -> None:
    given = ask_consent("P001", consent_by="Dr A", automatic=None, interactive=False)
    assert given["given"] and given["confirmed_by"] == "Dr A" and given["method"] == "option" and given["confirmed_at"]
    auto = ask_consent("DEMO01", consent_by=None, automatic="demo session", interactive=False)
    assert auto["method"] == "automatic" and "demo" in auto["confirmed_by"]
    with pytest.raises(ConsentError, match="--consent-by"):
        ask_consent("P001", consent_by=None, automatic=None, interactive=False)


def test_run_refuses_to_record_without_consent(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # no terminal (pytest's stdin), no --consent-by: refused before any folder or node exists
    assert main(["run", "--participant", "P001", "--protocol", "demo", "--headless",
                 "--sessions-dir", str(tmp_path / "sessions")]) != 0
    assert "no consent recorded for participant P001" in _one_line_error(capsys)
    assert not (tmp_path / "sessions").exists()


def test_record_refuses_without_consent_or_after_withdrawal(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "sessions"
    assert main(["record", "--participant", "P009", "--sessions-dir", str(root), "--seconds", "1"]) != 0
    assert "no consent recorded for participant P009" in _one_line_error(capsys)
    assert not root.exists()  # refused before any folder exists
    make_session(root)
    assert main(["sessions", "withdraw", "P001", "--dir", str(root), "--by", "Dr A"]) == 0
    capsys.readouterr()
    assert main(["record", "--participant", "P001", "--session-id", "S02", "--consent-by", "Dr A",
                 "--sessions-dir", str(root), "--seconds", "1"]) != 0
    assert "withdrew consent" in _one_line_error(capsys)
    assert not (root / "P001" / "S02").exists()


def test_dashboard_recorder_refuses_without_consent_or_after_withdrawal(tmp_path: Path) -> None:
    import dataclasses

    from eyemotion.gui.backends import RecorderBackend

    from eyemotion import UserError
    from eyemotion.consent import consent_record

    config = load_config(None)
    root = tmp_path / "sessions"
    backend = RecorderBackend(config.replace(recorder=dataclasses.replace(config.recorder, sessions_dir=str(root))))
    with pytest.raises(UserError, match="consent is not confirmed"):
        backend.start("P010", consent=None)
    make_session(root)
    assert main(["sessions", "withdraw", "P001", "--dir", str(root), "--by", "Dr A"]) == 0
    with pytest.raises(UserError, match="withdrew consent"):
        backend.start("P001", consent=consent_record("Dr A", "dashboard"))
    assert not (root / "P010").exists() and len(list((root / "P001").iterdir())) == 2  # S01 + participant.json
