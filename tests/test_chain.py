"""One per-frame chain (edge.runtime.chain): the threaded pipeline, `tlf-edge bench`'s timed pass
and the chain called whole measure the same frame the same way, freeze detection included; the
truth stays out of the frames and is scored by sequence number (edge.sinks.scoring)."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest

from edge.frame import Frame
from edge.measure.quality import Quality
from edge.measure.temporal import TemporalOptions
from edge.measure.thickness import ThicknessOptions, window_slice
from edge.model.segmenter import Segmenter, SegmenterOptions
from edge.ops.bench import stage_pass
from edge.runtime.chain import ChainOptions, FrameChain
from edge.runtime.factory import open_source
from edge.runtime.pipeline import Pipeline
from edge.screen.options import SpacingOptions, RoiOptions
from edge.sim import phantom_screen
from edge.sinks.base import Sink
from edge.sinks.scoring import ScoringSink
from edge.sources.base import Source


class Keep(Sink):
    name = "keep"

    def __init__(self):
        self.got = []

    def write(self, m, seg):
        self.got.append(m)


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter.create(SegmenterOptions(num_threads=1))


@pytest.fixture(scope="module")
def frozen_screen_video(tmp_path_factory):
    """An MJPEG video of 640x480 phantom screens in which the scanner froze: frames 4-6 repeat frame 3."""
    shots = list(phantom_screen.screen_clip(5, 6, (640, 480)))
    shots = shots[:4] + [shots[3]] * 3 + shots[4:]
    path = tmp_path_factory.mktemp("chain") / "frozen.avi"
    phantom_screen.write_video(path, iter(shots), fourcc="MJPG")
    return path, len(shots)


def readings(ms, filtered=True):
    """seq -> (thickness, flags[, filtered]) of band 0, NaN-safe for comparison; without the
    filter's estimate, its OUTLIER verdict (made on the same timed window) is left out too."""
    return {
        m.seq: (round(m.thickness, 9) if math.isfinite(m.thickness) else "nan",
                m.flags if filtered else m.flags & ~Quality.OUTLIER)
        + ((repr(m.extra.get("filtered")),) if filtered else ())
        for m in ms
        if m.band == 0
    }


def test_pipeline_bench_and_the_chain_measure_each_frame_alike(segmenter, frozen_screen_video):
    """The temporal filter's age limit (window_s) makes its estimate depend on when frames were
    read; without it (window_s = 0) the estimate is a function of the frames alone, so the
    threaded pipeline and the chain give the same one. Bench keeps the default filter: its
    measurements and flags are compared."""
    path, n = frozen_screen_video
    screen = dict(roi=RoiOptions(), calibration=SpacingOptions())
    ageless = TemporalOptions(window_s=0.0)
    piped = Keep()
    Pipeline(open_source(str(path)), segmenter, [piped], temporal=ageless, err=io.StringIO(), **screen).run()
    benched = Keep()
    stage_pass(segmenter, str(path), n, [benched])
    chain, direct = FrameChain(segmenter, ChainOptions(temporal=ageless, **screen)), []
    source = open_source(str(path))
    source.grayscale_only = chain.grayscale_input  # as the pipeline asks it: the grayscale of each JPEG frame
    with source:
        for frame in source:
            result = chain(frame, source.cropped, source.calibration)
            direct += result.measurements if result is not None else []
    assert len(piped.got) >= n - 2  # the first screens may go to finding the layout
    assert readings(piped.got) == readings(direct)
    assert readings(benched.got, filtered=False) == readings(direct, filtered=False)
    frozen = sorted(m.seq for m in piped.got if m.flags & Quality.FROZEN)
    assert frozen == [4, 5, 6]  # the freeze is seen by every path: bench included
    assert frozen == sorted(m.seq for m in benched.got if m.flags & Quality.FROZEN)


def test_independent_pictures_skip_the_freeze_check_and_the_temporal_filter(segmenter):
    with open_source("phantom://clip?seed=3&frames=2&size=200x200") as src:
        scan_frames = list(src)
    repeated = [scan_frames[0], dataclasses.replace(scan_frames[0], seq=1)]
    chain = FrameChain(segmenter, ChainOptions(independent=True))
    results = [chain(f, cropped=True) for f in repeated]
    assert not any(r.frozen or r.measurements[0].flags & Quality.FROZEN for r in results)
    assert all("filtered" not in r.measurements[0].extra for r in results)
    assert results[0].measurements[0].thickness == results[1].measurements[0].thickness
    clip = FrameChain(segmenter, ChainOptions())
    assert [clip(f, cropped=True).frozen for f in repeated] == [False, True]


