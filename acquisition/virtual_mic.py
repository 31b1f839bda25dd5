"""A virtual microphone: a WAV file captured through the real PortAudio -> ALSA path.

ALSA's `file` PCM plugin normally tees the audio passing through it into a file; with `infile` it also
*replaces* captured audio with bytes read from a file. Stacked as

    pcm.eyemotion_virtual_mic  = plug  ->  file (infile = FIFO we feed, file = FIFO we drain)  ->  null

it is an input device that PortAudio lists (`sounddevice.query_devices()`) like any other. Three
findings shaped it (alsa-lib 1.2.8, libportaudio2 19.6, checked here):

* `null` reports a full buffer at any moment, so capture from it runs as fast as the CPU allows. We pace
  it from the tee side: `file` points at a FIFO (shrunk to 4 KiB) that a thread drains at exactly the
  stream's byte rate, so ALSA blocks on its write once it runs ahead of real time.
* `infile` is read with one plain `read()` per mmap transfer, so it is a FIFO that a thread keeps full
  (the WAV, looped or once and then silence), never a regular file that ends.
* Because `null` always claims a full buffer, ALSA conversion plugins (e.g. `plug` converting S16 to
  float) read more from `infile` than they hand on, dropping audio. The file layer therefore serves
  float32 mono at 16 kHz, exactly what the microphone node asks for: `plug` then passes through
  untouched. A client asking for another rate or format still works, converted by `plug`, but may
  lose samples; that is a limit of this test device only.

ALSA reads its configuration when PortAudio initialises, so the device exists only in processes whose
environment carries `ALSA_CONFIG_PATH` = the system `alsa.conf` plus our file (`VirtualMic.env`), e.g. a
microphone node launched as a subprocess; `activate()` re-initialises PortAudio in the current process
instead (tests). Where ALSA is absent (`alsa_available()` is false), use the pure generator source
`eyemotion.acquisition.microphone.GeneratedAudioNode`.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import fcntl
import logging
import os
import select
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import numpy as np

from eyemotion import UserError

log = logging.getLogger(__name__)

VIRTUAL_MIC_NAME = "eyemotion_virtual_mic"
RATE = 16000
SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
_F_SETPIPE_SZ = 1031  # fcntl command (Linux)
_BYTES_PER_SAMPLE = 4  # float32 mono

_CONF = """\
# eyemotion virtual microphone (written by eyemotion.acquisition.virtual_mic)
pcm.{name} {{
    type plug
    slave {{
        pcm {{
            type file
            slave.pcm "null"
            file "{tee}"
            infile "{source}"
            format "raw"
        }}
        format FLOAT_LE
        rate {rate}
        channels 1
    }}
    hint {{
        show on
        description "eyemotion virtual microphone ({wav})"
    }}
}}
"""


def alsa_available() -> bool:
    """True where ALSA's config, libasound and libportaudio are installed (Linux with ALSA)."""
    return (SYSTEM_ALSA_CONF.exists() and ctypes.util.find_library("asound") is not None
            and ctypes.util.find_library("portaudio") is not None)


