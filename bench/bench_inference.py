"""Benchmark of the live inference node: end-to-end delay and per-window cost, on the shipped models.

A simulated participant (eyemotion_gaze from the simulator + eye-signal processor, eyemotion_face from the
face model on expression crops, speech-like eyemotion_audio) is published in real time through real LSL
outlets (gaze in 20 ms chunks, face per frame at 12 Hz, audio in 20 ms chunks); `InferenceNode` runs in
a thread and publishes eyemotion_emotion. Printed and written to bench/results/inference.json:
- delay from the window end (the newest input sample a prediction covers) to its push, percentiles; in a
  full pipeline add the eye-signal node's fixed delay (its `desc/eyemotion/delay_s`) on the gaze side;
- per-window cost in the node (window inputs + the ONNX models), percentiles;
- ONNX latency per model graph on real windows (batch 1, 1 thread, CPU), percentiles;
- CPU share of this process (publisher + node) and its peak memory.

    .venv/bin/python bench/bench_inference.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import threading
import time
from pathlib import Path

import numpy as np


def percentiles(values_s: list[float] | np.ndarray) -> dict[str, float]:
    v = np.asarray(values_s, float) * 1000
    return {"p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)),
            "p99_ms": float(np.percentile(v, 99)), "mean_ms": float(v.mean()), "n": len(v)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="length of the simulated recording")
    p.add_argument("--runs", type=int, default=300, help="ONNX runs per model graph")
    args = p.parse_args()

    from eyemotion.streams import configure_lsl

    configure_lsl("machine")
    import pylsl
    from eyemotion.inference.live import InferenceNode, Predictor, WindowInputs, window_period_s
    from eyemotion.models.simulate_sessions import T0, SimulationSettings, simulate_session

    from eyemotion.config import Config, LslConfig
    from eyemotion.streams import AUDIO, FACE, GAZE_CLEAN, stream_info

    config = Config().replace(lsl=LslConfig(namespace=f"bench{int(time.time())}"))
    settings = SimulationSettings(participants=1, clip_s=args.seconds, pause_s=1.0, emotions=("happiness",), seed=7)
    print("simulating the input streams ...")
    streams, _ = simulate_session(0, settings, config)

    # ONNX latency per graph, on real windows of this recording
    predictor = Predictor(config)
    offline = WindowInputs(config, keep_s=float("inf"))
    offline.push_gaze(*streams.gaze)
    offline.push_face(*streams.face)
    offline.push_audio(*streams.audio)
    feeds = offline.inputs(T0 + settings.pause_s + min(8.0, args.seconds))
    models = {"emert": (predictor.emert, feeds.emert),
              **{f"crossmodal-{k}": (m, feeds.crossmodal) for k, m in predictor.crossmodal.items()}}
    onnx = {}
    for name, (model, f) in models.items():
        batch = {s.name: f[s.name][None].astype(np.float32) for s in model.inputs}
        model.run(batch)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            model.run(batch)
            times.append(time.perf_counter() - t0)
        onnx[name] = percentiles(times)

    # live: publish in real time, node in a thread
    ns = config.lsl.namespace
    outlets = {"gaze": pylsl.StreamOutlet(stream_info(GAZE_CLEAN, namespace=ns, rate=streams.gaze[2])),
               "face": pylsl.StreamOutlet(stream_info(FACE, namespace=ns)),
               "audio": pylsl.StreamOutlet(stream_info(AUDIO, namespace=ns))}
    node = InferenceNode(config)
    thread = threading.Thread(target=node.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while len(node.connected) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    shift = pylsl.local_clock() - T0
    data = {"gaze": (streams.gaze[0] + shift, streams.gaze[1]), "face": (streams.face[0] + shift, streams.face[1]),
            "audio": (streams.audio[0] + shift, streams.audio[1][:, None])}
    sent = {k: 0 for k in data}
    cpu0, wall0 = time.process_time(), time.monotonic()
    end = max(float(v[0][-1]) for v in data.values())
    print(f"publishing {end - shift - T0:.0f} s in real time ...")
    while True:
        now = pylsl.local_clock()
        for key, (ts, rows) in data.items():
            hi = int(np.searchsorted(ts, now, side="right"))
            if hi > sent[key]:
                outlets[key].push_chunk(np.ascontiguousarray(rows[sent[key]:hi]), ts[sent[key]:hi].tolist())
                sent[key] = hi
        if now > end:
            break
        time.sleep(0.02)
    time.sleep(1.0)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    node.request_stop()
    thread.join(10)

    result = {
        "benchmark": "inference", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"platform": platform.platform(), "python": platform.python_version(),
                 "load_avg_1min": __import__("os").getloadavg()[0]},
        "settings": {"seconds": args.seconds, "rate_hz": 1 / window_period_s(config), "models": predictor.ids},
        "predictions": node.published,
        "delay_window_end_to_push": percentiles(node.delays_s),
        "node_compute_per_window": percentiles(node.compute_s),
        "onnx_latency": onnx,
        "cpu_share_process": cpu / wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "goals": {"emert_p99_le_10ms": onnx["emert"]["p99_ms"] <= 10,
                  "crossmodal_p99_le_2ms": max(v["p99_ms"] for k, v in onnx.items() if k.startswith("crossmodal"))
                  <= 2},
    }
    print(f"predictions: {node.published} at {result['settings']['rate_hz']:g} Hz")
    d = result["delay_window_end_to_push"]
    print(f"delay window end -> push: p50 {d['p50_ms']:.0f} ms, p95 {d['p95_ms']:.0f} ms, p99 {d['p99_ms']:.0f} ms")
    c = result["node_compute_per_window"]
    print(f"node compute per window: p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms")
    for name, v in onnx.items():
        print(f"onnx {name:18s} p50 {v['p50_ms']:.2f} ms  p99 {v['p99_ms']:.2f} ms")
    print(f"CPU share (publisher + node): {result['cpu_share_process']:.1%}; peak RSS {result['peak_rss_mb']:.0f} MB")
    out = Path(__file__).resolve().parent / "results" / "inference.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
