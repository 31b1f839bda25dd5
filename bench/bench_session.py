"""A whole headless demo session: per-node CPU share and memory over time, lost samples, and the delay
from a gaze sample to the prediction that used it.

    .venv/bin/python bench/bench_session.py                 # 120 s session
    .venv/bin/python bench/bench_session.py --seconds 1800  # the 30-minute soak (issue 9)

Per node (the supervisor's children, from `<session>/pids/`), psutil samples CPU time and resident memory
every 2 s; memory growth compares the median of the last fifth of the run with the median of the second
fifth (after start-up). The gaze-to-prediction delay is the `eyemotion_emotion` sample's push time minus the
newest gaze sample its window used, as the live inference node reports it in its `latency` markers when it
does; otherwise the emotion stamps against the newest eyemotion_gaze stamp recorded before them.
Writes bench/results/session.json.
"""

from __future__ import annotations

import argparse
import json
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
                     "rss_growth_pct": round(100 * (late - early) / early, 2)}
    return out


def gaze_to_prediction_ms(folder: Path) -> dict:
    from eyemotion.session import Session

    s = Session.load(folder, dejitter=False, streams=["eyemotion_gaze", "eyemotion_emotion", "eyemotion_markers"])
    reported = [m.fields.get("delay_s") for m in s.markers.events("inference_latency")]
    delays = [float(d) * 1e3 for d in reported if isinstance(d, (int, float))]
    source = "inference_latency markers"
    if not delays and "eyemotion_emotion" in s.streams and "eyemotion_gaze" in s.streams:
        gaze_t = s.stream("eyemotion_gaze").time_stamps
        emo_t = s.stream("eyemotion_emotion").time_stamps
        idx = np.searchsorted(gaze_t, emo_t) - 1
        ok = idx >= 0
        delays = list((emo_t[ok] - gaze_t[idx[ok]]) * 1e3)
        source = "emotion stamp minus newest recorded gaze stamp"
    if not delays:
        return {"source": "none: no predictions"}
    d = np.asarray(delays)
    return {"source": source, "n": len(d), "p50": round(float(np.percentile(d, 50)), 1),
            "p95": round(float(np.percentile(d, 95)), 1), "max": round(float(d.max()), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eyemotion-bench-session-"))
    cmd = [sys.executable, "-m", "eyemotion.cli", "demo", "--headless", "--duration", str(args.seconds),
           "--sessions-dir", str(work / "sessions")]
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
    if folder is None:
        print(output[-3000:])
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
        "gaze_to_prediction_ms": gaze_to_prediction_ms(folder),
        "session": str(folder),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "session.json").write_text(json.dumps(result, indent=2))
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
