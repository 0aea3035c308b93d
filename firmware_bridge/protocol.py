"""The host's side of the display protocol, in the shape of pyserial's ``serial.threaded.Protocol``:
the transport calls ``connection_made`` / ``data_received`` / ``connection_lost``; the protocol
decodes the device's replies (DEVICE_INFO, REJECT, HEARTBEAT, STATUS), runs the handshake
(HELLOs until the device answers) and numbers the packets the host sends.

    protocol = LinkProtocol(hello_interval_s=0.5, hello_attempts=4)
    protocol.connection_made(transport)  # a new connection: new nonce, sequence from 0, HELLOs due
    protocol.data_received(data)         # bytes from the port, in any pieces
    hello = protocol.hello_due(now)      # a Hello when one should go out now, else None
    data = protocol.frame(message)       # the next packet on the wire, COBS-framed
    protocol.device                      # the DeviceInfo of this connection, None before

It writes nothing itself, so it runs the same under the link's pump and under pyserial's
``ReaderThread``.
"""

from __future__ import annotations

import time

import serial.threaded

from firmware_bridge import PROTOCOL_VERSION
from firmware_bridge.errors import ProtocolError
from firmware_bridge.framing import FrameDecoder, Packet, frame
from firmware_bridge.messages import DeviceInfo, Heartbeat, Hello, Reject, RejectReason, Status, decode
from firmware_bridge.stats import LinkStats


class LinkProtocol(serial.threaded.Protocol):
    """Handshake, replies and packet numbering of one display link (see the module docstring).

    ``listener(header, message)`` sees every packet read; a listener that raises is counted in
    ``stats.listener_errors`` and does not stop the link. ``clock`` gives the times the packets
    carry (microseconds since the protocol was made) and the HELLO schedule.
    """

    def __init__(
        self,
        hello_interval_s: float = 0.5,
        hello_attempts: int = 4,
        *,
        listener=None,
        stats: LinkStats | None = None,
        clock=time.monotonic,
    ):
        self.hello_interval_s, self.hello_attempts = hello_interval_s, hello_attempts
        self.listener = listener
        self.stats = stats if stats is not None else LinkStats()
        self.clock = clock
        self.t0 = clock()
        self.transport = None
        self.device: DeviceInfo | None = None
        self.nonce = 0
        self.hellos_left = 0
        self.next_hello = self.t0
        self.last_reject: Reject | None = None
        self.device_heartbeat: Heartbeat | None = None
        self.device_status: Status | None = None
        self._decoder = FrameDecoder()
        self._seq = 0

    # -- pyserial's Protocol --------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        """A new connection: what the last device said no longer holds; greet this one."""
        self.transport = transport
        self._seq = 0
        self.device = None
        self._decoder.reset()
        self.hellos_left = self.hello_attempts
        self.next_hello = self.clock()
        self.nonce = (self.nonce + 1) & 0xFFFFFFFF

    def data_received(self, data: bytes) -> None:
        for item in self._decoder.feed(data):
            if not isinstance(item, Packet):
                self.stats.add("rx_errors")
                continue
            try:
                message = decode(item.header.type, item.payload)
            except ProtocolError:
                self.stats.add("rx_errors")
                continue
            self.stats.add("rx_packets")
            self._on_message(message)
            if self.listener is not None:
                try:
                    self.listener(item.header, message)
                except Exception as e:  # a faulty listener must not stop the display
                    self.stats.add("listener_errors")
                    self.stats.error(f"listener failed: {e!r}")

    def connection_lost(self, exc) -> None:
        """The port is gone; the transport reports why and reconnects. Nothing is raised here."""
        self.transport = None

    # -- the handshake and the replies ----------------------------------------------------------
    def _on_message(self, message) -> None:
        if isinstance(message, DeviceInfo):
            if message.nonce == self.nonce or self.device is None:
                self.device = message
                self.hellos_left = 0
        elif isinstance(message, Reject):
            self.stats.add("rejects")
            self.last_reject = message
            if message.reason == RejectReason.VERSION:
                self.stats.error(
                    f"device speaks protocol versions up to {message.max_version!r}, "
                    f"this host speaks {PROTOCOL_VERSION!r}"
                )
                self.hellos_left = 0
        elif isinstance(message, Heartbeat):
            self.device_heartbeat = message
        elif isinstance(message, Status):
            self.device_status = message

    def hello_due(self, now: float) -> Hello | None:
        """The HELLO to send now, if the handshake is unanswered and one is due (counted as sent)."""
        if not self.hellos_left or now < self.next_hello:
            return None
        self.hellos_left -= 1
        self.next_hello = now + self.hello_interval_s
        self.stats.add("hellos_sent")
        return Hello(PROTOCOL_VERSION, PROTOCOL_VERSION, self.nonce)

    def heartbeat(self, now: float) -> Heartbeat:
        """The host's HEARTBEAT: its uptime and what it has read from the device."""
        c = self.stats.counters()
        return Heartbeat(int((now - self.t0) * 1000) & 0xFFFFFFFF, c["rx_packets"], c["rx_errors"])

    # -- what the host sends --------------------------------------------------------------------
    def frame(self, message) -> bytes:
        """``message`` as the next packet of this connection (sequence number, time), COBS-framed."""
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        t_us = int((self.clock() - self.t0) * 1e6)
        return frame(message.TYPE, seq, t_us, message.pack())
