"""A whole headless demo session: per-node CPU share and memory over time, lost samples, and the delay
from a gaze sample to the prediction that used it.

    .venv/bin/python bench/bench_session.py                 # 120 s session
    .venv/bin/python bench/bench_session.py --seconds 1800 --name soak  # the 30-minute soak (issue 9)

The runner plays the demo protocol's clips repeated (`soak_protocol`), so the session lasts the whole time.
Per node (the supervisor's children, from `<session>/pids/`), psutil samples CPU time and resident memory
every 2 s (the results keep the RSS every 30 s); memory growth compares the median of the last fifth of the
run with the median of the second fifth (after start-up). The gaze-to-prediction delay is each
`eyemotion_emotion` sample's push time minus the newest gaze sample its window used, as the live inference
node records it in its `inference_latency` markers (the session summary's `gaze_to_prediction_ms`).
Writes bench/results/session.json (or NAME.json); `eyemotion bench` runs the 120-s session, the soak is run by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent


def sample_nodes(folder: Path, usage: dict[str, list[tuple[float, float, float]]]) -> None:
    """Add (time, cpu seconds, rss MB) for every running child named in <session>/pids/."""
    pids = folder / "pids"
    if not pids.is_dir():
        return
    now = time.monotonic()
    for f in pids.iterdir():
        try:
            proc = psutil.Process(int(f.read_text()))
            with proc.oneshot():
                cpu = proc.cpu_times()
                rss = proc.memory_info().rss / 1e6
            children = proc.children(recursive=True)  # e.g. LabRecorderCLI under the recorder
            for child in children:
                try:
                    c = child.cpu_times()
                    cpu = type(cpu)(cpu.user + c.user, cpu.system + c.system, *cpu[2:])
                    rss += child.memory_info().rss / 1e6
                except psutil.Error:
                    pass
        except (psutil.Error, ValueError, OSError):
            continue
        usage.setdefault(f.name, []).append((now, cpu.user + cpu.system, rss))


def summarise_usage(usage: dict[str, list[tuple[float, float, float]]]) -> dict:
    out = {}
    for name, rows in usage.items():
        arr = np.array(rows)
        if len(arr) < 5:
            continue
        t, cpu, rss = arr[:, 0], arr[:, 1], arr[:, 2]
        n = len(arr)
        early = np.median(rss[n // 5: 2 * n // 5])
        late = np.median(rss[4 * n // 5:])
        out[name] = {"cpu_percent": round(100 * (cpu[-1] - cpu[0]) / (t[-1] - t[0]), 1),
                     "rss_mb_early": round(float(early), 1), "rss_mb_late": round(float(late), 1),
                     "rss_growth_pct": round(100 * (late - early) / early, 2),
                     "rss_mb_every_30s": [round(float(v), 1) for v in rss[::15]]}
    return out


def soak_protocol(work: Path, seconds: float) -> Path:
    """The demo protocol with its seven clips repeated, so that the runner outlasts `seconds` (a demo trial
    takes about 13 s: baseline, 6-s clip, auto-answered ratings, blank)."""
    demo = ROOT / "stimuli" / "demo"
    repeats = max(1, math.ceil(seconds / 45))
    rows = (demo / "demo_conditions.csv").read_text().splitlines()
    header, clips = rows[0], [r for r in rows[1:] if r.strip()]
    lines = [header] + [f"{r.split(',', 1)[0]}_{k:03d},{r.split(',', 1)[1]}" for k in range(repeats) for r in clips]
    (work / "demo_conditions.csv").write_text("\n".join(lines) + "\n")
    protocol = work / "soak.toml"
    protocol.write_text((demo / "demo.toml").read_text().replace('name = "eyemotion-demo"', 'name = "eyemotion-soak"'))
    return protocol


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--name", default="session", help="results file bench/results/NAME.json (the soak: 'soak')")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eyemotion-bench-session-"))
    cmd = [sys.executable, "-m", "eyemotion.cli", "demo", "--headless", "--duration", str(args.seconds),
           "--sessions-dir", str(work / "sessions"), "--protocol", str(soak_protocol(work, args.seconds))]
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    usage: dict[str, list] = {}
    folder = None
    while proc.poll() is None:
        if folder is None:
            found = sorted((work / "sessions").glob("*/*"))
            folder = found[-1] if found else None
        if folder is not None:
            sample_nodes(folder, usage)
        time.sleep(2.0)
    output = proc.stdout.read()
    (work / "demo-output.txt").write_text(output)
    if proc.returncode != 0 or folder is None:
        print(output[-3000:])
    if folder is None:
        return 1
    summary = json.loads((folder / "session_summary.json").read_text()) if (folder / "session_summary.json").exists() \
        else {}
    nodes = summarise_usage(usage)
    result = {
        "seconds": args.seconds,
        "demo_exit_code": proc.returncode,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "nodes": nodes,
        "cpu_percent_by_node": {n: v["cpu_percent"] for n, v in nodes.items()},
        "rss_growth_pct_max": max((v["rss_growth_pct"] for v in nodes.values()), default=None),
        "lost_samples": summary.get("session", {}).get("checks", {}).get("lost_samples"),
        "predictions": summary.get("session", {}).get("predictions"),
        "gaze_to_prediction_ms": summary.get("session", {}).get("gaze_to_prediction_ms"),
        "session": str(folder),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    print(f"headless demo session of {args.seconds:g} s (exit {proc.returncode}), load average "
          f"{result['load_avg_1min']}")
    print(f"{'node':12s} {'CPU % of a core':>16s} {'RSS MB early':>13s} {'late':>8s} {'growth %':>9s}")
    for name, v in sorted(nodes.items()):
        print(f"{name:12s} {v['cpu_percent']:16.1f} {v['rss_mb_early']:13.1f} {v['rss_mb_late']:8.1f} "
              f"{v['rss_growth_pct']:9.2f}")
    print(f"lost samples: {result['lost_samples']}   predictions: {result['predictions']}")
    print(f"gaze sample -> prediction delay (ms): {result['gaze_to_prediction_ms']}")
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
