"""The pipeline's contracts: failing sinks are dropped, frozen frames are flagged, every frame is logged."""

import io
import math

import numpy as np
import pytest

from edge.sim import phantom
from edge.frame import Frame
from edge.runtime.pipeline import Pipeline
from edge.measure.quality import Quality
from edge.model.segmenter import Segmenter, SegmenterOptions
from edge.sinks.base import Sink
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
        assert {"filtered", "low", "high", "uncertainty"} <= set(m.extra) and "truth_mm" not in m.extra
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


@pytest.mark.parametrize("where", ["infer", "segmentation"])
def test_an_exception_in_the_inference_or_output_thread_reaches_the_caller(where):
    """The invoke runs on the inference thread, argmax and measurement on the output thread."""
    real = Segmenter.create(SegmenterOptions(num_threads=1))

    class BadSegmenter:
        bundle, spec = real.bundle, real.spec

        def input_tensor(self, model_image):
            return real.input_tensor(model_image)

        def run(self, tensor):
            if where == "infer":
                raise ValueError("model exploded")
            return real.run(tensor)

        def segmentation(self, frame, raw, t_done=None, image=None):
            raise ValueError("model exploded")

    images, spacing = clip_images(3)
    with pytest.raises(ValueError, match="model exploded"):
        Pipeline(ListSource(images, spacing), BadSegmenter(), [Collect()], err=io.StringIO()).run()


def test_stop_event_ends_an_endless_live_source_promptly():
    """Prompt in work, not in seconds: once stop is set the source is read at most once more (a
    read already under way), and run() returns."""
    import threading

    class Endless(Source):
        live = True

        def __init__(self):
            self.s = phantom.scan(1)
            self.n = 0

        def read(self):
            self.n += 1
            return Frame(self.s.image, float(self.n), self.n, spacing_mm=self.s.spacing_mm)

    seen = threading.Event()

    class Notify(Collect):
        def write(self, m, seg):
            super().write(m, seg)
            seen.set()

    keep, source = Notify(), Endless()
    pipeline = Pipeline(source, Segmenter.create(SegmenterOptions(num_threads=1)), [keep], err=io.StringIO())
    worker = threading.Thread(target=pipeline.run)
    worker.start()
    assert seen.wait(120)
    pipeline.stop_event.set()
    reads_at_stop = source.n
    worker.join(120)
    assert not worker.is_alive()
    assert source.n - reads_at_stop <= 1
    frames_q, _ = pipeline.queues
    assert frames_q.policy == "keep-newest" and frames_q.capacity == 1 and frames_q.high_water <= 1


def test_a_live_sources_newest_frame_replaces_the_one_waiting_for_the_model():
    """While the model is on frame 0 a live source delivers frames 1-5: only the newest waits,
    so the next frame segmented is 5 (with two waiting it was 4, a frame the screen had left)."""
    import threading

    images, spacing = clip_images(6)
    invoking, ended = threading.Event(), threading.Event()

    class Live(ListSource):
        live = True

        def read(self):
            if self.i == 1:  # frame 1 comes once the model is on frame 0
                assert invoking.wait(30)
            frame = super().read()
            if frame is None:
                ended.set()  # frames 1-5 are queued by now: each is put before the next read
            return frame

    segmenter = Segmenter.create(SegmenterOptions(num_threads=1))
    real_run, calls = segmenter.run, []

    def run(tensor):
        calls.append(len(calls))
        if len(calls) == 1:
            invoking.set()
            assert ended.wait(30)
        return real_run(tensor)

    segmenter.run = run
    keep = Collect()
    pipeline = Pipeline(Live(images, spacing), segmenter, [keep], err=io.StringIO())
    stats = pipeline.run()
    assert [m.seq for m in keep.seen] == [0, 5]
    assert stats.dropped_frames == 4 and pipeline.queues[0].high_water == 1


# -- full scanner screens: only the B-mode region travels on ----------------------------------


class RoiOnly(Collect):
    """Receives what the model saw; refuses (and so dies) on anything but the B-mode region."""

    name = "roi-only"

    def __init__(self, truth, screen_shape):
        super().__init__()
        self.truth, self.screen_shape, self.segs = truth, screen_shape, []

    def write(self, m, seg):
        x, y, w, h = self.truth[m.seq]["roi"]
        got = seg.frame.image.shape[:2]
        if got == self.screen_shape[:2] or abs(got[0] - h) > 4 or abs(got[1] - w) > 4:
            raise AssertionError(f"frame {m.seq}: image {got} is not the {w}x{h} B-mode region")
        super().write(m, seg)
        self.segs.append(seg)


