"""The microphone node: a PortAudio input (`sounddevice.InputStream`) -> `eyemotion_audio` (16 kHz mono).

Blocks of `[microphone] block_ms` (10-50 ms) arrive in PortAudio's callback, which only copies them into
a bounded queue; `step()` pushes them to LSL. A device that refuses 16 kHz can be opened at a multiple of
it (`[microphone] samplerate`), decimated here by a streaming FIR filter.

Timestamps. PortAudio gives each callback `time.inputBufferAdcTime`, the capture time of the block's
first sample, on the stream's clock (`Pa_GetStreamTime`). On Linux/ALSA that clock is CLOCK_MONOTONIC,
the clock behind `pylsl.local_clock()`; on other host APIs it may differ by a constant. At start the node
measures `offset = local_clock() - stream.time` (the reading bracketed most tightly out of 20 tries,
typically within a few microseconds) and stamps the first sample of a block with `adc_time + offset`;
later samples follow at 1/16000 s. Some drivers report an ADC time of 0; then the block is stamped from
its arrival instead: `local_clock() at the callback - block length - the stream's input latency`. The
method used and the measured offset are written into the stream's `desc/eyemotion`. Per-block stamps
jitter by a few milliseconds, so `StampTracker` makes them continuous: each block starts where the previous
one ended (1/16000 s per sample) and that running clock is pulled towards the measured stamps by 2% of the
error per block (at most a quarter sample, so stamps always increase); a forward jump of more than `REANCHOR_S` (lost audio, a stalled device) restarts it from the measured
stamp, leaving a visible gap; stamps never jump backwards.

Overflows. PortAudio's `status.input_overflow` (the device dropped input), a full queue (the node
could not push in time; the block is dropped) and a forward jump of the capture stamps that neither
reported (the whole process stalled, e.g. SIGSTOP, on a device that does not report overruns) are
counted, logged, and each marked with an `audio_overflow` marker on `eyemotion_markers` carrying the
running counts. Wherever the recorded stamps jump, whatever the cause, a `stamp_jump` marker gives the
hole exactly: `start` (where the audio before it ends) to its own stamp (where the audio resumes).

`GeneratedAudioNode` publishes the same stream from numpy samples (no PortAudio): the fallback where ALSA
or any audio input is absent. Run a node from a script or shell with
`python -m eyemotion.acquisition.microphone --help`.
"""

from __future__ import annotations

import argparse
import logging
import queue
import sys
import time
from dataclasses import dataclass

import numpy as np
import pylsl
from eyemotion.acquisition.markers import MarkerOutlet
from eyemotion.acquisition.virtual_mic import VIRTUAL_MIC_NAME

from eyemotion import UserError
from eyemotion.config import Config, LslConfig, MicrophoneConfig, config_from_dict
from eyemotion.nodes import Node
from eyemotion.streams import AUDIO, configure_lsl, stream_info

log = logging.getLogger(__name__)

RATE = int(AUDIO.nominal_rate)


class MicrophoneError(UserError):
    """A microphone that does not exist or refuses the requested settings."""


def list_microphones() -> list[dict]:
    """PortAudio's input devices: index, name, host API, input channels, default rate, is-default."""
    import sounddevice as sd

    default_in = sd.default.device[0]  # -1 when there is no default input
    mics = []
    for dev in sd.query_devices():
        if dev["max_input_channels"] > 0:
            mics.append({
                "index": dev["index"],
                "name": dev["name"],
                "hostapi": sd.query_hostapis(dev["hostapi"])["name"],
                "channels": dev["max_input_channels"],
                "default_samplerate": dev["default_samplerate"],
                "default": dev["index"] == default_in,
            })
    return mics


def _listing(mics: list[dict]) -> str:
    return "; ".join(f"{m['index']}: {m['name']}" for m in mics) or "none"


def find_microphone(spec: str) -> dict:
    """The input device named by `spec`: "" (the default), an index, an exact name or a unique part of one."""
    mics = list_microphones()
    if not mics:
        raise MicrophoneError("no microphone (audio input device) found; connect one, or use the virtual "
                              "microphone or the simulator")
    spec = str(spec).strip()
    if spec == "":
        return next((m for m in mics if m["default"]), mics[0])
    if spec.isdigit():
        match = [m for m in mics if m["index"] == int(spec)]
    else:
        match = [m for m in mics if m["name"].lower() == spec.lower()]
        match = match or [m for m in mics if spec.lower() in m["name"].lower()]
    if len(match) == 1:
        return match[0]
    if not match:
        raise MicrophoneError(f"microphone {spec!r} not found; available input devices: {_listing(mics)}; "
                              f"set [microphone] device to one of these names or indices")
    raise MicrophoneError(f"microphone {spec!r} matches several input devices ({_listing(match)}); "
                          f"set [microphone] device to the full name or the index")


