"""How fast the host may write, which mask encoding fits, and the keep-newest slots the
pipeline offers into: logic without I/O, times passed in.

``LinkBudget`` models the bytes still on their way down the wire (handed to the port but not yet
transmitted) from the link rate: the baud rate / 10 for 8N1, lowered to the rate measured when
the port pushes back (a full OS buffer, or an OS output queue that drains slower than the baud
rate says). The writer starts a new frame only while that backlog is under one frame period, so
a frame never waits behind more than the one before it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from firmware_bridge.errors import MaskError, ProtocolError
from firmware_bridge.masks import boundaries_from_labels, encode_mask, labels_for_display
from firmware_bridge.messages import BOUNDARY_ENCODINGS, LABEL_ENCODINGS, DeviceInfo, Encoding, Mask, Measurement
from firmware_bridge.stats import LinkStats

HEADROOM = 0.9  # share of the link rate planned for frames; the rest absorbs heartbeats and jitter
LABEL_SWITCH = 0.8  # a label map must fit in this share of the budget before the writer switches to it
UNKNOWN_RATE_BPS = 1_000_000.0  # assumed for a port with no baud rate until push-back is measured
MEASUREMENT_WIRE = 43  # bytes of a MEASUREMENT frame on the wire (27-byte payload)


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


class MaskEncoder:
    """The MASK for a frame's label map: every encoding the device (or the forced choice)
    allows, the smallest that fits the frame's byte budget chosen by an ``EncodingChooser``.
    Without a handshake the display is ``width`` x ``height`` and gets boundaries only, as the
    protocol says."""

    def __init__(self, width: int, height: int, tlf_class: int = 1, forced: Encoding | None = None):
        self.width, self.height, self.tlf_class, self.forced = width, height, tlf_class, forced
        self.chooser = EncodingChooser()
        self.encoding: Encoding | None = None  # of the last mask made

    def display(self, device: DeviceInfo | None) -> tuple[int, int]:
        return (device.width, device.height) if device is not None else (self.width, self.height)

    def allowed(self, device: DeviceInfo | None) -> tuple[Encoding, ...]:
        if self.forced is not None:
            if device is not None and not device.supports(self.forced):
                raise MaskError(f"the device does not support the {self.forced.name!r} encoding")
            return (self.forced,)
        if device is None:
            return BOUNDARY_ENCODINGS
        return tuple(e for e in BOUNDARY_ENCODINGS + LABEL_ENCODINGS if device.supports(e))

    def encode(
        self, labels, measurements: tuple[Measurement, ...], device: DeviceInfo | None, rate_bps: float, fps: float
    ) -> Mask | None:
        """The MASK to send after ``measurements``, None if no encoding can carry it; MaskError
        or ProtocolError for a label map that cannot be encoded."""
        w, h = self.display(device)
        labels = np.asarray(labels)
        allowed = self.allowed(device)
        candidates: dict[Encoding, bytes] = {}
        budget = frame_budget(rate_bps, fps, MEASUREMENT_WIRE * len(measurements))
        if any(e in allowed for e in BOUNDARY_ENCODINGS):
            top, bottom = boundaries_from_labels(labels, self.tlf_class, w, h, first_run=len(measurements) > 1)
            for e in BOUNDARY_ENCODINGS:
                if e in allowed:
                    candidates[e] = encode_mask(e, top=top, bottom=bottom, height=h)
        if any(e in allowed for e in LABEL_ENCODINGS):
            small = labels_for_display(labels, w, h)
            for e in LABEL_ENCODINGS:
                if e in allowed:
                    candidates[e] = encode_mask(e, labels=small, height=h)
        limit = device.max_payload if device is not None else 0xFFFF
        sizes = {e: mask_wire_size(len(d)) for e, d in candidates.items() if 9 + len(d) <= limit}
        enc = self.chooser.choose(sizes, budget)
        if enc is None:
            return None
        self.encoding = enc
        return Mask(measurements[0].t_capture_us, w, h, enc, candidates[enc])


def mask_wire_size(data_len: int) -> int:
    """Bytes on the wire of a MASK frame with ``data_len`` bytes of mask data (header, COBS, delimiters)."""
    n = 14 + 9 + data_len
    return n + n // 254 + 2


@dataclass
class PendingFrame:
    measurements: tuple[Measurement, ...]  # the frame's bands, superficial first
    labels: np.ndarray | None
    t_offer: float

    @classmethod
    def of(cls, measurement, labels, now: float) -> PendingFrame:
        """A frame from one Measurement or one frame's band measurements; ProtocolError otherwise."""
        bands = (
            (measurement,)
            if isinstance(measurement, Measurement)
            else tuple(measurement)
            if isinstance(measurement, (list, tuple))
            else None
        )
        if not bands or not all(isinstance(m, Measurement) for m in bands):
            raise ProtocolError(
                f"offer() takes a firmware_bridge Measurement or a list of them, got {type(measurement).__name__!r}"
            )
        if len(bands) > 1 and (
            [m.band for m in bands] != list(range(len(bands)))
            or any(m.bands != len(bands) or m.t_capture_us != bands[0].t_capture_us for m in bands)
        ):
            raise ProtocolError("a frame's band measurements must be bands 0..n-1 of n, of one t_capture_us")
        return cls(bands, labels, now)


