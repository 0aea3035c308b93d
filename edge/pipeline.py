"""The runtime's pipeline: source -> segmenter -> measurement -> sinks.

This first pipeline runs the stages in sequence on the caller's thread; sinks that fail are
reported once and dropped while the others go on.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from edge.frame import Measurement, Segmentation
from edge.freeze import FreezeDetector
from edge.quality import Quality
from edge.segmenter import Segmenter
from edge.sinks import Sink
from edge.sources.base import Source
from edge.temporal import TemporalFilter, TemporalOptions
from edge.thickness import ThicknessOptions, measure_thickness


def measure(seg: Segmentation, options: ThicknessOptions, tlf_class: int = 1, frozen: bool = False) -> Measurement:
    """Thickness and quality for one segmentation; truth is attached when the frame carries it."""
    result = measure_thickness(seg.labels, seg.logits, seg.spacing_mm, options, seg.logit_scale, tlf=tlf_class)
    extra = {"coverage": round(result.coverage, 3), "t_invoke_done": seg.t_done}
    truth = seg.frame.truth
    if truth is not None and "thickness_mm" in truth:
        t = np.asarray(truth["thickness_mm"])
        a, b = int(round(options.window[0] * t.size)), int(round(options.window[1] * t.size))
        extra["truth_mm"] = float(np.median(t[a:max(b, a + 1)]))
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
    def __init__(self, source: Source, segmenter: Segmenter, sinks: list[Sink], options: ThicknessOptions = ThicknessOptions(),
                 temporal: TemporalOptions = TemporalOptions(), err=sys.stderr):
        self.source, self.segmenter, self.sinks, self.options, self.err = source, segmenter, list(sinks), options, err
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
        stats = RunStats(t_start=time.monotonic())
        live: list[Sink] = []
        for sink in self.sinks:
            try:
                live.append(sink.open())
            except Exception as e:
                sink.dead = f"{type(e).__name__}: {e}"
                stats.dead_sinks[sink.name] = sink.dead
                self.err.write(f"{sink.name} output not started: {sink.dead}\n")
        try:
            with self.source:
                while not self.stop_event.is_set():
                    if max_frames is not None and stats.frames >= max_frames:
                        break
                    frame = self.source.read()
                    if frame is None:
                        break
                    frozen = self.freeze(frame.image)
                    seg = self.segmenter.segment(frame)
                    m = measure(seg, self.options, self.segmenter.bundle.tlf_class, frozen)
                    m = smooth(m, self.temporal, seg.spacing_mm)
                    if stats.t_first_measurement is None:
                        stats.t_first_measurement = time.monotonic()
                    stats.measurements.append(m)
                    live = self._emit(live, m, seg, stats)
        finally:
            for sink in live:
                _close_quietly(sink)
            stats.t_end = time.monotonic()
        return stats


def _close_quietly(sink: Sink) -> None:
    try:
        sink.close()
    except Exception:
        pass
