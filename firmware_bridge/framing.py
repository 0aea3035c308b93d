"""Packets on the wire (PROTOCOL.md sections 2-3): header, CRC-32, COBS, and the receiving state machine.

``frame(...)`` builds the bytes a sender writes for one packet. ``FrameDecoder`` is the
receiving side: an explicit byte state machine that undoes COBS as bytes arrive, checks length,
CRC and version, and reports each frame as a ``Packet`` or a ``Drop``. It never raises on input.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

from firmware_bridge import PROTOCOL_VERSION, cobs
from firmware_bridge.errors import ProtocolError

HEADER = struct.Struct("<BBHIH")  # version, type, seq, time_us, length
HEADER_SIZE = HEADER.size  # 10
CRC_SIZE = 4
OVERHEAD = HEADER_SIZE + CRC_SIZE  # 14
MAX_PAYLOAD = 0xFFFF
DELIMITER = b"\x00"

CRC32_POLYNOMIAL = 0x04C11DB7  # IEEE 802.3, used reflected (0xEDB88320), init and final XOR 0xFFFFFFFF
CRC32_CHECK = 0xCBF43926  # CRC-32 of b"123456789"


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class Header:
    version: int
    type: int
    seq: int
    time_us: int
    length: int


def packet(msg_type: int, seq: int, time_us: int, payload: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    """The unframed packet: header, payload, CRC."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)!r} bytes exceeds {MAX_PAYLOAD}")
    body = HEADER.pack(version & 0xFF, msg_type & 0xFF, seq & 0xFFFF, time_us & 0xFFFFFFFF, len(payload)) + payload
    return body + struct.pack("<I", crc32(body))


def frame(msg_type: int, seq: int, time_us: int, payload: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    """One packet as written to the wire: COBS-encoded and followed by the delimiter.

    A sender puts one more delimiter before the first frame of a burst (``DELIMITER + frame(...)``).
    """
    return cobs.encode(packet(msg_type, seq, time_us, payload, version)) + DELIMITER


def parse_packet(data: bytes) -> tuple[Header, bytes]:
    """Header and payload of one unframed packet; ProtocolError naming the first failed check."""
    n = len(data)
    if n < OVERHEAD:
        raise ProtocolError(f"packet of {n!r} bytes is shorter than header + CRC ({OVERHEAD})")
    h = Header(*HEADER.unpack_from(data))
    if OVERHEAD + h.length != n:
        raise ProtocolError(f"packet of {n!r} bytes does not match its length field {h.length!r}")
    (crc,) = struct.unpack_from("<I", data, n - CRC_SIZE)
    if crc != crc32(data[: n - CRC_SIZE]):
        raise ProtocolError(f"CRC mismatch: packet says {crc:#010x}, bytes give {crc32(data[: n - CRC_SIZE]):#010x}")
    return h, bytes(data[HEADER_SIZE : n - CRC_SIZE])


class DropReason(enum.Enum):
    TRUNCATED = "truncated"
    OVERLONG = "overlong"
    CRC = "crc"
    VERSION = "version"


@dataclass(frozen=True)
class Packet:
    header: Header
    payload: bytes


@dataclass(frozen=True)
class Drop:
    reason: DropReason
    header: Header | None = None  # set for VERSION (the CRC held, so the header is trustworthy)


class _State(enum.Enum):
    HUNT = 0  # discard up to the next delimiter
    CODE = 1  # the next byte is a COBS code byte (or the delimiter)
    DATA = 2  # inside a COBS block


class FrameDecoder:
    """Byte-by-byte receiver: COBS, length, CRC and version checks (steps 1-4 of PROTOCOL.md 3.1).

    ``feed(data)`` returns the Packets and Drops completed by ``data``; ``counters`` holds the
    running totals. It starts hunting for a delimiter, as a device joining a live line must.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_frame = max_payload + OVERHEAD
        self.counters = {r.value: 0 for r in DropReason}
        self.counters["ok"] = 0
        self._buf = bytearray()
        self._state = _State.HUNT
        self._remaining = 0  # data bytes left in the current block
        self._zero_pending = False  # the current block ends in an implied zero

    def reset(self) -> None:
        self._buf.clear()
        self._state = _State.HUNT

    def feed(self, data: bytes) -> list[Packet | Drop]:
        out: list[Packet | Drop] = []
        i, n = 0, len(data)
        buf = self._buf
        while i < n:
            state = self._state
            if state is _State.HUNT:
                j = data.find(0, i)
                if j < 0:
                    return out
                i = j + 1
                self._begin()
            elif state is _State.CODE:
                b = data[i]
                i += 1
                if b == 0:
                    if buf:  # the delimiter after a complete last block
                        out.append(self._finish())
                    self._begin()
                    continue
                if self._zero_pending:
                    buf.append(0)
                self._remaining = b - 1
                self._zero_pending = b != 0xFF
                self._state = _State.DATA if self._remaining else _State.CODE
                if len(buf) > self.max_frame:
                    out.append(self._drop(DropReason.OVERLONG, hunt=True))
            else:  # DATA: copy the rest of the block, or as much of it as has arrived
                chunk = data[i : i + min(self._remaining, n - i)]
                z = chunk.find(0)
                if z >= 0:
                    chunk = chunk[:z]
                room = self.max_frame - len(buf)
                if len(chunk) > room:  # the byte after `room` does not fit: discard up to a delimiter
                    i += room + 1
                    out.append(self._drop(DropReason.OVERLONG, hunt=True))
                    continue
                buf += chunk
                i += len(chunk)
                self._remaining -= len(chunk)
                if z >= 0:  # a delimiter inside a block: the frame was cut short
                    i += 1
                    out.append(self._drop(DropReason.TRUNCATED, hunt=False))
                elif not self._remaining:
                    self._state = _State.CODE
        return out

    # -- helpers
    def _begin(self) -> None:
        self._buf.clear()
        self._state = _State.CODE
        self._zero_pending = False
        self._remaining = 0

    def _drop(self, reason: DropReason, hunt: bool, header: Header | None = None) -> Drop:
        self.counters[reason.value] += 1
        if hunt:
            self._state = _State.HUNT
            self._buf.clear()
        else:
            self._begin()
        return Drop(reason, header)

    def _finish(self) -> Packet | Drop:
        data = self._buf
        n = len(data)
        if n < OVERHEAD:
            return self._drop(DropReason.TRUNCATED, hunt=False)
        h = Header(*HEADER.unpack_from(data))
        if n < OVERHEAD + h.length:
            return self._drop(DropReason.TRUNCATED, hunt=False)
        if n > OVERHEAD + h.length:
            return self._drop(DropReason.OVERLONG, hunt=False)
        (crc,) = struct.unpack_from("<I", data, n - CRC_SIZE)
        if crc != zlib.crc32(memoryview(data)[: n - CRC_SIZE]):
            return self._drop(DropReason.CRC, hunt=False)
        if h.version != PROTOCOL_VERSION:
            return self._drop(DropReason.VERSION, hunt=False, header=h)
        self.counters["ok"] += 1
        return Packet(h, bytes(data[HEADER_SIZE : n - CRC_SIZE]))
