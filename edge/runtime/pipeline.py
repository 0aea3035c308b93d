"""The runtime's pipeline: source -> ROI + calibration -> segmenter -> measurement -> sinks.

The pipeline owns the threads (capture, inference, output); sources, the segmenter and sinks
start none of their own. The inference thread does nothing but invoke the model: the freeze
check, the resize to the model grid and the input tensor are made on the capture thread, argmax,
measurement and the temporal filter on the output thread, so that they overlap the next invoke on
a core the interpreter leaves free, and the inference thread seldom waits for the interpreter lock.
Given ROI and calibration options, the capture thread cuts each screen down to its B-mode region
(edge.screen.prepare) before anything else sees it; a change of layout is noted on the first
measurement after it (`extra["layout_event"]`; the first layout as `extra["layout"]`).

Faults a cart meets in a day are survived here: a live source that loses its device raises
SignalLost; the capture thread then tells every sink NO_SIGNAL (the display shows it; repeated
at each reopen attempt, at most `retry_max` apart), logs the loss, waits on the stop event for
the source's backoff and reads again, and tells the sinks RUNNING when frames come back. While
no measurement comes, the output thread calls each sink's `idle()` so the display link keeps its
heartbeats and can reconnect. A sink that fails (a full recording disk, a log that cannot be
written) is reported once and dropped; the others go on. Run statistics stay bounded however
long the run: counts for every frame, the measurements themselves for the last
`KEEP_MEASUREMENTS` only.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from edge.errors import SignalLost
from edge.frame import Measurement
from edge.measure.quality import REJECTING, Quality, names
from edge.measure.temporal import TemporalOptions
from edge.measure.thickness import ThicknessOptions
from edge.model.segmenter import Segmenter
from edge.runtime.chain import ChainOptions, FrameChain
from edge.runtime.queues import BLOCK, KEEP_NEWEST, BoundedQueue
from edge.screen.options import RoiOptions, SpacingOptions
from edge.screen.prepare import LayoutEvent
from edge.sinks.base import NO_SIGNAL, RUNNING, Sink
from edge.sources.base import Source

KEEP_MEASUREMENTS = 2000  # the most recent measurements kept in RunStats (the sinks see them all)
IDLE_S = 0.25  # without a measurement for this long, the output thread calls each sink's idle()
NOTE_EVERY_S = 60.0  # during a long outage, a "still no signal" line this often
STOP_GRACE_S = 0.3  # once stopped, how long the model may take to finish its frame
# Frames made ready for the model that may wait for it. A live source's newest frame replaces the
# one waiting, so a frame waits at most for the invoke under way: with two waiting, a model slower
# than the source showed each frame about one invoke later than it could. A file's frames all
# count, so two wait, and reading runs a frame ahead of the model.
LIVE_WAITING, FILE_WAITING = 1, 2


@dataclass(frozen=True)
class StatusChange:
    """The runtime's state as the output thread tells it to the sinks (edge.sinks RUNNING, NO_SIGNAL)."""

    code: str
    text: str
    t: float


