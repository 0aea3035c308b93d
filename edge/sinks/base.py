"""The sink interface and what sinks share. A sink has open/write/close; a failing sink marks itself dead, reports
once, and the pipeline carries on with the others.

Besides a measurement per frame, the pipeline's output thread tells every sink the runtime's
state (`status(code, text)`): NO_SIGNAL when the capture device is lost and again at each
attempt to reopen it (at most a few seconds apart: proof that the source is being retried, not
stalled), RUNNING when frames come back. It calls `idle()` when no measurement has come for a
moment, so that a sink with a link to keep alive (the display's heartbeats and reconnection) is
driven even without frames.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge.errors import SinkError
from edge.frame import Measurement, Segmentation

RUNNING, NO_SIGNAL = "running", "no_signal"  # the runtime states a sink is told of


class Sink:
    """Base sink; `dead` holds the reason once it has failed."""

    name = "sink"
    dead: str | None = None

    def open(self) -> Sink:
        return self

    def write(self, measurement: Measurement, segmentation: Segmentation) -> None:
        pass

    def status(self, code: str, text: str) -> None:
        """The runtime's state: `code` is RUNNING (frames are back) or NO_SIGNAL (at the loss
        and at each reopen attempt after it); `text` says why."""

    def idle(self) -> None:
        """No measurement for a while (no signal, slow source): keep links alive."""

    def close(self) -> None:
        pass


class FrameBands:
    """Collects one frame's band measurements as they reach a sink one by one (band 0 first, all
    of one seq); `add` returns the whole frame's list with its last band, else None. A sink that
    draws or sends per frame (display, recording, console) uses it; a log writes every band."""

    def __init__(self) -> None:
        self._ms: list[Measurement] = []

    def add(self, m: Measurement) -> list[Measurement] | None:
        if m.band == 0 or (self._ms and self._ms[-1].seq != m.seq):
            self._ms = []
        self._ms.append(m)
        if m.band < m.bands - 1:
            return None
        out, self._ms = self._ms, []
        return out


class LineFile:
    """A log file appended to one whole line at a time.

    A line the disk cannot take whole (full, or gone) is cut back off the file before the error
    is raised, so the file always ends with a complete line; SinkError names the file and the
    cause. One write per line: a crash loses at most the line being written.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None
        self._size = 0

    def open(self) -> LineFile:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
        except OSError as e:
            raise SinkError(f"cannot open {str(self.path)!r}: {e.strerror or e}") from e
        return self

    def write_line(self, text: str) -> None:
        assert self._fd is not None, f"{self.path} written before open()"  # the sinks open it first
        data = memoryview((text + "\n").encode("utf-8"))
        try:
            while data:
                n = os.write(self._fd, data)
                data = data[n:]
                self._size += n
        except OSError as e:
            whole = self._size - (len(text.encode("utf-8")) + 1 - len(data))
            try:
                os.ftruncate(self._fd, whole)
                self._size = whole
            except OSError:
                pass
            raise SinkError(
                f"cannot write {str(self.path)!r}: {e.strerror or e}; it ends with its last whole line"
            ) from e

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
