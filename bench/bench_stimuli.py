"""Benchmark: frame intervals and dropped frames during clip playback at each clip's native rate.

Runs the real stimulus runner (PsychoPy window, MovieStim, separate clip audio on an ALSA null device)
over the demo protocol with `--auto-respond`, with the simulated eye tracker publishing Tobii_gaze at
250 Hz in the same process tree. Without $DISPLAY an Xvfb server is started (no vsync there: the runner
paces flips at [stimuli] refresh_hz, 60 Hz).

    .venv/bin/python bench/bench_stimuli.py [--size 1280x720] [--clips N]

Prints per-clip and overall figures and writes them to bench/results/stimuli.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def start_xvfb(size: tuple[int, int]) -> subprocess.Popen | None:
    if os.environ.get("DISPLAY"):
        return None
    for n in range(150, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    proc = subprocess.Popen([shutil.which("Xvfb") or "Xvfb", f":{n}", "-screen", "0", f"{size[0]}x{size[1]}x24",
                             "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if time.monotonic() > deadline:
            raise SystemExit("Xvfb did not start")
        time.sleep(0.05)
    os.environ["DISPLAY"] = f":{n}"
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720", help="window (and Xvfb screen) size")
    ap.add_argument("--clips", type=int, default=7, help="how many demo clips to play (1-7)")
    ap.add_argument("--rate", type=float, default=250.0, help="simulated tracker rate (Hz)")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    from eyemotion.stimuli.runner import limit_malloc_arenas

    limit_malloc_arenas()  # as `eyemotion stimuli run` does, before any thread starts
    from eyemotion.stimuli.audio import use_null_audio

    from eyemotion.streams import configure_lsl

    configure_lsl("machine")
    use_null_audio()
    xvfb = start_xvfb(size)
    import psutil
    from eyemotion.acquisition.simulator import SimulatedTracker
    from eyemotion.stimuli.democlips import ensure_demo_clips
    from eyemotion.stimuli.protocol import load_protocol
    from eyemotion.stimuli.runner import Runner, RunOptions
    from eyemotion.stimuli.timing import frame_stats

    from eyemotion.config import config_from_dict

    clips = ensure_demo_clips()
    work = Path(tempfile.mkdtemp(prefix="eyemotion-bench-stimuli-"))
    emotions = ["neutral", "happiness", "sadness", "anger", "disgust", "fear", "surprise"][:args.clips]
    (work / "c.csv").write_text("clip,emotion\n" + "".join(f"{e}.mp4,{e}\n" for e in emotions))
    (work / "p.toml").write_text(f'[protocol]\nconditions = "c.csv"\nclip_root = "{clips}"\n'
                                 "[durations]\nbaseline_s = 1.0\niti_s = 0.5\n[calibration]\nenabled = false\n"
                                 '[randomisation]\norder = "fixed"\n')
    ns = f"bench{os.getpid()}"
    config = config_from_dict({"lsl": {"namespace": ns}, "recorder": {"sessions_dir": str(work / "sessions")},
                               "tracker": {"frequency": args.rate}, "stimuli": {"tracker_timeout_s": 10.0}})
    tracker = SimulatedTracker(config)
    t_thread = threading.Thread(target=tracker.run, kwargs={"handle_signals": False}, daemon=True)
    t_thread.start()
    protocol = load_protocol(work / "p.toml")
    runner = Runner(protocol, config, RunOptions("P001", auto_respond=True, fullscreen=False, window_size=size))
    proc = psutil.Process()
    cpu0, wall0 = proc.cpu_times(), time.monotonic()
    try:
        outcome = runner.run()
    finally:
        tracker.request_stop()
        t_thread.join(5)
        if xvfb is not None:
            xvfb.terminate()
    cpu1, wall1 = proc.cpu_times(), time.monotonic()
    from eyemotion.stimuli.trials import read_trials

    records = read_trials(outcome.folder)
    per_clip, all_intervals = [], []
    print(f"clip playback, window {size[0]}x{size[1]}, refresh {runner.refresh_hz:g} Hz "
          f"({'paced, no vsync' if runner.pacer.active else 'vsync'}), tracker {args.rate:g} Hz")
    print(f"{'clip':<12}{'fps':>5}{'flips':>7}{'mean ms':>9}{'sd ms':>7}{'p95 ms':>8}{'max ms':>8}{'dropped':>9}"
          f"{'frames':>10}{'dur err ms':>12}{'audio lag ms':>14}")
    for rec in records:
        flips = runner.clip_flips[rec.trial] + [rec.clip_offset_lsl]
        iv = np.diff(flips) * 1000
        all_intervals += iv.tolist()
        st = frame_stats(flips, runner.refresh_hz)
        row = {"clip": rec.clip_id, "fps": rec.clip_fps, "flips": st["n_flips"], "mean_ms": st["mean_ms"],
               "sd_ms": st["sd_ms"], "p95_ms": float(np.percentile(iv, 95)), "max_ms": st["max_ms"],
               "dropped": st["dropped"], "frames_shown": rec.clip_frames_shown, "frames_total": rec.clip_frames,
               "duration_error_ms": 1000 * (rec.clip_measured_s - rec.clip_duration_s),
               "audio_lag_ms": rec.audio_lag_ms}
        per_clip.append(row)
        print(f"{row['clip']:<12}{row['fps']:>5g}{row['flips']:>7}{row['mean_ms']:>9.2f}{row['sd_ms']:>7.2f}"
              f"{row['p95_ms']:>8.2f}{row['max_ms']:>8.2f}{row['dropped']:>9}"
              f"{row['frames_shown']:>5}/{row['frames_total']:<4}{row['duration_error_ms']:>12.1f}"
              f"{row['audio_lag_ms']:>14.2f}")
    iv = np.asarray(all_intervals)
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (wall1 - wall0)
    summary = {
        "window": list(size), "refresh_hz": runner.refresh_hz, "paced": runner.pacer.active,
        "tracker_rate_hz": args.rate, "clips": len(records),
        "frame_interval_ms": {"mean": float(iv.mean()), "p50": float(np.percentile(iv, 50)),
                              "p95": float(np.percentile(iv, 95)), "p99": float(np.percentile(iv, 99)),
                              "max": float(iv.max())},
        "dropped_frames": int(sum(r["dropped"] for r in per_clip)),
        "flips": int(sum(r["flips"] for r in per_clip)),
        "clip_frames_shown_pct": 100.0 * sum(r["frames_shown"] for r in per_clip) / sum(r["frames_total"] for r in per_clip),
        "duration_error_ms_max_abs": float(max(abs(r["duration_error_ms"]) for r in per_clip)),
        "audio_lag_ms_mean": float(np.nanmean([r["audio_lag_ms"] for r in per_clip])),
        "cpu_share_of_one_core": cpu, "rss_mb": proc.memory_info().rss / 2**20,
        "load_avg_1min": os.getloadavg()[0], "per_clip": per_clip,
    }
    f = summary["frame_interval_ms"]
    print(f"overall: interval mean {f['mean']:.2f} ms, p50 {f['p50']:.2f}, p95 {f['p95']:.2f}, p99 {f['p99']:.2f}, "
          f"max {f['max']:.2f}; dropped {summary['dropped_frames']} of {summary['flips']} flips; clip frames shown "
          f"{summary['clip_frames_shown_pct']:.1f} %; |duration error| <= {summary['duration_error_ms_max_abs']:.1f} ms; "
          f"audio lag {summary['audio_lag_ms_mean']:.2f} ms")
    print(f"runner process: CPU {100 * cpu:.0f} % of one core, RSS {summary['rss_mb']:.0f} MB; "
          f"machine load (1 min) {summary['load_avg_1min']:.2f} on {os.cpu_count()} cores")
    out = ROOT / "bench" / "results" / "stimuli.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"written {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