@dataclass
class RunStats:
    measurements: deque = field(default_factory=lambda: deque(maxlen=KEEP_MEASUREMENTS))  # the most recent
    measured: int = 0  # every frame that reached the sinks
    accepted: int = 0  # of those, with at least one band measured and not rejected by a quality flag
    flagged: dict[str, int] = field(default_factory=dict)  # rejecting flag name -> frames with a band flagged so
    bands_measured: int = 0  # band measurements (one per frame for a single-band model)
    bands_accepted: int = 0
    dead_sinks: dict[str, str] = field(default_factory=dict)
    t_start: float = 0.0
    t_end: float = 0.0
    t_first_measurement: float | None = None
    t_last_measurement: float | None = None
    dropped_frames: int = 0
    layout_events: list[LayoutEvent] = field(default_factory=list)  # the first layout, then each change
    frames_without_roi: int = 0  # screens on which no B-mode region was found (not measured)
    frames_rect_misfit: int = 0  # frames too small for the fixed [roi] rect after the first (not measured)
    frames_layout_changing: int = 0  # screens whose layout changed, before the region was found again (not measured)
    corrupt_frames: int = 0  # frames the source could not decode (skipped), as it counts them
    oversize_frames: int = 0  # frames larger than [source] max_pixels (skipped), as the source counts them
    signal_losses: int = 0  # times a live source lost its device
    no_signal_s: float = 0.0  # time spent without signal
    source_reconnects: int = 0  # times a live source reopened its device
    unprocessed_at_stop: int = 0  # frames captured but let go when the run was stopped

    def add(self, frame: Measurement | list[Measurement]) -> None:
        """Count one frame: its measurement, or the list of its bands' measurements."""
        ms = [frame] if isinstance(frame, Measurement) else list(frame)
        self.measured += 1
        ok = [not (m.flags & REJECTING) and not math.isnan(m.thickness) for m in ms]
        self.accepted += any(ok)
        self.bands_measured += len(ms)
        self.bands_accepted += sum(ok)
        rejecting = Quality.OK
        for m in ms:
            self.measurements.append(m)
            rejecting |= m.flags & REJECTING
        for name in names(rejecting):
            self.flagged[name] = self.flagged.get(name, 0) + 1

    @property
    def layout_changes(self) -> int:
        """How often the B-mode region or its spacing changed after the first layout."""
        return sum(not e.initial for e in self.layout_events)

    @property
    def frames(self) -> int:
        return self.measured

    @property
    def fps(self) -> float:
        dt = self.t_end - self.t_start
        return self.frames / dt if dt > 0 else 0.0

    @property
    def steady_fps(self) -> float:
        """Frames per second from the first measurement to the last: the rate once the screen's
        region and scale are known (the start, which finds them, left out); `fps` below two."""
        first, last = self.t_first_measurement, self.t_last_measurement
        if self.measured < 2 or first is None or last is None or last <= first:
            return self.fps
        return (self.measured - 1) / (last - first)


