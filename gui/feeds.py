"""Finding and reading the contract streams for the dashboard, off the GUI thread.

`StreamMonitor` keeps one `pylsl.ContinuousResolver` per contract stream (filtered on the `[lsl]`
namespace/hostname). A monitor thread opens an inlet for each stream that appears, checks its full info
against the contract (`eyemotion.streams.check_info`); one reader thread pulls every inlet's chunk
without blocking every ~25 ms into its feed's `RingBuffer` (numeric streams) or `EventLog` (string
streams). (One thread for all inlets: nine threads waking 40 times a second cost more CPU than the data.)
The monitor thread also refreshes each inlet's clock offset (`time_correction`) every few seconds.
A stream with the wrong layout is never read: its feed is "incompatible" with the reason.
The GUI thread only reads snapshots (`Feed.status()`), so a slow redraw can never stall acquisition.

Several `eyemotion_markers` streams are normal (one per sender: runner, dashboard, supervisor); their
events are merged. For every other stream the first compatible one is read and the others are named.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import pylsl
from eyemotion.gui.ring import EventLog, RingBuffer
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeout

from eyemotion.config import Config
from eyemotion.streams import ALL, IRREGULAR, MARKERS, PREVIEW, StreamSpec, _predicate, check_info, clock_processing

log = logging.getLogger(__name__)

PULL_INTERVAL_S = 0.03
RATE_WINDOW_S = 2.0
CLOCK_OFFSET_EVERY_S = 5.0
RETRY_DEAD_S = 5.0
#: Capacity of an irregular numeric stream's ring (samples), e.g. face/emotion.
IRREGULAR_CAPACITY = 2048
#: Events kept per string stream (default 1000): previews are large and only the newest is shown.
EVENT_CAPACITY = {PREVIEW.key: 4}


class State(str, enum.Enum):
    MISSING = "missing"
    WAITING = "waiting"  # connected, no sample yet
    OK = "ok"
    STALE = "stale"
    INCOMPATIBLE = "incompatible"

    @property
    def is_alert(self) -> bool:
        return self in (State.MISSING, State.STALE, State.INCOMPATIBLE)


@dataclass
class StreamStatus:
    """A snapshot of one contract stream, for the streams panel."""

    name: str
    state: State
    reason: str = ""
    source_id: str = ""
    hostname: str = ""
    nominal_rate: float = 0.0
    effective_rate: float = 0.0
    last_age: float = float("nan")
    samples: int = 0
    gaps: int = 0
    dropped: int = 0
    clock_offset: float = float("nan")
    streams: int = 0


@dataclass
class _Connection:
    info: pylsl.StreamInfo
    inlet: pylsl.StreamInlet
    max_samples: int = 64
    next_offset: float = 0.0  # time.monotonic() of the next clock-offset query
    alive: bool = True


class Feed:
    """Everything the dashboard knows about one contract stream: its data and its health."""

    def __init__(self, spec: StreamSpec, history_s: float, stale_after: float | None) -> None:
        self.spec = spec
        self.history_s = history_s
        self.stale_after = stale_after  # None: never stale (markers)
        self.numeric = spec.channel_format != "string"
        self.data: RingBuffer | EventLog = (
            RingBuffer(1, spec.channel_count)
            if self.numeric
            else EventLog(EVENT_CAPACITY.get(spec.key, 1000))
        )
        self.connections: dict[str, _Connection] = {}  # by stream uid
        self.rejected: dict[str, str] = {}  # uid -> reason
        self.others: list[str] = []  # source ids of extra streams not read
        self.nominal_rate = 0.0
        self.samples = 0
        self.gaps = 0
        self.dropped = 0
        self.clock_offset = float("nan")
        self.last_stamp = float("nan")
        self.last_receive = float("nan")
        self.connected_at = float("nan")
        self.lost_at = float("nan")
        self._recent: deque[tuple[float, int]] = deque()  # (receive clock, n samples)
        self._backlog = True  # the first pull after connecting holds the outlet's backlog
        self._lock = threading.Lock()

    # -- written by reader threads ------------------------------------------------------------------
    def _prepare(self, info: pylsl.StreamInfo) -> None:
        """Size the ring for this stream's rate (first connection only)."""
        rate = info.nominal_srate()
        self.nominal_rate = rate
        if self.numeric and self.data.capacity == 1:
            capacity = int(rate * self.history_s) + 64 if rate > 0 else IRREGULAR_CAPACITY
            self.data = RingBuffer(capacity, self.spec.channel_count)
        self.connected_at = pylsl.local_clock()
        self._backlog = True

    def ingest(self, samples, stamps) -> None:
        stamps = np.asarray(stamps, dtype=float)
        n = len(stamps)
        if n == 0:
            return
        with self._lock:
            if self.nominal_rate > 0:
                prev = self.last_stamp
                seq = stamps if np.isnan(prev) else np.concatenate(([prev], stamps))
                dt = np.diff(seq)
                period = 1.0 / self.nominal_rate
                late = dt > 2.5 * period
                if late.any():
                    self.gaps += int(late.sum())
                    self.dropped += int(np.maximum(np.round(dt[late] / period) - 1, 0).sum())
            self.samples += n
            self.last_stamp = float(stamps[-1])
            self.last_receive = pylsl.local_clock()
            if not self._backlog:  # effective rate = arrival rate (a node's delay does not lower it)
                self._recent.append((self.last_receive, n))
                while self._recent and self.last_receive - self._recent[0][0] > RATE_WINDOW_S:
                    self._recent.popleft()  # only the rate window is kept: no growth
            self._backlog = False
        if self.numeric:
            self.data.extend(samples, stamps)
        else:
            self.data.extend(
                [s[0] if isinstance(s, (list, tuple)) else str(s) for s in samples], list(stamps)
            )

    # -- read by the GUI thread ---------------------------------------------------------------------
    def reset_data(self) -> None:
        """Forget the samples (after a replay seek); the health counters stay."""
        self.data.clear()
        with self._lock:
            self.last_stamp = float("nan")

    @property
    def connected(self) -> bool:
        return any(c.alive for c in self.connections.values())

    def status(self, now: float | None = None) -> StreamStatus:
        now = pylsl.local_clock() if now is None else now
        live = [c for c in self.connections.values() if c.alive]
        with self._lock:
            recent = [n for t, n in self._recent if now - t <= RATE_WINDOW_S]
        first = live[0].info if live else None
        age = now - self.last_receive if not np.isnan(self.last_receive) else float("nan")
        st = StreamStatus(
            name=self.spec.name,
            state=State.MISSING,
            source_id=first.source_id() if first else "",
            hostname=first.hostname() if first else "",
            nominal_rate=self.nominal_rate,
            effective_rate=sum(recent) / RATE_WINDOW_S,
            last_age=age,
            samples=self.samples,
            gaps=self.gaps,
            dropped=self.dropped,
            clock_offset=self.clock_offset,
            streams=len(live),
        )
        if not live:
            if self.rejected:
                st.state = State.INCOMPATIBLE
                st.reason = next(iter(self.rejected.values()))
            elif not np.isnan(self.lost_at):
                st.reason = f"stream lost {now - self.lost_at:.0f} s ago"
            else:
                st.reason = "not found"
            return st
        if np.isnan(self.last_receive) or self.last_receive < self.connected_at:
            waited = now - self.connected_at
            if self.stale_after is not None and waited > self.stale_after:
                st.state, st.reason = State.STALE, f"no sample in {waited:.1f} s since connecting"
            else:
                st.state, st.reason = State.WAITING, "connected, waiting for data"
        elif self.stale_after is not None and age > self.stale_after:
            st.state, st.reason = State.STALE, f"no data for {age:.1f} s"
        else:
            st.state = State.OK
            if self.others:
                st.reason = "also found, not read: " + ", ".join(self.others)
        return st


