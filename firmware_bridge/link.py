"""The host's writer: keeps the newest frame, paces it onto the display port, keeps the link alive.

    link = DisplayLink("/dev/serial/by-id/usb-...", baudrate=921600)   # or DisplayLink(LinkOptions(...))
    link.open()                         # LinkError (one line, port named) if it cannot
    link.offer(measurement, labels)     # from the pipeline: never blocks, a newer frame replaces an unsent one
    link.offer([band0, band1], labels)  # a frame of several bands: one MEASUREMENT each, then the mask
    link.pump()                         # from the same thread: writes, reads, reconnects; never raises for I/O
    link.stats                          # frames_sent, frames_replaced, bytes_sent, reconnects, encoding, ...
    link.close()

The link is made of four parts, each usable alone: the transport (``firmware_bridge.transport``:
the port, non-blocking writes, reconnecting with backoff), the protocol
(``firmware_bridge.protocol``: handshake, replies, packet numbering, in pyserial's
``serial.threaded.Protocol`` shape), pacing (``firmware_bridge.pacing``: keep-newest slots,
rate, mask encoding) and the counts (``firmware_bridge.stats``). The link wires them together
and plays the part pyserial's ``ReaderThread`` plays for a protocol, without a thread: the
caller's output thread calls ``pump``, which reads, hands what arrived to the protocol and
writes what pacing allows in the same pass, so reads never block and writes never wait for the
device. ``PumpThread`` runs ``pump`` in a thread for tools that have no pipeline (the CLI's demo).
"""

from __future__ import annotations

import dataclasses
import threading
import time

from firmware_bridge.errors import ConfigError, LinkError, MaskError, ProtocolError
from firmware_bridge.framing import DELIMITER
from firmware_bridge.messages import DeviceInfo, Status, StatusCode
from firmware_bridge.options import LinkOptions
from firmware_bridge.pacing import MaskEncoder, Pacer, PendingFrame
from firmware_bridge.protocol import LinkProtocol
from firmware_bridge.stats import LinkStats
from firmware_bridge.transport import Backoff, SerialTransport


