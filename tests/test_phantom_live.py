"""The phantom as a live scanner (live=1): frames on the wall clock, the newest frame wins."""

from __future__ import annotations

import io
import threading

import pytest

from edge.model.bundle import DEMO_BUNDLE, load_bundle
from edge.errors import SourceError
from edge.runtime.pipeline import Pipeline
from edge.model.segmenter import Segmenter
from edge.runtime.factory import open_source
from edge.sources.base import Source


class FakeClock:
    """A clock that moves only when the source sleeps (or a test says so)."""

    def __init__(self, start: float = 100.0):
        self.t, self.slept = start, []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


@pytest.mark.parametrize("kind", ["clip", "screen"])
def test_live_phantom_holds_frame_n_back_until_n_over_fps(kind):
    src = open_source(f"phantom://{kind}?frames=6&fps=20&live=1&size=320x240")
    clock = FakeClock()
    src.clock, src.sleep = clock.now, clock.sleep
    src.open()
    assert src.live
    frames = [src.read() for _ in range(6)]
    assert all(f is not None for f in frames) and src.read() is None
    assert [f.seq for f in frames] == list(range(6))
    # Rendering takes no time on this clock, so each frame waits one whole period.
    assert clock.slept == pytest.approx([1 / 20] * 5)
    assert [f.t_capture for f in frames] == pytest.approx([100.0 + k / 20 for k in range(6)])


def test_live_phantom_does_not_wait_for_a_frame_that_is_already_late():
    src = open_source("phantom://clip?frames=5&fps=10&live=1&size=64x64")
    clock = FakeClock()
    src.clock, src.sleep = clock.now, clock.sleep
    src.open()
    src.read()
    clock.t += 0.35  # the consumer was busy for 3.5 frame periods
    for _ in range(4):
        src.read()
    assert clock.slept == pytest.approx([0.05])  # frames 1-3 (due at +0.1 to +0.3) are late; frame 4 waits


def test_phantom_is_not_live_unless_asked():
    src = open_source("phantom://clip?frames=3&size=64x64")

    def no_sleep(s):
        raise AssertionError(f"a file-like phantom slept {s} s")

    src.sleep = no_sleep
    src.open()
    assert not src.live
    assert all(src.read() is not None for _ in range(3)) and src.read() is None


@pytest.mark.parametrize("bad", ["live=maybe", "fps=0", "fps=-3"])
def test_bad_live_or_fps_option_is_one_clear_error(bad):
    with pytest.raises(SourceError, match="live|fps"):
        open_source(f"phantom://clip?{bad}")


def test_inference_slower_than_a_live_scanner_drops_old_frames_and_counts_them():
    """The model is held on its first frame until the scanner has sent every frame, so the frames
    queue (the newest two) must let the others go, on any machine at any load."""
    real = Segmenter(load_bundle(DEMO_BUNDLE), 1)
    scanner = open_source("phantom://clip?frames=24&fps=120&live=1&size=256x256")
    sent_all = threading.Event()

    class Scanner(Source):
        live = True

        def open(self):
            scanner.open()
            return self

        def read(self):
            frame = scanner.read()
            if frame is None:
                sent_all.set()
            return frame

    class SlowModel:
        bundle, spec = real.bundle, real.spec

        def input_tensor(self, image):
            return real.input_tensor(image)

        def run(self, tensor):
            assert sent_all.wait(120), "the scanner never finished"
            return real.run(tensor)

        def segmentation(self, *args, **kw):
            return real.segmentation(*args, **kw)

    stats = Pipeline(Scanner(), SlowModel(), [], err=io.StringIO()).run()
    assert stats.dropped_frames >= 24 - 3  # at most the frame in the model and two waiting get through
    assert stats.measured + stats.dropped_frames == 24


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


@pytest.mark.parametrize("kind, size", [("clip", "100x80"), ("screen", "320x240")])
def test_a_phantom_larger_than_max_pixels_is_refused(kind, size):
    width, height = (int(v) for v in size.split("x"))
    url = f"phantom://{kind}?frames=1&size={size}"
    with pytest.raises(SourceError, match=rf"^phantom {kind} size is {size} pixels, more than \[source\] max_pixels \(5000\)"):
        open_source(url, max_pixels=5000)
    assert open_source(url, max_pixels=width * height).size == (width, height)  # exactly the limit is allowed
