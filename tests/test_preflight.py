"""Data safety of starting a session (issue 13, Secs. 2, 3, 6, 8): `run` never simulates unless asked, the
simulated sources are recorded, preflight reports every problem before anything starts or is created, ids
cannot leave the sessions folder, and the messages say what is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eyemotion import UserError, plural
from eyemotion.config import Config, config_file, load_config
from eyemotion.node_commands import simulated_sources
from eyemotion.preflight import PreflightError, preflight, problems_message
from eyemotion.session import SessionError, check_session_id, create_session_folder, read_session_json


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eyemotion.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def missing_clip_protocol(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conditions.csv").write_text("id,clip,emotion\nc1,nope.mp4,happiness\n")
    (folder / "p.toml").write_text('[protocol]\nconditions = "conditions.csv"\n')
    return folder / "p.toml"


# -- Sec. 2: no silent simulation ------------------------------------------------------------------------------

def test_simulated_sources_follow_the_flag_and_the_explicit_config(tmp_path: Path) -> None:
    real = Config()  # the defaults: real devices
    assert not real.tracker.simulate
    assert simulated_sources(real, simulate=False) == []
    assert simulated_sources(real, simulate=True) == ["tracker", "camera", "microphone"]
    video = real.replace(camera=real.camera.__class__(source=str(tmp_path / "v.mp4")))
    assert simulated_sources(video, simulate=False) == ["camera"]  # a video file is no live camera
    toml = tmp_path / "e.toml"
    toml.write_text("[tracker]\nsimulate = true\n")
    assert config_file(None) in (None, Path("eyemotion.toml")) and config_file(str(toml)) == toml
    assert load_config(toml).tracker.simulate


def test_run_uses_real_devices_by_default_and_preflight_lists_every_problem_before_creating_anything(
        tmp_path: Path) -> None:
    """The old `run` started the simulated tracker silently and failed 10 s later inside the runner, leaving a
    session folder; now it says which config it loaded, that nothing is simulated, and refuses at once."""
    protocol = missing_clip_protocol(tmp_path / "proto")
    sessions = tmp_path / "sessions"
    proc = cli("run", "--protocol", str(protocol), "--participant", "P002", "--sessions-dir", str(sessions),
               "--headless", "--no-dashboard", "--consent-by", "tester", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"config: no eyemotion.toml in {tmp_path}" in proc.stdout
    assert "simulated sources: none (real devices)" in proc.stdout
    err = proc.stderr
    assert "Traceback" not in err
    assert "eyemotion: error: the session has " in err and "fix them and run again:" in err
    assert "  - conditions.csv row 2: clip 'nope.mp4' not found" in err or "nope.mp4" in err
    assert "  - tracker: " in err  # no Tobii here: the real tracker is checked, not replaced by the simulator
    assert not sessions.exists() or not any(sessions.rglob("session.json"))


def test_run_without_a_display_refuses_rather_than_answering_for_the_participant(tmp_path: Path) -> None:
    """Headless means automatic answers: a real `run` goes headless only when asked (`--headless`)."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    sessions = tmp_path / "sessions"
    proc = subprocess.run([sys.executable, "-m", "eyemotion.cli", "run", "--protocol", "demo", "--participant", "P002",
                           "--sessions-dir", str(sessions), "--consent-by", "tester"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.startswith("eyemotion: error:")]
    assert len(err) == 1 and "no display found" in err[0] and "--headless" in err[0]
    assert not sessions.exists()


def test_demo_with_a_bad_protocol_starts_nothing_and_leaves_no_folder(tmp_path: Path) -> None:
    protocol = missing_clip_protocol(tmp_path / "proto")
    sessions = tmp_path / "sessions"
    proc = cli("demo", "--protocol", str(protocol), "--headless", "--sessions-dir", str(sessions), cwd=tmp_path)
    assert proc.returncode == 2
    assert "simulated sources: tracker, camera, microphone" in proc.stdout
    assert "the session has 1 problem; fix it and run again:" in proc.stderr and "nope.mp4" in proc.stderr
    assert "tracker:" not in proc.stderr  # simulated sources are not probed
    assert not sessions.exists() or not any(sessions.iterdir())


def test_preflight_reports_ids_disk_and_camera_file_at_once(tmp_path: Path) -> None:
    from eyemotion.stimuli.commands import DEMO_PROTOCOL
    from eyemotion.stimuli.democlips import ensure_demo_clips

    ensure_demo_clips()
    cfg = Config()
    cfg = cfg.replace(recorder=cfg.recorder.__class__(min_free_gb=1e9),
                      camera=cfg.camera.__class__(source=str(tmp_path / "gone.mp4")))
    with pytest.raises(PreflightError) as info:
        preflight(cfg, participant="../../etc", protocol=str(DEMO_PROTOCOL), sessions_root=tmp_path / "s",
                  simulated=["tracker", "camera", "microphone"])
    lines = str(info.value).splitlines()
    assert lines[0] == "the session has 3 problems; fix them and run again:"
    assert "participant id '../../etc'" in lines[1]
    assert "GB free under" in lines[2] and "min_free_gb" in lines[2]
    assert lines[3].startswith("  - camera: ") and "gone.mp4" in lines[3]
    preflight(Config(), participant="P001", protocol=str(DEMO_PROTOCOL), sessions_root=tmp_path / "s",
              simulated=["tracker", "camera", "microphone"])  # all well: returns


def test_problem_counts_read_well() -> None:
    assert plural(1, "clip") == "1 clip" and plural(2, "clip") == "2 clips"
    assert problems_message("x", ["a"]).startswith("x has 1 problem; fix it and run again:")
    assert problems_message("x", ["a", "b"]).startswith("x has 2 problems; fix them and run again:")


def test_a_session_that_fails_to_start_is_marked_aborted(tmp_path: Path) -> None:
    from eyemotion.session_runner import ABORTED_TXT, mark_aborted

    folder = create_session_folder(tmp_path, "P001", "S01", simulated_sources=[])
    (folder / "logs").mkdir()
    mark_aborted(folder, "these streams did not appear within 195 s: Tobii_gaze")
    meta = read_session_json(folder)
    assert meta["aborted"]["reason"].startswith("these streams") and meta["end_reason"].startswith("aborted: ")
    assert "failed to start" in (folder / ABORTED_TXT).read_text() and (folder / "logs").is_dir()


# -- Sec. 6: ids stay inside the sessions folder ---------------------------------------------------------------

@pytest.mark.parametrize("sid", ["../../x", "..", "a/b", "x y", ".hidden", ""])
def test_session_ids_cannot_escape(tmp_path: Path, sid: str) -> None:
    with pytest.raises(SessionError):
        check_session_id(sid)
    with pytest.raises(SessionError):
        create_session_folder(tmp_path / "s", "P001", sid or "..")
    assert not (tmp_path / "x").exists() and check_session_id("20261123T094501") == "20261123T094501"


def test_record_refuses_an_escaping_session_id_and_a_failed_record_leaves_no_folder(tmp_path: Path) -> None:
    (tmp_path / "e.toml").write_text('[lsl]\nnamespace = "preflightnothing"\n[recorder]\ndiscover_s = 0.3\n')
    proc = cli("--config", "e.toml", "record", "--participant", "P001", "--session-id", "../../x",
               "--sessions-dir", "deep/a/b", "--seconds", "1", "--consent-by", "tester", cwd=tmp_path)
    assert proc.returncode == 2 and "session id '../../x' is not allowed" in proc.stderr
    assert not (tmp_path / "deep").exists()
    proc = cli("--config", "e.toml", "record", "--participant", "P001", "--session-id", "S01",
               "--sessions-dir", "sessions", "--seconds", "1", "--consent-by", "tester", cwd=tmp_path)
    assert proc.returncode == 2 and "required streams missing" in proc.stderr
    assert not (tmp_path / "sessions" / "P001").exists()  # no stray session folder


def test_stimuli_check_dashboard_and_export_refuse_bad_ids(tmp_path: Path) -> None:
    proc = cli("stimuli", "check", "demo", "-p", "../../etc", cwd=tmp_path)
    assert proc.returncode == 2 and "participant id '../../etc'" in proc.stderr
    proc = cli("dashboard", "--participant", "../../etc", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "participant id '../../etc'" in proc.stderr and "Traceback" not in proc.stderr
    folder = create_session_folder(tmp_path, "P001", "S01")
    proc = cli("export", str(folder), "--bids", str(tmp_path / "bids"), "--task", "emo tion_1", cwd=tmp_path)
    assert proc.returncode == 2 and "--task 'emo tion_1' is not a BIDS label" in proc.stderr
    assert "--task emotion1" in proc.stderr and not (tmp_path / "bids").exists()


def test_record_notes_simulated_sources_from_the_stream_descs(tmp_path: Path) -> None:
    from eyemotion.acquisition.recorder import SOURCE_OF, _devices_from_headers

    assert set(SOURCE_OF.values()) == {"tracker", "camera", "microphone"}
    assert _devices_from_headers(tmp_path / "none.xdf") == []


def test_camera_probe_prints_nothing_on_stderr(tmp_path: Path) -> None:
    code = ("from eyemotion.acquisition.camera import list_cameras; import sys; "
            "print(len(list_cameras(4)), file=sys.stdout)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "[ERROR" not in proc.stderr and "out of range" not in proc.stderr


# -- Sec. 8: messages that say what is wrong -----------------------------------------------------------------

def _xdf(path: Path, *, gaze: bool) -> Path:
    import numpy as np
    from eyemotion.acquisition.replay import XdfWriter

    from eyemotion.streams import AUDIO, GAZE_RAW, stream_info

    with XdfWriter(path) as w:
        spec, rate = (GAZE_RAW, 250.0) if gaze else (AUDIO, None)
        w.add_stream(1, stream_info(spec, rate=rate, namespace="t").as_xml())
        t = 10 + np.arange(500) / 250
        w.write_samples(1, t, np.full((500, spec.channel_count), 0.5, np.float32 if not gaze else float))
    return path


def test_eyesignal_process_names_the_streams_it_has_and_needs(tmp_path: Path) -> None:
    xdf = _xdf(tmp_path / "audio.xdf", gaze=False)
    proc = cli("eyesignal", "process", str(xdf), cwd=tmp_path)
    assert proc.returncode == 2
    assert "has no Tobii_gaze stream (it has: eyemotion_audio); eyesignal process needs" in proc.stderr


def test_replay_says_start_is_after_end(tmp_path: Path) -> None:
    xdf = _xdf(tmp_path / "g.xdf", gaze=True)
    proc = cli("replay", str(xdf), "--start", "50", "--end", "10", cwd=tmp_path)
    assert proc.returncode == 2 and "--start 50 s is after --end 10 s" in proc.stderr
    from eyemotion.acquisition.replay import ReplayController

    with pytest.raises(UserError, match="start 1 s is not before its end 0.5 s"):
        ReplayController(xdf, start=1, end=0.5)


def test_a_bare_xdf_is_named_by_the_user_not_called_dot(tmp_path: Path, monkeypatch) -> None:
    _xdf(tmp_path / "g.xdf", gaze=True)
    proc = cli("export", "g.xdf", "--bids", "bids", cwd=tmp_path)
    assert proc.returncode == 2 and "g.xdf has no session.json" in proc.stderr
    assert "--participant P001 --session S01" in proc.stderr and "'.'" not in proc.stderr
    proc = cli("export", "g.xdf", "--bids", "bids", "--participant", "P009", "--session", "S02", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "bids" / "sub-P009" / "ses-S02" / "beh").is_dir()
    proc = cli("export", "g.xdf", "--bids", "bids2", "--participant", "P009", "--session", "../x", cwd=tmp_path)
    assert proc.returncode == 2 and "session id '../x' is not allowed" in proc.stderr
    from eyemotion.session import Session

    monkeypatch.chdir(tmp_path)
    assert Session.load("g.xdf").path == tmp_path.absolute()  # never Path("."), whose name is empty


def test_the_summary_reports_the_recorded_time_not_the_wall_time() -> None:
    from eyemotion.session_runner import format_summary

    text = format_summary({"reason": "duration reached", "wall_s": 62.4, "recorded_s": 30.6,
                           "simulated_sources": ["tracker"]})
    assert text.splitlines()[0] == "session ended: duration reached after 31 s recorded (62 s with the start-up)"
    assert "simulated sources: tracker" in text


def test_one_problem_and_one_clip_read_as_singulars(tmp_path: Path) -> None:
    from eyemotion.stimuli.democlips import ensure_demo_clips
    from eyemotion.stimuli.protocol import ProtocolError, load_protocol

    with pytest.raises(ProtocolError, match=r"has 1 problem; fix it and run again:"):
        load_protocol(missing_clip_protocol(tmp_path / "bad"))
    clips = ensure_demo_clips()
    one = tmp_path / "one"
    one.mkdir()
    (one / "conditions.csv").write_text("id,clip,emotion\nc1,happiness.mp4,happiness\n")
    (one / "p.toml").write_text(f'[protocol]\nconditions = "conditions.csv"\nclip_root = "{clips}"\n')
    proc = cli("stimuli", "check", str(one / "p.toml"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 clip, all readable" in proc.stdout


def test_generated_audio_and_a_video_file_camera_mark_their_desc_simulated(tmp_path: Path) -> None:
    import uuid

    import pylsl
    from eyemotion.acquisition.camera import CameraNode
    from eyemotion.acquisition.media import write_test_video
    from eyemotion.acquisition.microphone import GeneratedAudioNode

    from eyemotion.config import CameraConfig, LslConfig
    from eyemotion.streams import AUDIO, CAMERA

    ns = f"pf{uuid.uuid4().hex[:8]}"
    video = write_test_video(tmp_path / "v.mp4", 30, size=(160, 120))
    cfg = Config().replace(lsl=LslConfig(namespace=ns), camera=CameraConfig(source=str(video), loop=True))
    nodes = [GeneratedAudioNode(cfg), CameraNode(cfg)]
    try:
        for node, spec in zip(nodes, (AUDIO, CAMERA)):
            node.open()
            found = pylsl.resolve_bypred(f"name='{spec.name}' and contains(source_id,'#{ns}')", 1, 5.0)
            assert found, spec.name
            desc = pylsl.StreamInlet(found[0]).info(5.0).desc()
            assert desc.child("eyemotion").child_value("simulated") == "true", spec.name
    finally:
        for node in nodes:
            node.close()


def test_dataset_build_refuses_a_bare_xdf_whose_participant_is_unknown(tmp_path: Path) -> None:
    _xdf(tmp_path / "g.xdf", gaze=True)
    proc = cli("dataset", "build", "g.xdf", "ds", cwd=tmp_path)
    assert proc.returncode == 2 and "g.xdf is a bare recording without session.json" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "ds").exists()


def test_a_demo_that_fails_after_preflight_leaves_its_folder_marked_aborted(tmp_path: Path) -> None:
    """Xvfb missing from PATH: the failure comes after the session folder exists (as a node that never shows its
    stream would, only faster); the folder stays, marked aborted, so that its logs can be read."""
    import os
    import shutil

    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("ffprobe", "ffmpeg"):  # the protocol check probes the clips
        (tools / name).symlink_to(shutil.which(name))
    env = {**os.environ, "PATH": str(tools)}
    proc = subprocess.run([sys.executable, "-m", "eyemotion.cli", "demo", "--headless", "--sessions-dir",
                           str(tmp_path / "sessions")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2 and "needs Xvfb" in proc.stderr
    (folder,) = (tmp_path / "sessions" / "DEMO01").iterdir()
    assert f"{folder} is marked aborted" in proc.stderr
    assert read_session_json(folder)["aborted"]["reason"].startswith("a headless session needs Xvfb")
    assert (folder / "ABORTED.txt").exists() and not (folder / "recording.xdf").exists()
