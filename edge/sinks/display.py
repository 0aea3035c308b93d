"""The cart display over the serial bridge (firmware_bridge)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.errors import SinkError
from edge.frame import Measurement, Segmentation
from edge.sinks.base import NO_SIGNAL, RUNNING, FrameBands, Sink

if TYPE_CHECKING:
    from firmware_bridge.link import DisplayLink
    from firmware_bridge.messages import Status

SIMULATED_TEXT = "SIMULATED"  # the STATUS text a display shows under a reading of the phantom scanner


class DisplaySink(Sink):
    """Sends each measurement and the TLF band to the cart display over the serial bridge.

    With a simulated source the display is told so at once and after every reconnection: a
    STATUS running with the text SIMULATED, which the device shows under the reading."""

    name = "display"

    def __init__(self, url: str, model_id: int, baudrate: int = 115200, tlf_class: int = 1, simulated: bool = False):
        self.url, self.model_id, self.baudrate, self.tlf_class = url, model_id, baudrate, tlf_class
        self.simulated = bool(simulated)
        self.link: DisplayLink | None = None
        self._status: Status | None = None  # the last STATUS, sent again to a display that reconnects
        self._reconnects = 0
        self._bands = FrameBands()
        self.link_stats: dict | None = None  # the link's stats when it closed

    def claim(self) -> DisplaySink:
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
        wire = [
            WireMeasurement(
                thickness=float(b.thickness),
                spread=float(b.spread),
                uncertainty=float(b.extra.get("uncertainty", float("nan"))),
                flags=int(b.flags),
                unit_mm=b.unit == "mm",
                model_id=self.model_id,
                t_capture_us=t_us,
                band=i,
                bands=len(frame),
            )
            for i, b in enumerate(frame)
        ]
        assert self.link is not None  # the pipeline writes only to a sink that opened
        self.link.offer(wire, labels=seg.labels)
        self.link.pump(timeout=0)

    def status(self, code: str, text: str) -> None:
        from firmware_bridge.messages import Status, StatusCode

        wire = {RUNNING: StatusCode.RUNNING, NO_SIGNAL: StatusCode.NO_SIGNAL}[code]
        # Shown as is, short and plain; a plain "running" needs no words.
        label = "no signal" if code == NO_SIGNAL else (SIMULATED_TEXT if self.simulated else "")
        self._status = Status(wire, 0, label)
        assert self.link is not None  # called by open() once the link is there, then by the pipeline
        self.link.offer_status(self._status)
        self.link.pump(timeout=0)

    def idle(self) -> None:
        assert self.link is not None  # the pipeline keeps only a sink that opened
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
