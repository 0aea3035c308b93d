"""The protocol's messages as frozen dataclasses, and their payload layouts (PROTOCOL.md section 4).

``encode(message) -> (type, payload)`` and ``decode(type, payload) -> message`` are exact
inverses for every valid message; ``decode`` raises ProtocolError for a malformed payload and
for an unknown type.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass

from firmware_bridge import PROTOCOL_VERSION
from firmware_bridge.errors import ProtocolError

STATUS_TEXT_MAX = 64
# The largest thickness a display shows, per unit: no fascia (nor a body) is thicker than 100 mm,
# no B-mode image taller than 10000 px. A value beyond, negative or NaN is shown as invalid.
SHOWN_MAX = {"mm": 100.0, "px": 10000.0}


class MessageType(enum.IntEnum):
    HELLO = 0x01
    DEVICE_INFO = 0x02
    REJECT = 0x03
    MEASUREMENT = 0x10
    MASK = 0x11
    STATUS = 0x12
    HEARTBEAT = 0x20


class Encoding(enum.IntEnum):
    """Mask encodings; bit ``1 << value`` in DeviceInfo.encodings says a device supports one."""

    NONE = 0
    BOUNDS16 = 1
    BOUNDS_DELTA = 2
    RLE = 3
    LABELS2 = 4


ALL_ENCODINGS = sum(1 << e for e in Encoding)
BOUNDARY_ENCODINGS = (Encoding.BOUNDS_DELTA, Encoding.BOUNDS16)
LABEL_ENCODINGS = (Encoding.RLE, Encoding.LABELS2)


class StatusCode(enum.IntEnum):
    RUNNING = 0
    NO_SIGNAL = 1
    FROZEN = 2
    LOW_QUALITY = 3
    FAULT = 4
    STARTING = 5
    STOPPED = 6


class RejectReason(enum.IntEnum):
    VERSION = 1
    TYPE = 2
    MALFORMED = 3
    ENCODING = 4


def _u32(name: str, v: int) -> int:
    if not 0 <= v <= 0xFFFFFFFF:
        raise ProtocolError(f"{name} must fit in 32 bits, got {v!r}")
    return v


def _u16(name: str, v: int) -> int:
    if not 0 <= v <= 0xFFFF:
        raise ProtocolError(f"{name} must fit in 16 bits, got {v!r}")
    return v


def _u8(name: str, v: int) -> int:
    if not 0 <= v <= 0xFF:
        raise ProtocolError(f"{name} must fit in 8 bits, got {v!r}")
    return v


def f32(x: float) -> float:
    """``x`` rounded to the nearest binary32, as it will arrive on the device."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


@dataclass(frozen=True)
class Hello:
    min_version: int = PROTOCOL_VERSION
    max_version: int = PROTOCOL_VERSION
    nonce: int = 0

    TYPE = MessageType.HELLO
    _S = struct.Struct("<BBI")

    def pack(self) -> bytes:
        if self.min_version > self.max_version:
            raise ProtocolError(f"HELLO min_version {self.min_version!r} is above max_version {self.max_version!r}")
        return self._S.pack(
            _u8("min_version", self.min_version), _u8("max_version", self.max_version), _u32("nonce", self.nonce)
        )

    @classmethod
    def unpack(cls, p: bytes) -> Hello:
        lo, hi, nonce = cls._S.unpack_from(p)
        if lo > hi:
            raise ProtocolError(f"HELLO min_version {lo!r} is above max_version {hi!r}")
        return cls(lo, hi, nonce)


@dataclass(frozen=True)
class DeviceInfo:
    version: int
    width: int
    height: int
    encodings: int  # bit set per supported Encoding
    max_rate_hz: int
    max_payload: int
    nonce: int = 0
    firmware: int = 0

    TYPE = MessageType.DEVICE_INFO
    _S = struct.Struct("<BHHHHHII")

    def supports(self, encoding: Encoding) -> bool:
        return bool(self.encodings >> int(encoding) & 1)

    def pack(self) -> bytes:
        return self._S.pack(
            _u8("version", self.version),
            _u16("width", self.width),
            _u16("height", self.height),
            _u16("encodings", self.encodings),
            _u16("max_rate_hz", self.max_rate_hz),
            _u16("max_payload", self.max_payload),
            _u32("nonce", self.nonce),
            _u32("firmware", self.firmware),
        )

    @classmethod
    def unpack(cls, p: bytes) -> DeviceInfo:
        return cls(*cls._S.unpack_from(p))


