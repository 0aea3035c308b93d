"""How fast the host may write and which mask encoding fits: pure logic, times passed in.

``LinkBudget`` models the bytes still on their way down the wire (handed to the port but not yet
transmitted) from the link rate: the baud rate / 10 for 8N1, lowered to the rate measured when
the port pushes back (a full OS buffer, or an OS output queue that drains slower than the baud
rate says). The writer starts a new frame only while that backlog is under one frame period, so
a frame never waits behind more than the one before it.
"""

from __future__ import annotations

import math

from firmware_bridge.messages import BOUNDARY_ENCODINGS, LABEL_ENCODINGS, Encoding

HEADROOM = 0.9  # share of the link rate planned for frames; the rest absorbs heartbeats and jitter
LABEL_SWITCH = 0.8  # a label map must fit in this share of the budget before the writer switches to it
UNKNOWN_RATE_BPS = 1_000_000.0  # assumed for a port with no baud rate until push-back is measured


class LinkBudget:
    def __init__(self, nominal_bps: float | None, now: float):
        self.nominal = float(nominal_bps) if nominal_bps else None
        self.measured: float | None = None
        self.wire_free_at = now
        self._last = now
        self._queue: int | None = None
        self._handed = 0
        self._pushed_back = False

    @property
    def rate(self) -> float:
        """Bytes per second the link is believed to carry."""
        base = self.nominal if self.nominal is not None else UNKNOWN_RATE_BPS
        return min(base, self.measured) if self.measured is not None else base

    def sent(self, n: int, now: float) -> None:
        """``n`` bytes were handed to the port at ``now``."""
        if n > 0:
            self.wire_free_at = max(now, self.wire_free_at) + n / self.rate
            self._handed += n

    def backlog_s(self, now: float) -> float:
        model = max(0.0, self.wire_free_at - now)
        if self._queue:
            model = max(model, self._queue / self.rate)
        return model

    def observe(self, now: float, os_queue: int | None, pushed_back: bool) -> None:
        """Update the measured rate from one pass: the OS output queue (None if unknown) and
        whether the port refused part of a write."""
        dt = now - self._last
        if dt < 0.002:
            if pushed_back:
                self._pushed_back = True
            return
        sample = None
        if os_queue is not None and self._queue and os_queue > 0:
            drained = self._queue + self._handed - os_queue  # the queue never emptied: it drained at link rate
            sample = max(drained, 0) / dt
        elif self._pushed_back and pushed_back:
            sample = self._handed / dt  # a full buffer accepts what the link drains
        if sample is not None and sample > 0:
            self.measured = sample if self.measured is None else 0.7 * self.measured + 0.3 * sample
        elif self.measured is not None:
            self.measured *= math.exp(0.2 * dt)  # no push-back: let the estimate recover
            base = self.nominal if self.nominal is not None else UNKNOWN_RATE_BPS
            if self.measured >= base:
                self.measured = None
        self._queue = os_queue
        self._handed = 0
        self._pushed_back = pushed_back
        self._last = now


class RateEstimate:
    """Exponentially weighted events per second from their arrival times."""

    def __init__(self, alpha: float = 0.2):
        self.alpha = alpha
        self._last: float | None = None
        self._interval: float | None = None

        self.last_interval: float | None = None

    def tick(self, now: float) -> None:
        if self._last is not None:
            dt = max(now - self._last, 1e-4)
            self._interval = dt if self._interval is None else (1 - self.alpha) * self._interval + self.alpha * dt
            self.last_interval = dt
        self._last = now

    @property
    def hz(self) -> float | None:
        return None if self._interval is None else 1.0 / self._interval


def frame_budget(rate_bps: float, fps: float, fixed_bytes: int) -> float:
    """Bytes left for a mask per frame at ``fps`` after ``fixed_bytes`` (the measurement)."""
    return rate_bps * HEADROOM / max(fps, 1e-3) - fixed_bytes


def choose_encoding(sizes: dict, budget: float, previous: Encoding | None = None) -> Encoding | None:
    """The richest encoding that fits ``budget`` bytes, from the candidates' wire sizes.

    A label map (the smaller of RLE and LABELS2) if it fits (within LABEL_SWITCH of the budget when
    switching from boundaries, to avoid flapping), else the smaller boundary encoding even when it
    does not fit (the frame rate then drops instead). None if there is no candidate.
    """
    labels = {e: n for e, n in sizes.items() if e in LABEL_ENCODINGS}
    bounds = {e: n for e, n in sizes.items() if e in BOUNDARY_ENCODINGS}
    if labels:
        best = min(labels, key=lambda e: (labels[e], e))
        limit = budget if previous in LABEL_ENCODINGS else budget * LABEL_SWITCH
        if labels[best] <= limit or not bounds:
            return best
    if bounds:
        return min(bounds, key=lambda e: (bounds[e], e))
    return None


class EncodingChooser:
    """``choose_encoding`` with memory: moving up from boundaries to a label map takes
    ``patience`` frames in a row that allow it, moving down happens at once. The display then
    does not flicker between a band and a label map when the budget hovers near the limit."""

    def __init__(self, patience: int = 15):
        self.patience = patience
        self.current: Encoding | None = None
        self._streak = 0

    def choose(self, sizes: dict, budget: float) -> Encoding | None:
        want = choose_encoding(sizes, budget, self.current)
        upgrade = want in LABEL_ENCODINGS and self.current not in LABEL_ENCODINGS and self.current is not None
        if upgrade:
            self._streak += 1
            if self._streak < self.patience:
                bounds = {e: n for e, n in sizes.items() if e in BOUNDARY_ENCODINGS}
                if bounds:
                    return min(bounds, key=lambda e: (bounds[e], e))
        self._streak = 0
        self.current = want
        return want
