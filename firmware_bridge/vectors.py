"""Builds the test vectors in ``vectors/``: byte streams a device receives, each with the decoding
both reference decoders must print (``firmware_bridge.device.decode_stream``).

Regenerate after a deliberate protocol change with ``python -m firmware_bridge.vectors``; the
test suite checks that the committed files equal what this module builds.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

from firmware_bridge import cobs
from firmware_bridge.device import DEFAULT_MAX_PAYLOAD, decode_stream
from firmware_bridge.framing import DELIMITER, frame, packet
from firmware_bridge.masks import boundaries_from_labels, encode_mask, labels_for_display
from firmware_bridge.messages import (
    DeviceInfo,
    Encoding,
    Heartbeat,
    Hello,
    Mask,
    Measurement,
    Reject,
    Status,
    encode,
)
from firmware_bridge.messages import (
    MessageType as T,
)
from firmware_bridge.synthetic import band_labels

VECTOR_DIR = Path(__file__).with_name("vectors")
NAN = float("nan")


class _Stream:
    """Accumulates frames with a running sequence number."""

    def __init__(self):
        self.data = bytearray(DELIMITER)
        self.seq = 0
        self.t = 1_000_000

    def msg(self, message, seq: int | None = None, version: int = 1) -> bytes:
        mtype, payload = encode(message)
        return self.raw(mtype, payload, seq, version)

    def raw(self, mtype: int, payload: bytes, seq: int | None = None, version: int = 1) -> bytes:
        if seq is not None:
            self.seq = seq
        f = frame(mtype, self.seq, self.t, payload, version)
        self.seq = (self.seq + 1) & 0xFFFF
        self.t += 16_667
        self.data += f
        return f

    def junk(self, b: bytes) -> None:
        self.data += b


def _mask(w, h, labels, enc, t):
    if enc in (Encoding.RLE, Encoding.LABELS2):
        data = encode_mask(enc, labels=labels_for_display(labels, w, h), height=h)
    elif enc == Encoding.NONE:
        data = b""
    else:
        top, bottom = boundaries_from_labels(labels, 1, w, h)
        data = encode_mask(enc, top=top, bottom=bottom, height=h)
    return Mask(t, w, h, enc, data)


def _frames(w: int, h: int) -> _Stream:
    s = _Stream()
    s.msg(Hello(1, 1, 0xC0FFEE01))
    for i, enc in enumerate((Encoding.BOUNDS_DELTA, Encoding.BOUNDS16, Encoding.BOUNDS_DELTA)):
        cap = 5_000_000 + 50_000 * i
        s.msg(Measurement(2.75 + 0.125 * i, 0.25, 0.0625, 0, True, 0x5EED0001, cap))
        s.msg(_mask(w, h, band_labels(96, 128, phase=0.1 * i, gap=(0.1, 0.2) if i == 2 else None), enc, cap))
    # a frame of three bands (a two-class model of several aponeuroses): one MEASUREMENT per band, then its mask
    for band, value in enumerate((1.5, NAN, 2.25)):
        s.msg(Measurement(value, 0.125, NAN, 16 if band != 1 else 16 | 4, False, 0x5EED0002, 5_150_000, band, 3))
    s.msg(_mask(w, h, band_labels(96, 128, phase=0.4), Encoding.LABELS2, 5_150_000))
    s.msg(Measurement(NAN, NAN, NAN, 1 | 16, False, 0x5EED0001, 5_200_000))
    s.msg(Measurement(float("inf"), -0.0, 1e-7, 0xFFFFFFFF, False, 0xFFFFFFFF, 0xFFFFFFFF))
    s.msg(Status(1, 0, "no signal"))
    s.msg(Status(3, 8, "low quality: ünïcødé"))
    s.msg(Status(200, 0xDEADBEEF, ""))
    s.msg(Heartbeat(123456, 42, 1))
    s.msg(_mask(w, h, band_labels(96, 128), Encoding.NONE, 5_300_000))
    return s


def _label_maps(w: int, h: int) -> _Stream:
    s = _Stream()
    for i, enc in enumerate((Encoding.RLE, Encoding.LABELS2, Encoding.RLE)):
        labels = band_labels(h * 2, w * 2, phase=0.2 * i)
        if i == 2:
            labels[:, ::7] = 3  # stripes: many short runs
        s.msg(_mask(w, h, labels, enc, 7_000_000 + i))
    # a single run longer than 64 + 65535 pixels is split; a map of one class is one or two runs
    s.msg(Mask(7_100_000, w, h, Encoding.RLE, bytes((0x80 | 0,)) + struct.pack("<H", w * h - 64)))
    return s


def _noise(w: int, h: int) -> _Stream:
    rng = random.Random(20240611)
    s = _Stream()
    good = Measurement(3.5, 0.5, 0.25, 0, True, 7, 1)
    s.junk(bytes(rng.randrange(256) for _ in range(300)))  # garbage with zeros in it
    s.msg(good)
    s.junk(bytes(rng.randrange(1, 256) for _ in range(500)))  # garbage without a single zero
    s.data += DELIMITER
    s.msg(good)
    # truncated frames: cut inside a COBS block, cut inside the header, cut after the header
    whole = frame(T.MEASUREMENT, 99, 0, good.pack())
    for cut in (3, 9, 20, len(whole) - 2):
        s.junk(whole[:cut])
        s.data += DELIMITER
    s.msg(good)
    # a CRC error: one bit flipped in the payload (the frame stays valid COBS)
    body = bytearray(packet(T.MEASUREMENT, s.seq, s.t, good.pack()))
    body[12] ^= 0x04
    s.junk(cobs.encode(bytes(body)) + DELIMITER)
    s.seq += 1
    s.msg(good)
    # lost packets: seq jumps forward by 5, then far (a restart), wraps, then jumps back (a restart)
    s.msg(good, seq=s.seq + 5)
    s.msg(good, seq=0xFFFE)
    s.msg(good)
    s.msg(good)
    s.msg(good, seq=60000)
    # HELLO restarts the count without a loss
    s.msg(Hello(nonce=2), seq=500)
    s.msg(good)
    s.junk(b"\x00\x00\x00\x01\x00\x01\x01\x00")  # idle delimiters, an empty packet, a one-byte packet
    s.msg(good)
    return s


def _rejects(w: int, h: int) -> _Stream:
    s = _Stream()
    good = Measurement(1.0, 0.0, 0.0, 0, True, 1, 2).pack()
    s.raw(T.MEASUREMENT, good, version=2)  # a future version
    s.raw(T.MEASUREMENT, good, version=0)
    s.raw(0x55, b"\x01\x02")  # unknown type
    s.raw(0x00, b"")
    s.raw(T.MEASUREMENT, good[:24])  # short payload
    s.raw(T.MEASUREMENT, good[:24] + b"\x02")  # unit neither px nor mm
    s.raw(T.MEASUREMENT, good + b"future fields")  # longer: accepted
    s.raw(T.MEASUREMENT, good[:25])  # a host from before the band fields: band 0 of 1
    s.raw(T.MEASUREMENT, good[:26])  # the band fields incomplete: read as a 25-byte payload
    s.raw(T.MEASUREMENT, good[:25] + b"\x02\x02")  # band 2 of 2
    s.raw(T.MEASUREMENT, good[:25] + b"\x00\x00")  # no bands
    s.raw(T.MEASUREMENT, good[:25] + b"\x01\x02")  # band 1 of 2: accepted
    s.raw(T.HELLO, b"\x02\x01\x00\x00\x00\x00")  # min > max
    s.raw(T.HELLO, b"\x02\x03\x00\x00\x00\x00")  # versions 2..3 only: accepted, answered with REJECT
    s.raw(T.HEARTBEAT, b"\x00" * 11)
    s.raw(T.STATUS, b"\x01\x00\x00\x00")
    s.raw(T.STATUS, b"\x01\x00\x00\x00\x00" + b"x" * 65)
    s.raw(T.STATUS, b"\x01\x00\x00\x00\x00" + b"x" * 64)
    s.msg(DeviceInfo(1, w, h, 31, 60, 4096, 1, 2))  # device-to-host types are ignored
    s.msg(Reject(1, 2, 0x10, 0))
    top, bottom = boundaries_from_labels(band_labels(h, w), 1, w, h)
    delta = encode_mask(Encoding.BOUNDS_DELTA, top=top, bottom=bottom, height=h)
    b16 = encode_mask(Encoding.BOUNDS16, top=top, bottom=bottom, height=h)
    bad = [
        Mask(1, w + 1, h, Encoding.BOUNDS_DELTA, delta),  # wrong width
        Mask(1, w, h - 1, Encoding.BOUNDS_DELTA, delta),  # wrong height
        Mask(1, w, h, 9, b""),  # unknown encoding
        Mask(1, w, h, Encoding.NONE, b"\x00"),  # NONE with data
        Mask(1, w, h, Encoding.BOUNDS_DELTA, delta[:-1]),  # ends early
        Mask(1, w, h, Encoding.BOUNDS_DELTA, delta + b"\x88"),  # bytes after the last column
        Mask(1, w, h, Encoding.BOUNDS_DELTA, b"\x03" + delta),  # reserved token
        Mask(1, w, h, Encoding.BOUNDS_DELTA, b"\x02\x01" + delta[:-1]),  # repeat before any band
        Mask(1, w, h, Encoding.BOUNDS_DELTA, b"\x00\x00" + delta),  # empty run
        Mask(1, w, h, Encoding.BOUNDS_DELTA, b"\x00" + bytes((w + 1,))),  # run past the width
        Mask(1, w, h, Encoding.BOUNDS_DELTA, b"\x11" * w),  # top goes negative
        Mask(
            1, w, h, Encoding.BOUNDS_DELTA, struct.pack("<BHH", 1, h - 2, 3) + b"\x00" + bytes((w - 1,))
        ),  # past the bottom
        Mask(
            1, w, h, Encoding.BOUNDS_DELTA, struct.pack("<BHH", 1, 2, 0) + b"\x00" + bytes((w - 1,))
        ),  # zero thickness
        Mask(1, w, h, Encoding.BOUNDS16, b16[:-2]),
        Mask(
            1, w, h, Encoding.BOUNDS16, b"\x05\x00" + b16[2 : 2 * w] + b"\x05\x00" + b16[2 * w + 2 :]
        ),  # top == bottom
        Mask(1, w, h, Encoding.BOUNDS16, b"\xff\xff" + b16[2 : 2 * w] + b"\x05\x00" + b16[2 * w + 2 :]),  # half absent
        Mask(1, w, h, Encoding.RLE, b"\x7f"),  # too few pixels
        Mask(1, w, h, Encoding.RLE, b"\x40" + struct.pack("<H", w * h)),  # too many
        Mask(1, w, h, Encoding.RLE, b"\x40\x01"),  # long run cut short
        Mask(1, w, h, Encoding.LABELS2, bytes((w * h + 3) // 4 - 1)),
    ]
    for i, m in enumerate(bad):
        s.msg(m)
        if i == 3:
            s.msg(Mask(1, w, h, Encoding.BOUNDS_DELTA, delta))  # a good one in between stays on screen
    s.msg(Measurement(1.0, 0.0, 0.0, 0, True, 1, 2))
    return s


def _big(w: int, h: int) -> _Stream:
    s = _Stream()
    labels = band_labels(h, w, phase=0.3)
    s.msg(Hello(nonce=3))
    s.msg(Measurement(4.0, 0.5, 0.1, 0, True, 9, 10))
    for enc in (Encoding.BOUNDS_DELTA, Encoding.BOUNDS16, Encoding.RLE):
        s.msg(_mask(w, h, labels, enc, 10))
    s.msg(_mask(w, h, labels, Encoding.LABELS2, 11))  # 19 209-byte payload: longer than the buffer
    s.msg(Measurement(4.1, 0.5, 0.1, 0, True, 9, 12))
    # a frame longer than its length field says
    body = packet(T.HEARTBEAT, s.seq, 0, Heartbeat().pack())
    s.junk(cobs.encode(body[:-4] + b"\x01" + body[-4:]) + DELIMITER)
    # long payloads crossing COBS block boundaries (HEARTBEAT ignores trailing bytes)
    for n in (242, 243, 244, 254, 496, 497, 498, 600):
        s.raw(T.HEARTBEAT, Heartbeat(n, 1, 2).pack() + bytes((i % 255) + 1 for i in range(n - 12)))
        s.raw(T.HEARTBEAT, Heartbeat(n, 0, 0).pack() + bytes(n - 12))
    s.msg(Measurement(4.2, 0.5, 0.1, 0, True, 9, 13))
    return s


VECTORS = {
    # name: (builder, display width, display height)
    "frames_64x48": (_frames, 64, 48),
    "label_maps_40x30": (_label_maps, 40, 30),
    "noise_resync_64x48": (_noise, 64, 48),
    "rejects_32x24": (_rejects, 32, 24),
    "big_320x240": (_big, 320, 240),
}


def build_vectors() -> dict[str, tuple[bytes, str]]:
    """name -> (stream bytes, expected decoding)."""
    out = {}
    for name, (build, w, h) in VECTORS.items():
        data = bytes(build(w, h).data)
        out[name] = (data, decode_stream(data, w, h, DEFAULT_MAX_PAYLOAD))
    return out


def display_size(expected: str) -> tuple[int, int, int]:
    """(width, height, max_payload) from an expected file's first line."""
    first = expected.split("\n", 1)[0].split()
    w, h = first[1].split("x")
    return int(w), int(h), int(first[2].split("=")[1])


def write_vectors(directory: Path = VECTOR_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (data, expected) in build_vectors().items():
        (directory / f"{name}.bin").write_bytes(data)
        (directory / f"{name}.expected").write_text(expected)
        paths += [directory / f"{name}.bin", directory / f"{name}.expected"]
    return paths


if __name__ == "__main__":
    for p in write_vectors(Path(sys.argv[1]) if len(sys.argv) > 1 else VECTOR_DIR):
        print(p)
