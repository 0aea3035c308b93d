"""A serial port for the display output when benchmarking: a pseudo-terminal whose far end reads
and discards what arrives, as a display that only listens does.

The display output then costs what it costs on a cart (encoding the mask, writing to a tty),
without pyserial's loop:// (which queues every byte and hands the link its own packets back to
parse) or the display emulator (which decodes every frame on the cart's own cores).

    with DrainedPort() as port:       # port: the pty's path, e.g. /dev/pts/3
        DisplaySink(port, model_id)   # or `tlf-edge run --display PORT` in a child process
"""

from __future__ import annotations

import os
import select
import threading
import tty


class DrainedPort:
    """A pty (path in `path` once entered) whose master a thread of its own reads and discards;
    `bytes_read` counts what it took."""

    def __init__(self):
        self.path = ""
        self.bytes_read = 0
        self._master = self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> str:
        self._master, self._slave = os.openpty()  # the slave stays open here: the master never reads EIO
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._drain, name="display-drain", daemon=True)
        self._thread.start()
        return self.path

    def _drain(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if ready:
                try:
                    self.bytes_read += len(os.read(self._master, 1 << 16))
                except OSError:
                    return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for fd in (self._slave, self._master):
            os.close(fd)
        self._master = self._slave = -1
