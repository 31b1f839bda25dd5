"""Benchmark the acquisition sources at their live rates: CPU share and LSL latency.

Each source runs alone in its own process (as `eyemotion stream` would run it), so its CPU time is its own:
  tracker     the simulated Tobii Pro Fusion at 250 Hz (37 channels, pushed every 15 ms)
  camera      CameraNode on a generated 640x480 30 fps file, writing camera.mkv (no face analysis)
  microphone  MicrophoneNode at 16 kHz through the virtual ALSA microphone (generator node if no ALSA)
The CPU share is (user + system CPU seconds) / wall seconds of that process over a steady window after
start-up, in % of one core. Latency is measured in this process, one inlet per stream, polled every
millisecond: `receive - timestamp` per sample (the sample's LSL stamp is its capture / schedule time, so
this includes the source's chunking). A last probe pushes single samples stamped at push time from a
separate process: the pure push-to-receive latency of loopback LSL.

    .venv/bin/python bench/bench_sources.py [--seconds 20]

Prints a table and writes bench/results/sources.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "sources.json"
WARMUP_S = 3.0


def child(source: str, namespace: str, seconds: float, workdir: str) -> None:
    """Run one source node for `seconds` (in a child process)."""
    from eyemotion.streams import configure_lsl

    configure_lsl("machine")
    from eyemotion.config import config_from_dict

    cfg = {"lsl": {"namespace": namespace}, "simulator": {"loss_per_min": 0.3}}
    if source == "tracker":
        from eyemotion.acquisition.simulator import SimulatedTracker

        node = SimulatedTracker(config_from_dict(cfg), follow_markers=False)
    elif source == "camera":
        from eyemotion.acquisition.camera import CameraNode

        cfg["camera"] = {"source": str(Path(workdir) / "in.mp4"), "loop": True, "fps": 30.0}
        node = CameraNode(config_from_dict(cfg), output_dir=Path(workdir) / "out")
    elif source == "microphone":
        if os.environ.get("ALSA_CONFIG_PATH"):
            from eyemotion.acquisition.microphone import MicrophoneNode
            from eyemotion.acquisition.virtual_mic import VIRTUAL_MIC_NAME

            cfg["microphone"] = {"device": VIRTUAL_MIC_NAME}
            node = MicrophoneNode(config_from_dict(cfg))
        else:
            from eyemotion.acquisition.microphone import GeneratedAudioNode

            node = GeneratedAudioNode(config_from_dict(cfg))
    elif source == "probe":
        import pylsl

        from eyemotion.streams import MARKERS, stream_info

        outlet = pylsl.StreamOutlet(stream_info(MARKERS, namespace=namespace, device="probe"))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            outlet.push_sample(['{"event":"probe","source":"bench"}'], pylsl.local_clock())
            time.sleep(0.004)
        return
    else:
        raise SystemExit(f"unknown source {source}")
    node.run(duration=seconds, handle_signals=False)


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000
    if a.size == 0:
        return {}
    return {"n": int(a.size), "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}


def measure(source: str, spec, seconds: float, env: dict | None = None) -> dict:
    """Start `source` in a child, collect its latency and CPU share."""
    import psutil
    import pylsl

    from eyemotion import streams

    namespace = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as workdir:
        if source == "camera":
            from eyemotion.acquisition.media import write_test_video

            write_test_video(Path(workdir) / "in.mp4", n_frames=300, fps=30.0, size=(640, 480))
        proc = subprocess.Popen([sys.executable, __file__, "--child", source, "--namespace", namespace,
                                 "--seconds", str(seconds + WARMUP_S + 6), "--workdir", workdir],
                                env=env, stderr=subprocess.DEVNULL)
        ps = psutil.Process(proc.pid)
        deadline = time.monotonic() + 30
        infos = []
        while not infos and time.monotonic() < deadline:
            infos = streams.find(spec, namespace=namespace, timeout=1.0)
        if not infos:
            proc.kill()
            raise SystemExit(f"{source}: no {spec.name} stream appeared")
        inlet = pylsl.StreamInlet(infos[0], max_buflen=10, processing_flags=pylsl.proc_none)
        inlet.open_stream(timeout=5)
        time.sleep(WARMUP_S)
        inlet.pull_chunk(timeout=0.0, max_samples=100000)
        t0, c0 = time.monotonic(), ps.cpu_times()
        lat, n = [], 0
        while time.monotonic() - t0 < seconds:
            _, stamps = inlet.pull_chunk(timeout=0.0, max_samples=100000)
            if stamps:
                now = pylsl.local_clock()
                lat += [now - s for s in stamps]
                n += len(stamps)
            time.sleep(0.001)
        t1, c1 = time.monotonic(), ps.cpu_times()
        proc.terminate()
        proc.wait(20)
    cpu = (c1.user - c0.user + c1.system - c0.system) / (t1 - t0) * 100
    return {"source": source, "cpu_percent_of_one_core": round(cpu, 2), "samples": n,
            "rate_hz": round(n / (t1 - t0), 2), "latency": percentiles(lat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per source")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", default="", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.namespace, args.seconds, args.workdir)
        return

    from eyemotion.streams import AUDIO, CAMERA, GAZE_RAW, MARKERS, configure_lsl

    configure_lsl("machine")
    rows = [measure("tracker", GAZE_RAW, args.seconds), measure("camera", CAMERA, args.seconds)]
    mic_note = "generated (no ALSA)"
    try:
        from eyemotion.acquisition.media import write_test_wav
        from eyemotion.acquisition.virtual_mic import VirtualMic, alsa_available

        if alsa_available():
            with tempfile.TemporaryDirectory() as d:
                wav = write_test_wav(Path(d) / "speech.wav", 10.0)
                with VirtualMic(wav, loop=True) as mic:
                    rows.append(measure("microphone", AUDIO, args.seconds, env=mic.env))
            mic_note = "MicrophoneNode via the virtual ALSA microphone"
        else:
            rows.append(measure("microphone", AUDIO, args.seconds))
    except ImportError:
        rows.append(measure("microphone", AUDIO, args.seconds))
    probe = measure("probe", MARKERS, min(args.seconds, 10.0))
    total = sum(r["cpu_percent_of_one_core"] for r in rows)

    print(f"{'source':<12}{'CPU % of 1 core':>16}{'rate Hz':>10}{'lat p50 ms':>12}{'p95 ms':>9}{'p99 ms':>9}")
    for r in rows + [probe]:
        lat = r["latency"]
        print(f"{r['source']:<12}{r['cpu_percent_of_one_core']:>16.2f}{r['rate_hz']:>10.1f}"
              f"{lat.get('p50_ms', float('nan')):>12.2f}{lat.get('p95_ms', float('nan')):>9.2f}"
              f"{lat.get('p99_ms', float('nan')):>9.2f}")
    print(f"all three sources: {total:.1f} % of one core (goal < 25 %); microphone: {mic_note}")
    print("latency = receive time - sample timestamp; the probe row is pure push-to-receive over loopback LSL")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "sources", "seconds": args.seconds, "machine": platform.platform(),
        "cpu_count": os.cpu_count(), "sources": rows, "push_to_receive_probe": probe,
        "total_cpu_percent_of_one_core": round(total, 2), "goal_total_cpu_percent": 25.0,
        "microphone": mic_note,
    }, indent=2))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
