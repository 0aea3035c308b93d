"""``tlf-bridge monitor PORT``: decode a live display line and print it, for firmware engineers.

Attach it where the display would be (or to a second adapter listening on the line); it never
writes to the port. One line per packet or dropped frame, and a summary line every second.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from firmware_bridge.device import DisplayDevice, Dropped, Ignored, Received, describe
from firmware_bridge.errors import LinkError
from firmware_bridge.masks import NO_BAND
from firmware_bridge.messages import Encoding, Mask
from firmware_bridge.ports import check_baudrate, open_port


def summarize_event(event, full: bool = False) -> list[str]:
    """Monitor lines for one event: the canonical text, with masks summarised unless ``full``."""
    if isinstance(event, Ignored) and event.message is not None:
        h = event.header
        return [f"{type(event.message).__name__.upper()} seq={h.seq} {_fields(event.message)}"]
    if full or not (isinstance(event, Received) and isinstance(event.message, Mask)):
        return describe(event)
    m, d, h = event.message, event.mask, event.header
    assert d is not None  # a received MASK always carries its decoded contents
    head = f"MASK seq={h.seq} capture={m.t_capture_us} {m.width}x{m.height} enc={Encoding(m.encoding).name} bytes={len(m.data)}"
    if d.top is not None and d.bottom is not None:  # boundary encodings set both
        present = d.top != NO_BAND
        if present.any():
            thick = d.bottom[present].astype(int) - d.top[present].astype(int)
            return [
                f"{head} band in {int(present.sum())}/{m.width} columns, rows {int(d.top[present].min())}"
                f"..{int(d.bottom[present].max())}, thickness {int(np.median(thick))} px (median)"
            ]
        return [f"{head} no band"]
    if d.labels is not None:
        counts = np.bincount(d.labels.ravel(), minlength=4)[:4].tolist()
        return [f"{head} label counts {counts}"]
    return [f"{head} cleared"]


def _fields(message) -> str:
    return " ".join(f"{k}={v}" for k, v in message.__dict__.items())


def monitor(
    url: str,
    baudrate: int = 115200,
    *,
    out=None,
    count: int | None = None,
    seconds: float | None = None,
    full: bool = False,
    quiet: bool = False,
    width: int | None = None,
    height: int | None = None,
    clock=time.monotonic,
) -> DisplayDevice:
    """Print what arrives on ``url`` until ``count`` packets, ``seconds`` or Ctrl-C; returns the decoder."""
    out = out or sys.stdout
    check_baudrate(baudrate)
    port = open_port(url, baudrate, exclusive=False)  # listening only: the runtime may hold the lock
    strict = width is not None and height is not None
    dev = DisplayDevice(width or 320, height or 240, respond=False, strict_size=strict, max_payload=0xFFFF)
    port.timeout = 0.1
    t0 = last = clock()
    packets = nbytes = last_bytes = last_frames = 0
    out.write(f"monitoring {url!r} at {baudrate} baud; Ctrl-C to stop\n")
    try:
        while True:
            now = clock()
            if seconds is not None and now - t0 >= seconds:
                break
            try:
                data = port.read(max(1, port.in_waiting))
            except Exception as e:  # pyserial raises several types when a device vanishes
                raise LinkError(f"monitored port {url!r} failed: {e}") from e
            nbytes += len(data)
            for ev in dev.feed(data) if data else ():
                packets += not isinstance(ev, Dropped)
                if not quiet:
                    for line in summarize_event(ev, full):
                        out.write(f"{now - t0:9.3f} {line}\n")
            if now - last >= 1.0:
                s = dev.state
                bad = sum(v for k, v in s.counters.items() if k not in ("ok", "ignored", "lost"))
                fps = (s.frames_received - last_frames) / (now - last)
                rate = (nbytes - last_bytes) / (now - last)
                m = s.measurement
                value = (
                    "--" if m is None or math.isnan(m.thickness) else f"{m.thickness:.2f} {'mm' if m.unit_mm else 'px'}"
                )
                out.write(
                    f"{now - t0:9.3f} -- {fps:5.1f} frames/s {rate / 1000:6.2f} kB/s  TLF {value}  "
                    f"ok={s.counters['ok']} dropped={bad} lost={s.counters['lost']}\n"
                )
                last, last_bytes, last_frames = now, nbytes, s.frames_received
            out.flush()
            if count is not None and packets >= count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        port.close()
    return dev
