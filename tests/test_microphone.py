"""The microphone node through the virtual ALSA microphone (real PortAudio, real ALSA plugins, real LSL),
its overflow markers, bad-input errors, the 16 kHz decimator and the generated fallback source."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

import numpy as np
import pylsl
import pytest
from eyemotion.acquisition.media import make_test_audio, write_test_wav
from eyemotion.acquisition.microphone import (
    Block,
    Decimator,
    GeneratedAudioNode,
    MicrophoneError,
    MicrophoneNode,
    check_rate,
    find_microphone,
)
from eyemotion.acquisition.virtual_mic import VIRTUAL_MIC_NAME, VirtualMic, alsa_available
from scipy.signal import correlate

from eyemotion.config import MicrophoneConfig
from eyemotion.streams import AUDIO, MARKERS, check_info, open_inlet

needs_alsa = pytest.mark.skipif(not alsa_available(), reason="the virtual microphone needs ALSA and libportaudio2")

WAV_S = 3.0


def wait_inlet(spec, namespace: str, total_s: float = 60.0) -> pylsl.StreamInlet:
    """Poll for a stream that a subprocess is still starting, then open and subscribe an inlet.

    (A `resolve_bypred` started before the outlet existed did not find it here, with liblsl 1.18;
    repeated `resolve_streams` look-ups do.)
    """
    deadline = time.monotonic() + total_s
    while not any(i.name() == spec.name and i.source_id().endswith(f"#{namespace}")
                  for i in pylsl.resolve_streams(wait_time=1.0)):
        assert time.monotonic() < deadline, f"{spec.name} did not appear within {total_s} s"
    inlet = open_inlet(spec, namespace=namespace, timeout=5)
    inlet.open_stream(timeout=5)
    return inlet


def aligned_ncc(captured: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Normalised cross-correlation of `reference` with the best-aligned stretch of `captured`."""
    cc = correlate(captured, reference, mode="valid")
    lag = int(np.argmax(cc))
    seg = captured[lag:lag + len(reference)]
    return float(seg @ reference / (np.linalg.norm(seg) * np.linalg.norm(reference) + 1e-12)), lag


