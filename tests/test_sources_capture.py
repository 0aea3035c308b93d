"""Live capture source: newest frame wins (stale buffered frames dropped and counted), device
errors, URL forms. The card is simulated on a simulated clock; no sleeping."""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np
import pytest

from edge.errors import SourceError
from edge.sources import open_source
from edge.sources.capture import CaptureSource, opencv_has_gstreamer


class SimCard:
    """A capture card at `fps` with a driver buffer of `depth` frames, on a simulated clock.

    Frame k arrives at (k + 1) / fps and is gray level k. grab() returns at once while frames
    wait in the buffer; on an empty buffer it blocks (advances the clock) until the next one.
    """

    def __init__(self, clock, fps=30.0, depth=4):
        self.clock, self.period, self.depth = clock, 1.0 / fps, depth
        self.next_k, self.buffer, self.grabbed = 0, deque(), None
        self.opened, self.props, self.fail = True, {}, False

    def _arrivals(self):
        while (self.next_k + 1) * self.period <= self.clock.now:
            self.buffer.append(self.next_k)
            if len(self.buffer) > self.depth:
                self.buffer.popleft()  # the driver overwrites the oldest
            self.next_k += 1

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        known = {cv2.CAP_PROP_FPS: 1.0 / self.period, cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48}
        return known.get(prop, 0)

    def grab(self):
        if self.fail:
            return False
        self.clock.now += 0.0002
        self._arrivals()
        if not self.buffer:
            self.clock.now = (self.next_k + 1) * self.period  # wait for the card
            self._arrivals()
        self.grabbed = self.buffer.popleft()
        return True

    def retrieve(self):
        return True, np.full((48, 64, 3), self.grabbed, np.uint8)

    def release(self):
        self.opened = False


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def sim_source(fps=30.0, depth=4, **kw):
    clock = Clock()
    card = SimCard(clock, fps, depth)
    src = CaptureSource(0, width=64, height=48, fourcc="MJPG", clock=clock, capture_factory=lambda dev, api: card, **kw)
    return src.open(), card, clock


def test_keeping_up_drops_nothing():
    src, card, clock = sim_source()
    ks = [int(src.read().image[0, 0, 0]) for _ in range(10)]
    assert ks == list(range(10)) and src.dropped == 0 and src.live
    assert card.props[cv2.CAP_PROP_BUFFERSIZE] == 1 and card.props[cv2.CAP_PROP_FRAME_WIDTH] == 64
    assert src.mode == {"width": 64, "height": 48, "fps": 30.0}


def test_a_slow_reader_gets_the_newest_frame_and_counts_the_stale_ones():
    src, card, clock = sim_source()
    first = src.read()
    clock.now += 5.2 / 30  # the pipeline was busy for five frame times
    frame = src.read()
    # Frames 1-5 arrived meanwhile; they are stale. The read waits for frame 6, the next one.
    assert int(frame.image[0, 0, 0]) == 6 and src.dropped == 4  # the buffer kept only 4 of them
    assert frame.t_capture == pytest.approx(7 / 30) and frame.seq == first.seq + 1


def test_drain_is_bounded():
    src, card, clock = sim_source(depth=50, max_drain=3)
    src.read()
    clock.now += 20 / 30
    frame = src.read()
    assert src.dropped == 3 and int(frame.image[0, 0, 0]) == 4  # gave up draining after 3


def test_a_device_that_stops_is_one_clear_error():
    src, card, clock = sim_source(max_failures=3)
    src.read()
    card.fail = True
    with pytest.raises(SourceError, match="capture 0 stopped delivering frames"):
        src.read()


def test_newest_frame_wins_with_opencv_on_a_real_stream(tmp_path):
    # OpenCV's own capture on a file delivers every grab at once, like a full driver buffer:
    # each read keeps only the last of max_drain + 1 grabs.
    path = tmp_path / "card.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    for k in range(20):
        w.write(np.full((48, 64, 3), 10 * k, np.uint8))
    w.release()
    src = CaptureSource(str(path), backend="any", max_drain=3, max_failures=0, give_up=0).open()
    levels = []
    with pytest.raises(SourceError, match="stopped delivering"):
        while True:
            levels.append(int(round(src.read().image[0, 0, 0] / 10)))
    src.close()
    assert levels == [3, 7, 11, 15, 19] and src.dropped == 15


