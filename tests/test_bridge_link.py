"""The host writer over loop:// and over fake ports: keep-newest, encoding and rate choice,
heartbeats, status, reconnection with backoff, port lookup, misuse."""

from __future__ import annotations

import numpy as np
import pytest
import serial

from firmware_bridge.device import DisplayDevice
from firmware_bridge.errors import ConfigError, LinkError, ProtocolError
from firmware_bridge.framing import DELIMITER, FrameDecoder, frame
from firmware_bridge.link import DisplayLink
from firmware_bridge.masks import boundaries_from_labels, decode_mask, labels_for_display
from firmware_bridge.messages import (
    DeviceInfo, Encoding, Heartbeat, Hello, Mask, Measurement, Reject, Status, StatusCode, decode,
)
from firmware_bridge.pacing import EncodingChooser, LinkBudget, choose_encoding
from firmware_bridge.ports import resolve_port
from firmware_bridge.synthetic import band_labels


def meas(i: int, **kw) -> Measurement:
    base = dict(thickness=2.0 + i / 8, spread=0.25, uncertainty=0.125, flags=0, unit_mm=True, model_id=0xABC, t_capture_us=1000 + i)
    base.update(kw)
    return Measurement(**base)


class Recorder:
    """A listener that keeps what the link read back (on loop:// the host reads its own output)."""

    def __init__(self):
        self.messages = []

    def __call__(self, header, message):
        self.messages.append(message)

    def of(self, cls):
        return [m for m in self.messages if isinstance(m, cls)]


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class FakePort:
    """A port with a device behind it: bytes written are decoded by a reference device whose
    replies come back; ``accept`` limits what one write takes; ``gone`` makes it vanish."""

    def __init__(self, device: DisplayDevice | None = None, accept: int | None = None):
        self.device = device or DisplayDevice()
        self.accept = accept
        self.written = bytearray()
        self.replies = bytearray()
        self.gone = False
        self.closed = False

    def write(self, data):
        if self.gone:
            raise serial.SerialException("device reports readiness to read but returned no data")
        n = len(data) if self.accept is None else min(self.accept, len(data))
        self.written += data[:n]
        self.device.feed(bytes(data[:n]))
        self.replies += self.device.take_replies()
        return n

    @property
    def in_waiting(self):
        if self.gone:
            raise OSError(5, "Input/output error")
        return len(self.replies)

    def read(self, n):
        out = bytes(self.replies[:n])
        del self.replies[:n]
        return out

    def close(self):
        self.closed = True


# -- over loop:// -------------------------------------------------------------------------------

def test_measurement_and_mask_arrive_over_loop():
    rec = Recorder()
    labels = band_labels(256, 256, phase=0.2)
    with DisplayLink("loop://", 115200, 320, 240, listener=rec) as link:
        link.offer(meas(1), labels)
        assert link.pump(timeout=30.0)
        link.pump()
        stats = link.stats
    (hello,) = rec.of(Hello)
    (m,) = rec.of(Measurement)
    (mask,) = rec.of(Mask)
    assert hello.max_version == 1 and m.same_on_wire(meas(1))
    assert (mask.width, mask.height, mask.t_capture_us) == (320, 240, m.t_capture_us)
    assert mask.encoding == Encoding.BOUNDS_DELTA  # no handshake on loop://: boundaries only
    got = decode_mask(mask.encoding, mask.data, 320, 240)
    top, bottom = boundaries_from_labels(labels, 1, 320, 240)
    assert np.array_equal(got.top, top) and np.array_equal(got.bottom, bottom)
    assert stats["frames_sent"] == 1 and stats["masks_sent"] == 1 and stats["encoding"] == "BOUNDS_DELTA"
    assert stats["bytes_sent"] > 300 and stats["rx_packets"] == 3 and stats["rx_errors"] == 0