@dataclass(frozen=True)
class Reject:
    reason: int  # RejectReason
    version: int
    type: int
    seq: int
    max_version: int = PROTOCOL_VERSION

    TYPE = MessageType.REJECT
    _S = struct.Struct("<BBBHB")

    def pack(self) -> bytes:
        return self._S.pack(
            _u8("reason", self.reason),
            _u8("version", self.version),
            _u8("type", self.type),
            _u16("seq", self.seq),
            _u8("max_version", self.max_version),
        )

    @classmethod
    def unpack(cls, p: bytes) -> Reject:
        return cls(*cls._S.unpack_from(p))


@dataclass(frozen=True)
class Measurement:
    """One band's thickness in one frame as the display receives it (floats travel as binary32).

    band, bands: this band's place by depth (0 = the most superficial) among the `bands` bands
    the frame reports; one MEASUREMENT per band, all with the frame's t_capture_us. A single-band
    model (the TLF between the tissue above and below it) sends band 0 of 1. A payload of 25
    bytes (a host from before the band fields) reads as band 0 of 1.
    """

    thickness: float  # NaN when not measurable
    spread: float
    uncertainty: float  # NaN when unknown
    flags: int  # the runtime's quality bits
    unit_mm: bool  # False: image pixels (uncalibrated)
    model_id: int  # u32
    t_capture_us: int  # u32, wraps
    band: int = 0  # u8, 0 = the most superficial band of the frame
    bands: int = 1  # u8, 1-255: how many bands the frame reports

    TYPE = MessageType.MEASUREMENT
    _S = struct.Struct("<fffIIIBBB")
    MIN_SIZE = 25  # the payload before the band fields

    def pack(self) -> bytes:
        _check_band(self.band, self.bands)
        try:
            return self._S.pack(
                self.thickness,
                self.spread,
                self.uncertainty,
                _u32("flags", self.flags),
                _u32("model_id", self.model_id),
                _u32("t_capture_us", self.t_capture_us),
                1 if self.unit_mm else 0,
                self.band,
                self.bands,
            )
        except (struct.error, TypeError) as e:
            raise ProtocolError(f"cannot pack {self!r}: {e}") from e

    @classmethod
    def unpack(cls, p: bytes) -> Measurement:
        if len(p) >= cls._S.size:
            th, sp, un, flags, model, t, unit, band, bands = cls._S.unpack_from(p)
            _check_band(band, bands)
        else:
            th, sp, un, flags, model, t, unit = struct.unpack_from("<fffIIIB", p)
            band, bands = 0, 1
        if unit > 1:
            raise ProtocolError(f"MEASUREMENT unit must be 0 (px) or 1 (mm), got {unit!r}")
        return cls(th, sp, un, flags, unit == 1, model, t, band, bands)

    @property
    def shown(self) -> str | None:
        """The value as a display shows it ("1.04 mm", "12.50 px"), None when it is invalid: a
        rejecting quality flag (bits 1, 2, 4, 8), NaN, negative or beyond SHOWN_MAX."""
        unit = "mm" if self.unit_mm else "px"
        if self.flags & 0x0F or not 0.0 <= self.thickness <= SHOWN_MAX[unit]:  # NaN fails the comparison
            return None
        return f"{self.thickness:.2f} {unit}"

    def same_on_wire(self, other: Measurement) -> bool:
        """Equality after binary32 rounding, with NaN equal to NaN."""
        return self.pack() == other.pack() or (
            _eq_nan(f32(self.thickness), other.thickness)
            and _eq_nan(f32(self.spread), other.spread)
            and _eq_nan(f32(self.uncertainty), other.uncertainty)
            and (self.flags, self.unit_mm, self.model_id, self.t_capture_us, self.band, self.bands)
            == (other.flags, other.unit_mm, other.model_id, other.t_capture_us, other.band, other.bands)
        )


def _check_band(band, bands) -> None:
    if not (isinstance(bands, int) and 1 <= bands <= 0xFF and isinstance(band, int) and 0 <= band < bands):
        raise ProtocolError(f"MEASUREMENT band {band!r} of {bands!r}: bands must be 1-255 and band 0 to bands - 1")


