"""The runtime's pipeline: source -> ROI + calibration -> segmenter -> measurement -> sinks.

The pipeline owns the threads (capture, inference, output); sources, the segmenter and sinks
start none of their own. Sinks that fail are reported once and dropped while the others go on.
Given ROI and calibration options, the capture thread cuts each screen down to its B-mode region
(edge.prepare) before anything else sees it; a change of layout is noted on the first
measurement after it (`extra["layout_event"]`; the first layout as `extra["layout"]`).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from edge.config import CalibrationOptions, RoiOptions
from edge.frame import Measurement, Segmentation
from edge.freeze import FreezeDetector
from edge.prepare import LayoutEvent, Prepare
from edge.quality import Quality
from edge.queues import BLOCK, KEEP_NEWEST, BoundedQueue
from edge.segmenter import Segmenter
from edge.sinks import Sink
from edge.sources.base import Source
from edge.temporal import TemporalFilter, TemporalOptions
from edge.thickness import ThicknessOptions, measure_thickness, window_slice


def measure(seg: Segmentation, options: ThicknessOptions, tlf_class: int = 1, frozen: bool = False) -> Measurement:
    """Thickness and quality for one segmentation; truth is attached when the frame carries it."""
    result = measure_thickness(seg.labels, seg.logits, seg.spacing_mm, options, seg.logit_scale, tlf=tlf_class)
    extra = {"coverage": round(result.coverage, 3), "t_invoke_done": seg.t_done}
    truth = seg.frame.truth
    if truth is not None and "thickness_mm" in truth:
        t = np.asarray(truth["thickness_mm"])
        extra["truth_mm"] = float(np.median(t[window_slice(options, t.size)]))
    now = time.monotonic()
    return Measurement(
        seq=seg.frame.seq,
        t_capture=seg.frame.t_capture,
        thickness=result.value,
        spread=result.spread,
        unit=result.unit,
        flags=result.flags | (Quality.FROZEN if frozen else 0),
        columns=result.columns,
        latency_s=now - seg.frame.t_capture,
        extra=extra,
    )


@dataclass
class RunStats:
    measurements: list[Measurement] = field(default_factory=list)
    dead_sinks: dict[str, str] = field(default_factory=dict)
    t_start: float = 0.0
    t_end: float = 0.0
    t_first_measurement: float | None = None
    dropped_frames: int = 0
    layout_events: list[LayoutEvent] = field(default_factory=list)  # the first layout, then each change
    frames_without_roi: int = 0  # screens on which no B-mode region was found (not measured)

    @property
    def layout_changes(self) -> int:
        """How often the B-mode region or its spacing changed after the first layout."""
        return sum(not e.initial for e in self.layout_events)

    @property
    def frames(self) -> int:
        return len(self.measurements)

    @property
    def fps(self) -> float:
        dt = self.t_end - self.t_start
        return self.frames / dt if dt > 0 else 0.0


def smooth(m: Measurement, temporal: TemporalFilter, spacing_mm) -> Measurement:
    """Add the temporal filter's estimate and its 95 % band to a measurement (OUTLIER when rejected)."""
    est = temporal(m, scale=spacing_mm)
    extra = {**m.extra, "filtered": est.value, "low": est.low, "high": est.high, "uncertainty": est.uncertainty}
    return replace(m, flags=est.flags, extra=extra)