def test_offer_keeps_only_the_newest_frame():
    rec = Recorder()
    link = DisplayLink("loop://", listener=rec).open()
    for i in range(5):
        link.offer(meas(i))  # the pipeline runs ahead of the writer: nothing is sent yet
    assert link.stats["frames_replaced"] == 4
    link.pump(timeout=30.0)
    link.pump()
    link.close()
    assert [m.t_capture_us for m in rec.of(Measurement)] == [1004]
    assert link.stats["frames_sent"] == 1 and link.stats["frames_offered"] == 5


def test_a_port_without_a_baud_rate_opens_and_carries_frames():
    """baudrate=None (a USB CDC or pty port, whose rate no baud setting decides) opens with the
    default opener and is paced at the assumed rate, not refused as "Not a valid baudrate"."""
    rec = Recorder()
    with DisplayLink("loop://", baudrate=None, listener=rec) as link:
        assert link.connected
        link.offer(meas(0))
        link.pump(timeout=30.0)
        link.pump()
        stats = link.stats
    assert [m.t_capture_us for m in rec.of(Measurement)] == [1000]
    assert stats["frames_sent"] == 1 and stats["last_error"] is None
    assert stats["link_rate_bps"] == 1_000_000.0


def test_forced_label_map_encoding_over_loop():
    rec = Recorder()
    labels = band_labels(120, 160, phase=0.7)
    with DisplayLink("loop://", 921600, 80, 60, encoding="rle", listener=rec) as link:
        link.offer(meas(0), labels)
        link.pump(timeout=30.0)
        link.pump()
    (mask,) = rec.of(Mask)
    assert mask.encoding == Encoding.RLE
    assert np.array_equal(decode_mask(Encoding.RLE, mask.data, 80, 60).labels, labels_for_display(labels, 80, 60))


def test_status_goes_out_before_the_next_frame_and_heartbeats_fill_idle_time():
    clock = FakeClock()
    port = FakePort()
    link = DisplayLink("fake://", 115200, opener=lambda u, b: port, clock=clock, heartbeat_s=1.0).open()
    link.pump()
    link.offer_status(Status(StatusCode.NO_SIGNAL, 0, "no scanner signal"))
    link.offer(meas(3))
    clock.t += 0.1
    link.pump()
    clock.t += 1.5  # nothing to send for longer than the heartbeat interval
    link.pump()
    s = port.device.state
    assert s.status.code == StatusCode.NO_SIGNAL and s.status.text == "no scanner signal"
    assert s.measurement.same_on_wire(meas(3)) and s.heartbeat is not None
    assert link.stats["heartbeats_sent"] == 1 and link.stats["statuses_sent"] == 1


def test_pacing_holds_a_frame_while_the_wire_is_busy():
    clock = FakeClock()
    port = FakePort()
    link = DisplayLink("fake://", 9600, opener=lambda u, b: port, clock=clock).open()
    labels = band_labels(256, 256)
    link.offer(meas(0), labels)
    link.pump()  # ~400 bytes at 960 B/s: the wire is busy for about 0.4 s
    assert link.stats["frames_sent"] == 1 and link.stats["backlog_ms"] > 300
    clock.t += 0.05
    link.offer(meas(1), labels)
    link.pump()
    clock.t += 0.05
    link.offer(meas(2), labels)  # replaces frame 1, which never went out
    link.pump()
    assert link.stats["frames_sent"] == 1 and link.stats["frames_replaced"] == 1
    clock.t += 0.4
    link.pump()
    assert link.stats["frames_sent"] == 2
    assert port.device.state.measurement.t_capture_us == 1002


def test_partial_writes_resume_and_the_frame_completes():
    clock = FakeClock()
    port = FakePort(accept=50)
    link = DisplayLink("fake://", 115200, opener=lambda u, b: port, clock=clock).open()
    link.offer(meas(0), band_labels(64, 64))
    for _ in range(20):
        clock.t += 0.01
        link.pump()
    assert port.device.state.frames_received == 1 and port.device.state.masks_received == 1
    assert link.stats["bytes_sent"] == len(port.written)


