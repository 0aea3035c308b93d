"""What the display link counts: one dataclass that the transport, the protocol and the writer
add to, from the pump's thread and the pipeline's, and read as one consistent snapshot."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field


@dataclass
class LinkStats:
    frames_offered: int = 0
    frames_sent: int = 0
    frames_replaced: int = 0  # offered frames a newer one replaced before they went out
    masks_sent: int = 0
    statuses_sent: int = 0
    heartbeats_sent: int = 0
    hellos_sent: int = 0
    bytes_sent: int = 0
    reconnects: int = 0
    disconnects: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rejects: int = 0
    mask_errors: int = 0
    listener_errors: int = 0
    latency_s: float | None = None  # offer to last byte off the wire, smoothed
    latency_max_s: float = 0.0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        """Count ``n`` more of ``name`` (one of the integer fields)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def error(self, text: str) -> None:
        with self._lock:
            self.last_error = text

    def latency(self, seconds: float) -> None:
        """One frame's latency: kept as a moving average (weight 0.1) and a maximum."""
        with self._lock:
            self.latency_s = seconds if self.latency_s is None else 0.9 * self.latency_s + 0.1 * seconds
            self.latency_max_s = max(self.latency_max_s, seconds)

    def counters(self) -> dict:
        """The integer counts, by name, as of one moment."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.type == "int"}
