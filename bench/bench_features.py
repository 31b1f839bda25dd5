"""Benchmark of the feature extractors and the face pipeline (issue 6).

    .venv/bin/python bench/bench_features.py [--seconds 20]

Prints, and writes to bench/results/features.json: the per-window cost of the gaze statistics, eGeMAPS
and the model input builders, their CPU share of one core at live rates, and the face pipeline's frames
per second (and latency percentiles) on a 640x480 video. Everything runs single-threaded
(`cv2.setNumThreads(1)`, onnxruntime with one thread), so the CPU shares are shares of one core.
Goals: face pipeline >= 15 fps; all features together < 30% of one core.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
from eyemotion.inference.features.audio import AudioSettings, EgemapsFeatures
from eyemotion.inference.features.builders import CrossmodalWindowBuilder, EmertWindowBuilder
from eyemotion.inference.features.face import FacePipeline
from eyemotion.inference.features.gaze_stats import GazeStatistics, GazeStatsSettings

from eyemotion.config import FeaturesConfig
from eyemotion.streams import FACE, GAZE_CLEAN

GAZE_RATE = 250.0
LIVE_WINDOW_RATE_HZ = 2.0  # model windows per second built live (1-4 Hz predictions)
RESULTS = Path(__file__).resolve().parent / "results" / "features.json"


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def synthetic_gaze(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = int(seconds * GAZE_RATE)
    data = np.zeros((n, GAZE_CLEAN.channel_count))
    data[:, GAZE_CLEAN.index("angle_x")] = np.cumsum(rng.normal(0, 0.05, n))
    data[:, GAZE_CLEAN.index("angle_y")] = np.cumsum(rng.normal(0, 0.05, n))
    data[:, GAZE_CLEAN.index("pupil")] = 3 + np.cumsum(rng.normal(0, 0.002, n))
    data[:, GAZE_CLEAN.index("event")] = rng.choice([1, 1, 1, 2, 3], n // 50 + 1).repeat(50)[:n]
    data[:, GAZE_CLEAN.index("eye_openness")] = rng.uniform(8, 12, n)
    data[:, GAZE_CLEAN.index("eye_distance")] = 650 + np.cumsum(rng.normal(0, 0.1, n))
    data[:, GAZE_CLEAN.index("validity")] = 3
    return 1000 + np.arange(n) / GAZE_RATE, data


def bench_gaze(seconds: float, cfg: FeaturesConfig) -> dict[str, float]:
    t, data = synthetic_gaze(seconds)
    extractor = GazeStatistics(GazeStatsSettings.from_config(cfg, GAZE_RATE))
    chunk = int(GAZE_RATE * 0.02)  # the eye-signal node pushes ~20 ms chunks
    cpu0, windows, per_chunk = time.process_time(), 0, []
    for i in range(0, len(t), chunk):
        c0 = time.perf_counter()
        windows += len(extractor.push(t[i:i + chunk], data[i:i + chunk]))
        per_chunk.append((time.perf_counter() - c0) * 1e3)
    cpu = time.process_time() - cpu0
    per_window_ms = cpu / windows * 1e3
    live_share = cpu / seconds  # CPU seconds per second of gaze data
    return {"windows": windows, "per_window_ms": per_window_ms, "cpu_share_live": live_share,
            "windows_per_s_live": 1 / cfg.gaze_hop_s, **{f"push_{k}": v for k, v in percentiles(per_chunk).items()}}


def bench_audio(seconds: float, cfg: FeaturesConfig) -> dict[str, float]:
    rng = np.random.default_rng(1)
    n = int(seconds * 16000)
    tone = np.sin(2 * np.pi * 180 * np.arange(n) / 16000) * (np.sin(2 * np.pi * 0.5 * np.arange(n) / 16000) > 0)
    signal = (0.2 * tone + rng.normal(0, 0.01, n)).astype(np.float32)
    t = 1000 + np.arange(n) / 16000
    extractor = EgemapsFeatures(AudioSettings.from_config(cfg))
    cpu0, windows, per_window = time.process_time(), 0, []
    for i in range(0, n, 320):
        c0 = time.perf_counter()
        got = len(extractor.push(t[i:i + 320], signal[i:i + 320]))
        if got:
            per_window.append((time.perf_counter() - c0) * 1e3 / got)
        windows += got
    cpu = time.process_time() - cpu0
    return {"windows": windows, "window_s": cfg.audio_window_s, "hop_s": cfg.audio_hop_s,
            "per_window_ms": cpu / windows * 1e3, "cpu_share_live": cpu / seconds, **percentiles(per_window)}


def bench_builders(cfg: FeaturesConfig, repeats: int = 200) -> dict[str, float]:
    rng = np.random.default_rng(2)
    emert = EmertWindowBuilder(cfg.emert_window_s, GAZE_CLEAN.channel_count, (36, 64))
    cross = CrossmodalWindowBuilder(cfg.crossmodal_window_s, cfg.crossmodal_frames, cfg.crossmodal_audio_steps)
    face_t = np.arange(0, 6, 1 / 12)
    face = rng.normal(size=(len(face_t), FACE.channel_count))
    face[:, 0] = 1
    gaze_t, gaze = synthetic_gaze(6)
    gaze_t = gaze_t - 1000
    emert.push_face(face_t, face)
    emert.push_gaze(gaze_t, gaze)
    emert.push_fixation(np.arange(0, 6, 1 / 30), rng.random((180, 36, 64)))
    cross.push_face(face_t, face)
    from eyemotion.inference.features.windows import FeatureWindows

    ends = np.arange(1, 6, 0.1)
    cross.push_gaze_stats(FeatureWindows(tuple(map(str, range(103))), ends, rng.normal(size=(len(ends), 103)),
                                         np.ones(len(ends), bool)))
    a_ends = np.arange(4, 6.1, 1.0)
    cross.push_audio(FeatureWindows(tuple(map(str, range(88))), a_ends, rng.normal(size=(len(a_ends), 88)),
                                    np.ones(len(a_ends), bool), {"speech": np.ones(len(a_ends))}))
    out = {}
    for name, call in (("emert", lambda: emert.window(5.9)), ("crossmodal", lambda: cross.window(5.9))):
        c0 = time.process_time()
        for _ in range(repeats):
            call()
        ms = (time.process_time() - c0) / repeats * 1e3
        out[f"{name}_per_window_ms"] = ms
        out[f"{name}_cpu_share_live"] = ms / 1e3 * LIVE_WINDOW_RATE_HZ
    return out


def bench_face(frames: int) -> dict[str, float]:
    import skimage.data

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mp4"
        # head and shoulders filling most of the frame height, as a participant ~60 cm from a webcam
        head = cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)[20:260, 120:330], (350, 400))
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
        for i in range(frames):
            frame = np.full((480, 640, 3), 90, np.uint8)
            dx = int(60 * np.sin(i / 15))
            frame[40:440, 145 + dx:495 + dx] = head
            writer.write(frame)
        writer.release()
        capture = cv2.VideoCapture(str(video))
        decoded = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            decoded.append(frame)
        capture.release()
    pipeline = FacePipeline()
    pipeline(decoded[0])  # warm-up
    latencies, found = [], 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for frame in decoded:
        c0 = time.perf_counter()
        found += pipeline(frame).present
        latencies.append((time.perf_counter() - c0) * 1e3)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rate = 12.0
    return {"frames": len(decoded), "faces_found": found, "fps": len(decoded) / wall,
            "cpu_fps": len(decoded) / cpu, "cpu_share_at_12hz": cpu / len(decoded) * rate,
            "provider": pipeline.model.provider, **percentiles(latencies)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of synthetic gaze/audio")
    parser.add_argument("--frames", type=int, default=150, help="640x480 video frames for the face pipeline")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cv2.setNumThreads(1)
    cfg = FeaturesConfig()
    results = {
        "machine": {"python": sys.version.split()[0], "cpu": platform.processor() or platform.machine(),
                    "cores": psutil.cpu_count(), "load_avg_1min": psutil.getloadavg()[0]},
        "gaze_statistics": bench_gaze(args.seconds, cfg),
        "egemaps": bench_audio(args.seconds, cfg),
        "builders": bench_builders(cfg),
        "face_pipeline": bench_face(args.frames),
    }
    total = (results["gaze_statistics"]["cpu_share_live"] + results["egemaps"]["cpu_share_live"]
             + results["builders"]["emert_cpu_share_live"] + results["builders"]["crossmodal_cpu_share_live"])
    results["features_total_cpu_share_live"] = total
    results["goals"] = {"face_fps_ge_15": results["face_pipeline"]["fps"] >= 15, "features_cpu_lt_30pct": total < 0.30}
    results["max_rss_mb"] = psutil.Process().memory_info().rss / 2**20
    g, a, b, f = (results[k] for k in ("gaze_statistics", "egemaps", "builders", "face_pipeline"))
    print(f"gaze statistics : {g['per_window_ms']:.2f} ms/window, {g['windows_per_s_live']:.0f} windows/s live "
          f"-> {100 * g['cpu_share_live']:.1f}% of a core (push p95 {g['push_p95_ms']:.2f} ms)")
    print(f"eGeMAPS         : {a['per_window_ms']:.1f} ms/window ({a['window_s']:g} s, hop {a['hop_s']:g} s) "
          f"-> {100 * a['cpu_share_live']:.1f}% of a core (p95 {a['p95_ms']:.1f} ms)")
    print(f"EMERT window    : {b['emert_per_window_ms']:.3f} ms; crossmodal window: "
          f"{b['crossmodal_per_window_ms']:.3f} ms (at {LIVE_WINDOW_RATE_HZ:g} Hz)")
    print(f"features total  : {100 * total:.1f}% of one core at live rates (goal < 30%)")
    print(f"face pipeline   : {f['fps']:.1f} fps on 640x480 ({f['faces_found']}/{f['frames']} faces), "
          f"p50 {f['p50_ms']:.1f} ms, p95 {f['p95_ms']:.1f} ms, {100 * f['cpu_share_at_12hz']:.0f}% of a core "
          f"at 12 Hz, {f['provider']} (goal >= 15 fps)")
    print(f"max RSS         : {results['max_rss_mb']:.0f} MB; 1-min load average {results['machine']['load_avg_1min']:.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