def test_handshake_sets_display_size_encodings_and_rate():
    dev = DisplayDevice(160, 120, encodings=(1 << Encoding.BOUNDS16) | (1 << Encoding.RLE), max_rate_hz=10)
    port = FakePort(dev)
    clock = FakeClock()
    link = DisplayLink("fake://", 2_000_000, opener=lambda u, b: port, clock=clock).open()
    link.pump()  # HELLO out, DEVICE_INFO back
    link.pump()
    assert link.device == DeviceInfo(1, 160, 120, (1 << 1) | (1 << 3), 10, dev.max_payload, link.device.nonce, dev.firmware)
    for i in range(40):  # 40 offers over 1 s at 40 fps; the device takes at most 10 per second
        clock.t += 0.025
        link.offer(meas(i), band_labels(240, 320, phase=i / 40))
        link.pump()
    assert 9 <= dev.state.frames_received <= 13
    assert dev.state.mask.labels.shape == (120, 160)  # fast link: the label map, in the device's only label encoding
    assert link.stats["encoding"] == "RLE" and link.stats["display"] == [160, 120]
    assert link.stats["frames_sent"] == dev.state.frames_received


def test_slow_link_without_label_encodings_uses_boundaries():
    dev = DisplayDevice(320, 240, encodings=(1 << Encoding.BOUNDS16) | (1 << Encoding.BOUNDS_DELTA))
    port = FakePort(dev)
    clock = FakeClock()
    link = DisplayLink("fake://", 115200, opener=lambda u, b: port, clock=clock).open()
    link.pump()
    link.pump()
    for i in range(10):
        clock.t += 0.05
        link.offer(meas(i), band_labels(256, 256, phase=i / 10))
        link.pump()
    assert link.stats["encoding"] == "BOUNDS_DELTA" and dev.state.frames_received == 10


def test_device_reject_is_reported():
    port = FakePort()
    link = DisplayLink("fake://", opener=lambda u, b: port).open()
    port.replies += DELIMITER + frame(Reject.TYPE, 0, 0, Reject(1, 2, 0x10, 5, 1).pack())
    port.replies += DELIMITER + frame(Heartbeat.TYPE, 1, 0, Heartbeat(10, 20, 1).pack())
    link.pump()
    s = link.stats
    assert s["rejects"] == 1 and s["last_reject"]["reason"] == 1 and "up to 1" in s["last_error"]
    assert s["device_rx"] == {"uptime_ms": 10, "rx_ok": 20, "rx_bad": 1}


def test_choose_encoding_prefers_a_label_map_that_fits():
    sizes = {Encoding.BOUNDS_DELTA: 300, Encoding.BOUNDS16: 1300, Encoding.RLE: 700, Encoding.LABELS2: 19000}
    assert choose_encoding(sizes, 500) == Encoding.BOUNDS_DELTA
    assert choose_encoding(sizes, 1000) == Encoding.RLE
    assert choose_encoding(sizes, 800) == Encoding.BOUNDS_DELTA  # 700 > 0.8 * 800: not worth switching
    assert choose_encoding(sizes, 800, Encoding.RLE) == Encoding.RLE  # ...but stays once there
    assert choose_encoding({Encoding.BOUNDS16: 1300}, 10) == Encoding.BOUNDS16  # too big, still the best there is
    assert choose_encoding({}, 1000) is None
    chooser = EncodingChooser(patience=3)
    picks = [chooser.choose(sizes, b) for b in (500, 1000, 1000, 1000, 1000, 500)]
    assert picks == [Encoding.BOUNDS_DELTA] * 3 + [Encoding.RLE, Encoding.RLE, Encoding.BOUNDS_DELTA]


