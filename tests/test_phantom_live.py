"""The phantom as a live scanner (live=1): frames on the wall clock, the newest frame wins."""

from __future__ import annotations

import io
import time

import pytest

from edge.bundle import DEMO_BUNDLE, load_bundle
from edge.errors import SourceError
from edge.pipeline import Pipeline
from edge.segmenter import Segmenter
from edge.sources.base import open_source


@pytest.mark.parametrize("kind", ["clip", "screen"])
def test_live_phantom_delivers_frames_at_its_frame_rate(kind):
    src = open_source(f"phantom://{kind}?frames=6&fps=20&live=1&size=320x240").open()
    assert src.live
    t0 = time.monotonic()
    frames = [src.read() for _ in range(6)]
    elapsed = time.monotonic() - t0
    assert all(f is not None for f in frames) and src.read() is None
    assert elapsed >= 5 / 20 - 0.005  # frame n is held back until n / fps after the first
    assert [f.seq for f in frames] == list(range(6))


def test_phantom_is_not_live_unless_asked():
    src = open_source("phantom://clip?frames=3&size=64x64").open()
    assert not src.live
    t0 = time.monotonic()
    assert all(src.read() is not None for _ in range(3))
    assert time.monotonic() - t0 < 3 / 30 * 10  # no pacing wait on top of rendering


@pytest.mark.parametrize("bad", ["live=maybe", "fps=0", "fps=-3"])
def test_bad_live_or_fps_option_is_one_clear_error(bad):
    with pytest.raises(SourceError, match="live|fps"):
        open_source(f"phantom://clip?{bad}")


def test_inference_slower_than_a_live_scanner_drops_old_frames_and_counts_them():
    seg = Segmenter(load_bundle(DEMO_BUNDLE), 1)
    frames = 24
    stats = Pipeline(open_source(f"phantom://clip?frames={frames}&fps=120&live=1&size=256x256"), seg, [],
                     err=io.StringIO()).run()
    # 24 frames in 0.2 s; one inference of the demo model takes longer than a frame period.
    assert stats.dropped_frames > 0
    assert stats.measured + stats.dropped_frames == frames


@pytest.mark.parametrize("kind, name", [("clip", "phantom"), ("screen", "phantom screen")])
def test_reading_a_phantom_before_open_is_a_named_error_and_open_restarts_the_clip(kind, name):
    src = open_source(f"phantom://{kind}?frames=2&size=320x240")
    with pytest.raises(SourceError, match=f"^{name} source read before open"):
        src.read()
    src.open()
    first = src.read()
    assert src.read().seq == 1 and src.read() is None
    src.open()  # a fresh clip: the same first frame again
    again = src.read()
    assert again.seq == 0 and (again.image == first.image).all()