def check_rate(mic: dict, samplerate: int) -> None:
    """MicrophoneError naming the device's default rate when it refuses `samplerate` (float32 mono)."""
    import sounddevice as sd

    try:
        sd.check_input_settings(device=mic["index"], channels=1, dtype="float32", samplerate=samplerate)
    except sd.PortAudioError as exc:
        default = mic["default_samplerate"]
        hint = (f"set [microphone] samplerate = {int(default)}" if default % RATE == 0
                else "set [microphone] samplerate to a multiple of 16000 that it supports")
        raise MicrophoneError(f"microphone {mic['name']!r} refuses {samplerate} Hz ({exc}); its default rate "
                              f"is {default:g} Hz: {hint}") from None


class Decimator:
    """Streaming integer decimation to 16 kHz (FIR low-pass at 7 kHz, then every `factor`-th sample).

    Its output does not depend on how the input is chunked. `delay_s` is the filter's group delay.
    """

    def __init__(self, factor: int, rate_in: int) -> None:
        from scipy.signal import firwin

        self.factor = factor
        self.rate_in = rate_in
        if factor == 1:
            self.taps = np.array([1.0])
        else:
            self.taps = firwin(16 * factor + 1, 7000, fs=rate_in)
        self.delay_s = (len(self.taps) - 1) / 2 / rate_in
        self._zi = np.zeros(len(self.taps) - 1)
        self._phase = 0  # index, within the next input chunk, of the next sample to keep

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Filtered, decimated chunk and the index in `x` of its first kept sample."""
        if self.factor == 1:
            return x, 0
        from scipy.signal import lfilter

        y, self._zi = lfilter(self.taps, 1.0, x, zi=self._zi)
        first = self._phase
        kept = y[first::self.factor]
        self._phase = (first - len(x)) % self.factor
        return kept.astype(np.float32), first


REANCHOR_S = 0.1


class StampTracker:
    """Continuous per-sample stamps from jittery per-block capture stamps (see the module docstring)."""

    def __init__(self, rate: float, gain: float = 0.02, reanchor_s: float = REANCHOR_S) -> None:
        self.rate = rate
        self.gain = gain
        self.reanchor_s = reanchor_s
        self.max_step = 0.25 / rate  # stamps stay increasing: a block moves by at most 1/4 sample
        self._next: float | None = None  # stamp expected for the next block's first sample
        self.reanchors = 0

    @property
    def next_stamp(self) -> float | None:
        """Where the stamped audio so far ends (None before the first block)."""
        return self._next

    def __call__(self, measured: float, n_samples: int) -> float:
        """The stamp of the first sample of a block of `n_samples` whose capture was measured at `measured`."""
        if self._next is None or measured - self._next > self.reanchor_s:
            if self._next is not None:
                self.reanchors += 1
            first = measured
        else:
            step = np.clip(self.gain * (measured - self._next), -self.max_step, self.max_step)
            first = self._next + float(step)
        self._next = first + n_samples / self.rate
        return first


@dataclass
class Block:
    samples: np.ndarray
    first_stamp: float  # LSL time of samples[0]
    input_overflow: bool


class MicrophoneNode(Node):
    """A PortAudio input device -> `eyemotion_audio` (+ `audio_overflow` markers)."""

    name = "microphone"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg = config.microphone
        self.samplerate = cfg.samplerate
        self.blocksize = round(cfg.samplerate * cfg.block_ms / 1000)
        self.queue: queue.Queue[Block] = queue.Queue(maxsize=max(2, int(np.ceil(cfg.queue_s * 1000 / cfg.block_ms))))
        self.decimator = Decimator(cfg.samplerate // RATE, cfg.samplerate)
        self.stamps = StampTracker(cfg.samplerate)
        self.mic: dict | None = None
        self.stream = None
        self.clock_offset = 0.0
        self.input_overflows = 0
        self.dropped_blocks = 0
        self.dropped_frames = 0
        self.adc_blocks = 0
        self.arrival_blocks = 0
        self.samples_pushed = 0
        self._marked_drops = 0
        self.dropped_input_overflows = 0  # device overflows reported in blocks the full queue dropped
        self._marked_dropped_overflows = 0
        self._first_drop: float | None = None  # LSL time of the first dropped block not yet marked
        self._outlet: pylsl.StreamOutlet | None = None
        self._markers: MarkerOutlet | None = None
        self._opened = False

    def open(self) -> None:
        """Find and check the device, start the stream and create the outlets (idempotent)."""
        if self._opened:
            return
        import sounddevice as sd

        self.mic = find_microphone(self.config.microphone.device)
        check_rate(self.mic, self.samplerate)
        self.stream = sd.InputStream(device=self.mic["index"], samplerate=self.samplerate, channels=1,
                                     dtype="float32", blocksize=self.blocksize, callback=self._callback)
        self.clock_offset = self._measure_clock_offset()
        namespace = self.config.lsl.namespace
        self._outlet = pylsl.StreamOutlet(stream_info(AUDIO, namespace=namespace, extra={
            "device": self.mic["name"], "hostapi": self.mic["hostapi"], "device_rate": str(self.samplerate),
            "block_ms": str(self.config.microphone.block_ms), "clock_offset_s": f"{self.clock_offset:.9f}",
            "timestamps": "PortAudio inputBufferAdcTime + clock_offset_s (arrival - latency when 0)",
            "simulated": "true" if VIRTUAL_MIC_NAME in self.mic["name"] else "false"}))
        self._markers = MarkerOutlet("microphone", namespace=namespace)
        self.stream.start()
        self._opened = True
        log.info("microphone: %r (%s) at %d Hz, %d-sample blocks, clock offset %.6f s", self.mic["name"],
                 self.mic["hostapi"], self.samplerate, self.blocksize, self.clock_offset)

    def _measure_clock_offset(self, tries: int = 20) -> float:
        """`local_clock() - stream.time`, from the most tightly bracketed of `tries` readings."""
        best = (float("inf"), 0.0)
        for _ in range(tries):
            before = pylsl.local_clock()
            stream_time = self.stream.time
            after = pylsl.local_clock()
            best = min(best, (after - before, (before + after) / 2 - stream_time))
        return best[1]

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        """PortAudio's thread: stamp and queue the block; nothing slow here."""
        adc = time_info.inputBufferAdcTime
        if adc > 0:
            first = adc + self.clock_offset
            self.adc_blocks += 1
        else:
            latency = self.stream.latency if self.stream is not None else 0.0
            first = pylsl.local_clock() - frames / self.samplerate - latency
            self.arrival_blocks += 1
        block = Block(indata[:, 0].copy(), first, bool(status.input_overflow))
        try:
            self.queue.put_nowait(block)
        except queue.Full:
            if self._first_drop is None:
                self._first_drop = first
            self.dropped_blocks += 1
            self.dropped_input_overflows += block.input_overflow
            self.dropped_frames += frames

    def step(self) -> None:
        pushed_until = self.stamps.next_stamp  # any hole this step reveals lies after this
        try:
            block = self.queue.get(timeout=0.05)
        except queue.Empty:
            block = None
        while block is not None:
            self._push(block)
            try:
                block = self.queue.get_nowait()
            except queue.Empty:
                block = None
        if self.dropped_input_overflows != self._marked_dropped_overflows:  # input_overflows: this thread only
            self.input_overflows += self.dropped_input_overflows - self._marked_dropped_overflows
            self._marked_dropped_overflows = self.dropped_input_overflows
            self._mark_overflow("input_overflow", "the device dropped input (in a block the full queue dropped)")
        if self.dropped_blocks != self._marked_drops:
            lost = self.dropped_blocks - self._marked_drops
            self._marked_drops = self.dropped_blocks
            # the earlier of: where the pushed audio ended (smoothed stamps, as recorded) and the capture
            # time of the first dropped block (the smoothed stamps may lag the capture stamps)
            known = [t for t in (pushed_until, self._first_drop) if t is not None]
            start, self._first_drop = (min(known) if known else None), None
            self._mark_overflow("queue_full", f"{lost} blocks dropped: LSL pushing fell behind", start=start)

    def _push(self, block: Block) -> None:
        if block.input_overflow:
            self.input_overflows += 1
            self._mark_overflow("input_overflow", "the device dropped input", at=block.first_stamp)
        reanchors, hole_start = self.stamps.reanchors, self.stamps.next_stamp
        block_start = self.stamps(block.first_stamp, len(block.samples))
        if self.stamps.reanchors != reanchors:  # the stamps jump: mark the hole exactly, whatever its cause
            reported = block.input_overflow or self.dropped_blocks != self._marked_drops
            why = "after the overflow above" if reported else "capture stalled"
            self._mark_overflow("stamp_jump", f"{why}: the audio before this block is missing", at=block_start,
                                start=hole_start)
        samples, first = self.decimator(block.samples)
        if len(samples) == 0:
            return
        stamp0 = block_start + first / self.samplerate - self.decimator.delay_s
        self._outlet.push_chunk(samples.reshape(-1, 1), stamp0 + (len(samples) - 1) / RATE)
        self.samples_pushed += len(samples)

    def _mark_overflow(self, kind: str, why: str, at: float | None = None, start: float | None = None) -> None:
        """Push `audio_overflow`, stamped when pushed (or `at`); `start`: when the dropping began, if known."""
        log.warning("microphone: %s (%s); input overflows %d, dropped blocks %d", kind, why,
                    self.input_overflows, self.dropped_blocks)
        span = {"start": round(start, 6)} if start is not None else {}
        self._markers.push("audio_overflow", timestamp=at, device="microphone", kind=kind,
                           input_overflows=self.input_overflows, dropped_blocks=self.dropped_blocks,
                           dropped_frames=self.dropped_frames, **span)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream.close()
            self.stream = None
            while not self.queue.empty():  # what was captured before the stop still goes out
                self._push(self.queue.get_nowait())
        log.info("microphone: %d samples pushed, %d input overflows, %d dropped blocks, stamps from ADC time "
                 "in %d blocks, from arrival in %d, %d re-anchored", self.samples_pushed, self.input_overflows,
                 self.dropped_blocks, self.adc_blocks, self.arrival_blocks, self.stamps.reanchors)


