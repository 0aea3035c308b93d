"""The benchmarks' display port (edge.ops.drain): a real pty whose far end takes everything the
display link writes, so the display output is timed as on a cart's serial port."""

import os
import time

import numpy as np
import serial

from edge.frame import Frame, Measurement, Segmentation
from edge.ops.drain import DrainedPort
from edge.sinks.display import DisplaySink


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout  # a bound on waiting for the reader thread, not a timing check
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_the_port_takes_every_byte_written_to_it():
    drained = DrainedPort()
    with drained as path:
        assert os.path.exists(path)
        with serial.Serial(path, timeout=1) as port:
            port.write(b"\x00\x7e" * 50_000)  # more than a pty buffers: only a reader lets it through
            port.flush()
        assert wait_until(lambda: drained.bytes_read == 100_000)
    assert drained.bytes_read == 100_000  # and nothing more arrives once it is closed


def test_a_display_sink_writes_every_frame_through_it():
    labels = np.zeros((64, 64), np.uint8)
    labels[20:26] = 1
    labels[26:] = 2
    drained = DrainedPort()
    with drained as path:
        sink = DisplaySink(path, model_id=1)
        sink.open()
        for seq in range(5):
            frame = Frame(np.zeros((64, 64), np.uint8), time.monotonic(), seq)
            seg = Segmentation(frame, np.roll(labels, seq, axis=0), None, (0.1, 0.1), time.monotonic())
            sink.write(Measurement(seq, frame.t_capture, 1.0, 0.1, "mm", 0, 64, 0.01), seg)
            assert wait_until(lambda n=seq + 1: sink.link.pump(timeout=0.01) or sink.link.stats["frames_sent"] == n)
        sent = sink.link.stats["bytes_sent"]
        assert sink.link.stats["masks_sent"] == 5
        assert wait_until(lambda: drained.bytes_read == sent)
        sink.close()