@needs_alsa
def test_virtual_mic_audio_reaches_lsl_intact(tmp_path, namespace):
    wav = write_test_wav(tmp_path / "speech.wav", WAV_S, kind="speech-like", seed=3)
    reference = make_test_audio(WAV_S, kind="speech-like", seed=3)
    with VirtualMic(wav, autoplay=False) as mic:
        node = subprocess.Popen(
            [sys.executable, "-m", "eyemotion.acquisition.microphone", "--device", VIRTUAL_MIC_NAME,
             "--namespace", namespace, "--block-ms", "20", "--duration", "90"],
            env=mic.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            inlet = wait_inlet(AUDIO, namespace)
            info = inlet.info()
            assert check_info(AUDIO, info) == []
            assert info.desc().child("eyemotion").child_value("device") == VIRTUAL_MIC_NAME
            chunks, stamps = [], []
            inlet.pull_chunk(timeout=0.5)  # discard the silence before the WAV
            start = pylsl.local_clock()
            mic.play()
            while mic.plays_done == 0 or pylsl.local_clock() - start < WAV_S + 1.5:
                data, ts = inlet.pull_chunk(timeout=0.2, max_samples=4096)
                chunks.extend(data)
                stamps.extend(ts)
                assert pylsl.local_clock() - start < 30, "the WAV never finished playing"
            elapsed = pylsl.local_clock() - start
        finally:
            node.terminate()
            out, _ = node.communicate(timeout=20)
    captured = np.asarray(chunks, np.float32)[:, 0]
    stamps = np.asarray(stamps)
    ncc, lag = aligned_ncc(captured, reference)
    assert ncc > 0.9, f"captured audio does not match the WAV (ncc {ncc:.3f}); node said:\n{out[-2000:]}"
    assert lag + len(reference) <= len(captured)  # the whole WAV arrived
    # as many samples as 16 kHz gives for the time we listened (paced, neither a burst nor a trickle)
    assert len(captured) == pytest.approx(elapsed * 16000, rel=0.15)
    # stamps increase, 1/16000 s apart (a block may shift by a quarter sample; rare re-anchored gaps)
    spacing = np.diff(stamps) * 16000
    assert np.all(spacing > 0)
    assert np.mean(np.abs(spacing - 1) < 0.3) > 0.99
    assert "0 input overflows, 0 dropped blocks" in out
    assert "stamps from ADC time in" in out


@needs_alsa
def test_overflows_are_counted_and_marked(tmp_path, config):
    wav = write_test_wav(tmp_path / "tone.wav", 2.0, kind="tone")
    cfg = config.replace(microphone=MicrophoneConfig(device=VIRTUAL_MIC_NAME, block_ms=10, queue_s=0.1))
    with VirtualMic(wav, loop=True) as mic, mic.activate():
        node = MicrophoneNode(cfg)
        node.open()
        try:
            markers = open_inlet(MARKERS, namespace=config.lsl.namespace, timeout=5)
            markers.open_stream(timeout=5)
            time.sleep(0.3)
            node.step()
            pushed_until = node.stamps.next_stamp  # where the audio pushed so far ends (LSL time)
            time.sleep(0.8)  # the consumer stalls: 0.1 s of queue cannot hold 0.8 s of audio
            node.step()
            assert node.dropped_blocks > 0
            # a device-side overflow, as PortAudio reports it in the callback's status flags
            import sounddevice as sd

            class TimeInfo:  # PortAudio's time struct, as the callback receives it
                inputBufferAdcTime = node.stream.time
                currentTime = node.stream.time

            node._callback(np.zeros((160, 1), np.float32), 160, TimeInfo(),
                           sd.CallbackFlags(sd._lib.paInputOverflow))
            node.step()
            assert node.input_overflows == 1
            # the same report in a block that a full queue drops is still counted and marked (on a loaded machine
            # the device's own blocks may have filled the 0.1-s queue before the first report too)
            dropped_before = node.dropped_input_overflows
            try:  # the device's own blocks keep coming too
                while True:
                    node.queue.put_nowait(Block(np.zeros(160, np.float32), node.stamps.next_stamp, False))
            except queue.Full:
                pass
            node._callback(np.zeros((160, 1), np.float32), 160, TimeInfo(),
                           sd.CallbackFlags(sd._lib.paInputOverflow))
            node.step()
            assert node.input_overflows == 2 and node.dropped_input_overflows == dropped_before + 1
            received = []
            deadline = time.monotonic() + 5
            while len(received) < 2 and time.monotonic() < deadline:
                chunk, _ = markers.pull_chunk(timeout=0.2)
                received += [json.loads(m[0]) for m in chunk]
        finally:
            node.close()
    kinds = [(m["event"], m["kind"]) for m in received]
    assert ("audio_overflow", "queue_full") in kinds and ("audio_overflow", "input_overflow") in kinds
    queue_full = next(m for m in received if m["kind"] == "queue_full")
    assert queue_full["dropped_blocks"] > 0 and queue_full["source"] == "microphone"
    # the marker is pushed after the 0.8-s stall, but says the dropping began where the pushed audio ended
    # (give or take the capture stamps' lag behind the smoothed ones, and the 0.1-s queue filling up)
    assert abs(queue_full["start"] - pushed_until) < 0.4


@needs_alsa
def test_unknown_microphone_lists_the_available_ones(tmp_path):
    with VirtualMic(write_test_wav(tmp_path / "s.wav", 0.5, kind="silence")) as mic, mic.activate():
        with pytest.raises(MicrophoneError) as err:
            find_microphone("Blue Yeti Nano")
        assert find_microphone("virtual_mic")["name"] == VIRTUAL_MIC_NAME  # a unique part of a name
    message = str(err.value)
    assert "'Blue Yeti Nano' not found" in message and VIRTUAL_MIC_NAME in message and "\n" not in message


@needs_alsa
def test_refused_sample_rate_names_the_default_rate(tmp_path, config):
    rate = 16000 * 63  # a valid multiple of 16 kHz that the device cannot do
    cfg = config.replace(microphone=MicrophoneConfig(device=VIRTUAL_MIC_NAME, samplerate=rate))
    with VirtualMic(write_test_wav(tmp_path / "s.wav", 0.5, kind="silence")) as mic, mic.activate():
        check_rate(find_microphone(VIRTUAL_MIC_NAME), 16000)  # the contract rate is accepted
        with pytest.raises(MicrophoneError) as err:
            MicrophoneNode(cfg).open()
    assert f"refuses {rate} Hz" in str(err.value) and "default rate is 16000 Hz" in str(err.value)


def test_decimator_is_chunk_invariant_and_keeps_the_band():
    rate = 48000
    t = np.arange(rate) / rate
    x = (np.sin(2 * np.pi * 1000 * t) + 0.5 * np.sin(2 * np.pi * 11000 * t)).astype(np.float32)
    whole, first = Decimator(3, rate)(x)
    assert first == 0 and len(whole) == 16000
    dec = Decimator(3, rate)
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, len(x)), 40, replace=False))
    pieces = [dec(part)[0] for part in np.split(x, cuts)]
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-6)
    spectrum = np.abs(np.fft.rfft(whole[4000:]))
    freqs = np.fft.rfftfreq(len(whole[4000:]), 1 / 16000)
    assert abs(freqs[np.argmax(spectrum)] - 1000) < 5
    alias = spectrum[np.argmin(np.abs(freqs - 5000))]  # 11 kHz would alias to 5 kHz without the filter
    assert alias < 0.01 * spectrum.max()


def test_generated_source_publishes_its_samples(config):
    samples = make_test_audio(1.0, kind="speech-like", seed=5)
    node = GeneratedAudioNode(config, samples)
    node.open()
    inlet = open_inlet(AUDIO, namespace=config.lsl.namespace, timeout=5)
    inlet.open_stream(timeout=5)
    time.sleep(0.2)
    thread = threading.Thread(target=node.run, kwargs={"duration": 1.5, "handle_signals": False})
    thread.start()
    got, stamps = [], []
    while thread.is_alive() or not got:
        data, ts = inlet.pull_chunk(timeout=0.2)
        got += data
        stamps += ts
    thread.join()
    data, ts = inlet.pull_chunk(timeout=0.5)
    got += data
    stamps += ts
    got = np.asarray(got, np.float32)[:, 0]
    assert len(got) == node.samples_pushed
    np.testing.assert_allclose(got, np.resize(samples, len(got)), atol=1e-6)  # looped in order
    np.testing.assert_allclose(np.diff(stamps), 1 / 16000, atol=1e-6)