def test_frames_carry_no_truth_and_the_phantom_keeps_it_by_seq():
    assert "truth" not in {f.name for f in dataclasses.fields(Frame)}
    assert Source().truth(0) is None  # a scanner knows no truth
    with open_source("phantom://clip?seed=4&frames=3&size=96x96") as src:
        assert src.truth(0) is None  # nothing read yet
        frames = list(src)
        truths = [src.truth(f.seq) for f in frames]
    assert [t["thickness_mm"].shape for t in truths] == [(96,)] * 3
    assert not np.array_equal(truths[0]["thickness_mm"], truths[2]["thickness_mm"])  # the scene moves
    from edge.sim.source import TRUTH_KEPT

    with open_source(f"phantom://clip?seed=4&frames={TRUTH_KEPT + 2}&size=32x32") as src:
        last = list(src)[-1].seq
        kept = [seq for seq in range(last + 1) if src.truth(seq) is not None]
    assert kept == list(range(last + 1 - TRUTH_KEPT, last + 1))  # a bounded store: the oldest go first


def test_the_scoring_sink_matches_measurements_to_the_truth_by_seq():
    """Measurements arrive in any order and with gaps (a live source drops frames); each is scored
    against its own frame's truth, and frames the source knows nothing of are not scored."""
    options = ThicknessOptions()
    with open_source("phantom://clip?seed=4&frames=5&size=96x96") as src:
        frames = list(src)
        truth = {f.seq: src.truth(f.seq) for f in frames}
        scoring = ScoringSink(src.truth, options)

        def true_mm(seq):
            t = truth[seq]["thickness_mm"]
            return float(np.median(t[window_slice(options, t.size)]))

        def reading(seq, value):
            return dict(seq=seq, t_capture=0.0, thickness=value, spread=0.0, unit="mm", flags=0, columns=10,
                        latency_s=0.0)

        from edge.frame import Measurement

        for seq in (4, 1, 3):
            scoring.write(Measurement(**reading(seq, true_mm(seq) + 0.1)), None)
        scoring.write(Measurement(**reading(99, 5.0)), None)  # no such frame: not scored
        scoring.write(Measurement(**{**reading(2, 1.0), "flags": int(Quality.NO_BAND)}), None)
    s = scoring.summary()
    assert s["frames"] == 4 and s["thickness_frames"] == 3  # the rejected frame is counted, not scored
    assert s["abs_error_mean_mm"] == pytest.approx(0.1, abs=1e-4)
    assert ScoringSink(lambda seq: None).summary() is None


def test_thickness_without_a_spacing_is_in_the_frames_own_pixels():
    """Without a spacing the band is measured in pixels of the B-mode region the frame holds, not
    of the model grid it was resampled to: the same scan at twice the size (each pixel a 2x2
    block) measures twice the pixels, and the values lie about the true thickness over the true
    pixel size (the demo model on phantom scans of 320x320 px, where model pixels would read 0.8
    of it)."""
    import cv2

    from edge.sim.render import scan

    chain = FrameChain(Segmenter.create(SegmenterOptions(num_threads=1)), ChainOptions(independent=True))
    to_truth = []
    for seed in range(8):
        s = scan(seed, (320, 320))  # 40 x 40 mm: 0.125 mm per pixel, square
        true_px = float(np.median(s.thickness_mm[window_slice(ThicknessOptions(), 320)])) / s.spacing_mm[0]
        one, two = (
            chain(Frame(image, 0.0, seed)).measurements[0]
            for image in (s.image, cv2.resize(s.image, (640, 640), interpolation=cv2.INTER_NEAREST))
        )
        assert one.unit == two.unit == "px" and one.flags & Quality.UNCALIBRATED
        assert two.thickness / one.thickness == pytest.approx(2.0, rel=0.05)
        to_truth.append(one.thickness / true_px)
    assert 0.9 <= float(np.median(to_truth)) <= 1.1  # the model's own bias only: no response in px
    with_spacing = chain(Frame(s.image, 0.0, 0, spacing_mm=s.spacing_mm)).measurements[0]
    assert with_spacing.unit == "mm"
