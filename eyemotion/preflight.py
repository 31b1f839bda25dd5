"""Preflight of `eyemotion run` and `eyemotion demo`: everything a session needs, checked before any node starts.

Checked: the participant id, the protocol (the `stimuli check` validation: every clip readable), free disk
under the sessions folder (`[recorder] min_free_gb`), and each real source: the tracker is found (TittaPy),
the camera opens (or its video file exists), the microphone is present and takes the rate. Simulated sources
are not probed. All problems are reported at once, in the `stimuli check` format (issue 13, Sec. 3).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from eyemotion import UserError, plural
from eyemotion.config import Config


class PreflightError(UserError):
    """A session that cannot start; the message lists every problem, one per line after a summary line."""


def problems_message(subject: str, problems: list[str]) -> str:
    """`<subject> has N problem(s); fix them and run again:` and the problems, one per line (as `stimuli check`)."""
    lines = "\n".join(f"  - {p}" for p in problems)
    return (f"{subject} has {plural(len(problems), 'problem')}; fix {'it' if len(problems) == 1 else 'them'} "
            f"and run again:\n{lines}")


def free_gb(root: Path) -> float:
    """Free space (GB) of the file system that holds `root` (or its nearest existing parent)."""
    probe = Path(root).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free / 1e9


def check_devices(config: Config, simulated: list[str]) -> list[str]:
    """One problem per source that cannot be used (the `eyemotion devices` probes): each real device, and a video
    file named as `[camera] source`; the simulator and the generated demo media need no check."""
    problems = []
    if "tracker" not in simulated:
        try:
            from eyemotion.acquisition.tobii import find_trackers, select_tracker

            select_tracker(find_trackers(), config.tracker.address, config.tracker.serial)
        except ImportError as exc:
            problems.append(f"tracker: the Tobii SDK (TittaPy) is not available ({exc}); install it, or pass "
                            "--simulate for a simulated session")
        except UserError as exc:
            problems.append(f"tracker: {exc}")
    if "camera" not in simulated or config.camera.source != "0":  # a video file named in the config must open
        try:
            from eyemotion.acquisition.camera import CameraSource, open_capture, quiet_stderr

            source = CameraSource.parse(config.camera.source)
            with quiet_stderr():
                open_capture(source, config).release()
        except ImportError as exc:
            problems.append(f"camera: OpenCV is not available ({exc}); install it (setup.sh does)")
        except UserError as exc:
            problems.append(f"camera: {exc}")
    if "microphone" not in simulated:
        try:
            from eyemotion.acquisition.microphone import check_rate, find_microphone

            check_rate(find_microphone(config.microphone.device), config.microphone.samplerate)
        except (ImportError, OSError) as exc:
            problems.append(f"microphone: PortAudio is not available ({exc}); install it (setup.sh does), "
                            "or pass --simulate")
        except UserError as exc:
            problems.append(f"microphone: {exc}")
    return problems


def preflight(config: Config, *, participant: str, protocol: str, sessions_root: Path,
              simulated: list[str], devices: bool = True) -> None:
    """Raise PreflightError listing every problem that would stop the session; return when all is well."""
    from eyemotion.session import check_participant_id
    from eyemotion.stimuli.commands import protocol_path
    from eyemotion.stimuli.protocol import ProtocolError, load_protocol

    problems: list[str] = []
    try:
        check_participant_id(participant)
    except UserError as exc:
        problems.append(str(exc))
    try:
        load_protocol(protocol_path(protocol))
    except ProtocolError as exc:  # its own problems, one per line after a summary line
        head, *rest = str(exc).splitlines()
        problems += [line.strip()[2:] for line in rest if line.strip().startswith("- ")] or [head]
    except UserError as exc:
        problems.append(str(exc))
    free = free_gb(sessions_root)
    if free < config.recorder.min_free_gb:
        problems.append(f"only {free:.2f} GB free under {sessions_root} ([recorder] min_free_gb = "
                        f"{config.recorder.min_free_gb:g}); free some space or choose another --sessions-dir")
    if devices:
        problems += check_devices(config, simulated)
    if problems:
        raise PreflightError(problems_message("the session", problems))