class Pipeline:
    """source -> [prepare] -> segmenter -> measure -> temporal filter -> sinks, on three threads.

    roi, calibration: the config's [roi] and [calibration] sections. Given either (tlf-edge run
    always gives both), each frame goes through `Prepare` first: a full screen is cut down to its
    B-mode region and calibrated, and only that region travels on. Without them frames reach the
    model as the source delivers them (sources that deliver the B-mode region only).
    """

    def __init__(self, source: Source, segmenter: Segmenter, sinks: list[Sink], options: ThicknessOptions = ThicknessOptions(),
                 temporal: TemporalOptions = TemporalOptions(), err=sys.stderr, roi: RoiOptions | None = None,
                 calibration: CalibrationOptions | None = None):
        self.source, self.segmenter, self.sinks, self.options, self.err = source, segmenter, list(sinks), options, err
        self.prepare: Prepare | None = None
        if roi is not None or calibration is not None:
            self.prepare = Prepare(roi or RoiOptions(), calibration or CalibrationOptions())
        self.temporal = TemporalFilter(temporal)
        self.freeze = FreezeDetector()
        self.stop_event = threading.Event()

    def _emit(self, live: list[Sink], m: Measurement, seg: Segmentation, stats: RunStats) -> list[Sink]:
        alive = []
        for sink in live:
            try:
                sink.write(m, seg)
                alive.append(sink)
            except Exception as e:  # a sink must never stop the pipeline
                sink.dead = f"{type(e).__name__}: {e}"
                stats.dead_sinks[sink.name] = sink.dead
                self.err.write(f"\n{sink.name} output stopped: {sink.dead}\n")
                _close_quietly(sink)
        return alive

    def run(self, max_frames: int | None = None) -> RunStats:
        """Run until the source ends, `max_frames` are done or `stop_event` is set.

        Three threads overlap capture, inference and output. Frames wait in a queue that keeps
        the newest for live sources and blocks for files; measurements wait in a blocking queue
        so that every one reaches the log. An exception in any stage is re-raised here.
        """
        stats = RunStats(t_start=time.monotonic())
        live: list[Sink] = []
        for sink in self.sinks:
            try:
                live.append(sink.open())
            except Exception as e:
                sink.dead = f"{type(e).__name__}: {e}"
                stats.dead_sinks[sink.name] = sink.dead
                self.err.write(f"{sink.name} output not started: {sink.dead}\n")
        frames = BoundedQueue(2, KEEP_NEWEST if self.source.live else BLOCK, "frames")
        results = BoundedQueue(16, BLOCK, "measurements")
        self.queues = (frames, results)
        errors: list[BaseException] = []
        stop = self.stop_event
        # Layout events wait here until the first measured frame at or after them: the frames
        # queue may drop the very frame that carried one.
        pending: list[LayoutEvent] = []
        pending_lock = threading.Lock()

        def capture():
            n = 0
            try:
                with self.source:
                    cropped = bool(getattr(self.source, "cropped", False))  # known once open
                    while not stop.is_set() and (max_frames is None or n < max_frames):
                        frame = self.source.read()
                        if frame is None:
                            break
                        if self.prepare is not None:
                            frame, event = self.prepare(frame, cropped)
                            if event is not None:
                                with pending_lock:
                                    pending.append(event)
                                    stats.layout_events.append(event)
                            if frame is None:  # no B-mode region on this screen (yet)
                                stats.frames_without_roi += 1
                                continue
                        if frames.put(frame, stop):
                            n += 1
            finally:
                frames.put(_END, force=True)

        def due_events(seq: int) -> dict:
            with pending_lock:
                due = [e for e in pending if e.seq <= seq]
                pending[:] = [e for e in pending if e.seq > seq]
            return {("layout" if e.initial else "layout_event"): e.as_dict() for e in due}

        def infer():
            try:
                while (frame := frames.get()) is not _END:
                    frozen = self.freeze(frame.image)
                    t0 = time.monotonic()
                    seg = self.segmenter.segment(frame)
                    m = measure(seg, self.options, self.segmenter.bundle.tlf_class, frozen)
                    m = smooth(m, self.temporal, seg.spacing_mm)
                    m = replace(m, extra={**m.extra, "wait_ms": (t0 - frame.t_capture) * 1000,
                                          "infer_ms": (seg.t_done - t0) * 1000, **due_events(frame.seq)})
                    results.put((m, seg))
            finally:
                results.put(_END, force=True)

        def output():
            nonlocal live
            while (item := results.get()) is not _END:
                m, seg = item
                if stats.t_first_measurement is None:
                    stats.t_first_measurement = time.monotonic()
                stats.measurements.append(m)
                live = self._emit(live, m, seg, stats)

        def guarded(fn):
            def body():
                try:
                    fn()
                except BaseException as e:  # handed to the caller of run()
                    errors.append(e)
                    stop.set()
            return body

        threads = [threading.Thread(target=guarded(fn), name=f"tlf-{fn.__name__}", daemon=True) for fn in (capture, infer, output)]
        try:
            for t in threads:
                t.start()
            while threads[2].is_alive():
                threads[2].join(0.1)
                if stop.is_set() and threads[0].is_alive():
                    threads[0].join(0.5)  # a source stuck in read() must not hold up the stop
                    frames.put(_END, force=True)
        finally:
            stop.set()
            for t in threads:
                t.join(1.0)
            for sink in live:
                _close_quietly(sink)
            stats.t_end = time.monotonic()
            stats.dropped_frames = frames.dropped + getattr(self.source, "dropped", 0)
        if errors:
            raise errors[0]
        return stats


_END = object()  # end of stream between the pipeline's threads


def _close_quietly(sink: Sink) -> None:
    try:
        sink.close()
    except Exception:
        pass
