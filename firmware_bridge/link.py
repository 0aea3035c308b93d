"""The host's writer: keeps the newest frame, paces it onto the display port, keeps the link alive.

    link = DisplayLink("/dev/serial/by-id/usb-...", baudrate=921600)
    link.open()                         # LinkError (one line, port named) if it cannot
    link.offer(measurement, labels)     # from the pipeline: never blocks, a newer frame replaces an unsent one
    link.offer([band0, band1], labels)  # a frame of several bands: one MEASUREMENT each, then the mask
    link.pump()                         # from the same thread: writes, reads, reconnects; never raises for I/O
    link.stats                          # frames_sent, frames_replaced, bytes_sent, reconnects, encoding, ...
    link.close()

The link starts no thread of its own: the caller's output thread drives it by calling ``pump``.
``PumpThread`` runs ``pump`` in a thread for tools that have no pipeline (the CLI's demo).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge import PROTOCOL_VERSION
from firmware_bridge.errors import BridgeError, ConfigError, LinkError, MaskError, ProtocolError
from firmware_bridge.framing import DELIMITER, FrameDecoder, Packet, frame
from firmware_bridge.masks import boundaries_from_labels, encode_mask, labels_for_display
from firmware_bridge.messages import (
    BOUNDARY_ENCODINGS, LABEL_ENCODINGS, DeviceInfo, Encoding, Heartbeat, Hello, Mask, Measurement, Reject,
    RejectReason, Status, StatusCode, decode,
)
from firmware_bridge.pacing import EncodingChooser, LinkBudget, RateEstimate, frame_budget
from firmware_bridge.ports import check_baudrate, open_port, out_waiting, read_available, write_some

_MEASUREMENT_WIRE = 43  # bytes of a MEASUREMENT frame on the wire (27-byte payload)
_ENCODING_NAMES = {"auto": None, **{e.name.lower(): e for e in Encoding if e != Encoding.NONE}}


@dataclass
class _Pending:
    measurements: tuple[Measurement, ...]  # the frame's bands, superficial first
    labels: np.ndarray | None
    t_offer: float


class DisplayLink:
    """Host side of the display link over one serial port (see the module docstring).

    Options: ``encoding`` "auto" (from link rate and device) or one of bounds16, bounds_delta,
    rle, labels2; ``max_rate`` caps frames per second; ``heartbeat_s`` is the idle time after
    which a HEARTBEAT goes out; ``backoff`` the first and longest wait between reconnection
    attempts; ``listener(header, message)`` sees every packet read from the port; ``opener(url,
    baudrate)`` replaces ``ports.open_port`` (link models in tests and benchmarks).
    """

    def __init__(
        self,
        url: str,
        baudrate: int | None = 115200,
        display_width: int = 320,
        display_height: int = 240,
        *,
        tlf_class: int = 1,
        encoding: str = "auto",
        max_rate: float | None = None,
        heartbeat_s: float = 1.0,
        hello_interval_s: float = 0.5,
        hello_attempts: int = 4,
        backoff: tuple[float, float] = (0.1, 2.0),
        listener=None,
        opener=None,
        clock=time.monotonic,
    ):
        if not isinstance(url, str) or not url:
            raise ConfigError(f"display port URL must be a non-empty string, got {url!r}")
        if baudrate is not None:
            check_baudrate(baudrate)
        for name, v in (("display_width", display_width), ("display_height", display_height)):
            if not isinstance(v, int) or not 1 <= v <= 0xFFFE:
                raise ConfigError(f"{name} must be an integer in 1..65534, got {v!r}")
        if encoding not in _ENCODING_NAMES:
            raise ConfigError(f"encoding must be one of {sorted(_ENCODING_NAMES)!r}, got {encoding!r}")
        if max_rate is not None and not max_rate > 0:
            raise ConfigError(f"max_rate must be positive, got {max_rate!r}")
        if not heartbeat_s > 0 or not hello_interval_s > 0:
            raise ConfigError(f"heartbeat_s and hello_interval_s must be positive, got {heartbeat_s!r} and {hello_interval_s!r}")
        if not 0 < backoff[0] <= backoff[1]:
            raise ConfigError(f"backoff must be (first, longest) with 0 < first <= longest, got {backoff!r}")
        self.url, self.baudrate = url, baudrate
        self.width, self.height = display_width, display_height
        self.tlf_class = tlf_class
        self.forced_encoding = _ENCODING_NAMES[encoding]
        self.max_rate = max_rate
        self.heartbeat_s, self.hello_interval_s, self.hello_attempts = heartbeat_s, hello_interval_s, hello_attempts
        self.backoff = backoff
        self.listener = listener
        self.opener = opener or open_port
        self.clock = clock

        self._lock = threading.Lock()  # guards the pending slots and the counters
        self._io = threading.RLock()  # one pump at a time
        self._wake = threading.Event()
        self._t0 = clock()
        self._port: Any = None  # what the opener returned: a pyserial port or a link model
        self._closed = False
        self._pending: _Pending | None = None
        self._pending_status: Status | None = None
        self._inflight = b""
        self._inflight_frame: _Pending | None = None
        self._decoder = FrameDecoder()
        self._budget = LinkBudget(baudrate / 10 if baudrate else None, self._t0)
        self._offers = RateEstimate()
        self._sends = RateEstimate()
        self._device: DeviceInfo | None = None
        self._seq = 0
        self._nonce = 0
        self._hello_due = self._t0
        self._hellos_left = 0
        self._last_tx = self._t0
        self._tokens = 2.0
        self._token_time = self._t0
        self._next_reconnect = self._t0
        self._delay = backoff[0]
        self._down_since: float | None = None  # when the port was lost, while it is
        self._down_s = 0.0  # time without the port, outages that ended
        self._encoding: Encoding | None = None
        self._chooser = EncodingChooser()
        self._counters = dict.fromkeys(
            ("frames_offered", "frames_sent", "frames_replaced", "masks_sent", "statuses_sent", "heartbeats_sent",
             "hellos_sent", "bytes_sent", "reconnects", "disconnects", "rx_packets", "rx_errors", "rejects",
             "mask_errors", "listener_errors"), 0)
        self._latency: float | None = None
        self._latency_max = 0.0
        self._last_error: str | None = None
        self._last_reject: Reject | None = None
        self._device_heartbeat: Heartbeat | None = None
        self._device_status: Status | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def open(self, handshake_timeout: float = 0.0) -> "DisplayLink":
        """Open the port and greet the device; LinkError if the port cannot be opened.

        With ``handshake_timeout`` > 0, pump until the device has answered (or the time is up);
        by default the answer is picked up by later ``pump`` calls.
        """
        with self._io:
            if self._port is None:
                self._port = self.opener(self.url, self.baudrate)
                self._closed = False
                self._connected(self.clock())
            if handshake_timeout > 0:
                self._run(self.clock() + handshake_timeout, lambda: self._device is not None)
        return self

    def close(self, text: str = "runtime stopped") -> None:
        """Tell the device the runtime stopped (best effort, STATUS stopped with `text`) and close the port."""
        with self._io:
            self._closed = True
            port, self._port = self._port, None
            if port is None:
                return
            try:
                write_some(port, DELIMITER + self._frame(Status(StatusCode.STOPPED, 0, text)))
            except BridgeError:
                pass
            try:
                port.close()
            except Exception:  # closing a port that already vanished may fail in many ways
                pass

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # -- the pipeline's side --------------------------------------------------------------------
    def offer(self, measurement, labels=None) -> None:
        """Store the newest frame for sending; replaces a frame not yet sent. Never blocks.

        ``measurement`` is one Measurement, or the sequence of one frame's band measurements
        (all of one t_capture_us, bands 0..n-1: they go out together, before the mask).
        ``labels`` is the (H, W) class map of the same frame; it is kept by reference until sent,
        so it must not be modified afterwards.
        """
        if isinstance(measurement, Status):
            return self.offer_status(measurement)
        bands = (measurement,) if isinstance(measurement, Measurement) else tuple(measurement) \
            if isinstance(measurement, (list, tuple)) else None
        if not bands or not all(isinstance(m, Measurement) for m in bands):
            raise ProtocolError(f"offer() takes a firmware_bridge Measurement or a list of them, got "
                                f"{type(measurement).__name__!r}")
        if len(bands) > 1 and ([m.band for m in bands] != list(range(len(bands)))
                               or any(m.bands != len(bands) or m.t_capture_us != bands[0].t_capture_us for m in bands)):
            raise ProtocolError("a frame's band measurements must be bands 0..n-1 of n, of one t_capture_us")
        now = self.clock()
        item = _Pending(bands, labels, now)
        with self._lock:
            if self._pending is not None:
                self._counters["frames_replaced"] += 1
            self._pending = item
            self._counters["frames_offered"] += 1
            self._offers.tick(now)
        self._wake.set()

    def offer_status(self, status: Status) -> None:
        """Store a STATUS to send before the next frame (a newer one replaces it). Never blocks."""
        if not isinstance(status, Status):
            raise ProtocolError(f"offer_status() takes a Status, got {type(status).__name__!r}")
        status.pack()  # reject an oversized text here, in the caller's thread
        with self._lock:
            self._pending_status = status
        self._wake.set()

    def pump(self, timeout: float = 0.0) -> bool:
        """Do the I/O that is due: read replies, write what pacing allows, send heartbeats and
        HELLOs, reconnect after the backoff. With ``timeout`` > 0, keep going until everything
        offered has been handed to the port or the timeout expires. Returns True when nothing is
        left to send. Never raises for I/O errors: they are counted and shown in ``stats``."""
        with self._io:
            if timeout <= 0:
                self._pass()
                return self._idle()
            return self._run(self.clock() + timeout, self._idle)

    def _run(self, deadline: float, done) -> bool:
        """Passes until ``done()`` or the deadline, waiting in between for an offer, the next
        scheduled write, or 10 ms (the polling interval for replies from the device)."""
        while True:
            self._wake.clear()
            next_due = self._pass()
            now = self.clock()
            if done():
                return True
            if now >= deadline:
                return False
            self._wake.wait(max(0.0, min(deadline, next_due, now + 0.01) - now))

    # -- introspection --------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._port is not None

    @property
    def device(self) -> DeviceInfo | None:
        """What the device said in DEVICE_INFO, None before (or without) a handshake."""
        return self._device

    @property
    def stats(self) -> dict:
        with self._lock:
            s: dict[str, object] = dict(self._counters)
            now = self.clock()
            s.update(
                connected=self._port is not None,
                encoding=None if self._encoding is None else self._encoding.name,
                display=[self._width(), self._height()],
                link_rate_bps=round(self._budget.rate, 1),
                measured_rate_bps=None if self._budget.measured is None else round(self._budget.measured, 1),
                offered_fps=_round(self._offers.hz),
                sent_fps=_round(self._sends.hz),
                target_fps=_round(self._target_fps()),
                backlog_ms=round(self._budget.backlog_s(now) * 1000, 2),
                latency_ms=_round(None if self._latency is None else self._latency * 1000),
                latency_max_ms=round(self._latency_max * 1000, 2),
                device=None if self._device is None else dataclasses.asdict(self._device),
                device_rx=None if self._device_heartbeat is None else dataclasses.asdict(self._device_heartbeat),
                device_status=None if self._device_status is None else self._device_status.name,
                last_reject=None if self._last_reject is None else dataclasses.asdict(self._last_reject),
                last_error=self._last_error,
                seconds_disconnected=self._down_s + (now - self._down_since if self._down_since is not None else 0.0),
            )
        return s

    # -- one pass of I/O ------------------------------------------------------------------------
    def _pass(self) -> float:
        """Returns the time by which something may next be due."""
        now = self.clock()
        if self._port is None:
            if self._closed or now < self._next_reconnect:
                return self._next_reconnect if not self._closed else now + 3600
            try:
                self._port = self.opener(self.url, self.baudrate)
            except BridgeError as e:
                self._error(str(e))
                self._next_reconnect = now + self._delay
                self._delay = min(self._delay * 2, self.backoff[1])
                return self._next_reconnect
            self._counters["reconnects"] += 1
            if self._down_since is not None:
                self._down_s += now - self._down_since
                self._down_since = None
            self._connected(now)
        try:
            self._read()
            return self._write(now)
        except LinkError as e:
            self._lost(e, now)
            return self._next_reconnect

    def _connected(self, now: float) -> None:
        self._delay = self.backoff[0]
        self._seq = 0
        self._device = None
        self._decoder.reset()
        self._inflight = b""
        self._inflight_frame = None
        self._budget = LinkBudget(self.baudrate / 10 if self.baudrate else None, now)
        self._hellos_left = self.hello_attempts
        self._hello_due = now
        self._nonce = (self._nonce + 1) & 0xFFFFFFFF

    def _lost(self, e: Exception, now: float) -> None:
        port, self._port = self._port, None
        self._counters["disconnects"] += 1
        self._down_since = now
        self._error(f"display port {self.url!r} lost: {e}")
        try:
            port.close()
        except Exception:  # the device is gone; closing may fail in many ways
            pass
        self._inflight = b""
        if self._inflight_frame is not None:
            with self._lock:  # the frame that was being written goes out again unless a newer one came
                if self._pending is None:
                    self._pending = self._inflight_frame
            self._inflight_frame = None
        self._next_reconnect = now + self._delay
        self._delay = min(self._delay * 2, self.backoff[1])

    def _read(self) -> None:
        data = read_available(self._port)
        if not data:
            return
        for item in self._decoder.feed(data):
            if not isinstance(item, Packet):
                self._counters["rx_errors"] += 1
                continue
            try:
                message = decode(item.header.type, item.payload)
            except ProtocolError:
                self._counters["rx_errors"] += 1
                continue
            self._counters["rx_packets"] += 1
            self._on_message(message)
            if self.listener is not None:
                try:
                    self.listener(item.header, message)
                except Exception as e:  # a faulty listener must not stop the display
                    self._counters["listener_errors"] += 1
                    self._error(f"listener failed: {e!r}")

    def _on_message(self, message) -> None:
        if isinstance(message, DeviceInfo):
            if message.nonce == self._nonce or self._device is None:
                self._device = message
                self._hellos_left = 0
        elif isinstance(message, Reject):
            with self._lock:
                self._counters["rejects"] += 1
                self._last_reject = message
            if message.reason == RejectReason.VERSION:
                self._error(f"device speaks protocol versions up to {message.max_version!r}, this host speaks {PROTOCOL_VERSION!r}")
                self._hellos_left = 0
        elif isinstance(message, Heartbeat):
            self._device_heartbeat = message
        elif isinstance(message, Status):
            self._device_status = message

    def _write(self, now: float) -> float:
        port = self._port
        pushed_back = bool(self._inflight) and not self._hand(port, now)
        self._budget.observe(now, out_waiting(port), pushed_back)
        if self._inflight:
            return now + 0.002

        burst = bytearray()
        if self._hellos_left and now >= self._hello_due:
            burst += self._frame(Hello(PROTOCOL_VERSION, PROTOCOL_VERSION, self._nonce))
            self._hellos_left -= 1
            self._hello_due = now + self.hello_interval_s
            self._counters["hellos_sent"] += 1

        fps = self._target_fps()
        # A new frame may queue behind at most one frame period of earlier bytes: the target
        # period, or the last gap between offers when that is shorter (the rate just rose).
        period = min(1.0 / fps, self._offers.last_interval or 0.0)
        backlog = self._budget.backlog_s(now)
        next_due = now + (backlog - period) if backlog > period else now + 1.0 / fps
        if self._hellos_left:
            next_due = min(next_due, self._hello_due)
        if backlog <= period:
            with self._lock:
                status, self._pending_status = self._pending_status, None
            if status is not None:
                burst += self._frame(status)
                self._counters["statuses_sent"] += 1
            item = None
            if self._rate_token(now):
                with self._lock:
                    item, self._pending = self._pending, None
            elif self._pending is not None:
                rate = self._device_rate()
                assert rate is not None  # no token is refused without a rate cap
                next_due = min(next_due, now + (1.0 - self._tokens) / rate)
            if item is not None:
                burst += self._frame_bytes(item, fps)
                self._tokens -= 1.0
                self._inflight_frame = item
        if not burst and now - self._last_tx >= self.heartbeat_s:
            with self._lock:
                c = self._counters
                hb = Heartbeat(int((now - self._t0) * 1000) & 0xFFFFFFFF, c["rx_packets"], c["rx_errors"])
            burst += self._frame(hb)
            self._counters["heartbeats_sent"] += 1
        if burst:
            self._inflight = DELIMITER + bytes(burst)
            self._last_tx = now
            if self._inflight_frame is not None:
                self._counters["frames_sent"] += 1
                self._sends.tick(now)
            self._hand(port, now)
        return min(next_due, self._last_tx + self.heartbeat_s)

    def _hand(self, port, now: float) -> bool:
        """Give the port what it takes of the in-flight bytes; True if it took them all."""
        n = write_some(port, self._inflight)
        now = self.clock()  # encoding took time: the bytes entered the port only now
        self._budget.sent(n, now)
        with self._lock:
            self._counters["bytes_sent"] += n
        self._inflight = self._inflight[n:]
        if not self._inflight and self._inflight_frame is not None:
            self._frame_done(now)
        return not self._inflight

    def _frame_done(self, now: float) -> None:
        item, self._inflight_frame = self._inflight_frame, None
        if item is None:
            return
        latency = self._budget.wire_free_at - item.t_offer  # until its last byte is off the wire
        with self._lock:
            self._latency = latency if self._latency is None else 0.9 * self._latency + 0.1 * latency
            self._latency_max = max(self._latency_max, latency)

    def _rate_token(self, now: float) -> bool:
        cap = self._device_rate()
        if cap is None:
            return True
        self._tokens = min(2.0, self._tokens + (now - self._token_time) * cap)
        self._token_time = now
        return self._tokens >= 1.0

    def _idle(self) -> bool:
        with self._lock:
            waiting = self._pending is not None or self._pending_status is not None
        return self._port is not None and not waiting and not self._inflight

    # -- encoding -------------------------------------------------------------------------------
    def _frame(self, message) -> bytes:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        t_us = int((self.clock() - self._t0) * 1e6)
        return frame(message.TYPE, seq, t_us, message.pack())

    def _frame_bytes(self, item: _Pending, fps: float) -> bytes:
        out = b"".join(self._frame(m) for m in item.measurements)
        if item.labels is None:
            return out
        try:
            mask = self._mask(item, fps)
        except (MaskError, ProtocolError) as e:
            self._counters["mask_errors"] += 1
            self._error(f"mask not sent: {e}")
            return out
        if mask is None:
            return out
        self._counters["masks_sent"] += 1
        return out + self._frame(mask)

    def _mask(self, item: _Pending, fps: float) -> Mask | None:
        w, h = self._width(), self._height()
        labels = np.asarray(item.labels)
        allowed = self._allowed_encodings()
        candidates: dict[Encoding, bytes] = {}
        budget = frame_budget(self._budget.rate, fps, _MEASUREMENT_WIRE * len(item.measurements))
        if any(e in allowed for e in BOUNDARY_ENCODINGS):
            top, bottom = boundaries_from_labels(labels, self.tlf_class, w, h, first_run=len(item.measurements) > 1)
            for e in BOUNDARY_ENCODINGS:
                if e in allowed:
                    candidates[e] = encode_mask(e, top=top, bottom=bottom, height=h)
        if any(e in allowed for e in LABEL_ENCODINGS):
            small = labels_for_display(labels, w, h)
            for e in LABEL_ENCODINGS:
                if e in allowed:
                    candidates[e] = encode_mask(e, labels=small, height=h)
        limit = self._device.max_payload if self._device is not None else 0xFFFF
        sizes = {e: _wire_size(len(d)) for e, d in candidates.items() if 9 + len(d) <= limit}
        enc = self._chooser.choose(sizes, budget)
        if enc is None:
            return None
        self._encoding = enc
        return Mask(item.measurements[0].t_capture_us, w, h, enc, candidates[enc])

    def _allowed_encodings(self) -> tuple[Encoding, ...]:
        dev = self._device
        if self.forced_encoding is not None:
            if dev is not None and not dev.supports(self.forced_encoding):
                raise MaskError(f"the device does not support the {self.forced_encoding.name!r} encoding")
            return (self.forced_encoding,)
        if dev is None:  # no handshake: boundaries only, as the protocol says
            return BOUNDARY_ENCODINGS
        return tuple(e for e in BOUNDARY_ENCODINGS + LABEL_ENCODINGS if dev.supports(e))

    def _width(self) -> int:
        return self._device.width if self._device is not None else self.width

    def _height(self) -> int:
        return self._device.height if self._device is not None else self.height

    def _device_rate(self) -> float | None:
        caps = [r for r in (self.max_rate, self._device.max_rate_hz if self._device else None) if r]
        return min(caps) if caps else None

    def _target_fps(self) -> float:
        offered = self._offers.hz or 30.0
        cap = self._device_rate()
        return min(offered, cap) if cap else offered

    def _error(self, text: str) -> None:
        with self._lock:
            self._last_error = text


def _wire_size(data_len: int) -> int:
    n = 14 + 9 + data_len
    return n + n // 254 + 2


def _round(x):
    return None if x is None else round(x, 2)


class PumpThread:
    """Runs ``link.pump`` in a thread, for tools without a pipeline of their own."""

    def __init__(self, link: DisplayLink, interval: float = 0.02):
        self.link, self.interval = link, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "PumpThread":
        self._thread = threading.Thread(target=self._run, name="display-link-pump", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.link.pump(timeout=self.interval):
                self.link._wake.wait(self.interval)  # idle: until the next offer, or poll for replies

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self.link._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
