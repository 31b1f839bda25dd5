"""Dashboard benchmark: redraw rate, CPU share and memory growth with every contract stream live at full
rate, rendered offscreen.

    .venv/bin/python bench/bench_dashboard.py              # 30 s after a 5 s warm-up
    .venv/bin/python bench/bench_dashboard.py --soak       # 10 minutes (memory growth)
    .venv/bin/python bench/bench_dashboard.py --seconds 120

The streams (Tobii_gaze and eyemotion_gaze at 250 Hz, 16 kHz audio, 30 Hz camera, face, emotion,
preview, eye events, markers) come from `tests/streamgen.py` publishers in a separate process, so the
CPU share measured is the dashboard's alone (GUI thread + LSL reader threads). Goal: >= 30 fps,
< 30 % of one core, no memory growth. Prints the figures and writes them to bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PUBLISHER = """
import sys, time
sys.path.insert(0, {tests!r})
from eyemotion.streams import configure_lsl
configure_lsl("machine")
import streamgen
pubs = streamgen.publish_all({ns!r})
time.sleep({seconds})
for p in pubs:
    p.stop()
"""


def _main_thread_cpu(proc) -> float:
    """CPU seconds of this process's main (GUI) thread."""
    for thread in proc.threads():
        if thread.id == proc.pid:
            return thread.user_time + thread.system_time
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration (default 30 s)")
    parser.add_argument("--soak", action="store_true", help="measure for 10 minutes")
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    seconds = 600.0 if args.soak else args.seconds

    import psutil
    from eyemotion.stimuli.runner import limit_malloc_arenas

    limit_malloc_arenas()  # as `eyemotion dashboard` does, before any thread starts
    from eyemotion.streams import configure_lsl

    configure_lsl("machine")
    from eyemotion.gui import theme
    from eyemotion.gui.window import Dashboard
    from PyQt6.QtCore import QEvent, QObject, QSettings, QTimer
    from PyQt6.QtWidgets import QApplication

    from eyemotion.config import LslConfig, config_from_dict

    ns = f"bench{uuid.uuid4().hex[:8]}"
    publisher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PUBLISHER.format(tests=str(ROOT / "tests"), ns=ns, seconds=seconds + args.warmup + 20),
        ]
    )
    config = config_from_dict({}).replace(lsl=LslConfig(namespace=ns))
    app = QApplication(sys.argv[:1])
    theme.apply(app)
    settings = QSettings(str(Path("/tmp") / f"eyemotion-bench-{ns}.ini"), QSettings.Format.IniFormat)
    window = Dashboard(config, settings=settings, recorder=None, marker_outlet=False)
    window.show()

    class PaintCounter(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint:
                self.count += 1
            return False

    counter = PaintCounter()
    window.gaze_panel.view.viewport().installEventFilter(counter)
    proc = psutil.Process()
    samples: list[dict] = []
    state: dict = {}

    def begin() -> None:
        state.update(
            t=time.perf_counter(),
            cpu=sum(proc.cpu_times()[:2]),
            frames=window.frames,
            main_cpu=_main_thread_cpu(proc),
            refreshes={p.title: p.refreshes for p in window.panels},
            paints=counter.count,
            rss=proc.memory_info().rss,
        )
        window.frame_times.clear()

    def sample() -> None:
        if state:
            samples.append({"t": time.perf_counter() - state["t"], "rss_mb": proc.memory_info().rss / 1e6})

    def end() -> None:
        wall = time.perf_counter() - state["t"]
        cpu = sum(proc.cpu_times()[:2]) - state["cpu"]
        main_cpu = _main_thread_cpu(proc) - state["main_cpu"]
        times = sorted(window.frame_times)
        live = sum(1 for st in window.monitor.statuses() if st.state.value == "ok")
        rss0, rss1 = state["rss"] / 1e6, proc.memory_info().rss / 1e6
        half = [s["rss_mb"] for s in samples if s["t"] >= wall / 2]
        first = [s["rss_mb"] for s in samples if s["t"] < wall / 2]
        result = {
            "seconds": round(wall, 1),
            "streams_live": f"{live}/{len(window.monitor.feeds)}",
            "redraw_passes_per_s": round((window.frames - state["frames"]) / wall, 1),
            "gaze_view_paints_per_s": round((counter.count - state["paints"]) / wall, 1),
            "redraw_pass_ms_p50": round(1000 * times[len(times) // 2], 2) if times else None,
            "redraw_pass_ms_p95": round(1000 * times[int(len(times) * 0.95)], 2) if times else None,
            "cpu_share_of_one_core": round(cpu / wall, 3),
            "cpu_share_gui_thread": round(main_cpu / wall, 3),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "rss_start_mb": round(rss0, 1),
            "rss_end_mb": round(rss1, 1),
            "rss_growth_second_half_mb": round((max(half) - max(first)) if half and first else 0.0, 1),
            "streams": {
                st.name: {
                    "state": st.state.value,
                    "reason": st.reason,
                    "samples": st.samples,
                    "effective_rate": round(st.effective_rate, 1),
                    "dropped": st.dropped,
                }
                for st in window.monitor.statuses()
            },
            "panel_refreshes_per_s": {
                p.title: round((p.refreshes - state["refreshes"][p.title]) / wall, 1) for p in window.panels
            },
        }
        state["result"] = result
        window.shutdown()
        app.quit()

    QTimer.singleShot(int(args.warmup * 1000), begin)
    sampler = QTimer()
    sampler.timeout.connect(sample)
    sampler.start(5000)
    QTimer.singleShot(int((args.warmup + seconds) * 1000), end)
    app.exec()
    publisher.terminate()
    publisher.wait(10)
    result = state["result"]
    print(f"dashboard, offscreen, {result['streams_live']} streams live, {result['seconds']} s measured")
    print(
        f"  redraw rate          {result['gaze_view_paints_per_s']:.1f} fps (gaze view repaints), "
        f"{result['redraw_passes_per_s']:.1f} redraw passes/s (goal >= 30)"
    )
    print(
        f"  redraw pass          p50 {result['redraw_pass_ms_p50']} ms, p95 {result['redraw_pass_ms_p95']} ms"
    )
    print(
        f"  CPU                  {100 * result['cpu_share_of_one_core']:.1f} % of one core (goal < 30 %), "
        "of which "
        f"the GUI thread {100 * result['cpu_share_gui_thread']:.1f} %; machine load average "
        f"{result['load_average_1min']} on {os.cpu_count()} cores"
    )
    print(
        f"  memory               {result['rss_start_mb']} -> {result['rss_end_mb']} MB RSS, "
        f"growth over the second half {result['rss_growth_second_half_mb']} MB (goal: none)"
    )
    out = ROOT / "bench" / "results" / "dashboard.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        "  panels refreshed/s   "
        + ", ".join(f"{k} {v:g}" for k, v in result["panel_refreshes_per_s"].items())
    )
    for name, st in result["streams"].items():
        if st["state"] != "ok":
            print(f"  ! {name}: {st['state']} ({st['reason']})")
    print(f"  written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