class GeneratedAudioNode(Node):
    """The fallback source without PortAudio: `samples` (16 kHz float32, looped) paced in real time."""

    name = "microphone"

    def __init__(self, config: Config, samples: np.ndarray | None = None) -> None:
        super().__init__(config)
        if samples is None:
            from eyemotion.acquisition.media import speech_like

            samples = speech_like(10.0, RATE)
        self.samples = np.asarray(samples, np.float32)
        self.block = round(RATE * config.microphone.block_ms / 1000)
        self.samples_pushed = 0
        self._outlet: pylsl.StreamOutlet | None = None
        self._t0 = 0.0

    def open(self) -> None:
        if self._outlet is None:
            self._outlet = pylsl.StreamOutlet(stream_info(AUDIO, namespace=self.config.lsl.namespace,
                                                          extra={"device": "generated (no PortAudio)",
                                                                 "simulated": "true"}))
            self._t0 = pylsl.local_clock()

    def step(self) -> None:
        due = self._t0 + (self.samples_pushed + self.block) / RATE
        delay = due - pylsl.local_clock()
        if delay > 0:
            time.sleep(min(delay, 0.1))
            if delay > 0.1:
                return
        idx = (self.samples_pushed + np.arange(self.block)) % len(self.samples)
        last = self._t0 + (self.samples_pushed + self.block - 1) / RATE
        self._outlet.push_chunk(self.samples[idx].reshape(-1, 1), last)
        self.samples_pushed += self.block