def test_link_budget_models_the_wire_and_measures_push_back():
    b = LinkBudget(11520, now=0.0)
    b.sent(1152, 0.0)
    assert b.backlog_s(0.0) == pytest.approx(0.1) and b.backlog_s(0.05) == pytest.approx(0.05)
    for i in range(1, 6):  # the port takes only 500 B/s
        b.sent(5, i * 0.01)
        b.observe(i * 0.01, None, pushed_back=True)
    assert b.measured == pytest.approx(500, rel=0.01) and b.rate == pytest.approx(500, rel=0.01)
    for i in range(6, 200):
        b.observe(i * 0.1, None, pushed_back=False)
    assert b.measured is None and b.rate == 11520


# -- losing the port and getting it back ----------------------------------------------------------

def test_reconnects_with_backoff_when_the_port_vanishes():
    clock = FakeClock()
    ports = [FakePort()]
    present = [True]

    def opener(url, baud):
        if not present[0]:
            raise LinkError(f"cannot open display port {url!r}: no such device")
        ports.append(FakePort())
        return ports[-1]

    link = DisplayLink("usb:1234:5678", opener=opener, clock=clock, backoff=(0.1, 0.4)).open()
    first = ports[-1]
    link.offer(meas(0))
    link.pump()
    assert first.device.state.frames_received == 1
    first.gone, present[0] = True, False
    link.offer(meas(1))
    link.pump()  # the write fails: disconnected, frame 1 kept for later
    assert not link.connected and link.stats["disconnects"] == 1
    for _ in range(12):  # the display stays away for over a second: attempts back off
        clock.t += 0.1
        link.pump()
    assert "no such device" in link.stats["last_error"] and not link.connected
    present[0] = True
    for _ in range(5):
        clock.t += 0.1
        link.pump()
    assert link.connected and link.stats["reconnects"] == 1
    second = ports[-1]
    assert second is not first and first.closed
    s = second.device.state
    assert s.measurement.same_on_wire(meas(1)) and s.counters["ok"] >= 2  # HELLO first, then the kept frame
    assert FrameDecoder().feed(bytes(second.written))[0].header.seq == 0


def test_reconnect_attempts_back_off():
    clock = FakeClock()
    calls = []

    def opener(url, baud):
        calls.append(clock.t)
        if len(calls) > 1:
            raise LinkError("gone")
        port = FakePort()
        port.gone = True
        return port

    link = DisplayLink("x", opener=opener, clock=clock, backoff=(0.1, 0.4)).open()
    link.pump()  # fails on the first read
    for _ in range(150):
        clock.t += 0.01
        link.pump()
    gaps = np.diff(calls[1:])
    assert gaps[:3] == pytest.approx([0.2, 0.4, 0.4], abs=0.015) and calls[1] - 100.0 == pytest.approx(0.1, abs=0.015)


# -- misuse and errors ----------------------------------------------------------------------------

def test_open_names_the_port_in_one_line(tmp_path):
    missing = str(tmp_path / "no-such-display")
    with pytest.raises(LinkError) as e:
        DisplayLink(missing).open()
    assert repr(missing) in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value.__cause__, (serial.SerialException, OSError))


