"""Opening display ports by URL, finding USB devices by VID:PID, and writing without blocking.

Every port is opened with ``serial.serial_for_url``, so ``loop://``, ``spy://``, ``socket://``
and ``hwgrep://`` work as well as a device path. A device port is opened with an exclusive lock
(pyserial's ``exclusive``: flock), so a second program that tries to drive the same display
gets ``PortBusy`` instead of interleaving its stream with the first one's; a monitor that only
listens opens without it. A stable path such as
``/dev/serial/by-id/usb-...`` survives USB re-enumeration by itself; ``usb:VID:PID[:SERIAL]``
is looked up in ``serial.tools.list_ports`` each time the port is (re)opened.
"""

from __future__ import annotations

import errno
import os
import re
import select
from typing import Any

import serial
import serial.tools.list_ports

from firmware_bridge.errors import ConfigError, LinkError, PortBusy

# Serial speeds a UART or a USB serial chip can be set to (300 baud to 12 Mbaud, FTDI's fastest).
BAUD_RANGE = (300, 12_000_000)
_USB = re.compile(r"^usb:([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4})(?::(.+))?$")


def resolve_port(url: str) -> str:
    """The URL or device path to open for ``url``; ``usb:VID:PID[:SERIAL]`` becomes the matching device."""
    m = _USB.match(url)
    if not m:
        return url
    vid, pid, serial_number = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
    found = sorted(
        p.device
        for p in serial.tools.list_ports.comports()
        if p.vid == vid and p.pid == pid and (serial_number is None or p.serial_number == serial_number)
    )
    if not found:
        raise LinkError(f"no serial port with USB id {url!r} is connected")
    if len(found) > 1:
        raise LinkError(f"USB id {url!r} matches several ports {found!r}; add the serial number: usb:VID:PID:SERIAL")
    return found[0]


def check_baudrate(baudrate) -> int:
    """``baudrate`` if it is a whole number in BAUD_RANGE; ConfigError naming it otherwise."""
    lo, hi = BAUD_RANGE
    if isinstance(baudrate, bool) or not isinstance(baudrate, int) or not lo <= baudrate <= hi:
        raise ConfigError(f"baudrate must be a whole number from {lo} to {hi}, got {baudrate!r}")
    return baudrate


def open_port(url: str, baudrate: int | None, exclusive: bool = True):
    """An open pyserial port for ``url`` with non-blocking reads; LinkError naming the port if it
    fails, PortBusy if another program holds its lock. exclusive=False: do not take the lock.
    baudrate None: a port whose rate no baud setting decides (USB CDC, a pty) keeps pyserial's default."""
    target = resolve_port(url)
    speed: dict[str, Any] = {} if baudrate is None else {"baudrate": baudrate}
    try:
        port = serial.serial_for_url(target, **speed, timeout=0, do_not_open=True, exclusive=exclusive or None)
        port.open()
    except serial.SerialException as e:
        if getattr(e, "errno", None) in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise PortBusy(f"display port {url!r} is in use by another program (is another tlf-edge running?)") from e
        raise LinkError(f"cannot open display port {url!r}: {e}") from e
    except (OSError, ValueError, OverflowError) as e:
        raise LinkError(f"cannot open display port {url!r}: {e}") from e
    fd = _fd(port)
    if fd is not None:
        os.set_blocking(fd, False)
    return port


def lock_holder(path: str) -> tuple[int, str] | None:
    """(pid, command line) of the process holding the flock on the device at `path`, from
    /proc/locks (Linux); None when it cannot be told (no lock, another system, no permission)."""
    try:
        st = os.stat(path)
        wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted and fields[4].isdigit():
                    pid = int(fields[4])
                    with open(f"/proc/{pid}/cmdline", "rb") as c:
                        cmd = c.read().replace(b"\0", b" ").decode(errors="replace").strip()
                    return pid, cmd
    except (OSError, ValueError):
        return None
    return None


def _fd(port):
    """The file descriptor of a plain device port; None for URL handlers (loop://, spy://, ...),
    which are written through their own methods so that they keep working as designed."""
    if type(port).__module__ != "serial.serialposix":
        return None
    try:
        fd = port.fileno()
    except (AttributeError, NotImplementedError, serial.SerialException, OSError, ValueError):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def write_some(port, data: bytes) -> int:
    """Write what the port accepts now and return how many bytes that was; never blocks on a
    device port (the OS write buffer being full returns 0). Raises LinkError if the port is gone."""
    fd = _fd(port)
    try:
        if fd is not None:
            try:
                return os.write(fd, data)
            except BlockingIOError:
                return 0
            except InterruptedError:
                return 0
        n = port.write(data)
        return len(data) if n is None else n
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            return 0
        raise LinkError(f"display port write failed: {e}") from e
    except serial.SerialException as e:
        raise LinkError(f"display port write failed: {e}") from e


def read_available(port) -> bytes:
    """Whatever the port has received, without waiting; LinkError if the port is gone."""
    try:
        fd = _fd(port)
        if fd is not None:
            # A tty in raw mode reads b"" both when idle and after a hang-up; poll tells them apart.
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
            events = poller.poll(0)
            if not events:
                return b""
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return b""
            if not data:  # readable but empty: the device hung up
                raise LinkError("display port hung up (device disconnected)")
            return data
        n = port.in_waiting
        return port.read(n) if n else b""
    except (OSError, serial.SerialException) as e:
        raise LinkError(f"display port read failed: {e}") from e


def out_waiting(port) -> int | None:
    """Bytes still in the OS output buffer, if the port can tell (0 on a pty, so not conclusive)."""
    if _fd(port) is None:
        return None
    try:
        return int(port.out_waiting)
    except (OSError, serial.SerialException, AttributeError, NotImplementedError):
        return None