def stale_after(spec: StreamSpec, stale_s: float) -> float | None:
    """How long a stream may stay silent: regular streams `stale_s`, irregular ones longer, markers never."""
    if spec is MARKERS:
        return None
    return stale_s if spec.nominal_rate != IRREGULAR else 2.5 * stale_s


class StreamMonitor:
    """Resolve, check and read every contract stream; `feeds[spec.key]` holds each one's data and health."""

    def __init__(self, config: Config, specs: tuple[StreamSpec, ...] = ALL) -> None:
        self.config = config
        dash = config.dashboard
        self.feeds: dict[str, Feed] = {
            s.key: Feed(s, dash.history_s, stale_after(s, dash.stale_s)) for s in specs
        }
        #: "now" for the data's stamps: LSL time live; a replay's stream clock (its stamps advance at
        #: recording rate, so at 2x or 4x they run ahead of the wall clock)
        self.data_clock = pylsl.local_clock
        self._resolvers: dict[str, pylsl.ContinuousResolver] = {}
        self._dead: dict[str, float] = {}  # uid -> time of a failed open (retry later)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: threading.Thread | None = None

    def __getitem__(self, key: str) -> Feed:
        return self.feeds[key]

    def data_now(self) -> float:
        return float(self.data_clock())

    def simulated_sources(self) -> list[str]:
        """Streams read now whose producer marks them simulated (`desc/eyemotion/simulated` = true: the
        simulated tracker; camera or microphone nodes may mark theirs too). A replay copies the mark."""
        names = []
        for feed in self.feeds.values():
            for conn in list(feed.connections.values()):
                value = conn.info.desc().child("eyemotion").child_value("simulated")
                if conn.alive and value.strip().lower() in ("true", "1", "yes"):
                    names.append(feed.spec.name)
                    break
        return names

    def start(self) -> None:
        lsl = self.config.lsl
        for key, feed in self.feeds.items():
            pred = _predicate(feed.spec, lsl.namespace, lsl.hostname)
            self._resolvers[key] = pylsl.ContinuousResolver(pred=pred, forget_after=3.0)
        self._thread = threading.Thread(target=self._watch, name="dashboard-resolver", daemon=True)
        self._thread.start()
        self._reader = threading.Thread(target=self._read_all, name="dashboard-reader", daemon=True)
        self._reader.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._reader):
            if thread is not None:
                thread.join(5)
        for feed in self.feeds.values():
            for conn in feed.connections.values():
                self._drop(feed, conn)
        self._resolvers.clear()

    def statuses(self) -> list[StreamStatus]:
        now = pylsl.local_clock()
        return [f.status(now) for f in self.feeds.values()]

    # -- the monitor thread -------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.is_set():
            for key, resolver in list(self._resolvers.items()):
                try:
                    infos = resolver.results()
                except Exception as exc:  # noqa: BLE001 - a resolver error must not end monitoring
                    log.warning("resolving %s failed: %s", key, exc)
                    continue
                self._update(self.feeds[key], infos)
            self._clock_offsets()
            self._stop.wait(0.5)

    def _clock_offsets(self) -> None:
        now = time.monotonic()
        for feed in self.feeds.values():
            for conn in list(feed.connections.values()):
                if conn.alive and now >= conn.next_offset:
                    conn.next_offset = now + CLOCK_OFFSET_EVERY_S
                    try:
                        feed.clock_offset = conn.inlet.time_correction(timeout=1.0)
                    except (LslTimeout, LostError):
                        pass

    def _update(self, feed: Feed, infos: list[pylsl.StreamInfo]) -> None:
        ns = self.config.lsl.namespace
        found = {i.uid(): i for i in infos if not ns or i.source_id().endswith(f"#{ns}")}
        for uid in [u for u in feed.rejected if u not in found]:
            del feed.rejected[uid]
        for uid in [u for u, c in feed.connections.items() if not c.alive]:
            del feed.connections[uid]
        feed.others = []
        multi = feed.spec is MARKERS
        now = time.monotonic()
        for uid, info in found.items():
            if uid in feed.connections or uid in feed.rejected:
                continue
            if now - self._dead.get(uid, -1e9) < RETRY_DEAD_S:
                continue
            if feed.connected and not multi:
                feed.others.append(info.source_id())
                continue
            self._connect(feed, info)

    def _connect(self, feed: Feed, info: pylsl.StreamInfo) -> None:
        diffs = check_info(feed.spec, info, check_desc=False)
        if diffs:
            feed.rejected[info.uid()] = "; ".join(diffs)
            log.warning("%s from %s is incompatible: %s", info.name(), info.source_id(), "; ".join(diffs))
            return
        inlet = pylsl.StreamInlet(info, max_buflen=30, recover=False, processing_flags=clock_processing(info))
        try:
            full = inlet.info(timeout=2.0)
        except Exception:  # noqa: BLE001 - timeout or lost: the stream may be going away; retry later
            self._dead[info.uid()] = time.monotonic()
            return
        diffs = check_info(feed.spec, full)
        if diffs:
            feed.rejected[info.uid()] = "; ".join(diffs)
            return
        feed._prepare(full)
        feed.connections[info.uid()] = _Connection(
            full, inlet, max_samples=max(64, int(full.nominal_srate() * 0.5))
        )
        log.info("reading %s from %s", full.name(), full.source_id())

    def _read_all(self) -> None:
        """The reader thread: drain every live inlet, then sleep PULL_INTERVAL_S."""
        while not self._stop.wait(PULL_INTERVAL_S):
            for feed in self.feeds.values():
                for conn in list(feed.connections.values()):
                    if conn.alive:
                        self._pull(feed, conn)

    def _pull(self, feed: Feed, conn: _Connection) -> None:
        try:
            while True:
                samples, stamps = conn.inlet.pull_chunk(
                    timeout=0.0, max_samples=conn.max_samples, as_numpy=feed.numeric
                )
                if len(stamps):
                    feed.ingest(samples, stamps)
                if len(stamps) < conn.max_samples:
                    return
        except LostError:
            log.warning("%s from %s was lost", conn.info.name(), conn.info.source_id())
        except Exception:
            log.exception("reading %s from %s failed", conn.info.name(), conn.info.source_id())
        self._drop(feed, conn)

    @staticmethod
    def _drop(feed: Feed, conn: _Connection) -> None:
        if not conn.alive:
            return
        conn.alive = False
        feed.lost_at = pylsl.local_clock()
        try:
            conn.inlet.close_stream()
        except Exception:  # noqa: BLE001 - closing a lost inlet may fail; nothing to do
            pass
