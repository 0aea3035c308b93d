"""The display link's parts, each alone: the transport (reconnect policy on a fake clock,
non-blocking writes over loop:// and a real pty), the protocol (handshake, rejects and decoding
fed bytes directly, and under pyserial's ReaderThread), pacing (the keep-newest slot, the rate
cap, the backlog window, the encoding choice), the counts and the options."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import serial
import serial.threaded

from firmware_bridge.errors import ConfigError, LinkError, MaskError
from firmware_bridge.framing import DELIMITER, FrameDecoder, frame
from firmware_bridge.link import DisplayLink
from firmware_bridge.masks import boundaries_from_labels, decode_mask, labels_for_display
from firmware_bridge.messages import (
    DeviceInfo, Encoding, Heartbeat, Hello, Mask, Measurement, MessageType, Reject, RejectReason, Status, StatusCode,
)
from firmware_bridge.options import LinkOptions
from firmware_bridge.pacing import MEASUREMENT_WIRE, KeepNewest, MaskEncoder, Pacer, PendingFrame, mask_wire_size
from firmware_bridge.protocol import LinkProtocol
from firmware_bridge.stats import LinkStats
from firmware_bridge.synthetic import band_labels
from firmware_bridge.transport import Backoff, SerialTransport


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self):
        return self.t


def meas(i: int, **kw) -> Measurement:
    base = dict(thickness=2.0 + i / 8, spread=0.25, uncertainty=0.125, flags=0, unit_mm=True, model_id=0xABC,
                t_capture_us=1000 + i)
    base.update(kw)
    return Measurement(**base)


def packet_of(message, seq: int = 0) -> bytes:
    return DELIMITER + frame(message.TYPE, seq, 0, message.pack())


# -- transport --------------------------------------------------------------------------------------

class ClosablePort:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


def test_backoff_doubles_up_to_the_longest_and_resets_on_success():
    b = Backoff(0.1, 0.5, now=10.0)
    assert b.due(10.0)
    waits = []
    now = 10.0
    for _ in range(5):
        b.failed(now)
        waits.append(round(b.next_attempt - now, 6))
        assert not b.due(now) and b.due(b.next_attempt)
        now = b.next_attempt
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]
    b.succeeded()
    b.failed(now)
    assert b.next_attempt - now == pytest.approx(0.1)


def test_transport_reconnects_on_the_backoff_schedule_and_counts_the_outage():
    clock = FakeClock()
    attempts, ports = [], []
    present = [True]

    def opener(url, baudrate):
        attempts.append(clock.t)
        if not present[0]:
            raise LinkError(f"cannot open display port {url!r}: no such device")
        ports.append(ClosablePort())
        return ports[-1]

    stats = LinkStats()
    step = 1 / 64  # times in binary fractions: the schedule is exact
    t = SerialTransport("usb:1234:5678", 115200, opener=opener, stats=stats, backoff=Backoff(0.125, 0.5, clock.t))
    assert t.open() and t.connected and not t.open()  # a second open() keeps the port
    present[0] = False
    t.lost(LinkError("display port write failed: [Errno 5] Input/output error"), clock.t)
    assert not t.connected and ports[0].closed and stats.disconnects == 1
    assert "'usb:1234:5678' lost: display port write failed" in stats.last_error
    while clock.t < 102.0:  # the display stays away for two seconds
        assert not t.reconnect(clock.t)
        clock.t += step
    assert attempts[1:] == [100.125, 100.375, 100.875, 101.375, 101.875]  # 1/8 s, doubling up to 1/2 s
    assert "no such device" in stats.last_error and stats.reconnects == 0
    present[0] = True
    while not t.reconnect(clock.t):
        clock.t += step
    assert clock.t == 102.375 and stats.reconnects == 1 and len(ports) == 2
    assert t.seconds_disconnected(clock.t) == 2.375
    clock.t += 5.0  # connected again: the outage is over and does not grow
    assert t.seconds_disconnected(clock.t) == 2.375
    t.lost(LinkError("gone again"), clock.t)  # the delay was reset by the successful open
    assert t.next_attempt(clock.t) == clock.t + 0.125


def test_a_closed_transport_does_not_reconnect():
    opened = []
    t = SerialTransport("x", None, opener=lambda u, b: opened.append(u) or ClosablePort(),
                        backoff=Backoff(0.1, 0.4, 0.0))
    t.open()
    t.close()
    assert not t.connected and opened == ["x"]
    assert not t.reconnect(1000.0) and t.next_attempt(1000.0) == 4600.0 and opened == ["x"]


def test_transport_over_loop_writes_and_reads_back():
    t = SerialTransport("loop://", 115200, backoff=Backoff(0.1, 2.0))
    t.open()
    data = DELIMITER + frame(Heartbeat.TYPE, 3, 0, Heartbeat(1, 2, 3).pack())
    assert t.write(data) == len(data)
    assert t.out_waiting() is None  # a URL handler cannot tell its OS queue
    got = t.read()
    assert got == data
    port = t.port
    t.close(farewell=b"\x00bye")
    assert not port.is_open and not t.connected


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs pseudo-terminals (POSIX)")
def test_transport_write_never_blocks_on_a_full_pty_and_a_hang_up_is_a_link_error():
    import select
    import tty

    def wait_for(fd, events, ms=30_000) -> bool:  # an event, not a sleep; the timeout only ends a stuck test
        poller = select.poll()
        poller.register(fd, events)
        return bool(poller.poll(ms))

    master, slave = os.openpty()
    tty.setraw(master)
    t = SerialTransport(os.ttyname(slave), 115200, backoff=Backoff(0.1, 2.0))
    try:
        t.open()
        big = bytes(range(256)) * 4096  # 1 MiB, far more than a pty buffers
        taken = t.write(big)
        assert 0 < taken < len(big)  # the rest is refused, not waited for
        while t.write(big[taken:]) > 0:  # fill the buffer to the brim: then a write takes nothing, at once
            pass
        assert wait_for(master, select.POLLIN)
        got = bytearray()
        while wait_for(master, select.POLLIN, 0):  # the reader drains what is there
            got += os.read(master, 65536)
        assert bytes(got[:256]) == big[:256]
        assert wait_for(t.port.fileno(), select.POLLOUT)  # the reader made room...
        assert t.write(big) > 0  # ...and writing resumes
        os.close(master)
        master = None
        assert wait_for(t.port.fileno(), select.POLLIN | select.POLLHUP)
        with pytest.raises(LinkError):
            t.read()
    finally:
        if master is not None:
            os.close(master)
        t.close()
        os.close(slave)


# -- protocol -----------------------------------------------------------------------------------------

def test_handshake_hellos_until_the_device_answers_and_each_connection_starts_afresh():
    clock = FakeClock()
    stats = LinkStats()
    p = LinkProtocol(hello_interval_s=0.5, hello_attempts=3, stats=stats, clock=clock)
    assert p.hello_due(clock.t) is None  # not connected: no handshake
    p.connection_made(None)
    assert p.hello_due(clock.t) == Hello(1, 1, 1) and p.hello_due(clock.t + 0.4) is None
    assert p.hello_due(clock.t + 0.5) == Hello(1, 1, 1) and p.next_hello == pytest.approx(100.5 + 0.5)
    info = DeviceInfo(1, 160, 120, 0b1010, 25, 4096, nonce=1, firmware=7)
    for byte in packet_of(info):  # replies may arrive a byte at a time
        p.data_received(bytes([byte]))
    assert p.device == info and p.hellos_left == 0 and p.hello_due(clock.t + 5) is None
    assert stats.hellos_sent == 2 and stats.rx_packets == 1
    p.data_received(packet_of(DeviceInfo(1, 64, 64, 0b10, 5, 512, nonce=99)))  # an old connection's answer
    assert p.device == info
    # packets are numbered from 0 and stamped with the time since the protocol was made
    clock.t += 0.25
    first, second = p.frame(Hello(1, 1, 1)), p.frame(Status(StatusCode.RUNNING, 0, ""))
    (a,), (b,) = FrameDecoder().feed(DELIMITER + first), FrameDecoder().feed(DELIMITER + second)
    assert (a.header.seq, b.header.seq, a.header.time_us) == (0, 1, 250_000)
    p.connection_made(None)  # a new connection: a new nonce, no device, the sequence from 0 again
    assert p.device is None and p.nonce == 2 and p.hellos_left == 3
    (c,) = FrameDecoder().feed(DELIMITER + p.frame(Hello(1, 1, 2)))
    assert c.header.seq == 0


def test_the_handshake_gives_up_after_its_attempts():
    clock = FakeClock()
    p = LinkProtocol(hello_interval_s=0.1, hello_attempts=4, clock=clock)
    p.connection_made(None)
    sent = [p.hello_due(100.0 + i * 0.1) for i in range(10)]
    assert sum(h is not None for h in sent) == 4 and p.stats.hellos_sent == 4 and p.hellos_left == 0


def test_rejects_replies_and_bad_bytes_are_decoded_and_counted():
    seen = []
    p = LinkProtocol(listener=lambda header, message: seen.append((header.type, message)), clock=FakeClock())
    p.connection_made(None)
    p.data_received(packet_of(Reject(RejectReason.VERSION, 2, MessageType.HELLO, 0, 1))
                    + packet_of(Heartbeat(10, 20, 1), 1) + packet_of(Status(StatusCode.FROZEN, 0, "frozen"), 2))
    s = p.stats
    assert s.rejects == 1 and p.last_reject.reason == RejectReason.VERSION and "up to 1" in s.last_error
    assert p.hellos_left == 0  # a device of another version: no more HELLOs
    assert p.device_heartbeat == Heartbeat(10, 20, 1) and p.device_status.code == StatusCode.FROZEN
    assert [t for t, _ in seen] == [MessageType.REJECT, MessageType.HEARTBEAT, MessageType.STATUS]
    good = packet_of(Heartbeat(11, 21, 1), 3)
    corrupt = good[:-3] + bytes([good[-3] ^ 0x40]) + good[-2:]  # a flipped bit: the CRC fails
    p.data_received(corrupt + DELIMITER + frame(Heartbeat.TYPE, 4, 0, b"\x01"))  # short payload: undecodable
    assert s.rx_errors == 2 and s.rx_packets == 3 and p.device_heartbeat == Heartbeat(10, 20, 1)
    p.data_received(packet_of(Reject(RejectReason.MALFORMED, 1, MessageType.MASK, 9, 1)))
    assert s.rejects == 2 and p.last_reject.seq == 9 and "up to 1" in s.last_error  # not a version reject


def test_a_listener_that_raises_is_counted_and_decoding_goes_on():
    def bad(header, message):
        raise RuntimeError("listener bug")

    p = LinkProtocol(listener=bad, clock=FakeClock())
    p.data_received(packet_of(Heartbeat(1, 2, 3)) + packet_of(Heartbeat(4, 5, 6), 1))
    assert p.stats.listener_errors == 2 and "listener bug" in p.stats.last_error
    assert p.device_heartbeat == Heartbeat(4, 5, 6)


def test_the_protocol_runs_under_pyserials_reader_thread_over_loop():
    answered = threading.Event()
    protocol = LinkProtocol(listener=lambda header, message: answered.set())
    port = serial.serial_for_url("loop://", baudrate=115200, timeout=1)
    with serial.threaded.ReaderThread(port, lambda: protocol) as p:
        assert p is protocol and p.transport is not None and p.nonce == 1
        info = DeviceInfo(1, 320, 240, 0b11110, 30, 8192, nonce=p.nonce)
        p.transport.write(packet_of(info))  # loop:// hands the bytes back to the reader
        assert answered.wait(30.0)
        assert p.device == info and p.stats.rx_packets == 1


# -- pacing -------------------------------------------------------------------------------------------

def test_keep_newest_slot():
    slot = KeepNewest()
    assert slot.take() is None and not slot.full
    assert slot.put(1) is False and slot.put(2) is True and slot.full
    assert slot.take() == 2 and slot.take() is None
    assert slot.put_back(2) and slot.take() == 2
    slot.put(3)
    assert not slot.put_back(2) and slot.take() == 3  # a newer item is never pushed out by an older one


def test_keep_newest_slot_between_threads_never_goes_back_in_time():
    slot, taken, done = KeepNewest(), [], threading.Event()

    def produce():
        for i in range(20000):
            slot.put(i)
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    while not done.is_set():
        item = slot.take()
        if item is not None:
            taken.append(item)
    thread.join(30.0)
    rest = slot.take()
    taken += [] if rest is None else [rest]
    assert taken and taken[-1] == 19999 and all(a < b for a, b in zip(taken, taken[1:]))


def test_pacer_counts_replaced_offers_and_the_offered_rate():
    pacer = Pacer(11520.0, 0.0)
    for i in range(5):
        pacer.offer(PendingFrame.of(meas(i), None, i * 0.05))
    assert pacer.stats.frames_offered == 5 and pacer.stats.frames_replaced == 4
    assert pacer.frames.take().measurements == (meas(4),) and pacer.offers.hz == pytest.approx(20.0)
    assert pacer.target_fps(None) == pytest.approx(20.0)
    assert pacer.target_fps(DeviceInfo(1, 320, 240, 0b10, 8, 4096)) == 8.0
    assert Pacer(11520.0, 0.0, max_rate=5).target_fps(DeviceInfo(1, 320, 240, 0b10, 8, 4096)) == 5.0


def test_pacer_rate_cap_is_a_bucket_of_two_frames():
    device = DeviceInfo(1, 320, 240, 0b10, 8, 4096)  # at most 8 frames a second
    pacer = Pacer(None, 0.0)
    starts, now = [], 0.0
    while now < 2.0:  # steps of 1/64 s: the token arithmetic is exact
        while pacer.token_ready(now, device):
            pacer.spend_token()
            starts.append(now)
        assert now < pacer.token_due(now, device) <= now + 0.125
        now += 1 / 64
    # two at once (the bucket is full), then one every 1/8 s
    assert starts == [0.0, 0.0] + [k / 8 for k in range(1, 16)]
    assert Pacer(None, 0.0).token_ready(5.0, None)  # no cap: always
    capped = Pacer(None, 0.0, max_rate=2)  # the lower of max_rate and the device's
    assert [capped.token_ready(0.25, device) and capped.spend_token() is None for _ in range(3)] == [True, True, False]
    assert capped.token_due(0.25, device) == 0.75


def test_pacer_window_waits_for_the_wire_to_drain():
    pacer = Pacer(1000.0, 0.0)  # 1000 B/s
    for i in range(3):  # offers 0.1 s apart: a period of 0.1 s
        pacer.offer(PendingFrame.of(meas(i), None, i * 0.1))
    fps = pacer.target_fps(None)
    assert fps == pytest.approx(10.0)
    assert pacer.window(0.2, fps) == (True, pytest.approx(0.3))
    pacer.budget.sent(300, 0.2)  # 0.3 s of bytes on the wire
    may_start, next_due = pacer.window(0.2, fps)
    assert not may_start and next_due == pytest.approx(0.2 + 0.3 - 0.1)
    assert pacer.window(0.41, fps)[0]
    assert not pacer.heartbeat_due(0.5) and pacer.heartbeat_due(1.0)
    pacer.sent(1.0, frame=True)
    assert not pacer.heartbeat_due(1.5) and pacer.stats.frames_sent == 1


def test_mask_encoder_chooses_what_the_device_and_the_budget_allow():
    labels = band_labels(240, 320, phase=0.3)
    one = (meas(0),)
    enc = MaskEncoder(320, 240)
    mask = enc.encode(labels, one, None, 11520.0, 30.0)  # no handshake: boundaries only
    assert mask.encoding in (Encoding.BOUNDS16, Encoding.BOUNDS_DELTA) and (mask.width, mask.height) == (320, 240)
    top, bottom = boundaries_from_labels(labels, 1, 320, 240)
    got = decode_mask(mask.encoding, mask.data, 320, 240)
    assert np.array_equal(got.top, top) and np.array_equal(got.bottom, bottom)

    rle_device = DeviceInfo(1, 160, 120, (1 << Encoding.BOUNDS16) | (1 << Encoding.RLE), 30, 8192)
    fast = MaskEncoder(320, 240)
    assert fast.encode(labels, one, rle_device, 2_000.0, 30.0).encoding == Encoding.BOUNDS16  # a slow link
    picks = [fast.encode(labels, one, rle_device, 200_000.0, 30.0).encoding for _ in range(20)]  # it got fast
    assert picks == [Encoding.BOUNDS16] * 14 + [Encoding.RLE] * 6 and fast.encoding == Encoding.RLE  # 15 in a row
    small = fast.encode(labels, one, rle_device, 200_000.0, 30.0)
    assert (small.width, small.height) == (160, 120)
    assert np.array_equal(decode_mask(Encoding.RLE, small.data, 160, 120).labels, labels_for_display(labels, 160, 120))
    assert fast.encode(labels, one, rle_device, 2_000.0, 30.0).encoding == Encoding.BOUNDS16  # budget fell: at once

    tiny = DeviceInfo(1, 160, 120, (1 << Encoding.BOUNDS16) | (1 << Encoding.RLE), 30, max_payload=64)
    assert MaskEncoder(320, 240).encode(labels, one, tiny, 200_000.0, 30.0) is None  # nothing fits its packets

    with pytest.raises(MaskError, match="'LABELS2'"):
        MaskEncoder(320, 240, forced=Encoding.LABELS2).encode(labels, one, rle_device, 200_000.0, 30.0)
    forced = MaskEncoder(80, 60, forced=Encoding.LABELS2).encode(labels, one, None, 1000.0, 30.0)
    assert forced.encoding == Encoding.LABELS2  # forced: even past the budget, even without a handshake


def test_wire_sizes_the_encoder_plans_with():
    for data in (bytes(range(1, 200)) * 3, bytes(40), bytes(range(256)) * 8):
        mask = Mask(5, 320, 240, Encoding.RLE, data)
        wire = frame(Mask.TYPE, 0, 0, mask.pack())
        assert abs(mask_wire_size(len(data)) - len(wire)) <= 2  # an estimate for choosing, within a byte or two
    for m in (meas(0), Measurement(1.0, 0.0, 0.0, 0, True, 1, 5), meas(3, band=1, bands=2)):
        assert len(frame(m.TYPE, 0, 0, m.pack())) == MEASUREMENT_WIRE


# -- counts and options ---------------------------------------------------------------------------------

def test_link_stats_count_from_several_threads_and_average_the_latency():
    stats = LinkStats()

    def count():
        for _ in range(5000):
            stats.add("bytes_sent", 3)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30.0)
    assert stats.counters()["bytes_sent"] == 60000
    assert set(stats.counters()) >= {"frames_sent", "reconnects", "rx_errors"} and "latency_s" not in stats.counters()
    stats.latency(0.1)
    stats.latency(0.2)
    assert stats.latency_s == pytest.approx(0.11) and stats.latency_max_s == pytest.approx(0.2)


def test_a_link_from_options_is_the_link_from_keywords():
    options = LinkOptions("loop://", 921600, 80, 60, encoding="rle", max_rate=12.0)
    assert options == LinkOptions(url="loop://", baudrate=921600, display_width=80, display_height=60,
                                  encoding="rle", max_rate=12.0)
    assert options.forced_encoding == Encoding.RLE and options.nominal_bps == 92160.0
    assert DisplayLink(options).options == DisplayLink("loop://", 921600, 80, 60, encoding="rle", max_rate=12.0).options
    with pytest.raises(ConfigError, match="not both"):
        DisplayLink(options, encoding="auto")
    with pytest.raises(ConfigError, match="heartbeat_s"):
        LinkOptions("loop://", heartbeat_s=0)
    with pytest.raises(AttributeError):
        options.url = "other"  # frozen: a link's settings do not change under it
