"""A display emulator on a pseudo-terminal, so the runtime can be pointed at it like real hardware.

    emu = DisplayEmulator(width=320, height=240).start()
    link = DisplayLink(emu.port)          # or the stable path given as link_path=
    ...
    emu.wait_frames(10, timeout=2)
    emu.render_png("display.png")
    emu.stop()

The emulator stands in for the microcontroller, so unlike the host side it owns a reader
thread: it reads the pty master, runs the reference device (``device.DisplayDevice``), answers
HELLO with DEVICE_INFO and sends a HEARTBEAT every second, as firmware would.

``link_path`` (a stable name, like /dev/serial/by-id/...) is made as a new symlink to the pty and
removed at ``stop()`` only while it is still that symlink. The emulator never replaces or removes
anything it did not make: an existing path is refused, except a dangling symlink into /dev/pts/
(what an emulator that was killed leaves behind).
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
import threading
import time
import tty
from pathlib import Path

from firmware_bridge.device import DisplayDevice, DisplayState
from firmware_bridge.errors import LinkError
from firmware_bridge.messages import ALL_ENCODINGS
from firmware_bridge.render import render_png


class DisplayEmulator:
    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        *,
        link_path: str | os.PathLike | None = None,
        encodings: int = ALL_ENCODINGS,
        max_payload: int = 0xFFFF,
        max_rate_hz: int = 120,
        heartbeat_s: float = 1.0,
    ):
        self._device = DisplayDevice(
            width, height, encodings=encodings, max_payload=max_payload, max_rate_hz=max_rate_hz
        )
        self.link_path = None if link_path is None else Path(link_path)
        self.heartbeat_s = heartbeat_s
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1  # the pty's descriptors, from start()
        self._wake_r = self._wake_w = -1
        self._stopping = False
        self._last_data = time.monotonic()
        self._busy = False
        self.port: str | None = None
        self.bytes_received = 0

    # -- lifecycle
    def start(self) -> DisplayEmulator:
        try:
            self._master, self._slave = os.openpty()
        except OSError as e:
            raise LinkError(f"cannot open a pseudo-terminal for the display emulator: {e}") from e
        tty.setraw(self._slave)  # no echo or line editing before the host configures the port
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        if self.link_path is not None:
            try:
                self._make_link()
            except LinkError:
                for fd in (self._master, self._slave):
                    os.close(fd)
                raise
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="display-emulator", daemon=True)
        self._thread.start()
        return self

    def _make_link(self) -> None:
        path, port = self.link_path, self.port
        assert path is not None and port is not None  # start() calls this with a link path, the pty open
        if _stale_pty_link(path):
            path.unlink()
        try:
            os.symlink(port, path)  # fails, touching nothing, if anything is at `path`
        except FileExistsError:
            raise LinkError(
                f"link path {str(path)!r} already exists and is not a stale emulator link: "
                "refusing to replace it (name a new path)"
            ) from None
        except OSError as e:
            raise LinkError(f"cannot make the link {str(path)!r}: {e.strerror or e}") from e

    def stop(self) -> None:
        """Stop the reader and close the pty: to the host the port disappears, like a USB unplug."""
        if self._thread is None:
            return
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        # The link goes while the pty is still ours: closed first, its /dev/pts number could be
        # taken by another emulator making the same link, whose link this one would then remove.
        if self.link_path is not None and self.link_path.is_symlink() and os.readlink(self.link_path) == self.port:
            self.link_path.unlink()
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._thread = None
        with self._cond:
            self._cond.notify_all()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- what the display shows
    @property
    def state(self) -> DisplayState:
        """A snapshot of the display state (last measurement, mask, status, counters)."""
        with self._cond:
            return self._device.state.copy()

    @property
    def frames_received(self) -> int:
        return self._device.state.frames_received

    @property
    def crc_errors(self) -> int:
        return self._device.state.counters["crc"]

    @property
    def counters(self) -> dict:
        with self._cond:
            return dict(self._device.state.counters)

    def render_png(self, path) -> Path:
        return render_png(self.state, path)

    # -- waiting (for tests and tools; no sleeping)
    def wait_for(self, predicate, timeout: float) -> bool:
        """Wait until ``predicate(state)`` holds; False if ``timeout`` passes first."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._device.state), timeout)

    def wait_frames(self, n: int, timeout: float) -> bool:
        return self.wait_for(lambda s: s.frames_received >= n, timeout)

    def wait_idle(self, timeout: float = 2.0, quiet: float = 0.05) -> bool:
        """Wait until everything the host wrote has been read and nothing new came for ``quiet`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                if self._thread is None or (not self._busy and self._unread() == 0 and now - self._last_data >= quiet):
                    return True
                if now >= deadline:
                    return False
                self._cond.wait(min(deadline - now, quiet))

    def _unread(self) -> int:
        try:
            return struct.unpack("i", fcntl.ioctl(self._master, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return 0

    # -- the reader thread
    def _run(self) -> None:
        next_beat = time.monotonic() + self.heartbeat_s
        while not self._stopping:
            wait = max(0.0, min(next_beat - time.monotonic(), 0.05))
            try:
                ready, _, _ = select.select([self._master, self._wake_r], [], [], wait)
            except (OSError, ValueError):
                break
            if self._stopping:
                break
            if self._master in ready:
                try:
                    data = os.read(self._master, 65536)
                except BlockingIOError:
                    data = b""
                except OSError:
                    break
                if data:
                    with self._cond:
                        self._busy = True
                        self.bytes_received += len(data)
                        self._device.feed(data)
                        replies = self._device.take_replies()
                        self._last_data = time.monotonic()
                        self._busy = False
                        self._cond.notify_all()
                    self._send(replies)
            else:
                with self._cond:
                    self._cond.notify_all()
            if time.monotonic() >= next_beat:
                with self._cond:
                    beat = self._device.heartbeat()
                self._send(beat)
                next_beat = time.monotonic() + self.heartbeat_s

    def _send(self, data: bytes) -> None:
        if not data:
            return
        try:
            os.write(self._master, data)
        except OSError:
            pass  # the host is not reading: a device drops its replies rather than block


def _stale_pty_link(path: Path) -> bool:
    """A symlink to a pseudo-terminal that no longer exists: left by an emulator that was killed."""
    if not path.is_symlink():
        return False
    target = os.readlink(path)
    return target.startswith("/dev/pts/") and not os.path.exists(target)