def screen_pipeline(source, sinks, **kw):
    from edge.screen.options import SpacingOptions, RoiOptions

    seg = Segmenter.create(SegmenterOptions(num_threads=1))
    return Pipeline(source, seg, sinks, err=io.StringIO(), roi=RoiOptions(min_gap=1, **kw), calibration=SpacingOptions())


def edge_error(rect, truth):
    (x, y, w, h), (tx, ty, tw, th) = rect, truth
    return int(np.abs(np.array([x, y, x + w, y + h]) - [tx, ty, tx + tw, ty + th]).max())


def test_a_screen_video_is_cropped_calibrated_and_follows_a_depth_change(tmp_path):
    from edge.sim import phantom_screen as ps
    from edge.runtime.factory import open_source

    path = tmp_path / "screen.avi"  # MJPEG, as a capture card recording holds it
    truth = ps.write_clip(path, 11, frames=8, size=(640, 480), depths=(40.0, 50.0), change_at=4)
    sink = RoiOnly(truth, (480, 640))
    pipeline = screen_pipeline(open_source(str(path)), [sink])
    stats = pipeline.run()
    assert stats.dead_sinks == {} and len(sink.seen) == 8
    assert stats.layout_changes == 1 and stats.frames_without_roi == 0
    change = [m.extra["layout_event"] for m in sink.seen if "layout_event" in m.extra]
    assert len(change) == 1 and change[0]["seq"] == 4 and "layout" in sink.seen[0].extra
    for m, seg in zip(sink.seen, sink.segs):
        t = truth[m.seq]
        assert m.unit == "mm" and not m.flags & Quality.UNCALIBRATED
        spacing = seg.frame.spacing_mm
        assert max(abs(a / b - 1) for a, b in zip(spacing, t["spacing_mm"])) < 0.01, m.seq
    for e in stats.layout_events:
        assert edge_error(e.roi, truth[e.seq]["roi"]) <= 2
    new, old = change[0]["spacing_mm"][0], change[0]["old_spacing_mm"][0]
    assert new / old == pytest.approx(50 / 40, rel=0.01)


def test_no_frame_is_measured_with_the_old_region_while_a_layout_change_waits_for_detection(tmp_path):
    """Detections are at least min_gap frames apart; a depth change sooner after one must not be
    cut with the old rectangle and measured with the old scale in the meantime."""
    from edge.sim import phantom_screen as ps
    from edge.screen.options import SpacingOptions, RoiOptions
    from edge.runtime.factory import open_source

    path = tmp_path / "screen.avi"
    # a size whose depth readout OCR reads (at 640x480 its 7 px "4.0 cm" may read "4.8 cm", and the
    # scale is then refused: tests/test_prepare.py)
    truth = ps.write_clip(path, 12, frames=14, size=(1024, 768), depths=(40.0, 50.0), change_at=3)
    sink = RoiOnly(truth, (768, 1024))
    seg = Segmenter.create(SegmenterOptions(num_threads=1))
    stats = Pipeline(open_source(str(path)), seg, [sink], err=io.StringIO(), roi=RoiOptions(min_gap=8),
                     calibration=SpacingOptions()).run()
    assert stats.dead_sinks == {} and stats.layout_changes == 1
    measured = [m.seq for m in sink.seen]
    assert measured[:3] == [0, 1, 2] and measured[-1] == 13  # before the change, and after the new region
    assert stats.frames_layout_changing == 14 - len(measured) > 0 and stats.frames_without_roi == 0
    for m, seg_ in zip(sink.seen, sink.segs):  # RoiOnly checked each image's size against the truth
        spacing = seg_.frame.spacing_mm
        assert max(abs(a / b - 1) for a, b in zip(spacing, truth[m.seq]["spacing_mm"])) < 0.01, m.seq
    event = stats.layout_events[-1]
    assert edge_error(event.roi, truth[event.seq]["roi"]) <= 2