class Pipeline:
    """source -> the per-frame chain (edge.runtime.chain) -> sinks, on three threads.

    roi, calibration: the config's [roi] and [calibration] sections. Given either (tlf-edge run
    always gives both), each frame goes through `Prepare` first: a full screen is cut down to its
    B-mode region and calibrated, and only that region travels on. Without them frames reach the
    model as the source delivers them (sources that deliver the B-mode region only).
    """

    def __init__(
        self,
        source: Source,
        segmenter: Segmenter,
        sinks: list[Sink],
        options: ThicknessOptions = ThicknessOptions(),
        temporal: TemporalOptions = TemporalOptions(),
        err=sys.stderr,
        roi: RoiOptions | None = None,
        calibration: SpacingOptions | None = None,
    ):
        self.source, self.segmenter, self.sinks, self.err = source, segmenter, list(sinks), err
        if source.stills and (roi is not None or calibration is not None):  # a changed picture is detected at once
            roi = replace(roi or RoiOptions(), min_gap=0, persist=1)
        self.chain = FrameChain(segmenter, ChainOptions(options, temporal, roi, calibration))
        source.grayscale_only = self.chain.grayscale_input  # before the capture thread opens it
        self.stop_event = threading.Event()
        self.stats: RunStats | None = None
        # Layout events wait here until the first measured frame at or after them: the frames
        # queue may drop the very frame that carried one.
        self._pending: list[LayoutEvent] = []
        self._pending_lock = threading.Lock()

    def run(self, max_frames: int | None = None) -> RunStats:
        """Run until the source ends, `max_frames` are done or `stop_event` is set.

        Three threads overlap capture, inference and output. Frames wait in a queue that keeps
        the newest for live sources and blocks for files; measurements wait in a blocking queue
        so that every one reaches the log. Once `stop_event` is set, the frame being segmented
        is finished and logged if that takes at most STOP_GRACE_S, frames still waiting are
        let go (`unprocessed_at_stop`), so a stop is prompt even on a starved CPU; every frame
        that reached the outputs is in the log. An exception in any stage is re-raised here.
        """
        stats = self.stats = RunStats(t_start=time.monotonic())  # kept when run() raises: what was done till then
        self._live = self._open_sinks(stats)
        live = self.source.live
        self._frames = BoundedQueue(LIVE_WAITING if live else FILE_WAITING, KEEP_NEWEST if live else BLOCK, "frames")
        self._results = BoundedQueue(16, BLOCK, "measurements")
        self.queues = (self._frames, self._results)
        self._errors: list[BaseException] = []
        self._max_frames = max_frames
        self._abandoned = False
        threads = [
            threading.Thread(target=self._guarded(fn), name=f"tlf-{fn.__name__.strip('_')}", daemon=True)
            for fn in (self._capture, self._infer, self._output)
        ]
        try:
            for t in threads:
                t.start()
            self._wait(threads)
        finally:
            self.stop_event.set()
            for t in threads:
                # a thread never started (interrupted while they start) has nothing to join
                if t.ident is not None and not (self._abandoned and t is threads[1]):
                    t.join(1.0)
            if not threads[0].is_alive():  # the capture thread, which runs the ROI tracker, has ended
                self.chain.close()
            for sink in self._live:
                _close_quietly(sink)
            stats.t_end = time.monotonic()
            stats.dropped_frames = self._frames.dropped + self.source.dropped
            stats.corrupt_frames = int(self.source.corrupt)
            stats.oversize_frames = int(self.source.oversize)
            stats.source_reconnects = int(self.source.reconnects)
        if self._errors:
            raise self._errors[0]
        return stats

    def _open_sinks(self, stats: RunStats) -> list[Sink]:
        live: list[Sink] = []
        for sink in self.sinks:
            try:
                live.append(sink.open())
            except Exception as e:
                sink.dead = f"{type(e).__name__}: {e}"
                stats.dead_sinks[sink.name] = sink.dead
                self.err.write(f"{sink.name} output not started: {sink.dead}\n")
        return live

    def _guarded(self, fn):
        def body():
            try:
                fn()
            except BaseException as e:  # handed to the caller of run()
                self._errors.append(e)
                self.stop_event.set()

        body.__name__ = fn.__name__
        return body

    def _wait(self, threads: list[threading.Thread]) -> None:
        """Wait for the output thread; once stopped, let a stuck source and, after STOP_GRACE_S,
        the model's last frame go."""
        stop, stopped_at = self.stop_event, None
        while threads[2].is_alive():
            threads[2].join(0.1)
            if not stop.is_set():
                continue
            if threads[0].is_alive():
                threads[0].join(0.5)  # a source stuck in read() must not hold up the stop
                self._frames.put(_END, force=True)
            stopped_at = stopped_at or time.monotonic()
            late = time.monotonic() - stopped_at > STOP_GRACE_S
            if not self._errors and not self._abandoned and threads[1].is_alive() and late:
                # The model is still on its last frame (a starved CPU, a hung delegate): that
                # frame is let go, and the outputs close with everything measured before it.
                self._abandoned = True
                assert self.stats is not None
                self.stats.unprocessed_at_stop += 1
                self._results.put(_END, force=True)

    def _capture(self) -> None:
        """The capture thread: read, survive lost signal, cut to the B-mode region, queue."""
        stats, stop, results = self.stats, self.stop_event, self._results
        assert stats is not None
        n, outage = 0, _Outage(self.err)
        try:
            with self.source:
                while not stop.is_set() and (self._max_frames is None or n < self._max_frames):
                    try:
                        frame = self.source.read()
                    except SignalLost as e:
                        if outage.lost(e):
                            stats.signal_losses += 1
                        # Told at every attempt, not only the first: a sink can tell a source
                        # still being retried from a stalled pipeline (a watchdog keeps quiet).
                        results.put(StatusChange(NO_SIGNAL, str(e), time.monotonic()), force=True)
                        stop.wait(e.retry_in)
                        continue
                    if outage.since is not None:
                        stats.no_signal_s += outage.back()
                        results.put(StatusChange(RUNNING, "signal back", time.monotonic()), force=True)
                    if frame is None:
                        break
                    frame = self._crop(frame)
                    if frame is not None and self._frames.put(self.chain.model_input(frame), stop):
                        n += 1
        finally:
            if outage.since is not None:
                stats.no_signal_s += time.monotonic() - outage.since
            self._frames.put(_END, force=True)

    def _crop(self, frame):
        """The chain's capture stage; a frame without a B-mode region is counted and let go."""
        stats = self.stats
        assert stats is not None
        out, event = self.chain.crop(frame, self.source.cropped, self.source.calibration)
        if event is not None:
            with self._pending_lock:
                self._pending.append(event)
                stats.layout_events.append(event)
        prepare = self.chain.prepare
        if out is None and prepare is not None:  # no B-mode region on this screen (yet), or a changing one
            if prepare.tracker.unsettled:
                stats.frames_layout_changing += 1
            elif prepare.tracker.misfit:
                stats.frames_rect_misfit += 1
            else:
                stats.frames_without_roi += 1
        return out

    def _infer(self) -> None:
        """The inference thread: the chain's invoke."""
        stats, results = self.stats, self._results
        assert stats is not None
        try:
            while (staged := self._frames.get()) is not _END:
                if self.stop_event.is_set() and not self._errors:  # asked to stop: frames not yet segmented are let go
                    stats.unprocessed_at_stop += 1
                    continue
                inference = self.chain.invoke(staged)
                # With the output thread gone (an error), a full queue must not hold this thread.
                results.put(inference, self.stop_event if self._errors else None)
        finally:
            results.put(_END, force=True)

    def _due_events(self, seq: int) -> dict:
        with self._pending_lock:
            due = [e for e in self._pending if e.seq <= seq]
            self._pending[:] = [e for e in self._pending if e.seq > seq]
        return {("layout" if e.initial else "layout_event"): e.as_dict() for e in due}

    def _output(self) -> None:
        """The output thread: the chain's measurement and temporal filter, then every sink."""
        stats = self.stats
        assert stats is not None
        while True:
            try:
                item = self._results.get(timeout=IDLE_S)
            except TimeoutError:  # no signal, or a slow source: keep the links alive
                self._live = _deliver(self.err, self._live, stats, lambda sink: getattr(sink, "idle", _nothing)())
                continue
            if item is _END:
                break
            if isinstance(item, StatusChange):
                self._live = _deliver(
                    self.err,
                    self._live,
                    stats,
                    lambda sink, change=item: getattr(sink, "status", _nothing)(change.code, change.text),
                )
                continue
            timing = {  # from capture to the model's start (the B-mode region, the model input, the queue), the model
                "wait_ms": (item.t_invoke - item.frame.t_capture) * 1000,
                "infer_ms": (item.t_done - item.t_invoke) * 1000,
                **self._due_events(item.frame.seq),
            }
            result = self.chain.finish(item, timing)
            stats.t_last_measurement = time.monotonic()
            if stats.t_first_measurement is None:
                stats.t_first_measurement = stats.t_last_measurement
            stats.add(result.measurements)
            for m in result.measurements:
                self._live = _deliver(
                    self.err, self._live, stats, lambda sink, m=m, seg=result.segmentation: sink.write(m, seg)
                )