class DisplayLink:
    """Host side of the display link over one serial port (see the module docstring).

    ``url`` is the port's URL followed by the other fields of ``LinkOptions`` as arguments
    (``DisplayLink(url, 921600, encoding="rle")``), or a ``LinkOptions`` alone.
    ``listener(header, message)`` sees every packet read from the port; ``opener(url, baudrate)``
    replaces ``ports.open_port`` (link models in tests and benchmarks); ``clock`` gives every
    time the link uses.
    """

    def __init__(self, url: str | LinkOptions, *args, listener=None, opener=None, clock=time.monotonic, **settings):
        if isinstance(url, LinkOptions):
            if args or settings:
                raise ConfigError("give the link's settings in its LinkOptions or as arguments, not both")
            options = url
        else:
            options = LinkOptions(url, *args, **settings)
        self.options = options
        self.clock = clock
        now = clock()
        self.counts = LinkStats()
        self.transport = SerialTransport(
            options.url,
            options.baudrate,
            opener=opener,
            stats=self.counts,
            backoff=Backoff(options.backoff[0], options.backoff[1], now),
        )
        self.protocol = LinkProtocol(
            options.hello_interval_s, options.hello_attempts, listener=listener, stats=self.counts, clock=clock
        )
        self.pacer = Pacer(
            options.nominal_bps, now, max_rate=options.max_rate, heartbeat_s=options.heartbeat_s, stats=self.counts
        )
        self.encoder = MaskEncoder(
            options.display_width, options.display_height, options.tlf_class, options.forced_encoding
        )
        self._io = threading.RLock()  # one pump at a time
        self._wake = threading.Event()
        self._inflight = b""  # bytes of the last burst the port has not taken yet
        self._inflight_frame: PendingFrame | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def open(self, handshake_timeout: float = 0.0) -> DisplayLink:
        """Open the port and greet the device; LinkError if the port cannot be opened.

        With ``handshake_timeout`` > 0, pump until the device has answered (or the time is up);
        by default the answer is picked up by later ``pump`` calls.
        """
        with self._io:
            if self.transport.open():
                self._connected(self.clock())
            if handshake_timeout > 0:
                self._run(self.clock() + handshake_timeout, lambda: self.protocol.device is not None)
        return self

    def close(self, text: str = "runtime stopped") -> None:
        """Tell the device the runtime stopped (best effort, STATUS stopped with `text`) and close the port."""
        with self._io:
            farewell = DELIMITER + self.protocol.frame(Status(StatusCode.STOPPED, 0, text)) if self.connected else b""
            self.transport.close(farewell)

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
        self.pacer.offer(PendingFrame.of(measurement, labels, self.clock()))
        self._wake.set()

    def offer_status(self, status: Status) -> None:
        """Store a STATUS to send before the next frame (a newer one replaces it). Never blocks."""
        if not isinstance(status, Status):
            raise ProtocolError(f"offer_status() takes a Status, got {type(status).__name__!r}")
        status.pack()  # reject an oversized text here, in the caller's thread
        self.pacer.statuses.put(status)
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
        return self.transport.connected

    @property
    def device(self) -> DeviceInfo | None:
        """What the device said in DEVICE_INFO, None before (or without) a handshake."""
        return self.protocol.device

    @property
    def stats(self) -> dict:
        """The counts of ``LinkStats`` and the link's state now, as plain values (for JSON)."""
        st, proto, pacer, now = self.counts, self.protocol, self.pacer, self.clock()
        s = st.counters()
        budget, device = pacer.budget, proto.device
        s.update(
            connected=self.connected,
            encoding=None if self.encoder.encoding is None else self.encoder.encoding.name,
            display=list(self.encoder.display(device)),
            link_rate_bps=round(budget.rate, 1),
            measured_rate_bps=None if budget.measured is None else round(budget.measured, 1),
            offered_fps=_round(pacer.offers.hz),
            sent_fps=_round(pacer.sends.hz),
            target_fps=_round(pacer.target_fps(device)),
            backlog_ms=round(budget.backlog_s(now) * 1000, 2),
            latency_ms=_round(None if st.latency_s is None else st.latency_s * 1000),
            latency_max_ms=round(st.latency_max_s * 1000, 2),
            device=None if device is None else dataclasses.asdict(device),
            device_rx=None if proto.device_heartbeat is None else dataclasses.asdict(proto.device_heartbeat),
            device_status=None if proto.device_status is None else proto.device_status.name,
            last_reject=None if proto.last_reject is None else dataclasses.asdict(proto.last_reject),
            last_error=st.last_error,
            seconds_disconnected=self.transport.seconds_disconnected(now),
        )
        return s

    # -- one pass of I/O ------------------------------------------------------------------------
    def _pass(self) -> float:
        """Returns the time by which something may next be due."""
        now = self.clock()
        transport = self.transport
        if not transport.connected:
            if not transport.reconnect(now):
                return transport.next_attempt(now)
            self._connected(now)
        try:
            data = transport.read()
            if data:
                self.protocol.data_received(data)
            return self._write(now)
        except LinkError as e:
            self._lost(e, now)
            return transport.next_attempt(now)

    def _connected(self, now: float) -> None:
        self._inflight = b""
        self._inflight_frame = None
        self.pacer.reset(now)
        self.protocol.connection_made(self.transport)

    def _lost(self, e: Exception, now: float) -> None:
        self.transport.lost(e, now)
        self.protocol.connection_lost(e)
        self._inflight = b""
        if self._inflight_frame is not None:  # the frame being written goes out again unless a newer one came
            self.pacer.frames.put_back(self._inflight_frame)
            self._inflight_frame = None

    def _write(self, now: float) -> float:
        pacer, proto = self.pacer, self.protocol
        pushed_back = bool(self._inflight) and not self._hand()
        pacer.budget.observe(now, self.transport.out_waiting(), pushed_back)
        if self._inflight:
            return now + 0.002

        burst = bytearray()
        hello = proto.hello_due(now)
        if hello is not None:
            burst += proto.frame(hello)
        device = proto.device
        fps = pacer.target_fps(device)
        may_start, next_due = pacer.window(now, fps)
        if proto.hellos_left:
            next_due = min(next_due, proto.next_hello)
        if may_start:
            status = pacer.statuses.take()
            if status is not None:
                burst += proto.frame(status)
                self.counts.add("statuses_sent")
            item = None
            if pacer.token_ready(now, device):
                item = pacer.frames.take()
            elif pacer.frames.full:
                next_due = min(next_due, pacer.token_due(now, device))
            if item is not None:
                burst += self._frame_bytes(item, fps)
                pacer.spend_token()
                self._inflight_frame = item
        if not burst and pacer.heartbeat_due(now):
            burst += proto.frame(proto.heartbeat(now))
            self.counts.add("heartbeats_sent")
        if burst:
            self._inflight = DELIMITER + bytes(burst)
            pacer.sent(now, frame=self._inflight_frame is not None)
            self._hand()
        return min(next_due, pacer.last_tx + pacer.heartbeat_s)

    def _hand(self) -> bool:
        """Give the port what it takes of the in-flight bytes; True if it took them all."""
        n = self.transport.write(self._inflight)
        now = self.clock()  # encoding took time: the bytes entered the port only now
        budget = self.pacer.budget
        budget.sent(n, now)
        self.counts.add("bytes_sent", n)
        self._inflight = self._inflight[n:]
        if not self._inflight and self._inflight_frame is not None:
            item, self._inflight_frame = self._inflight_frame, None
            self.counts.latency(budget.wire_free_at - item.t_offer)  # until its last byte is off the wire
        return not self._inflight

    def _frame_bytes(self, item: PendingFrame, fps: float) -> bytes:
        proto = self.protocol
        out = b"".join(proto.frame(m) for m in item.measurements)
        if item.labels is None:
            return out
        try:
            mask = self.encoder.encode(item.labels, item.measurements, proto.device, self.pacer.budget.rate, fps)
        except (MaskError, ProtocolError) as e:
            self.counts.add("mask_errors")
            self.counts.error(f"mask not sent: {e}")
            return out
        if mask is None:
            return out
        self.counts.add("masks_sent")
        return out + proto.frame(mask)

    def _idle(self) -> bool:
        pacer = self.pacer
        return self.connected and not pacer.frames.full and not pacer.statuses.full and not self._inflight


def _round(x):
    return None if x is None else round(x, 2)


class PumpThread:
    """Runs ``link.pump`` in a thread, for tools without a pipeline of their own."""

    def __init__(self, link: DisplayLink, interval: float = 0.02):
        self.link, self.interval = link, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PumpThread:
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
