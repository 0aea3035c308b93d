"""The display link's transport: one serial port, opened by URL, written without blocking, and
reopened after it is lost by a backoff policy. It knows bytes only; what they mean is the
protocol's (``firmware_bridge.protocol``).

    transport = SerialTransport("/dev/tlf-display", 921600, backoff=Backoff(0.1, 2.0, now))
    transport.open()                    # LinkError (one line, port named) if it cannot
    n = transport.write(data)           # what the port took now, 0 when its buffer is full
    transport.lost(error, now)          # a read or write failed: closed, next attempt scheduled
    transport.reconnect(now)            # True once the port is open again
"""

from __future__ import annotations

from typing import Any

from firmware_bridge.errors import BridgeError
from firmware_bridge.ports import open_port, out_waiting, read_available, write_some
from firmware_bridge.stats import LinkStats


class Backoff:
    """When to try again: ``first`` seconds after a failure, doubling with each failure in a row
    up to ``longest``; back to ``first`` once a connection is made. Times are passed in."""

    def __init__(self, first: float, longest: float, now: float = 0.0):
        self.first, self.longest = first, longest
        self.delay = first
        self.next_attempt = now

    def due(self, now: float) -> bool:
        return now >= self.next_attempt

    def failed(self, now: float) -> None:
        self.next_attempt = now + self.delay
        self.delay = min(self.delay * 2, self.longest)

    def succeeded(self) -> None:
        self.delay = self.first


class SerialTransport:
    """One port at a time for ``url``. ``opener(url, baudrate)`` replaces ``ports.open_port``
    (link models in tests and benchmarks); reconnections, disconnections and the last error
    are counted in ``stats``, time without the port in ``seconds_disconnected``."""

    def __init__(
        self, url: str, baudrate: int | None, *, backoff: Backoff, opener=None, stats: LinkStats | None = None
    ):
        self.url, self.baudrate = url, baudrate
        self.backoff = backoff
        self.opener = opener or open_port
        self.stats = stats if stats is not None else LinkStats()
        self.port: Any = None  # what the opener returned: a pyserial port or a link model
        self.closed = False
        self._down_since: float | None = None  # when the port was lost, while it is
        self._down_s = 0.0  # time without the port, outages that ended

    @property
    def connected(self) -> bool:
        return self.port is not None

    def open(self) -> bool:
        """Open the port if it is not open; True if it was opened now. LinkError if it cannot be."""
        if self.port is not None:
            return False
        self.port = self.opener(self.url, self.baudrate)
        self.closed = False
        self.backoff.succeeded()
        return True

    def reconnect(self, now: float) -> bool:
        """Try to open the lost port if the policy says it is time; True if it is open now.
        A failure is counted, not raised, and moves the next attempt further away."""
        if self.port is not None:
            return True
        if self.closed or not self.backoff.due(now):
            return False
        try:
            self.open()
        except BridgeError as e:
            self.stats.error(str(e))
            self.backoff.failed(now)
            return False
        self.stats.add("reconnects")
        if self._down_since is not None:
            self._down_s += now - self._down_since
            self._down_since = None
        return True

    def next_attempt(self, now: float) -> float:
        """When ``reconnect`` may next succeed (an hour away once closed on purpose)."""
        return now + 3600 if self.closed else self.backoff.next_attempt

    def read(self) -> bytes:
        """What the port has received, without waiting; LinkError if the port is gone."""
        return read_available(self.port)

    def write(self, data: bytes) -> int:
        """Hand ``data`` to the port without blocking; the number of bytes it took. LinkError if it is gone."""
        return write_some(self.port, data)

    def out_waiting(self) -> int | None:
        return out_waiting(self.port)

    def lost(self, error: Exception, now: float) -> None:
        """A read or write failed: close what is left of the port and schedule the next attempt."""
        port, self.port = self.port, None
        self.stats.add("disconnects")
        self._down_since = now
        self.stats.error(f"display port {self.url!r} lost: {error}")
        try:
            port.close()
        except Exception:  # the device is gone; closing may fail in many ways
            pass
        self.backoff.failed(now)

    def close(self, farewell: bytes = b"") -> None:
        """Write ``farewell`` (best effort) and close the port; no reconnection after this."""
        self.closed = True
        port, self.port = self.port, None
        if port is None:
            return
        if farewell:
            try:
                write_some(port, farewell)
            except BridgeError:
                pass
        try:
            port.close()
        except Exception:  # closing a port that already vanished may fail in many ways
            pass

    def seconds_disconnected(self, now: float) -> float:
        return self._down_s + (now - self._down_since if self._down_since is not None else 0.0)
