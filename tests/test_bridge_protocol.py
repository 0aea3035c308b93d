"""Wire format of the display link: CRC, COBS, messages, masks, and the reference decoder's
robustness (round trips, noise, truncation, rejects)."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import cobs
from firmware_bridge.device import DisplayDevice, Dropped, Ignored, Received
from firmware_bridge.errors import MaskError, ProtocolError
from firmware_bridge.framing import (
    CRC32_CHECK, DELIMITER, OVERHEAD, FrameDecoder, Packet, crc32, frame, packet, parse_packet,
)
from firmware_bridge.masks import (
    NO_BAND, boundaries_from_labels, decode_mask, encode_bounds16, encode_bounds_delta, encode_labels2, encode_mask,
    encode_rle, labels_for_display,
)
from firmware_bridge.messages import (
    DeviceInfo, Encoding, Heartbeat, Hello, Mask, Measurement, MessageType, Reject, RejectReason, Status, decode,
    encode,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)

measurements = st.builds(Measurement, f32, f32, f32, u32, st.booleans(), u32, u32)
statuses = st.builds(Status, u8, u32, st.text(max_size=20))
messages = st.one_of(
    measurements,
    statuses,
    st.builds(Hello, st.just(1), st.integers(1, 255), u32),
    st.builds(DeviceInfo, u8, u16, u16, u16, u16, u16, u32, u32),
    st.builds(Reject, u8, u8, u8, u16, u8),
    st.builds(Heartbeat, u32, u32, u32),
    st.builds(Mask, u32, u16, u16, u8, st.binary(max_size=300)),
)


def wire(message, seq: int = 0) -> bytes:
    t, p = encode(message)
    return DELIMITER + frame(t, seq, 1234, p)


def same(a, b) -> bool:
    if isinstance(a, Measurement):
        return a.same_on_wire(b)
    return a == b


# -- CRC and COBS -------------------------------------------------------------------------------

def test_crc32_is_the_ieee_crc_with_its_check_value():
    assert crc32(b"123456789") == CRC32_CHECK == 0xCBF43926


@pytest.mark.parametrize("data, encoded", [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
])
def test_cobs_matches_published_examples(data, encoded):
    assert cobs.encode(data) == encoded
    assert cobs.decode(encoded) == data


@FAST
@given(st.binary(max_size=1200))
def test_cobs_round_trips_and_never_emits_zero(data):
    enc = cobs.encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert cobs.decode(enc) == data


def test_cobs_decode_rejects_bad_input():
    with pytest.raises(ProtocolError, match="invalid COBS frame of 2 bytes"):
        cobs.decode(b"\x05\x01")  # a block that runs past the frame
    with pytest.raises(ProtocolError, match="invalid COBS frame of 3 bytes"):
        cobs.decode(b"\x02\x01\x00")  # a zero inside the frame


# -- messages -----------------------------------------------------------------------------------

@FAST
@given(messages, u16)
def test_every_message_round_trips_through_the_wire(message, seq):
    data = wire(message, seq)
    assert data.count(0) == 2  # one delimiter before, one after: none inside
    (pkt,) = FrameDecoder().feed(data)
    assert isinstance(pkt, Packet)
    assert pkt.header.seq == seq and pkt.header.type == message.TYPE
    assert same(message, decode(pkt.header.type, pkt.payload))
    header, payload = parse_packet(cobs.decode(data[1:-1]))
    assert payload == pkt.payload and header == pkt.header


@pytest.mark.parametrize("bad, match", [
    (Measurement(1.0, 0.0, 0.0, -1, True, 0, 0), "flags"),
    (Measurement(1.0, 0.0, 0.0, 0, True, 1 << 32, 0), "model_id"),
    (Status(1, 0, "x" * 65), "limit is 64"),
    (Hello(2, 1, 0), "above max_version"),
    (DeviceInfo(1, 70000, 240, 0, 0, 0), "width"),
])
def test_packing_a_bad_message_names_the_value(bad, match):
    with pytest.raises(ProtocolError, match=match):
        bad.pack()


def test_decode_rejects_unknown_type_and_short_payload():
    with pytest.raises(ProtocolError, match="unknown message type 85"):
        decode(0x55, b"")
    with pytest.raises(ProtocolError, match="MEASUREMENT payload is 3 bytes"):
        decode(MessageType.MEASUREMENT, b"abc")


def test_measurement_layout_is_little_endian_binary32():
    m = Measurement(2.5, 0.25, float("nan"), 0x11, False, 0xA1B2C3D4, 99, band=1, bands=3)
    p = m.pack()
    assert len(p) == 27
    assert struct.unpack_from("<f", p, 0)[0] == 2.5
    assert p[12:16] == b"\x11\x00\x00\x00" and p[16:20] == b"\xd4\xc3\xb2\xa1" and p[24] == 0
    assert p[25:27] == b"\x01\x03"  # band 1 (the second from the skin) of 3
    back = Measurement.unpack(p)
    assert math.isnan(back.uncertainty) and not back.unit_mm and back.model_id == 0xA1B2C3D4
    assert (back.band, back.bands) == (1, 3)


def test_measurement_band_fields_are_checked_and_an_older_payload_is_band_0_of_1():
    m = Measurement(1.0, 0.0, 0.0, 0, True, 7, 8)
    assert (m.band, m.bands) == (0, 1)
    old = decode(MessageType.MEASUREMENT, m.pack()[:25])  # a host from before the band fields
    assert (old.band, old.bands, old.thickness, old.model_id) == (0, 1, 1.0, 7)
    for band, bands in ((2, 2), (0, 0), (-1, 1), (0, 256)):
        with pytest.raises(ProtocolError, match="band"):
            Measurement(1.0, 0.0, 0.0, 0, True, 7, 8, band, bands).pack()
    with pytest.raises(ProtocolError, match="band 2 of 2"):
        decode(MessageType.MEASUREMENT, m.pack()[:25] + b"\x02\x02")


# -- masks --------------------------------------------------------------------------------------

def test_boundaries_from_labels_maps_rows_and_columns_to_the_display():
    labels = np.zeros((10, 4), np.uint8)
    labels[2:5, 0] = 1  # rows 2..4
    labels[7:8, 1] = 1  # a one-row band
    labels[3:6, 3] = 1
    labels[8, 3] = 1  # fragmented: the extent covers it
    top, bottom = boundaries_from_labels(labels, tlf_class=1)
    assert top.dtype == np.uint16 and bottom.dtype == np.uint16
    assert top.tolist() == [2, 7, NO_BAND, 3]
    assert bottom.tolist() == [5, 8, NO_BAND, 9]
    # to a display twice as wide and half as tall: edges scale outwards, a thin band survives
    top2, bottom2 = boundaries_from_labels(labels, 1, width=8, height=5)
    assert top2.tolist() == [1, 1, 3, 3, NO_BAND, NO_BAND, 1, 1]
    assert bottom2.tolist() == [3, 3, 4, 4, NO_BAND, NO_BAND, 5, 5]


def test_boundaries_use_the_given_class():
    labels = np.full((6, 3), 2, np.uint8)
    labels[1:3] = 7
    top, bottom = boundaries_from_labels(labels, tlf_class=7, width=3)
    assert top.tolist() == [1, 1, 1] and bottom.tolist() == [3, 3, 3]


@pytest.mark.parametrize("bad", [np.zeros((3,), np.uint8), np.zeros((0, 4), np.uint8), np.zeros((4, 4), np.float32)])
def test_boundaries_reject_arrays_that_are_not_label_maps(bad):
    with pytest.raises(MaskError, match="labels must"):
        boundaries_from_labels(bad)


@st.composite
def boundary_arrays(draw):
    width = draw(st.integers(1, 80))
    height = draw(st.integers(1, 600))
    top, bottom = [], []
    for _ in range(width):
        if draw(st.integers(0, 4)) == 0:
            top.append(NO_BAND)
            bottom.append(NO_BAND)
        else:
            t = draw(st.integers(0, height - 1))
            top.append(t)
            bottom.append(draw(st.integers(t + 1, height)))
    return np.array(top, np.uint16), np.array(bottom, np.uint16), height


@FAST
@given(boundary_arrays())
def test_boundary_encodings_round_trip(arrays):
    top, bottom, height = arrays
    width = len(top)
    for enc in (Encoding.BOUNDS16, Encoding.BOUNDS_DELTA):
        data = encode_mask(enc, top=top, bottom=bottom, height=height)
        got = decode_mask(enc, data, width, height)
        assert got.top.tolist() == top.tolist() and got.bottom.tolist() == bottom.tolist()


@FAST
@given(st.integers(1, 40), st.integers(1, 40), st.data())
def test_label_encodings_round_trip(w, h, data):
    labels = np.array(data.draw(st.lists(st.integers(0, 3), min_size=w * h, max_size=w * h)), np.uint8).reshape(h, w)
    for enc in (Encoding.RLE, Encoding.LABELS2):
        got = decode_mask(enc, encode_mask(enc, labels=labels, height=h), w, h)
        assert np.array_equal(got.labels, labels)


def test_rle_handles_runs_longer_than_the_long_form():
    labels = np.zeros((300, 300), np.uint8)  # 90 000 pixels: more than 64 + 65535 in one run
    data = encode_rle(labels)
    assert len(data) == 6
    assert np.array_equal(decode_mask(Encoding.RLE, data, 300, 300).labels, labels)


def test_a_smooth_320_column_band_fits_the_115200_baud_budget():
    from firmware_bridge.synthetic import band_labels

    top, bottom = boundaries_from_labels(band_labels(256, 256), 1, 320, 240)
    assert len(encode_bounds_delta(top, bottom, 240)) < 400 < len(encode_bounds16(top, bottom, 240))


def test_labels_for_display_resamples_and_clips():
    labels = np.array([[0, 1], [2, 9]], np.uint8)
    small = labels_for_display(labels, 4, 4)
    assert small.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert len(encode_labels2(small)) == 4


@pytest.mark.parametrize("enc, data, match", [
    (Encoding.BOUNDS16, b"\x00" * 7, "needs 8"),
    (Encoding.BOUNDS16, struct.pack("<HHHH", 3, 3, 3, 3), "not a band"),
        (Encoding.BOUNDS_DELTA, bytes((1, 1, 0, 2, 0)), "ends after 1 of 2"),
    (Encoding.BOUNDS_DELTA, b"\x03\x00", "reserved"),
    (Encoding.BOUNDS_DELTA, b"\x02\x02", "before any band"),
    (Encoding.BOUNDS_DELTA, b"\x00\x02\x00", "after the last column"),
    (Encoding.BOUNDS_DELTA, b"\x00\x00", "run of 0"),
    (Encoding.BOUNDS_DELTA, b"\x01\x05\x00\x09\x00\x00\x01", "outside 10 rows"),
    (Encoding.RLE, b"\x05", "cover 5 of 20"),
    (Encoding.RLE, b"\x40\x00", "cut short"),
    (Encoding.LABELS2, b"\x00", "needs 5"),
    (Encoding.NONE, b"\x00", "needs 0"),
    (7, b"", "unknown mask encoding 7"),
])
def test_malformed_mask_data_is_named(enc, data, match):
    with pytest.raises(MaskError, match=match):
        decode_mask(enc, data, 2, 10)


# -- the reference decoder ----------------------------------------------------------------------

@FAST
@given(st.binary(max_size=2000))
def test_noise_never_crashes_the_decoder(noise):
    dev = DisplayDevice(32, 24, max_payload=256)
    events = dev.feed(noise)
    assert all(isinstance(e, (Received, Ignored, Dropped)) for e in events)
    c = dev.state.counters
    assert all(v >= 0 for v in c.values())


@FAST
@given(st.binary(max_size=600), measurements, st.integers(1, 64))
def test_first_valid_frame_after_noise_is_decoded(noise, m, chunk):
    dev = DisplayDevice(32, 24, max_payload=256)
    data = noise + wire(m, seq=7)
    events = []
    for i in range(0, len(data), chunk):  # arriving in pieces changes nothing
        events += dev.feed(data[i:i + chunk])
    last = events[-1]
    assert isinstance(last, Received) and last.header.seq == 7
    assert m.same_on_wire(last.message)
    assert dev.state.measurement is last.message


@FAST
@given(measurements, st.data())
def test_truncated_frames_are_dropped_and_counted(m, data):
    whole = wire(m, seq=1)
    cut = data.draw(st.integers(2, len(whole) - 2))  # keep the leading delimiter, lose the tail
    dev = DisplayDevice(32, 24)
    events = dev.feed(whole[:cut] + wire(m, seq=2))
    assert [type(e) for e in events] == [Dropped, Received]
    assert events[0].reason == "truncated" and dev.state.counters["truncated"] == 1
    assert events[1].header.seq == 2 and dev.state.frames_received == 1


def test_crc_error_and_overlong_frames_are_counted():
    m = Measurement(1.0, 0.0, 0.0, 0, True, 1, 2)
    body = bytearray(packet(MessageType.MEASUREMENT, 0, 0, m.pack()))
    body[11] ^= 0x40
    dev = DisplayDevice(32, 24, max_payload=64)
    dev.feed(DELIMITER + cobs.encode(bytes(body)) + DELIMITER)
    dev.feed(DELIMITER + frame(MessageType.STATUS, 1, 0, b"\x00" * 70) + wire(m, 2))
    c = dev.state.counters
    assert (c["crc"], c["overlong"], c["ok"]) == (1, 1, 1)


def test_a_device_rejects_unknown_version_and_type_and_answers_hello():
    clock = iter(range(100)).__next__  # each rejection a second apart
    dev = DisplayDevice(64, 48, clock=lambda: float(clock()))
    m = Measurement(1.0, 0.0, 0.0, 0, True, 1, 2).pack()
    events = dev.feed(DELIMITER + frame(MessageType.MEASUREMENT, 5, 0, m, version=2) + frame(0x55, 6, 0, b""))
    assert [(e.reason, e.reject) for e in events] == [("version", RejectReason.VERSION), ("type", RejectReason.TYPE)]
    assert dev.state.measurement is None
    replies = FrameDecoder().feed(dev.take_replies())
    rejects = [decode(p.header.type, p.payload) for p in replies]
    assert rejects == [Reject(RejectReason.VERSION, 2, 0x10, 5, 1), Reject(RejectReason.TYPE, 1, 0x55, 6, 1)]
    dev.feed(wire(Hello(1, 3, nonce=77)))
    (reply,) = FrameDecoder().feed(dev.take_replies())
    info = decode(reply.header.type, reply.payload)
    assert isinstance(info, DeviceInfo) and (info.width, info.height, info.nonce, info.version) == (64, 48, 77, 1)


def test_rejects_are_rate_limited():
    now = [0.0]
    dev = DisplayDevice(clock=lambda: now[0])
    for _ in range(5):
        dev.feed(DELIMITER + frame(0x55, 0, 0, b""))
    assert len(FrameDecoder().feed(dev.take_replies())) == 1
    now[0] = 1.5
    dev.feed(DELIMITER + frame(0x55, 0, 0, b""))
    assert len(FrameDecoder().feed(dev.take_replies())) == 1


def test_a_malformed_mask_leaves_the_previous_one():
    from firmware_bridge.synthetic import band_labels

    top, bottom = boundaries_from_labels(band_labels(48, 64), 1, 32, 24)
    good = Mask(1, 32, 24, Encoding.BOUNDS_DELTA, encode_bounds_delta(top, bottom, 24))
    dev = DisplayDevice(32, 24, encodings=(1 << Encoding.NONE) | (1 << Encoding.BOUNDS_DELTA))
    dev.feed(wire(good))
    before = dev.state.mask
    ev = dev.feed(wire(Mask(2, 32, 24, Encoding.BOUNDS_DELTA, good.data[:-1]), 1))
    ev += dev.feed(wire(Mask(3, 32, 24, Encoding.RLE, encode_rle(np.zeros((24, 32), np.uint8))), 2))
    ev += dev.feed(wire(Mask(4, 33, 24, Encoding.BOUNDS_DELTA, good.data), 3))
    assert [(e.reason, e.reject) for e in ev] == [("malformed", 3), ("malformed", 4), ("malformed", 3)]
    assert dev.state.mask is before and dev.state.mask_t_capture_us == 1


def test_lost_packets_are_counted_from_sequence_numbers():
    m = Measurement(1.0, 0.0, 0.0, 0, True, 1, 2)
    dev = DisplayDevice()
    dev.feed(wire(m, 10) + wire(m, 13) + wire(m, 14) + wire(Hello(), 500) + wire(m, 501) + wire(m, 0xFFFF) + wire(m, 0))
    assert dev.state.counters["lost"] == 2  # 11 and 12; the jump to 0xFFFF is a restart


def test_describe_matches_the_documented_packet_overhead():
    m = Measurement(1.0, 0.0, 0.0, 0, True, 1, 2)
    assert len(frame(MessageType.MEASUREMENT, 0, 0, m.pack())) == OVERHEAD + 27 + 2 == 43
    assert zlib.crc32(b"") == 0
