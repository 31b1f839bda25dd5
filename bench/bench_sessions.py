"""Sessions benchmark: replay throughput and memory on a long file, `Session.load` time per recorded hour,
and LabRecorder's CPU share while recording live streams.

    .venv/bin/python bench/bench_sessions.py                 # 1 h synthetic session, 20 s live recording
    .venv/bin/python bench/bench_sessions.py --hours 2       # a 2-hour file (about 2 GB in /tmp)
    .venv/bin/python bench/bench_sessions.py --record-s 60

The long session is written with eyemotion's XdfWriter the way LabRecorder lays a file out (0.5 s chunks
per stream, clock offsets with microsecond jitter every 5 s, boundary chunks every 10 s): Tobii_gaze 250 Hz (37 ch), audio
16 kHz, camera indices 30 Hz, a marker every 2 s. Replay runs at maximum speed (no pacing) with every
outlet live; its memory is sampled as it goes. Goals: replay > 20x real time with flat memory, loading
one hour in < 10 s. Prints the figures and writes bench/results/sessions.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent

from eyemotion.streams import configure_lsl

configure_lsl("machine")

import pylsl
from eyemotion.acquisition.replay import ReplayController, XdfWriter

from eyemotion.streams import AUDIO, CAMERA, GAZE_RAW, MARKERS, stream_info


def write_long_session(path: Path, hours: float) -> dict[str, int]:
    rng = np.random.default_rng(0)
    gaze_block = rng.normal(size=(125, 37))
    audio_block = rng.normal(size=(8000, 1)).astype(np.float32) * 0.05
    counts = {"gaze": 0, "audio": 0, "camera": 0, "markers": 0}
    t0 = 10_000.0
    with XdfWriter(path) as w:
        w.add_stream(1, stream_info(GAZE_RAW, rate=250, namespace="bench").as_xml())
        w.add_stream(2, stream_info(AUDIO, namespace="bench").as_xml())
        w.add_stream(3, stream_info(CAMERA, rate=30, namespace="bench").as_xml())
        w.add_stream(4, stream_info(MARKERS, namespace="bench").as_xml())
        for k in range(int(hours * 3600 * 2)):
            t = t0 + k * 0.5
            w.write_samples(1, t + np.arange(125) / 250, gaze_block)
            w.write_samples(2, t + np.arange(8000) / 16000, audio_block)
            w.write_samples(3, t + np.arange(15) / 30, np.arange(counts["camera"], counts["camera"] + 15)[:, None])
            counts["gaze"] += 125
            counts["audio"] += 8000
            counts["camera"] += 15
            if k % 4 == 0:
                w.write_samples(4, [t + 0.1], [[json.dumps({"event": "tick", "source": "bench", "k": k})]])
                counts["markers"] += 1
            if k % 10 == 0:
                for sid in (1, 2, 3, 4):  # measured offsets jitter by microseconds, as LabRecorder's do
                    w.write_clock_offset(sid, t, 1e-6 + rng.normal(0, 5e-6))
            if k % 20 == 0:
                w.write_boundary()
    return counts


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def bench_load(path: Path, hours: float) -> dict[str, float]:
    from eyemotion.session import Session

    before = rss_mb()
    start, cpu0 = time.perf_counter(), time.process_time()
    session = Session.load(path)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    samples = sum(len(s) for s in session.streams.values())
    peak = rss_mb()
    del session
    return {"load_s": round(elapsed, 2), "load_s_per_hour": round(elapsed / hours, 2),
            "load_cpu_s_per_hour": round(cpu / hours, 2), "samples": samples,
            "load_rss_mb": round(peak - before, 1)}


def bench_replay(path: Path, hours: float) -> dict[str, float]:
    replay = ReplayController(path, namespace=f"bench{uuid.uuid4().hex[:6]}", speed=float("inf"))
    replay.open()
    samples: list[float] = []
    done = threading.Event()

    def sample_memory() -> None:
        while not done.wait(0.5):
            samples.append(rss_mb())

    threading.Thread(target=sample_memory, daemon=True).start()
    cpu0 = time.process_time()
    start = time.perf_counter()
    replay.start()
    replay.wait()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    done.set()
    pushed = sum(replay.stats.pushed.values())
    replay.close()
    q = len(samples) // 10 or 1
    early, late = np.median(samples[:q]), np.median(samples[-q:])
    return {"replay_s": round(elapsed, 1), "replay_x_realtime": round(hours * 3600 / elapsed, 1),
            "replay_x_realtime_per_cpu_s": round(hours * 3600 / cpu, 1),
            "replay_samples_per_s": round(pushed / elapsed), "replay_cpu_cores": round(cpu / elapsed, 2),
            "replay_rss_first_10pct_mb": round(float(early), 1), "replay_rss_last_10pct_mb": round(float(late), 1),
            "replay_rss_max_mb": round(max(samples), 1) if samples else 0.0}


def bench_recorder(seconds: float) -> dict[str, float]:
    """LabRecorderCLI's CPU share while gaze (250 Hz), audio (16 kHz) and camera (30 Hz) are live."""
    from eyemotion.acquisition.recorder import Recorder

    from eyemotion.config import LslConfig, RecorderConfig, config_from_dict
    from eyemotion.session import create_session_folder

    ns = f"bench{uuid.uuid4().hex[:6]}"
    outlets = [(pylsl.StreamOutlet(stream_info(GAZE_RAW, namespace=ns, rate=250)), 250, 37),
               (pylsl.StreamOutlet(stream_info(AUDIO, namespace=ns)), 16000, 1),
               (pylsl.StreamOutlet(stream_info(CAMERA, namespace=ns, rate=30)), 30, 1)]
    stop = threading.Event()

    def produce() -> None:
        t0, pushed = pylsl.local_clock(), [0, 0, 0]
        while not stop.wait(0.02):
            now = pylsl.local_clock()
            for i, (outlet, rate, ch) in enumerate(outlets):
                due = int((now - t0) * rate)
                n = due - pushed[i]
                if n > 0:
                    outlet.push_chunk(np.zeros((n, ch)), (t0 + np.arange(pushed[i], due) / rate).tolist())
                    pushed[i] = due

    threading.Thread(target=produce, daemon=True).start()
    config = config_from_dict({}).replace(lsl=LslConfig(namespace=ns), recorder=RecorderConfig())
    root = Path(tempfile.mkdtemp(prefix="bench-rec-"))
    recorder = Recorder(config, create_session_folder(root, "BENCH"))
    recorder.start()
    proc = psutil.Process(recorder.pid)
    time.sleep(2.0)
    proc.cpu_percent(None)
    time.sleep(seconds)
    share = proc.cpu_percent(None)
    recorder.stop()
    stop.set()
    size = recorder.xdf.stat().st_size
    return {"recorder_cpu_percent_of_one_core": round(share, 1), "recorder_seconds": seconds,
            "recorder_mb_per_min": round(size / 1e6 / (seconds + 2) * 60, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0, help="length of the synthetic session")
    parser.add_argument("--record-s", type=float, default=20.0, help="seconds of live recording for CPU share")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic XDF")
    args = parser.parse_args()
    path = Path(tempfile.gettempdir()) / f"eyemotion-bench-{args.hours:g}h.xdf"
    start = time.perf_counter()
    counts = write_long_session(path, args.hours)
    results: dict[str, object] = {"hours": args.hours, "load_average_1min": round(os.getloadavg()[0], 2),
                                  "file_mb": round(path.stat().st_size / 1e6),
                                  "write_s": round(time.perf_counter() - start, 1), "samples": counts}
    print(f"synthetic session: {args.hours:g} h, {results['file_mb']} MB, written in {results['write_s']} s")
    results.update(bench_replay(path, args.hours))
    print(f"replay at max speed: {results['replay_x_realtime']}x real time ({results['replay_samples_per_s']} "
          f"samples/s, {results['replay_cpu_cores']} cores; {results['replay_x_realtime_per_cpu_s']}x per CPU "
          f"second); RSS first 10% {results['replay_rss_first_10pct_mb']} MB,"
          f" last 10% {results['replay_rss_last_10pct_mb']} MB, max {results['replay_rss_max_mb']} MB")
    results.update(bench_load(path, args.hours))
    print(f"Session.load: {results['load_s']} s for {args.hours:g} h ({results['load_s_per_hour']} s per hour, "
          f"{results['load_cpu_s_per_hour']} CPU s per hour, "
          f"{results['samples']} samples, +{results['load_rss_mb']} MB)")
    results.update(bench_recorder(args.record_s))
    print(f"LabRecorderCLI recording gaze 250 Hz + audio 16 kHz + camera 30 Hz: "
          f"{results['recorder_cpu_percent_of_one_core']} % of one core, {results['recorder_mb_per_min']} MB/min")
    results["goals"] = {"replay_x_realtime>20": results["replay_x_realtime"] > 20,
                        "load_s_per_hour<10": results["load_s_per_hour"] < 10}
    if not args.keep:
        path.unlink()
    out = ROOT / "bench" / "results" / "sessions.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