def main(argv: list[str] | None = None) -> int:
    """Run a microphone node from a script or shell (tests, benchmarks, the virtual microphone)."""
    parser = argparse.ArgumentParser(prog="python -m eyemotion.acquisition.microphone",
                                     description="Publish a microphone as eyemotion_audio until Ctrl-C.")
    parser.add_argument("--device", default="", help="input device name (or part of it) or index")
    parser.add_argument("--samplerate", type=int, default=RATE, help="device rate: 16000 or a multiple")
    parser.add_argument("--block-ms", type=float, default=20.0, help="block length, 10-50 ms")
    parser.add_argument("--namespace", default="", help="[lsl] namespace of the published streams")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--generated", action="store_true", help="publish generated audio (no PortAudio)")
    parser.add_argument("--list", action="store_true", help="list the input devices and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_lsl("machine")
    try:
        if args.list:
            for m in list_microphones():
                print(f"{m['index']:3d}  {m['name']}  ({m['hostapi']}, {m['default_samplerate']:g} Hz)")
            return 0
        config = config_from_dict({}).replace(
            lsl=LslConfig(namespace=args.namespace),
            microphone=MicrophoneConfig(device=args.device, samplerate=args.samplerate, block_ms=args.block_ms))
        config.microphone.validate()
        node = GeneratedAudioNode(config) if args.generated else MicrophoneNode(config)
        node.run(args.duration)
    except UserError as exc:
        print(f"eyemotion: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
