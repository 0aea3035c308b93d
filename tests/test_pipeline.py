"""The pipeline's contracts: failing sinks are dropped, frozen frames are flagged, every frame is logged."""

import io
import math

import numpy as np

from edge import phantom
from edge.frame import Frame
from edge.pipeline import Pipeline
from edge.quality import Quality
from edge.segmenter import Segmenter, SegmenterOptions
from edge.sinks import Sink
from edge.sources.base import Source


class ListSource(Source):
    def __init__(self, images, spacing):
        self.images, self.spacing, self.i = images, spacing, 0

    def read(self):
        if self.i >= len(self.images):
            return None
        self.i += 1
        return Frame(self.images[self.i - 1], float(self.i), self.i - 1, spacing_mm=self.spacing)


class Collect(Sink):
    name = "collect"

    def __init__(self):
        self.seen = []

    def write(self, m, seg):
        self.seen.append(m)


class Broken(Sink):
    name = "broken"

    def write(self, m, seg):
        raise OSError("disk full")


def clip_images(n=6):
    scans = list(phantom.clip(3, frames=n, shape=(256, 256)))
    return [s.image for s in scans], scans[0].spacing_mm


def test_a_failing_sink_is_reported_and_dropped_while_others_go_on():
    images, spacing = clip_images(4)
    keep, broken, err = Collect(), Broken(), io.StringIO()
    seg = Segmenter.create(SegmenterOptions(num_threads=1))
    stats = Pipeline(ListSource(images, spacing), seg, [broken, keep], err=err).run()
    assert len(keep.seen) == 4 and stats.frames == 4
    assert stats.dead_sinks == {"broken": "OSError: disk full"}
    assert err.getvalue().count("broken output stopped") == 1


def test_repeated_frames_are_flagged_frozen_and_hold_the_estimate():
    images, spacing = clip_images(5)
    images = images[:3] + [images[2]] * 3  # the operator pressed freeze
    keep = Collect()
    seg = Segmenter.create(SegmenterOptions(num_threads=1))
    Pipeline(ListSource(images, spacing), seg, [keep], err=io.StringIO()).run()
    flags = [m.flags for m in keep.seen]
    assert not any(f & Quality.FROZEN for f in flags[:3])
    assert all(f & Quality.FROZEN for f in flags[3:])
    held = [m.extra["filtered"] for m in keep.seen[3:]]
    assert all(math.isnan(v) for v in held) or len(set(held)) == 1


def test_measurements_carry_capture_time_latency_and_filter_band():
    images, spacing = clip_images(6)
    keep = Collect()
    seg = Segmenter.create(SegmenterOptions(num_threads=1))
    Pipeline(ListSource(images, spacing), seg, [keep], err=io.StringIO()).run()
    for i, m in enumerate(keep.seen):
        assert m.seq == i and m.t_capture == float(i + 1) and m.unit == "mm"
        assert {"filtered", "low", "high", "uncertainty", "truth_mm"} - set(m.extra) == {"truth_mm"}
    last = keep.seen[-1]
    if not math.isnan(last.extra["filtered"]):
        assert last.extra["low"] <= last.extra["filtered"] <= last.extra["high"]
    assert np.isfinite([m.thickness for m in keep.seen]).sum() >= 4


class Exploding(Source):
    def __init__(self, after):
        self.after, self.n = after, 0

    def read(self):
        self.n += 1
        if self.n > self.after:
            raise RuntimeError("capture card vanished")
        s = phantom.scan(self.n)
        return Frame(s.image, float(self.n), self.n, spacing_mm=s.spacing_mm)


def test_an_exception_in_the_capture_thread_reaches_the_caller():
    import pytest

    keep = Collect()
    seg = Segmenter.create(SegmenterOptions(num_threads=1))
    pipeline = Pipeline(Exploding(after=2), seg, [keep], err=io.StringIO())
    with pytest.raises(RuntimeError, match="capture card vanished"):
        pipeline.run()
    assert len(keep.seen) == 2  # what was captured before the fault still reached the sinks


def test_an_exception_in_the_inference_thread_reaches_the_caller():
    import pytest

    class BadSegmenter:
        bundle = Segmenter.create(SegmenterOptions(num_threads=1)).bundle

        def segment(self, frame):
            raise ValueError("model exploded")

    images, spacing = clip_images(3)
    with pytest.raises(ValueError, match="model exploded"):
        Pipeline(ListSource(images, spacing), BadSegmenter(), [Collect()], err=io.StringIO()).run()


def test_stop_event_ends_an_endless_live_source_promptly():
    import threading
    import time

    class Endless(Source):
        live = True

        def __init__(self):
            self.s = phantom.scan(1)
            self.n = 0

        def read(self):
            self.n += 1
            return Frame(self.s.image, time.monotonic(), self.n, spacing_mm=self.s.spacing_mm)

    seen = threading.Event()

    class Notify(Collect):
        def write(self, m, seg):
            super().write(m, seg)
            seen.set()

    keep = Notify()
    pipeline = Pipeline(Endless(), Segmenter.create(SegmenterOptions(num_threads=1)), [keep], err=io.StringIO())
    worker = threading.Thread(target=pipeline.run)
    worker.start()
    assert seen.wait(30)
    t0 = time.monotonic()
    pipeline.stop_event.set()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - t0 < 2.0
    frames_q, _ = pipeline.queues
    assert frames_q.policy == "keep-newest" and frames_q.high_water <= 2
