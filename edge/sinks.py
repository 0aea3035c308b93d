"""Outputs of the runtime. A sink has open/write/close; a failing sink marks itself dead, reports
once, and the pipeline carries on with the others.

Besides a measurement per frame, the pipeline's output thread tells every sink the runtime's
state (`status(code, text)`): NO_SIGNAL when the capture device is lost and again at each
attempt to reopen it (at most a few seconds apart: proof that the source is being retried, not
stalled), RUNNING when frames come back. It calls `idle()` when no measurement has come for a
moment, so that a sink with a link to keep alive (the display's heartbeats and reconnection) is
driven even without frames.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from edge.errors import SinkError
from edge.frame import Measurement, Segmentation
from edge.measure.quality import names

RUNNING, NO_SIGNAL = "running", "no_signal"  # the runtime states a sink is told of


class Sink:
    """Base sink; `dead` holds the reason once it has failed."""

    name = "sink"
    dead: str | None = None

    def open(self) -> "Sink":
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

    def __init__(self):
        self._ms: list[Measurement] = []

    def add(self, m: Measurement) -> list[Measurement] | None:
        if m.band == 0 or (self._ms and self._ms[-1].seq != m.seq):
            self._ms = []
        self._ms.append(m)
        if m.band < m.bands - 1:
            return None
        out, self._ms = self._ms, []
        return out


def _num(v: float):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 4)


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

    def open(self) -> "LineFile":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
        except OSError as e:
            raise SinkError(f"cannot open {str(self.path)!r}: {e.strerror or e}") from e
        return self

    def write_line(self, text: str) -> None:
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
            raise SinkError(f"cannot write {str(self.path)!r}: {e.strerror or e}; it ends with its last whole line") from e

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class JsonLinesLog(Sink):
    """One JSON object per frame and band: time, band index (0 = the most superficial) and the
    frame's band count, thickness and spread, flags, latency, model hash, and whether the
    source is simulated (the built-in phantom: a reading of nobody)."""

    name = "log"

    def __init__(self, path: Path, model_sha256: str, simulated: bool = False):
        self.path, self.model_sha256, self.simulated = Path(path), model_sha256, bool(simulated)
        self._file = LineFile(self.path)

    def open(self):
        self._file.open()
        return self

    def write(self, m: Measurement, seg: Segmentation) -> None:
        record = {
            "seq": m.seq,
            "t_capture": round(m.t_capture, 6),
            "wall_time": round(time.time(), 3),
            "band": m.band,
            "bands": m.bands,
            "thickness": _num(m.thickness),
            "spread": _num(m.spread),
            "unit": m.unit,
            "flags": m.flags,
            "flag_names": names(m.flags),
            "columns": m.columns,
            "latency_ms": round(m.latency_s * 1000, 2),
            "model_sha256": self.model_sha256,
            "simulated": self.simulated,
            **{k: _num(v) if isinstance(v, float) else v for k, v in m.extra.items()},
        }
        self._file.write_line(json.dumps(record))

    def close(self):
        self._file.close()


class ConsoleStatus(Sink):
    """A one-line live status (fps, latency, thickness), redrawn at most `hz` times a second;
    it starts with SIMULATED when the source is the phantom scanner."""

    name = "console"

    def __init__(self, stream=sys.stdout, hz: float = 4.0, simulated: bool = False):
        self.stream, self.period = stream, 1.0 / hz
        self.prefix = "SIMULATED  " if simulated else ""
        self._last = 0.0
        self._count = 0
        self._t0 = None
        self._state = RUNNING
        self._bands = FrameBands()

    def write(self, m: Measurement, seg: Segmentation) -> None:
        frame = self._bands.add(m)
        if frame is None:
            return
        now = time.monotonic()
        self._t0 = self._t0 or now
        self._count += 1
        if now - self._last < self.period:
            return
        self._last = now
        fps = (self._count - 1) / (now - self._t0) if now > self._t0 else 0.0
        if len(frame) == 1:
            value = f"TLF {self._value(m)}"
        else:  # one value per band, superficial first
            value = "bands " + " | ".join(self._value(b, spread=False) for b in frame)
        flag_bits = 0
        for b in frame:
            flag_bits |= b.flags
        flags = ",".join(names(flag_bits)) or "ok"
        self.stream.write(f"\r{self.prefix}frame {m.seq:5d}  {fps:5.1f} fps  latency {m.latency_s * 1000:6.1f} ms  {value}  [{flags}]   ")
        self.stream.flush()

    @staticmethod
    def _value(m: Measurement, spread: bool = True) -> str:
        filtered = m.extra.get("filtered", m.thickness)
        half = (m.extra.get("high", math.nan) - m.extra.get("low", math.nan)) / 2
        value = "  --  " if math.isnan(filtered) else f"{filtered:5.2f} {m.unit}"
        if spread and not math.isnan(filtered) and not math.isnan(half):
            value += f" +-{half:.2f}"
        return value

    def status(self, code: str, text: str) -> None:
        if code == NO_SIGNAL and self._state != NO_SIGNAL:
            self.stream.write(f"\rNO SIGNAL: {text}\n")
            self.stream.flush()
            self._t0, self._count = None, 0  # the fps restarts with the signal
        self._state = code

    def close(self):
        if self._count:
            self.stream.write("\n")
            self.stream.flush()


SIMULATED_TEXT = "SIMULATED"  # the STATUS text a display shows under a reading of the phantom scanner


class DisplaySink(Sink):
    """Sends each measurement and the TLF band to the cart display over the serial bridge.

    With a simulated source the display is told so at once and after every reconnection: a
    STATUS running with the text SIMULATED, which the device shows under the reading."""

    name = "display"

    def __init__(self, url: str, model_id: int, baudrate: int = 115200, tlf_class: int = 1, simulated: bool = False):
        self.url, self.model_id, self.baudrate, self.tlf_class = url, model_id, baudrate, tlf_class
        self.simulated = bool(simulated)
        self.link = None
        self._status = None  # the last STATUS, sent again to a display that reconnects
        self._reconnects = 0
        self._bands = FrameBands()
        self.link_stats: dict | None = None  # the link's stats when it closed

    def claim(self) -> "DisplaySink":
        """Open the port now, before the run: SinkError (one line) if another program holds it,
        so that a second runtime is refused at start. Any other failure is left for open() to
        report, as a display that is not plugged in does not stop the measurement."""
        from firmware_bridge.errors import LinkError, PortBusy

        try:
            self.open()
        except PortBusy as e:
            raise SinkError(str(e)) from e
        except LinkError:
            self.link = None
        return self

    def open(self):
        from firmware_bridge.link import DisplayLink

        if self.link is not None:  # claimed already
            return self
        link = DisplayLink(self.url, baudrate=self.baudrate)
        link.open()
        self.link = link
        if self.simulated:
            self.status(RUNNING, "simulated source")
        return self

    def write(self, m: Measurement, seg: Segmentation) -> None:
        """Offer a frame to the display once its last band has come: a MEASUREMENT per band, then the mask."""
        from firmware_bridge.messages import Measurement as WireMeasurement

        frame = self._bands.add(m)
        if frame is None:
            return
        t_us = int(m.t_capture * 1e6) & 0xFFFFFFFF
        wire = [WireMeasurement(
            thickness=float(b.thickness),
            spread=float(b.spread),
            uncertainty=float(b.extra.get("uncertainty", float("nan"))),
            flags=int(b.flags),
            unit_mm=b.unit == "mm",
            model_id=self.model_id,
            t_capture_us=t_us,
            band=i,
            bands=len(frame),
        ) for i, b in enumerate(frame)]
        self.link.offer(wire, labels=seg.labels)
        self.link.pump(timeout=0)

    def status(self, code: str, text: str) -> None:
        from firmware_bridge.messages import Status, StatusCode

        wire = {RUNNING: StatusCode.RUNNING, NO_SIGNAL: StatusCode.NO_SIGNAL}[code]
        # Shown as is, short and plain; a plain "running" needs no words.
        label = "no signal" if code == NO_SIGNAL else (SIMULATED_TEXT if self.simulated else "")
        self._status = Status(wire, 0, label)
        self.link.offer_status(self._status)
        self.link.pump(timeout=0)

    def idle(self) -> None:
        reconnects = self.link.stats["reconnects"]
        if reconnects != self._reconnects and self._status is not None:
            self.link.offer_status(self._status)  # a display that came back learns the state again
        self._reconnects = reconnects
        self.link.pump(timeout=0)

    def close(self):
        if self.link is not None:
            try:
                self.link.pump(timeout=0.2)
            finally:
                self.link_stats = self.link.stats  # what was sent, dropped, reconnected: for reports
                self.link.close("runtime stopped, " + SIMULATED_TEXT if self.simulated else "runtime stopped")