@pytest.mark.parametrize("kwargs, match", [
    (dict(url=""), "URL"),
    (dict(url="loop://", baudrate=0), "baudrate"),
    (dict(url="loop://", baudrate=7), "baudrate must be a whole number from 300"),
    (dict(url="loop://", baudrate=10**17), "baudrate must be a whole number from 300"),
    (dict(url="loop://", display_width=0), "display_width"),
    (dict(url="loop://", encoding="png"), "'png'"),
    (dict(url="loop://", max_rate=-1), "max_rate"),
    (dict(url="loop://", backoff=(1.0, 0.5)), "backoff"),
])
def test_bad_options_are_rejected_with_the_value(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DisplayLink(**kwargs)


def test_offer_rejects_what_is_not_a_measurement():
    link = DisplayLink("loop://")
    with pytest.raises(ProtocolError, match="'dict'"):
        link.offer({"thickness": 1.0})
    with pytest.raises(ProtocolError, match="limit is 64"):
        link.offer_status(Status(1, 0, "x" * 100))


def test_a_bad_label_map_costs_the_mask_not_the_measurement():
    rec = Recorder()
    with DisplayLink("loop://", listener=rec) as link:
        link.offer(meas(0), labels=np.zeros((4,), np.uint8))
        link.pump(timeout=30.0)
        link.pump()
        assert link.stats["mask_errors"] == 1 and "labels must" in link.stats["last_error"]
    assert len(rec.of(Measurement)) == 1 and not rec.of(Mask)


def test_a_failing_listener_does_not_stop_the_link():
    def bad(header, message):
        raise RuntimeError("listener bug")

    with DisplayLink("loop://", listener=bad) as link:
        link.offer(meas(0))
        link.pump(timeout=30.0)
        link.pump()
        assert link.stats["listener_errors"] >= 1 and link.connected


def test_usb_vid_pid_is_resolved_through_list_ports(monkeypatch):
    class Info:
        def __init__(self, device, vid, pid, serial_number):
            self.device, self.vid, self.pid, self.serial_number = device, vid, pid, serial_number

    ports = [Info("/dev/ttyACM0", 0x1234, 0x5678, "A1"), Info("/dev/ttyACM1", 0x1234, 0x5678, "B2"),
             Info("/dev/ttyUSB0", 0x0403, 0x6001, None)]
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: ports)
    assert resolve_port("usb:0403:6001") == "/dev/ttyUSB0"
    assert resolve_port("usb:1234:5678:B2") == "/dev/ttyACM1"
    assert resolve_port("/dev/serial/by-id/usb-x") == "/dev/serial/by-id/usb-x"
    with pytest.raises(LinkError, match="several ports"):
        resolve_port("usb:1234:5678")
    with pytest.raises(LinkError, match="'usb:dead:beef' is connected"):
        resolve_port("usb:dead:beef")


def test_hello_on_loop_carries_the_protocol_version():
    rec = Recorder()
    with DisplayLink("loop://", listener=rec) as link:
        link.pump()
        link.pump()
    assert rec.of(Hello) == [Hello(1, 1, link.protocol.nonce)]
    assert decode(Hello.TYPE, Hello(1, 1, 5).pack()) == Hello(1, 1, 5)


def test_a_frame_of_several_bands_goes_out_whole_and_the_display_shows_each():
    """Three bands of one frame: three MEASUREMENTs in band order, then one mask; the display
    keeps the frame's bands and its caption shows one line per band. A display of boundary masks only gets the superficial band's."""
    from firmware_bridge.render import caption

    labels = np.zeros((60, 40), np.uint8)
    labels[5:9], labels[20:26], labels[40:43] = 1, 1, 1  # three bands, superficial first
    bands = [meas(0, band=i, bands=3, unit_mm=False, thickness=v) for i, v in enumerate((4.0, 6.0, 3.0))]
    port = FakePort(DisplayDevice(40, 60, encodings=(1 << Encoding.BOUNDS16) | (1 << Encoding.BOUNDS_DELTA)))
    clock = FakeClock()
    link = DisplayLink("fake://", 115200, opener=lambda u, b: port, clock=clock, display_width=40,
                       display_height=60).open()
    link.offer(bands, labels=labels)
    for _ in range(20):
        link.pump()
        clock.t += 0.05
    s = port.device.state
    assert sorted(s.bands) == [0, 1, 2] and [s.bands[i].thickness for i in range(3)] == [4.0, 6.0, 3.0]
    assert s.mask_t_capture_us == bands[0].t_capture_us
    assert int(s.top[0]) == 5 and int(s.bottom[0]) == 9  # the first band, not rows 5 to 43
    assert caption(s)[:3] == ["band 1 4.00 px (uncal.)", "band 2 6.00 px (uncal.)", "band 3 3.00 px (uncal.)"]
    with pytest.raises(ProtocolError, match="bands 0..n-1"):
        link.offer([bands[0], bands[2]])
    link.close()
