"""Tell systemd how the service is doing (the sd_notify protocol), with the standard library only.

systemd starts a Type=notify service with $NOTIFY_SOCKET naming an AF_UNIX datagram socket: a
path, or an abstract-namespace name written with a leading '@'. Each message is one datagram of
newline-separated KEY=VALUE lines: READY=1 (start-up done), WATCHDOG=1 (still alive),
STOPPING=1, STATUS=free text for `systemctl status`. With WatchdogSec= set, systemd also passes
$WATCHDOG_USEC (and $WATCHDOG_PID, the process meant): without a WATCHDOG=1 at least that often
the service is killed and, with Restart=on-failure, started again.

Outside systemd ($NOTIFY_SOCKET unset) every call does nothing and returns False, so the runtime
calls these unconditionally. A send never waits (a receiver with a full queue drops the message)
and never raises: it returns False.

`NotifySink` is how `tlf-edge run` uses this: the last of its sinks, written from the pipeline's
output thread, so READY=1 follows the first measurement that reached every output and WATCHDOG=1
pings stop as soon as measurements stop.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Mapping

from edge.frame import Measurement, Segmentation
from edge.measure.quality import names
from edge.sinks.base import Sink


def notify_address(env: Mapping[str, str] | None = None) -> str | None:
    """The socket address in $NOTIFY_SOCKET ('@name' becomes '\\0name'), or None when unusable."""
    value = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # unset, or a kind this module does not speak (e.g. vsock:)


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `state` ("READY=1", "WATCHDOG=1\\nSTATUS=...") to systemd; True if it was sent."""
    address = notify_address(env)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            # Never wait: a receiver with a full queue would block the thread that pings.
            s.sendto(state.encode("utf-8", "replace"), socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL, address)
        return True
    except OSError:  # no listener, a full queue (EAGAIN), a path too long...
        return False


def _status_line(text: str) -> str:
    return "STATUS=" + " ".join(str(text).split())  # one line: a newline would start a new field


def ready(status: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Start-up is done (READY=1), with an optional status text."""
    return notify("READY=1" + (f"\n{_status_line(status)}" if status else ""), env)


def watchdog(status: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Still alive (WATCHDOG=1), with an optional status text."""
    return notify("WATCHDOG=1" + (f"\n{_status_line(status)}" if status else ""), env)


def stopping(env: Mapping[str, str] | None = None) -> bool:
    """Shutting down (STOPPING=1)."""
    return notify("STOPPING=1", env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    """A one-line status for `systemctl status` (STATUS=...)."""
    return notify(_status_line(text), env)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds systemd waits for a WATCHDOG=1 ($WATCHDOG_USEC), or None when there is no watchdog
    for this process (unset, not a positive whole number, or $WATCHDOG_PID names another one)."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid.strip() != str(os.getpid())):
        return None
    return usec / 1e6


def describe(m: Measurement) -> str:
    """A short status text for one measurement: frame, thickness (filtered when the temporal
    filter has an estimate, else this frame's own), flags."""

    def finite(v) -> bool:
        return isinstance(v, (int, float)) and math.isfinite(v)

    filtered = m.extra.get("filtered")
    if finite(filtered):
        shown = f"{filtered:.2f} {m.unit}"
    elif finite(m.thickness):
        shown = f"{m.thickness:.2f} {m.unit} (unfiltered)"
    else:
        shown = "--"
    return f"measuring: frame {m.seq}, TLF {shown} [{','.join(names(m.flags)) or 'ok'}]"


class NotifySink(Sink):
    """READY=1 on the first measurement, then WATCHDOG=1 (with a STATUS line) while they flow.

    Put it last in the pipeline's sink list: it is written from the output thread after the other
    sinks, so a ping means a measurement went through every output, and a pipeline stalled
    anywhere (capture, inference, an output that blocks) stops the pings. Pings are sent at most
    every third of the watchdog interval (every `period` seconds without a watchdog, for the
    status text). `env` and `clock` are for tests. It never raises: the pipeline drops a sink
    that raises, and with this one the pings would go while the measurements go on.
    """

    name = "systemd"

    def __init__(
        self, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic, period: float = 5.0
    ):
        self.env = dict(os.environ if env is None else env)
        interval = watchdog_interval(self.env)
        self.period = interval / 3 if interval else period
        self.clock = clock
        self.is_ready = False
        self.pings = 0
        self._last = -math.inf

    @property
    def enabled(self) -> bool:
        return notify_address(self.env) is not None

    def status(self, code: str, text: str) -> None:
        """A capture outage is not a hang: each NO_SIGNAL the capture thread posts while it retries
        (at most a backoff period apart) reached the output thread, so it keeps the watchdog fed."""
        from edge.sinks.base import NO_SIGNAL

        if not (self.enabled and self.is_ready and code == NO_SIGNAL):
            return
        now = self.clock()
        if now - self._last >= self.period:
            try:
                if watchdog(f"no signal: {text}", self.env):
                    self.pings += 1
            except Exception:  # noqa: BLE001 - a status text must not kill the output thread
                pass
            self._last = now

    def write(self, m: Measurement, seg: Segmentation) -> None:
        if not self.enabled:
            return
        now = self.clock()
        try:
            if not self.is_ready:
                self.is_ready = ready(describe(m), self.env)
                self._last = now
            elif now - self._last >= self.period:
                if watchdog(describe(m), self.env):
                    self.pings += 1
                self._last = now
        except Exception:  # noqa: BLE001 - describe() on an odd measurement must not kill the output thread
            pass