def test_a_screen_without_a_scale_is_measured_in_px_and_flagged_uncalibrated():
    from edge.sim import phantom_screen as ps

    screens, truth = [], []
    for shot in ps.screen_clip(6, frames=4, size=(640, 480)):
        x, y, w, h = shot.roi
        img = np.full_like(shot.image, 18)  # flat chrome: no scale, no text
        img[y : y + h, x : x + w] = shot.image[y : y + h, x : x + w]
        screens.append(img)
        truth.append({"roi": shot.roi})
    sink = RoiOnly(truth, (480, 640))
    stats = screen_pipeline(ListSource(screens, None), [sink]).run()
    assert stats.dead_sinks == {} and len(sink.seen) == 4 and stats.layout_changes == 0
    assert all(m.unit == "px" and m.flags & Quality.UNCALIBRATED for m in sink.seen)
    assert sink.seen[0].extra["layout"]["spacing_mm"] is None


def test_phantom_screen_thickness_is_near_the_truth():
    """A loose bound (the issue's target is 0.1 mm; see benchmarks/screen_accuracy.py)."""
    from edge.measure.quality import REJECTING
    from edge.runtime.factory import open_source

    from edge.sinks.scoring import ScoringSink

    sink, source = Collect(), open_source("phantom://screen?seed=21&frames=8&size=640x480")
    scoring = ScoringSink(source.truth)  # the truth stays with the source, matched by seq
    stats = screen_pipeline(source, [sink, scoring]).run()
    ok = [m for m in sink.seen if not m.flags & REJECTING and math.isfinite(m.thickness)]
    assert stats.frames == 8 and len(ok) >= 4
    scored = scoring.summary()
    assert scored["frames"] == 8 and scored["thickness_frames"] == len(ok)
    assert scored["measured_median_mm"] == pytest.approx(np.median([m.thickness for m in ok]), abs=1e-3)
    assert abs(scored["error_median_mm"]) <= 0.3


def test_phantom_screen_videos_meet_the_accuracy_target(tmp_path):
    """The issue's target on MJPEG screen videos of scenes no training or response image shows:
    median thickness within 0.1 mm of the truth, ROI within 2 px, mm per pixel within 1 %. Two of
    benchmarks/screen_accuracy.py's seeds, both of a uniform TLF (the kind that read thin before
    the response had its layering term), 24 frames each (40 mm, then 50 mm; the first frames
    after the change go to finding the new layout)."""
    from benchmark_module import load

    bench = load("screen_accuracy")
    segmenter = Segmenter.create(SegmenterOptions(num_threads=1))
    for seed in (202, 404):
        r = bench.one_seed(seed, 24, (1280, 720), segmenter, tmp_path)
        assert r["layers"] == 1 and r["accepted"] >= 16 and r["layout_changes"] == 1, r
        assert r["roi_px"] <= 2 and r["spacing_rel"] < 0.01, r
        assert abs(r["error_mm"]) <= 0.1, r


def test_screens_without_a_bmode_region_are_counted_not_measured():
    from edge.sim import phantom_screen as ps

    shot = ps.screen(7, (640, 480))
    blank = np.full_like(shot.image, 20)  # "no signal" before the scanner's picture arrives
    sink = RoiOnly({i: {"roi": shot.roi} for i in range(4)}, (480, 640))
    stats = screen_pipeline(ListSource([blank, blank, shot.image, shot.image], None), [sink]).run()
    assert stats.frames_without_roi == 2 and [m.seq for m in sink.seen] == [2, 3]
    assert stats.dead_sinks == {} and sink.seen[0].extra["layout"]["seq"] == 2


def test_an_interrupt_while_the_threads_start_is_an_interrupt(monkeypatch):
    """Ctrl-C (or tlf-edge analyze's SIGINT) landing while the pipeline starts its threads ends
    the run as an interrupt, not as 'cannot join thread before it is started' (which made
    analyze list the clip as failed)."""
    import threading

    images, spacing = clip_images(2)
    seg = Segmenter.create(SegmenterOptions(num_threads=1))
    start, started = threading.Thread.start, []

    def start_then_interrupt(thread):
        if len(started) == 1:
            raise KeyboardInterrupt
        started.append(thread)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(ListSource(images, spacing), seg, [Collect()], err=io.StringIO()).run()
    monkeypatch.undo()
    started[0].join(30)
    assert not started[0].is_alive()  # the thread that did start was stopped and joined


