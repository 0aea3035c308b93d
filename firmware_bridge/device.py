"""The Python reference device: decodes the host's byte stream and keeps what the display shows.

``DisplayDevice.feed(bytes)`` runs the framing state machine, applies every valid host message
to ``state`` and returns one event per frame (``Received``, ``Ignored`` or ``Dropped``). It
also queues the replies a device sends (DEVICE_INFO for HELLO, rate-limited REJECTs) in
``take_replies()``. ``describe`` turns events into the canonical text that the C decoder's
test driver prints too; the test vectors hold that text.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from firmware_bridge import PROTOCOL_VERSION
from firmware_bridge.errors import MaskError, ProtocolError
from firmware_bridge.framing import DELIMITER, Drop, FrameDecoder, Header, Packet, frame
from firmware_bridge.masks import DecodedMask, decode_mask
from firmware_bridge.messages import (
    ALL_ENCODINGS,
    DeviceInfo,
    Encoding,
    Heartbeat,
    Hello,
    Mask,
    Measurement,
    MessageType,
    Reject,
    RejectReason,
    Status,
    decode,
)

COUNTER_NAMES = ("ok", "truncated", "overlong", "crc", "version", "type", "malformed", "ignored", "lost")
DEFAULT_MAX_PAYLOAD = 4096


@dataclass(frozen=True)
class Received:
    header: Header
    message: object
    mask: DecodedMask | None = None  # the decoded contents of a MASK


@dataclass(frozen=True)
class Ignored:
    header: Header
    message: object = None  # the decoded DEVICE_INFO or REJECT, None if its payload is malformed


@dataclass(frozen=True)
class Dropped:
    reason: str  # one of COUNTER_NAMES[1:7]
    header: Header | None = None
    reject: int = 0  # RejectReason a device answers with, 0 for none


@dataclass
class DisplayState:
    """Everything the display draws, plus the link counters."""

    width: int
    height: int
    measurement: Measurement | None = None  # the last one received
    bands: dict = field(default_factory=dict)  # band index -> Measurement, of the frame of the last one
    mask: DecodedMask | None = None
    mask_t_capture_us: int = 0
    status: Status | None = None
    heartbeat: Heartbeat | None = None
    frames_received: int = 0  # MEASUREMENT messages applied
    masks_received: int = 0
    last_rx: float | None = None  # device clock at the last valid packet
    counters: dict = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))

    @property
    def top(self):
        return None if self.mask is None else self.mask.top

    @property
    def bottom(self):
        return None if self.mask is None else self.mask.bottom

    @property
    def labels(self):
        return None if self.mask is None else self.mask.labels

    def copy(self) -> DisplayState:
        c = DisplayState(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        c.counters = dict(self.counters)
        return c


class DisplayDevice:
    """Reference device logic with no I/O: bytes in, state and replies out."""

    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        *,
        encodings: int = ALL_ENCODINGS,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_rate_hz: int = 120,
        firmware: int = 0x00010000,
        respond: bool = True,
        strict_size: bool = True,
        reject_interval_s: float = 1.0,
        clock=time.monotonic,
    ):
        self.state = DisplayState(width, height)
        self.encodings = encodings
        self.max_payload = max_payload
        self.max_rate_hz = max_rate_hz
        self.firmware = firmware
        self.respond = respond
        self.strict_size = strict_size  # False (monitoring a line): accept masks of any size
        self.reject_interval_s = reject_interval_s
        self.clock = clock
        self._frames = FrameDecoder(max_payload)
        self._expected_seq: int | None = None
        self._replies = bytearray()
        self._tx_seq = 0
        self._last_reject = -math.inf
        self._t0 = clock()

    @property
    def info(self) -> DeviceInfo:
        s = self.state
        return DeviceInfo(
            PROTOCOL_VERSION, s.width, s.height, self.encodings, self.max_rate_hz, self.max_payload, 0, self.firmware
        )

    def feed(self, data: bytes) -> list:
        events = []
        for item in self._frames.feed(data):
            ev = self._on_frame(item)
            if isinstance(ev, Dropped):
                self.state.counters[ev.reason] += 1
                if ev.reject:
                    self._reject(ev)
            events.append(ev)
        return events

    def take_replies(self) -> bytes:
        out = bytes(self._replies)
        self._replies.clear()
        return out

    def heartbeat(self) -> bytes:
        """A HEARTBEAT carrying this device's receive counters, with a leading delimiter."""
        c = self.state.counters
        bad = sum(c[k] for k in ("truncated", "overlong", "crc", "version", "type", "malformed"))
        hb = Heartbeat(int((self.clock() - self._t0) * 1000) & 0xFFFFFFFF, c["ok"], bad)
        return DELIMITER + self._frame(hb)

    # -- internals
    def _frame(self, message) -> bytes:
        seq = self._tx_seq
        self._tx_seq = (seq + 1) & 0xFFFF
        t_us = int((self.clock() - self._t0) * 1e6)
        return frame(message.TYPE, seq, t_us, message.pack())

    def _reject(self, ev: Dropped) -> None:
        now = self.clock()
        if not self.respond or ev.header is None or now - self._last_reject < self.reject_interval_s:
            return
        self._last_reject = now
        h = ev.header
        self._replies += DELIMITER + self._frame(Reject(ev.reject, h.version, h.type, h.seq, PROTOCOL_VERSION))

    def _on_frame(self, item: Packet | Drop):
        if isinstance(item, Drop):
            reject = RejectReason.VERSION if item.reason.value == "version" else 0
            return Dropped(item.reason.value, item.header, int(reject))
        h, payload = item.header, item.payload
        self._track_seq(h)
        try:
            mtype = MessageType(h.type)
        except ValueError:
            return Dropped("type", h, int(RejectReason.TYPE))
        if mtype in (MessageType.DEVICE_INFO, MessageType.REJECT):
            self.state.counters["ignored"] += 1
            try:
                return Ignored(h, decode(mtype, payload))
            except ProtocolError:
                return Ignored(h)
        decoded = None
        try:
            message = decode(mtype, payload)
            if mtype == MessageType.MASK:
                decoded = self._check_mask(message)
        except _Unsupported:
            return Dropped("malformed", h, int(RejectReason.ENCODING))
        except (ProtocolError, MaskError):
            return Dropped("malformed", h, int(RejectReason.MALFORMED))
        self._apply(h, message, decoded)
        return Received(h, message, decoded)

    def _track_seq(self, h: Header) -> None:
        if h.type != MessageType.HELLO and self._expected_seq is not None:
            gap = (h.seq - self._expected_seq) & 0xFFFF
            if 0 < gap < 0x8000:
                self.state.counters["lost"] += gap
        self._expected_seq = (h.seq + 1) & 0xFFFF

    def _check_mask(self, m: Mask):
        s = self.state
        if not self.strict_size:
            if not (1 <= m.width <= 0xFFFE and 1 <= m.height <= 0xFFFE):
                raise ProtocolError(f"MASK size {m.width!r}x{m.height!r} is not a display size")
        elif (m.width, m.height) != (s.width, s.height):
            raise ProtocolError(f"MASK is {m.width!r}x{m.height!r}, the display is {s.width!r}x{s.height!r}")
        if m.encoding > 15 or not (self.encodings >> m.encoding) & 1 or m.encoding not in Encoding._value2member_map_:
            raise _Unsupported(m.encoding)
        return decode_mask(m.encoding, m.data, m.width, m.height)

    def _apply(self, h: Header, message, decoded: DecodedMask | None) -> None:
        s = self.state
        s.counters["ok"] += 1
        s.last_rx = self.clock()
        if isinstance(message, Mask):
            s.mask, s.mask_t_capture_us = decoded, message.t_capture_us
            s.width, s.height = message.width, message.height  # equal unless strict_size is off
            s.masks_received += 1
        elif isinstance(message, Measurement):
            last = s.measurement
            if last is None or message.t_capture_us != last.t_capture_us or message.bands != last.bands:
                s.bands = {}  # a new frame
            s.bands[message.band] = message
            s.measurement = message
            s.frames_received += 1
        elif isinstance(message, Status):
            s.status = message
        elif isinstance(message, Heartbeat):
            s.heartbeat = message
        elif isinstance(message, Hello) and self.respond:
            if message.min_version <= PROTOCOL_VERSION <= message.max_version:
                self._replies += DELIMITER + self._frame(dataclasses.replace(self.info, nonce=message.nonce))
            else:
                self._last_reject = -math.inf
                self._reject(Dropped("version", h, int(RejectReason.VERSION)))


