"""`eyemotion bench`: run every benchmark in `bench/` and write one report.

Each `bench/bench_<name>.py` prints its figures and writes `bench/results/<name>.json`. This command runs
them one after the other (never in parallel: they measure CPU shares), then collects the headline figures
into `bench/results.json` and a readable table, `bench/RESULTS.md`, which the README shows.
Timings depend on the machine and its load; the table records both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eyemotion import UserError
from eyemotion.config import Config

#: (benchmark, label, path in its JSON, unit, goal as text)
HEADLINES: tuple[tuple[str, str, str, str, str], ...] = (
    ("sources", "sources: total CPU (tracker 250 Hz + camera 30 fps + mic 16 kHz)",
     "total_cpu_percent_of_one_core", "% of a core", "< 25"),
    ("sources", "LSL push-to-receive latency p50 / p99", ("push_to_receive_probe.latency.p50_ms|"
     "push_to_receive_probe.latency.p99_ms"), "ms", ""),
    ("session", "per-node CPU (headless demo session)", "cpu_percent_by_node", "% of a core", ""),
    ("session", "end-to-end delay gaze sample -> prediction p50 / p95", ("gaze_to_prediction_ms.p50|"
     "gaze_to_prediction_ms.p95"), "ms", ""),
    ("session", "memory growth per node over the session (max)", "rss_growth_pct_max", "%", "< 5"),
    ("soak", "30-min soak: session length / memory growth per node (max)", "seconds|rss_growth_pct_max", "s / %",
     "- / < 5"),
    ("soak", "30-min soak: per-node CPU", "cpu_percent_by_node", "% of a core", ""),
    ("soak", "30-min soak: lost samples (gaze, camera, audio)", ("lost_samples.Tobii_gaze|lost_samples.eyemotion_camera|"
     "lost_samples.eyemotion_audio"), "samples", "0"),
    ("soak", "30-min soak: gaze sample -> prediction p50 / p95", ("gaze_to_prediction_ms.p50|"
     "gaze_to_prediction_ms.p95"), "ms", ""),
    ("eyesignal", "eye-signal throughput, streaming 40 ms chunks (1 h at 250 Hz)", "x_realtime_cpu",
     "x real time", ">= 1000"),
    ("eyesignal", "eye-signal offline throughput", "offline_x_realtime", "x real time", ""),
    ("eyesignal", "pymovements I-VT time / our I-VT time", "ratio_pymovements_over_our_ivt", "ratio", "> 1"),
    ("features", "all features at live rates", "features_total_cpu_share_live", "share of a core", "< 0.30"),
    ("features", "face pipeline on 640x480", "face_pipeline.fps", "fps", ">= 15"),
    ("models", "EMERT latency p99", "models.emert.p99_ms", "ms", "<= 10"),
    ("models", "crossmodal (visual / audio / joint) latency p99", ("models.crossmodal-visual.p99_ms|"
     "models.crossmodal-audio.p99_ms|models.crossmodal-joint.p99_ms"), "ms", "<= 2"),
    ("inference", "live inference: window end -> prediction pushed p50 / p95",
     "delay_window_end_to_push.p50_ms|delay_window_end_to_push.p95_ms", "ms", ""),
    ("inference", "live inference: compute per window p50 / p99",
     "node_compute_per_window.p50_ms|node_compute_per_window.p99_ms", "ms", ""),
    ("sessions", "replay speed at maximum", "replay_x_realtime", "x real time", "> 20"),
    ("sessions", "replay memory first / last 10 %", "replay_rss_first_10pct_mb|replay_rss_last_10pct_mb", "MB",
     "flat"),
    ("sessions", "Session.load per recorded hour (wall / CPU)", "load_s_per_hour|load_cpu_s_per_hour", "s",
     "< 10"),
    ("sessions", "recorder CPU", "recorder_cpu_percent_of_one_core", "% of a core", ""),
    ("dashboard", "dashboard redraw rate", "redraw_passes_per_s", "fps", ">= 30"),
    ("dashboard", "dashboard CPU", "cpu_share_of_one_core", "share of a core", "< 0.30"),
    ("dashboard", "dashboard memory growth, second half", "rss_growth_second_half_mb", "MB", "~0"),
    ("stimuli", "clip playback frame interval p50 / p95", "frame_interval_ms.p50|frame_interval_ms.p95", "ms", ""),
    ("stimuli", "dropped frames during clip playback", "dropped_frames", "frames", "0"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="run every benchmark in bench/ and write bench/results.json + bench/RESULTS.md",
        description="Run the benchmarks of bench/ one at a time (they measure CPU shares), then collect their "
                    "headline figures into bench/results.json and the table bench/RESULTS.md. Needs a source "
                    "checkout. Takes roughly 15-25 minutes on 2 cores.")
    p.add_argument("--only", metavar="NAMES", help="comma-separated benchmarks to run (e.g. sources,models)")
    p.add_argument("--collect", action="store_true", help="do not run anything; rebuild the report from the "
                                                          "existing bench/results/*.json")
    p.set_defaults(func=cmd_bench)


def bench_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "bench"
    if not here.is_dir():
        raise UserError("eyemotion bench needs a source checkout (the bench/ folder beside eyemotion/); "
                        "run it from a clone of the repository")
    return here


def _get(data: dict, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def collect(results: Path) -> dict:
    """Headline figures from `bench/results/*.json` (missing benchmarks give '-')."""
    loaded = {}
    for f in sorted(results.glob("*.json")):
        try:
            loaded[f.stem] = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{f} is not valid JSON ({exc}); re-run that benchmark") from None
    rows = []
    for bench, label, paths, unit, goal in HEADLINES:
        data = loaded.get(bench, {})
        values = [_get(data, p) for p in paths.split("|")]
        rows.append({"benchmark": bench, "figure": label, "value": " / ".join(_fmt(v) for v in values),
                     "unit": unit, "goal": goal})
    return {"created": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2)},
            "headlines": rows, "benchmarks": loaded}


def to_markdown(report: dict) -> str:
    m = report["machine"]
    what = (f"Collected on {report['created']} from each benchmark's latest bench/results/*.json (measured at "
            "different times; nothing was rerun)" if report.get("collected_only") else f"Benchmarks of {report['created']}")
    lines = [(f"{what} on {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, "
             f"load average {m['load_avg_1min']} when collected. Regenerate with `.venv/bin/eyemotion bench`."),
             "", "| figure | value | unit | goal |", "|---|---|---|---|"]
    lines += [f"| {r['figure']} | {r['value']} | {r['unit']} | {r['goal']} |" for r in report["headlines"]]
    return "\n".join(lines) + "\n"


def cmd_bench(args: argparse.Namespace, config: Config) -> int:
    from tqdm import tqdm

    folder = bench_dir()
    results = folder / "results"
    results.mkdir(exist_ok=True)
    scripts = sorted(folder.glob("bench_*.py"))
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - {s.stem.removeprefix("bench_") for s in scripts}
        if unknown:
            raise UserError(f"unknown benchmark(s) {', '.join(sorted(unknown))}; available: "
                            f"{', '.join(s.stem.removeprefix('bench_') for s in scripts)}")
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    failed = []
    if not args.collect:
        for script in tqdm(scripts, desc="benchmarks", unit="bench"):
            start = time.monotonic()
            proc = subprocess.run([sys.executable, str(script)], cwd=folder.parent, capture_output=True, text=True,
                                  check=False)
            tqdm.write(f"{script.stem}: exit {proc.returncode} after {time.monotonic() - start:.0f} s")
            if proc.returncode != 0:
                failed.append(script.stem)
                tqdm.write((proc.stdout + proc.stderr)[-2000:])
    report = collect(results)
    report["collected_only"] = bool(args.collect)
    (folder / "results.json").write_text(json.dumps(report, indent=2, default=str))
    table = to_markdown(report)
    (folder / "RESULTS.md").write_text(table)
    print(table)
    if failed:
        raise UserError(f"benchmarks failed: {', '.join(failed)} (their output is above)")
    return 0