class KeepNewest:
    """A slot of one, safe between threads: ``put`` replaces what was not taken yet."""

    def __init__(self):
        self._lock = threading.Lock()
        self._item = None

    def put(self, item) -> bool:
        """Store ``item``; True if it replaced one."""
        with self._lock:
            replaced, self._item = self._item is not None, item
        return replaced

    def take(self):
        """The stored item (None if empty), leaving the slot empty."""
        with self._lock:
            item, self._item = self._item, None
        return item

    def put_back(self, item) -> bool:
        """Store ``item`` again unless a newer one came meanwhile; True if it was stored."""
        with self._lock:
            if self._item is not None:
                return False
            self._item = item
        return True

    @property
    def full(self) -> bool:
        with self._lock:
            return self._item is not None


class Pacer:
    """What the writer may start now: frames are kept newest-first in ``frames`` (a STATUS in
    ``statuses``); a frame starts while the wire's backlog (``budget``) is under one frame period
    and the rate cap (the device's or ``max_rate``, a bucket of two frames) allows; a HEARTBEAT
    is due after ``heartbeat_s`` without sending. Times are passed in."""

    def __init__(
        self,
        nominal_bps: float | None,
        now: float,
        *,
        max_rate: float | None = None,
        heartbeat_s: float = 1.0,
        stats: LinkStats | None = None,
    ):
        self.nominal_bps, self.max_rate, self.heartbeat_s = nominal_bps, max_rate, heartbeat_s
        self.stats = stats if stats is not None else LinkStats()
        self.frames = KeepNewest()
        self.statuses = KeepNewest()
        self.budget = LinkBudget(nominal_bps, now)
        self.offers = RateEstimate()
        self.sends = RateEstimate()
        self.last_tx = now
        self._offer_lock = threading.Lock()
        self._tokens = 2.0
        self._token_time = now

    def offer(self, item: PendingFrame) -> None:
        with self._offer_lock:
            if self.frames.put(item):
                self.stats.add("frames_replaced")
            self.stats.add("frames_offered")
            self.offers.tick(item.t_offer)

    def reset(self, now: float) -> None:
        """A new connection: nothing of the old one is on the wire."""
        self.budget = LinkBudget(self.nominal_bps, now)

    def cap(self, device: DeviceInfo | None) -> float | None:
        """Frames per second allowed by the device and ``max_rate``, None for no cap."""
        caps = [r for r in (self.max_rate, device.max_rate_hz if device else None) if r]
        return min(caps) if caps else None

    def target_fps(self, device: DeviceInfo | None) -> float:
        offered = self.offers.hz or 30.0
        cap = self.cap(device)
        return min(offered, cap) if cap else offered

    def window(self, now: float, fps: float) -> tuple[bool, float]:
        """(whether a frame may start now, the time by which one may next be due).

        A new frame may queue behind at most one frame period of earlier bytes: the target
        period, or the last gap between offers when that is shorter (the rate just rose)."""
        period = min(1.0 / fps, self.offers.last_interval or 0.0)
        backlog = self.budget.backlog_s(now)
        next_due = now + (backlog - period) if backlog > period else now + 1.0 / fps
        return backlog <= period, next_due

    def token_ready(self, now: float, device: DeviceInfo | None) -> bool:
        cap = self.cap(device)
        if cap is None:
            return True
        self._tokens = min(2.0, self._tokens + (now - self._token_time) * cap)
        self._token_time = now
        return self._tokens >= 1.0

    def spend_token(self) -> None:
        self._tokens -= 1.0

    def token_due(self, now: float, device: DeviceInfo | None) -> float:
        """When the rate cap next allows a frame (after ``token_ready`` said no)."""
        cap = self.cap(device)
        assert cap is not None  # token_ready refuses a frame only under a rate cap
        return now + (1.0 - self._tokens) / cap

    def heartbeat_due(self, now: float) -> bool:
        return now - self.last_tx >= self.heartbeat_s

    def sent(self, now: float, frame: bool) -> None:
        """A burst was handed to the port at ``now``; ``frame``: it carries an offered frame."""
        self.last_tx = now
        if frame:
            self.stats.add("frames_sent")
            self.sends.tick(now)