def load_wav_16k_mono(path: str | Path) -> np.ndarray:
    """A WAV file as float32 mono at 16 kHz (channels averaged, resampled with a polyphase filter)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise UserError(f"cannot read WAV {path} ({exc}); pass a readable WAV file") from None
    mono = data.mean(axis=1)
    if rate != RATE:
        g = np.gcd(int(rate), RATE)
        mono = resample_poly(mono, RATE // g, int(rate) // g)
    return mono.astype(np.float32)


class VirtualMic:
    """The virtual ALSA microphone `name`, fed from `wav`, while this object is started.

    >>> with VirtualMic("speech.wav", autoplay=False) as mic:
    ...     proc = subprocess.Popen([...microphone node...], env=mic.env)
    ...     mic.play()  # the WAV starts now; before and after it, the microphone hears silence
    """

    def __init__(self, wav: str | Path, *, loop: bool = False, autoplay: bool = True,
                 name: str = VIRTUAL_MIC_NAME, workdir: str | Path | None = None) -> None:
        if not alsa_available():
            raise UserError("the virtual microphone needs ALSA and libportaudio2 (apt install libasound2 "
                            "libportaudio2); use the generated audio source instead")
        self.wav = Path(wav)
        self.samples = load_wav_16k_mono(self.wav)
        self.loop = loop
        self.name = name
        self._workdir_arg = workdir
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.dir: Path | None = None
        self._pcm = self.samples.astype("<f4").tobytes()
        self._playing = autoplay
        self._pos = 0  # byte offset into the WAV while playing
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fds: list[int] = []
        self.bytes_fed = 0
        self.bytes_drained = 0
        self.plays_done = 0

    # -- lifetime ----------------------------------------------------------------------------------
    @property
    def conf_path(self) -> Path:
        return self.dir / "asound.conf"

    @property
    def env(self) -> dict[str, str]:
        """This process's environment plus `ALSA_CONFIG_PATH`, for the process that opens the device."""
        return {**os.environ, "ALSA_CONFIG_PATH": f"{SYSTEM_ALSA_CONF}:{self.conf_path}"}

    def start(self) -> Self:
        if self._workdir_arg is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="eyemotion-vmic-")
            self.dir = Path(self._tmp.name)
        else:
            self.dir = Path(self._workdir_arg)
            self.dir.mkdir(parents=True, exist_ok=True)
        source, tee = self.dir / "source.fifo", self.dir / "tee.fifo"
        for fifo in (source, tee):
            if fifo.exists():
                fifo.unlink()
            os.mkfifo(fifo)
        # O_RDWR: opening never blocks, and we stay a reader and a writer of both FIFOs, so ALSA opening
        # and closing them (PortAudio probes every device) never breaks the pipes.
        source_fd = os.open(source, os.O_RDWR | os.O_NONBLOCK)
        tee_fd = os.open(tee, os.O_RDWR | os.O_NONBLOCK)
        self._fds = [source_fd, tee_fd]
        with contextlib.suppress(OSError):
            fcntl.fcntl(tee_fd, _F_SETPIPE_SZ, 4096)  # ALSA may run at most ~64 ms ahead of real time
        self.conf_path.write_text(_CONF.format(name=self.name, tee=tee, source=source, rate=RATE, wav=self.wav.name))
        self._threads = [threading.Thread(target=self._feed, args=(source_fd,), name="vmic-feed", daemon=True),
                         threading.Thread(target=self._pace, args=(tee_fd,), name="vmic-pace", daemon=True)]
        for t in self._threads:
            t.start()
        log.info("virtual microphone %r serving %s (%.2f s) via %s", self.name, self.wav,
                 len(self.samples) / RATE, self.conf_path)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def play(self) -> None:
        """Start (or restart) the WAV from its beginning."""
        with self._lock:
            self._pos = 0
            self._playing = True

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Make the device visible to PortAudio in *this* process (re-initialises sounddevice)."""
        import sounddevice as sd

        old = os.environ.get("ALSA_CONFIG_PATH")
        os.environ["ALSA_CONFIG_PATH"] = self.env["ALSA_CONFIG_PATH"]
        sd._terminate()
        sd._initialize()
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("ALSA_CONFIG_PATH", None)
            else:
                os.environ["ALSA_CONFIG_PATH"] = old
            sd._terminate()
            sd._initialize()

    # -- threads -----------------------------------------------------------------------------------
    def _next_bytes(self, size: int) -> bytes:
        """The next `size` bytes of what the microphone hears (the WAV while playing, else silence)."""
        with self._lock:
            if not self._playing:
                return bytes(size)
            chunk = self._pcm[self._pos:self._pos + size]
            self._pos += len(chunk)
            if self._pos >= len(self._pcm):
                self.plays_done += 1
                self._pos = 0
                self._playing = self.loop
            return chunk or bytes(size)

    def _feed(self, fd: int) -> None:
        """Keep the `infile` FIFO full, so that every read ALSA makes is complete."""
        pending = b""
        while not self._stop.is_set():
            _, writable, _ = select.select([], [fd], [], 0.1)
            if not writable:
                continue
            if not pending:
                pending = self._next_bytes(4096)
            try:
                written = os.write(fd, pending)
            except BlockingIOError:
                continue
            pending = pending[written:]
            self.bytes_fed += written

    def _pace(self, fd: int) -> None:
        """Drain the tee FIFO at the stream's byte rate; ALSA blocks on it when it runs ahead of time."""
        byte_rate = RATE * _BYTES_PER_SAMPLE
        start = time.monotonic()
        drained = 0
        while not self._stop.is_set():
            time.sleep(0.005)
            due = int((time.monotonic() - start) * byte_rate) - drained
            if due > byte_rate // 10:  # nobody captured for a while: do not let a burst through later
                start = time.monotonic()
                drained = 0
                due = 0
            while due > 0:
                try:
                    data = os.read(fd, due)
                except BlockingIOError:
                    break
                drained += len(data)
                self.bytes_drained += len(data)
                due -= len(data)