class _Unsupported(Exception):
    pass


# -- canonical text (shared with the C test driver) ---------------------------------------------


def _f(x: float) -> str:
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    if math.isnan(x):
        return "nan"  # NaN payload bits may change when a binary32 NaN is widened, so they are not shown
    if math.isinf(x):
        text = "inf" if x > 0 else "-inf"
    else:
        text = f"{x:.4f}"
    return f"{text}/0x{bits:08x}"


def describe_header(device: DisplayDevice) -> str:
    s = device.state
    return f"DISPLAY {s.width}x{s.height} max_payload={device.max_payload}"


def describe(event) -> list[str]:
    """Canonical lines for one event (the C test driver prints the same)."""
    if isinstance(event, Dropped):
        h = event.header
        if event.reason == "version":
            assert h is not None  # a version drop always carries its header (its CRC held)
            return [f"DROP version version={h.version} type=0x{h.type:02x} seq={h.seq} reject={event.reject}"]
        if h is not None:
            return [f"DROP {event.reason} type=0x{h.type:02x} seq={h.seq} reject={event.reject}"]
        return [f"DROP {event.reason}"]
    if isinstance(event, Ignored):
        return [f"IGNORED seq={event.header.seq} type=0x{event.header.type:02x}"]
    h, m = event.header, event.message
    head = f"seq={h.seq} t={h.time_us}"
    if isinstance(m, Hello):
        return [f"HELLO {head} min={m.min_version} max={m.max_version} nonce=0x{m.nonce:08x}"]
    if isinstance(m, Measurement):
        return [
            f"MEASUREMENT {head} thickness={_f(m.thickness)} spread={_f(m.spread)} uncertainty={_f(m.uncertainty)} "
            f"flags=0x{m.flags:08x} unit={'mm' if m.unit_mm else 'px'} model=0x{m.model_id:08x} capture={m.t_capture_us} "
            f"band={m.band}/{m.bands}"
        ]
    if isinstance(m, Mask):
        decoded = event.mask
        lines = [f"MASK {head} capture={m.t_capture_us} enc={Encoding(m.encoding).name}"]
        if decoded.top is not None:
            lines.append("  top=" + ",".join(map(str, decoded.top.tolist())))
            lines.append("  bottom=" + ",".join(map(str, decoded.bottom.tolist())))
        elif decoded.labels is not None:
            flat = np.ascontiguousarray(decoded.labels, dtype=np.uint8)
            counts = np.bincount(flat.ravel(), minlength=4)[:4]
            lines.append(
                f"  labels crc=0x{zlib.crc32(flat.tobytes()) & 0xFFFFFFFF:08x} counts="
                + ",".join(map(str, counts.tolist()))
            )
        return lines
    if isinstance(m, Status):
        return [f"STATUS {head} code={m.code}({m.name}) detail=0x{m.detail:08x} text={m.raw_text.hex()}"]
    if isinstance(m, Heartbeat):
        return [f"HEARTBEAT {head} uptime={m.uptime_ms} rx_ok={m.rx_ok} rx_bad={m.rx_bad}"]
    raise TypeError(f"no description for {m!r}")


def describe_counters(state: DisplayState) -> str:
    return "COUNTERS " + " ".join(f"{k}={state.counters[k]}" for k in COUNTER_NAMES)


def decode_stream(data: bytes, width: int, height: int, max_payload: int = DEFAULT_MAX_PAYLOAD) -> str:
    """The canonical decoding of a whole byte stream, as stored in the vectors' ``.expected`` files."""
    dev = DisplayDevice(width, height, max_payload=max_payload, respond=False)
    lines = [describe_header(dev)]
    for ev in dev.feed(data):
        lines += describe(ev)
    lines.append(describe_counters(dev.state))
    return "\n".join(lines) + "\n"
