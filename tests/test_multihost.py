"""Two lab PCs on one LAN, played by two Linux network namespaces (issue 9, item 3; see docs/multi_pc.md).

The "tracker PC" (namespace A, its own hostname) runs `eyemotion node tracker --simulate`; the "recording
PC" (namespace B) runs a decoy tracker of its own and `eyemotion record` with `[lsl] hostname` set to the
tracker PC. A veth pair joins the two namespaces on a private /24 made up here; nothing else is
reachable from either, so no packet leaves them. Each side's liblsl gets an `lsl_api.cfg` (through
`LSLAPICFG`) with `ResolveScope = site` and the other side's address in `KnownPeers`, as on a lab LAN
where multicast is filtered. The test checks that the recording holds the tracker PC's gaze (hostname,
every sample without a hole), not the decoy's.

Needs root (CAP_NET_ADMIN for `ip netns`, CAP_SYS_ADMIN for `unshare --uts`); skipped otherwise.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from eyemotion.config import LslConfig, config_from_dict
from eyemotion.session import Session

pytestmark = pytest.mark.timeout(240)

TRACKER_HOST = "trackerpc-test"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)


@pytest.fixture
def two_hosts():
    """Namespaces A and B joined by a veth pair: (name_a, addr_a, name_b, addr_b)."""
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.skip("needs iproute2 (`ip`) and util-linux (`unshare`)")
    tag = uuid.uuid4().hex[:6]
    a, b = f"emA{tag}", f"emB{tag}"
    subnet = f"10.231.{random.randrange(1, 254)}"
    probe = _run("ip", "netns", "add", a)
    if probe.returncode != 0:
        pytest.skip(f"`ip netns add` is not permitted here (needs CAP_NET_ADMIN): {probe.stderr.strip()}")
    try:
        steps = [("ip", "netns", "add", b),
                 ("ip", "link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}"),
                 ("ip", "link", "set", f"va{tag}", "netns", a), ("ip", "link", "set", f"vb{tag}", "netns", b),
                 ("ip", "-n", a, "addr", "add", f"{subnet}.1/24", "dev", f"va{tag}"),
                 ("ip", "-n", b, "addr", "add", f"{subnet}.2/24", "dev", f"vb{tag}")]
        steps += [("ip", "-n", ns, "link", "set", dev, "up")
                  for ns, dev in ((a, f"va{tag}"), (b, f"vb{tag}"), (a, "lo"), (b, "lo"))]
        for step in steps:
            done = _run(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot build the two-host network ({' '.join(step)}): {done.stderr.strip()}")
        uts = _run("ip", "netns", "exec", a, "unshare", "--uts", "true")
        if uts.returncode != 0:
            pytest.skip(f"`unshare --uts` is not permitted (needs CAP_SYS_ADMIN): {uts.stderr.strip()}")
        yield a, f"{subnet}.1", b, f"{subnet}.2"
    finally:
        for ns in (a, b):
            _run("ip", "netns", "del", ns)  # deleting a namespace deletes its end of the veth pair too


def _host_files(folder: Path, namespace: str, peer: str, hostname: str) -> dict[str, str]:
    """eyemotion.toml + lsl_api.cfg of one host; the environment that points liblsl at the latter."""
    folder.mkdir(parents=True, exist_ok=True)
    config = config_from_dict({})
    config = config.replace(lsl=LslConfig(namespace=namespace, scope="site", hostname=hostname))
    (folder / "eyemotion.toml").write_text(config.to_toml())
    (folder / "lsl_api.cfg").write_text(
        "[multicast]\nResolveScope = site\n\n[ports]\nIPv6 = disable\n\n"
        f"[lab]\nKnownPeers = {{{peer}}}\n\n[log]\nlevel = -2\n")
    return {**os.environ, "LSLAPICFG": str(folder / "lsl_api.cfg")}


def _in_host(netns: str, hostname: str | None, argv: list[str]) -> list[str]:
    """argv run inside `netns`, with its own hostname when given (a UTS namespace)."""
    if hostname is None:
        return ["ip", "netns", "exec", netns, *argv]
    script = f'hostname {hostname} && exec "$@"'
    return ["ip", "netns", "exec", netns, "unshare", "--uts", "sh", "-c", script, "sh", *argv]


def _cli(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "eyemotion.cli", "--config", str(folder / "eyemotion.toml"), *args]


def _wait_running(log: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while "running" not in log.read_text(errors="replace"):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


def test_a_recorder_on_one_host_records_the_tracker_of_another(two_hosts, tmp_path):
    ns_a, addr_a, ns_b, addr_b = two_hosts
    namespace = f"t{os.getpid()}x{uuid.uuid4().hex[:8]}"
    tracker_pc, recording_pc = tmp_path / "tracker-pc", tmp_path / "recording-pc"
    env_a = _host_files(tracker_pc, namespace, peer=addr_b, hostname="")
    env_b = _host_files(recording_pc, namespace, peer=addr_a, hostname=TRACKER_HOST)
    procs: list[subprocess.Popen] = []
    try:
        for folder, netns, host, env in ((tracker_pc, ns_a, TRACKER_HOST, env_a), (recording_pc, ns_b, None, env_b)):
            log = folder / "tracker.log"
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(_in_host(netns, host, _cli(folder, "node", "tracker", "--simulate")),
                                              stdout=out, stderr=subprocess.STDOUT, env=env))
            _wait_running(log, procs[-1])
        record = subprocess.run(
            _in_host(ns_b, None, _cli(recording_pc, "record", "--participant", "P001", "--consent-by", "test", "--seconds", "6",
                                      "--sessions-dir", str(recording_pc / "sessions"), "--require", "Tobii_gaze")),
            capture_output=True, text=True, env=env_b, timeout=150, check=False)
        assert record.returncode == 0, record.stdout[-2000:] + record.stderr[-3000:]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    folder = next((recording_pc / "sessions" / "P001").iterdir())
    session = Session.load(folder, dejitter=False)
    gazes = [s for s in session.streams.values() if s.name == "Tobii_gaze"]
    assert [g.hostname for g in gazes] == [TRACKER_HOST]  # the tracker PC's, not the decoy on this host
    gaze = gazes[0]
    assert gaze.source_id.endswith(f"#{namespace}")
    assert len(gaze) > 3 * gaze.nominal_srate
    assert np.all(np.diff(gaze.channel("device_time_stamp")) < 1.5 / gaze.nominal_srate)  # no hole
    assert session.meta["lsl"]["hostname"] == TRACKER_HOST and session.meta["lsl"]["scope"] == "site"