_END = object()  # end of stream between the pipeline's threads


def _deliver(err, live: list[Sink], stats: RunStats, call) -> list[Sink]:
    """`call(sink)` for each live sink; the sinks still alive. One that raises is reported once
    on `err`, recorded in `stats.dead_sinks`, closed and dropped: a sink never stops the pipeline."""
    alive = []
    for sink in live:
        try:
            call(sink)
            alive.append(sink)
        except Exception as e:
            sink.dead = f"{type(e).__name__}: {e}"
            stats.dead_sinks[sink.name] = sink.dead
            err.write(f"\n{sink.name} output stopped: {sink.dead}\n")
            _close_quietly(sink)
    return alive


class _Outage:
    """The log of one loss of signal: the loss, each longer wait of the backoff, a line every
    NOTE_EVERY_S while it lasts, and the return (with how long it took)."""

    def __init__(self, err) -> None:
        self.err = err
        self.since: float | None = None
        self.attempts = 0
        self._wait = 0.0
        self._noted = 0.0

    def lost(self, e: SignalLost) -> bool:
        """Log a SignalLost; True if it starts an outage."""
        now = time.monotonic()
        first = self.since is None
        if first:
            self.since, self.attempts, self._wait, self._noted = now, 0, 0.0, now
            self._line(f"no signal: {e}; next try in {e.retry_in:.2g} s")
        elif e.retry_in > self._wait * 1.01 or now - self._noted >= NOTE_EVERY_S:
            assert self.since is not None  # not the first: set then
            self._line(
                f"no signal for {now - self.since:.1f} s ({self.attempts} attempts); next try in {e.retry_in:.2g} s"
            )
            self._noted = now
        self.attempts += 1
        self._wait = max(self._wait, e.retry_in)
        return first

    def back(self) -> float:
        """Log the return of the signal; the length of the outage."""
        assert self.since is not None  # back() follows a lost() of the same outage
        took = time.monotonic() - self.since
        self._line(f"signal back after {took:.1f} s ({self.attempts} attempts)")
        self.since = None
        return took

    def _line(self, text: str) -> None:
        self.err.write(f"\n{time.strftime('%H:%M:%S')} {text}\n")
        self.err.flush()


def _nothing(*args) -> None:
    pass


def _close_quietly(sink: Sink) -> None:
    try:
        sink.close()
    except Exception:
        pass