def _eq_nan(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@dataclass(frozen=True)
class Mask:
    """A mask as sent: its encoding and the encoded bytes (masks.py makes and reads ``data``)."""

    t_capture_us: int
    width: int
    height: int
    encoding: int  # Encoding
    data: bytes = b""

    TYPE = MessageType.MASK
    _S = struct.Struct("<IHHB")

    def pack(self) -> bytes:
        return self._S.pack(
            _u32("t_capture_us", self.t_capture_us),
            _u16("width", self.width),
            _u16("height", self.height),
            _u8("encoding", self.encoding),
        ) + bytes(self.data)

    @classmethod
    def unpack(cls, p: bytes) -> Mask:
        t, w, h, enc = cls._S.unpack_from(p)
        return cls(t, w, h, enc, bytes(p[cls._S.size :]))


@dataclass(frozen=True)
class Status:
    code: int  # StatusCode; unknown codes are allowed
    detail: int = 0
    text: str = ""

    TYPE = MessageType.STATUS
    _S = struct.Struct("<BI")

    @property
    def raw_text(self) -> bytes:
        try:
            return self.text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as e:
            raise ProtocolError(f"STATUS text {self.text!r} cannot be encoded as UTF-8") from e

    def pack(self) -> bytes:
        raw = self.raw_text
        if len(raw) > STATUS_TEXT_MAX:
            raise ProtocolError(f"STATUS text is {len(raw)!r} bytes, the limit is {STATUS_TEXT_MAX}: {self.text!r}")
        return self._S.pack(_u8("code", self.code), _u32("detail", self.detail)) + raw

    @classmethod
    def unpack(cls, p: bytes) -> Status:
        code, detail = cls._S.unpack_from(p)
        raw = bytes(p[cls._S.size :])
        if len(raw) > STATUS_TEXT_MAX:
            raise ProtocolError(f"STATUS text is {len(raw)!r} bytes, the limit is {STATUS_TEXT_MAX}")
        return cls(code, detail, raw.decode("utf-8", "surrogateescape"))

    @property
    def name(self) -> str:
        try:
            return StatusCode(self.code).name
        except ValueError:
            return "UNKNOWN"


@dataclass(frozen=True)
class Heartbeat:
    uptime_ms: int = 0
    rx_ok: int = 0
    rx_bad: int = 0

    TYPE = MessageType.HEARTBEAT
    _S = struct.Struct("<III")

    def pack(self) -> bytes:
        return self._S.pack(
            _u32("uptime_ms", self.uptime_ms & 0xFFFFFFFF),
            _u32("rx_ok", self.rx_ok & 0xFFFFFFFF),
            _u32("rx_bad", self.rx_bad & 0xFFFFFFFF),
        )

    @classmethod
    def unpack(cls, p: bytes) -> Heartbeat:
        return cls(*cls._S.unpack_from(p))


Message = Hello | DeviceInfo | Reject | Measurement | Mask | Status | Heartbeat
CLASSES: dict[int, type[Message]] = {
    cls.TYPE: cls for cls in (Hello, DeviceInfo, Reject, Measurement, Mask, Status, Heartbeat)
}
HOST_TO_DEVICE = frozenset(
    {MessageType.HELLO, MessageType.MEASUREMENT, MessageType.MASK, MessageType.STATUS, MessageType.HEARTBEAT}
)
DEVICE_TO_HOST = frozenset({MessageType.DEVICE_INFO, MessageType.REJECT, MessageType.STATUS, MessageType.HEARTBEAT})


def encode(message) -> tuple[int, bytes]:
    """``(type, payload)`` of a message object."""
    try:
        return int(message.TYPE), message.pack()
    except AttributeError as e:
        raise ProtocolError(f"not a protocol message: {message!r}") from e


def decode(msg_type: int, payload: bytes):
    """The message object for a type and payload; ProtocolError if unknown or malformed."""
    try:
        cls = CLASSES[msg_type]
    except KeyError as e:
        raise ProtocolError(f"unknown message type {msg_type!r}") from e
    need = getattr(cls, "MIN_SIZE", cls._S.size)
    if len(payload) < need:
        raise ProtocolError(f"{cls.TYPE.name} payload is {len(payload)!r} bytes, needs at least {need}")
    return cls.unpack(payload)
