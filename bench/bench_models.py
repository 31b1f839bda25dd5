"""Inference latency of the eyemotion models through onnxruntime (one window per call, batch 1).

    .venv/bin/python bench/bench_models.py [--models DIR] [--runs 500] [--threads 1] [--provider cpu|cuda]

Runs each graph through `eyemotion.inference.runtime.OnnxModel` (as the live node does) and prints
latency percentiles, CPU share and memory; writes them to bench/results/models.json. The graphs are
the ONNX files in --models (default: the shipped ones in models/); any that are missing are exported
from an untrained model into a temporary folder first (latency does not depend on the weights).
Goals (issue 7): EMERT <= 10 ms and crossmodal <= 2 ms p99 per window on CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = ("emert", "crossmodal-visual", "crossmodal-audio", "crossmodal-joint")
GOALS_P99_MS = {"emert": 10.0, "crossmodal-visual": 2.0, "crossmodal-audio": 2.0, "crossmodal-joint": 2.0}


def ensure_graphs(model_dir: Path, tmp: Path) -> dict[str, Path]:
    """The ONNX file of each graph: from model_dir when present, else exported untrained into tmp."""
    paths = {g: model_dir / f"{g}.onnx" for g in GRAPHS if (model_dir / f"{g}.onnx").is_file()}
    missing = [g for g in GRAPHS if g not in paths]
    if missing:
        import torch
        from eyemotion.models.crossmodal import Crossmodal
        from eyemotion.models.emert import Emert
        from eyemotion.models.export import export_graph, graphs_of, make_card, trained_lengths

        torch.manual_seed(0)
        lengths = trained_lengths({})
        for kind, model in (("emert", Emert().eval()), ("crossmodal", Crossmodal().eval())):
            for graph in graphs_of(kind, model, kind):
                if graph.name in missing:
                    paths[graph.name] = tmp / f"{graph.name}.onnx"
                    export_graph(graph, paths[graph.name], lengths)
                    card = make_card(graph, paths[graph.name], kind, model, {}, lengths, float("nan"),
                                     "n/a", "untrained export for the latency benchmark only")
                    paths[graph.name].with_suffix(".json").write_text(json.dumps(card))
        print(f"exported untrained graphs for: {', '.join(missing)} (no shipped .onnx in {model_dir})")
    return paths


def window(names: list[str], lengths: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    from eyemotion.models.export import example_inputs

    return example_inputs(tuple(names), 1, lengths, seed=int(rng.integers(1 << 30)))


def bench_graph(path: Path, lengths: dict[str, int], runs: int, threads: int, prefer_cuda: bool) -> dict:
    from eyemotion.inference.runtime import OnnxModel

    model = OnnxModel(path, prefer_cuda=prefer_cuda, threads=threads)
    names = [i.name for i in model.inputs]
    rng = np.random.default_rng(0)
    feeds = [window(names, lengths, rng) for _ in range(16)]
    for i in range(20):  # warm-up
        model.run(feeds[i % len(feeds)])
    proc = psutil.Process()
    cpu0, wall0 = proc.cpu_times(), time.perf_counter()
    lat = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter()
        model.run(feeds[i % len(feeds)])
        lat[i] = time.perf_counter() - t
    wall = time.perf_counter() - wall0
    cpu1 = proc.cpu_times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    ms = lat * 1000
    shape = {n: list(feeds[0][n].shape) for n in names}
    return {"provider": model.provider, "input_shapes": shape, "runs": runs,
            "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "mean_ms": float(ms.mean()),
            "windows_per_s": runs / wall, "cpu_share_of_one_core": cpu / wall, "cpu_ms_per_window": cpu / runs * 1000,
            "file_mb": path.stat().st_size / 1e6}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=ROOT / "models", help="folder with the .onnx files")
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (live node: 1)")
    p.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--visual-frames", type=int, default=30, help="crossmodal window: face frames (2 s at 15 Hz)")
    p.add_argument("--audio-steps", type=int, default=8, help="crossmodal window: eGeMAPS sub-windows")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "models.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from eyemotion.models import shapes

    lengths = {"face_frames": shapes.EMERT_FACE_FRAMES, "eye_samples": shapes.EMERT_EYE_SAMPLES,
               "fixation_slices": shapes.EMERT_FIXATION_SLICES, "visual_frames": args.visual_frames,
               "audio_steps": args.audio_steps}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = ensure_graphs(args.models, Path(tmp))
        mem0 = psutil.Process().memory_info().rss
        for name in GRAPHS:
            r = bench_graph(paths[name], lengths, args.runs, args.threads, args.provider == "cuda")
            r["source"] = str(paths[name]) if Path(tmp) not in paths[name].parents else "untrained export"
            r["goal_p99_ms"] = GOALS_P99_MS[name]
            r["meets_goal"] = r["p99_ms"] <= GOALS_P99_MS[name]
            results[name] = r
        rss_mb = psutil.Process().memory_info().rss / 1e6
    print(f"latency per window (ms), batch 1; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'model':18s} {'p50':>7s} {'p90':>7s} {'p99':>7s} {'max':>7s} {'CPU ms':>7s} {'win/s':>7s} {'CPU':>5s}  goal p99")
    for name, r in results.items():
        print(f"{name:18s} {r['p50_ms']:7.3f} {r['p90_ms']:7.3f} {r['p99_ms']:7.3f} {r['max_ms']:7.3f} "
              f"{r['cpu_ms_per_window']:7.3f} {r['windows_per_s']:7.0f} {r['cpu_share_of_one_core']:5.2f}  "
              f"<= {r['goal_p99_ms']:g} ms {'ok' if r['meets_goal'] else 'MISSED'}")
    print(f"process RSS {rss_mb:.0f} MB (+{(rss_mb - mem0 / 1e6):.0f} MB for the sessions); "
          f"provider {next(iter(results.values()))['provider']}, {args.threads} thread(s)")
    report = {"benchmark": "models", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "host": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
                       "load_avg_1min": os.getloadavg()[0]},
              "settings": {"runs": args.runs, "threads": args.threads, "provider": args.provider, "batch": 1,
                           "lengths": lengths},
              "rss_mb": rss_mb, "models": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