def test_the_steady_rate_leaves_out_the_start():
    from edge.runtime.pipeline import RunStats

    stats = RunStats(t_start=10.0, t_end=16.0, t_first_measurement=12.0, t_last_measurement=15.5)
    stats.measured = 141  # 140 frames in the 3.5 s after the first
    assert stats.steady_fps == pytest.approx(40.0) and stats.fps == pytest.approx(141 / 6)
    stats.measured = 1
    assert stats.steady_fps == stats.fps  # one frame has no rate of its own


def test_a_live_video_file_is_queued_keep_newest_with_its_arrival_times(tmp_path):
    from test_sources_video import FakeClock, numbered_clip

    from edge.sources.video import VideoSource

    clock = FakeClock()
    source = VideoSource(numbered_clip(tmp_path / "n.avi", n=6, fps=32.0), live=True, clock=clock, sleep=clock.sleep)
    keep = Collect()
    pipeline = Pipeline(source, Segmenter.create(SegmenterOptions(num_threads=1)), [keep], err=io.StringIO())
    stats = pipeline.run()
    frames_q, _ = pipeline.queues
    assert frames_q.policy == "keep-newest"
    seqs = [m.seq for m in keep.seen]
    assert seqs == sorted(set(seqs)) and set(seqs) <= set(range(6)) and seqs[-1] == 5  # the newest always wins
    assert [m.t_capture for m in keep.seen] == [100.0 + s / 32.0 for s in seqs]
    assert stats.measured + stats.dropped_frames == 6 and source.dropped == 0  # (the fake clock waits for each)


EXIT_SCRIPT = """
import io, sys, cv2, numpy as np
sys.path.insert(0, {tests!r})
from test_pipeline import screen_pipeline
from edge.runtime.factory import open_source
from edge.screen.roi import detect_roi
from edge.sinks.base import Sink

class Keep(Sink):
    name = "keep"
    def write(self, m, seg):
        pass

pipeline = screen_pipeline(open_source({clip!r}), [Keep()], redetect_every=4)
tracker = pipeline.chain.prepare.tracker
busy = np.zeros((1080, 1920), np.float32)

def slow(image):  # a detection that is still inside OpenCV when the run's last frame is done
    for _ in range(40):
        cv2.GaussianBlur(busy, (0, 0), 8)
    return detect_roi(image)

tracker.detector = lambda image: detect_roi(image) if tracker.detections <= 1 else slow(image)
stats = pipeline.run()
print("measured", stats.measured, "detections", tracker.detections, flush=True)
"""


def test_a_run_that_ends_during_a_routine_roi_detection_exits_cleanly(tmp_path):
    """The routine ROI detection runs on its own thread; a run whose last frame comes while it is
    inside OpenCV waits for it, instead of leaving the thread there as the process exits (which
    made OpenCV's thread pool abort the process: "terminate called without an active exception",
    exit status 134, seen at the end of a 10-minute soak)."""
    import subprocess
    import sys
    from pathlib import Path

    from edge.sim import phantom_screen as ps

    clip = tmp_path / "screen.avi"
    ps.write_clip(clip, 3, frames=6, size=(640, 480))
    script = EXIT_SCRIPT.format(tests=str(Path(__file__).parent), clip=str(clip))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "terminate called" not in done.stderr and done.returncode == 0, done.stderr[-2000:]
    assert "measured 6 detections 2" in done.stdout  # the first frame's, and the routine one at the 5th


def test_finish_waits_for_a_routine_detection_and_drops_it():
    import threading

    from edge.screen.roi import RoiTracker, detect_roi
    from edge.sim import phantom_screen as ps

    shot = ps.screen(5, (640, 480))
    release, started = threading.Event(), threading.Event()

    def held(image):
        if tracker.detections > 1:  # the routine one
            started.set()
            release.wait(5)
        return detect_roi(image)

    tracker = RoiTracker(redetect_every=2, detector=held, lag=50)
    for i in range(3):
        tracker.update(shot.image, i)
    assert started.wait(5) and tracker._routine is not None
    threading.Timer(0.2, release.set).start()
    tracker.finish()
    assert release.is_set() and tracker._routine is None
    assert not [t for t in threading.enumerate() if t.name == "roi-detect"]
