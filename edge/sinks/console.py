"""The live one-line status on the terminal."""

from __future__ import annotations

import math
import sys
import time

from edge.frame import Measurement, Segmentation
from edge.measure.quality import names
from edge.sinks.base import NO_SIGNAL, RUNNING, FrameBands, Sink


class ConsoleStatus(Sink):
    """A one-line live status (fps, latency, thickness), redrawn at most `hz` times a second;
    it starts with SIMULATED when the source is the phantom scanner."""

    name = "console"

    def __init__(self, stream=sys.stdout, hz: float = 4.0, simulated: bool = False):
        self.stream, self.period = stream, 1.0 / hz
        self.prefix = "SIMULATED  " if simulated else ""
        self._last = 0.0
        self._count = 0
        self._t0: float | None = None
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
        self.stream.write(
            f"\r{self.prefix}frame {m.seq:5d}  {fps:5.1f} fps  latency {m.latency_s * 1000:6.1f} ms  {value}  [{flags}]   "
        )
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