def test_unopenable_device_is_one_clear_error():
    with pytest.raises(SourceError, match="cannot open capture '/dev/video97'"):
        open_source("/dev/video97").open()


def test_v4l2_url_options():
    src = open_source("v4l2:///dev/video0?width=1280&height=720&fps=30&fourcc=MJPG")
    assert isinstance(src, CaptureSource)
    assert (src.device, src.width, src.height, src.req_fps, src.fourcc) == ("/dev/video0", 1280, 720, 30.0, "MJPG")
    assert open_source("2").device == 2 and open_source("v4l2://1").device == 1
    with pytest.raises(SourceError, match="unknown capture option"):
        open_source("v4l2:///dev/video0?gain=3")
    with pytest.raises(SourceError, match="fourcc 'MJPEG' must be four characters"):
        open_source("v4l2:///dev/video0?fourcc=MJPEG")
    with pytest.raises(SourceError, match="bad capture option"):
        open_source("v4l2:///dev/video0?width=wide")


@pytest.mark.skipif(opencv_has_gstreamer(), reason="this OpenCV has GStreamer")
def test_gstreamer_pipeline_without_gstreamer_is_one_clear_error():
    src = open_source("gst://videotestsrc ! videoconvert ! appsink")
    assert src.backend == "gstreamer" and src.device == "videotestsrc ! videoconvert ! appsink"
    with pytest.raises(SourceError, match="built without GStreamer"):
        src.open()


def test_unknown_scheme_is_one_clear_error():
    with pytest.raises(SourceError, match="unknown source 'rtsp://scanner/live'"):
        open_source("rtsp://scanner/live")


def test_read_before_open_is_an_error():
    with pytest.raises(SourceError, match="before open"):
        CaptureSource(0).read()


# -- a card that vanishes and comes back: reopened with backoff, never sleeping -----------------


def vanishing_source(**kw):
    """A capture source over SimCards made by a factory; `present[0]` says whether the device
    node is there (a card made while it is not cannot be opened)."""
    clock, present, cards = Clock(), [True], []

    def factory(device, api):
        card = SimCard(clock)
        card.opened = present[0]
        cards.append(card)
        return card

    src = CaptureSource(0, clock=clock, capture_factory=factory, max_failures=2, **kw).open()
    return src, clock, present, cards


def test_a_lost_card_is_reopened_with_bounded_backoff_and_delivers_again():
    from edge.errors import SignalLost

    src, clock, present, cards = vanishing_source(backoff=(0.1, 0.4))
    first = src.read()
    cards[-1].fail, present[0] = True, False  # unplugged
    waits = []
    for _ in range(6):
        with pytest.raises(SignalLost, match="capture 0 stopped delivering frames .*reopening failed") as e:
            src.read()
        waits.append(e.value.retry_in)
        made = len(cards)
        with pytest.raises(SignalLost):  # asked again before the wait is over: the device is left alone
            src.read()
        assert len(cards) == made
        clock.now += e.value.retry_in
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4, 0.4])  # doubling, then capped
    assert not src.signal and src.failed_reopens == 6 and src.reconnects == 0
    present[0] = True  # plugged back in
    frame = src.read()
    assert src.signal and src.reconnects == 1 and frame.seq == first.seq + 1
    assert src.read().seq == frame.seq + 1


def test_a_glitch_that_reopens_at_once_is_not_a_loss_of_signal():
    src, clock, present, cards = vanishing_source()
    src.read()
    cards[-1].fail = True  # the driver resets; the node stays
    assert src.read() is not None and src.signal and src.reconnects == 1 and src.failed_reopens == 0


def test_giving_up_ends_the_run_with_one_clear_error():
    from edge.errors import SignalLost

    src, clock, present, cards = vanishing_source(give_up=1.0)
    src.read()
    cards[-1].fail, present[0] = True, False
    with pytest.raises(SignalLost):
        src.read()
    clock.now += 1.0
    with pytest.raises(SourceError, match="capture 0 stopped delivering frames .*not back after 1 s") as e:
        src.read()
    assert not isinstance(e.value, SignalLost)


def test_reconnect_url_options():
    src = open_source("v4l2:///dev/video0?retry_max=5&give_up=600")
    assert src.backoff == (0.1, 5.0) and src.give_up == 600.0
    assert open_source("/dev/video0").give_up is None
    with pytest.raises(SourceError, match="bad capture option"):
        open_source("v4l2:///dev/video0?give_up=soon")
