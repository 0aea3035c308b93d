"""Throughput and latency of the display bridge over a link model that enforces the baud rate.

The model stands in for a UART driver: an OS output buffer of 4 KiB that drains at baud/10
bytes per second (8N1) in real time, a reference display device decoding the bytes as they come
off the wire, and its replies (DEVICE_INFO) coming back at once. A synthetic source offers a
measurement and a 256x256 label map at a fixed frame rate; after each offer the caller pumps
the link once, as the runtime's display sink does.

Reported per scenario: frames offered and displayed per second, the mask encoding chosen,
wire bytes per frame, latency from offer() to the frame's last byte arriving at the device,
and how long a frame's first byte waited behind earlier bytes in the port, in frame intervals
(the latency the bridge adds; it is meant to stay within one frame).

    python benchmarks/bridge_throughput.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.device import DisplayDevice, Received  # noqa: E402
from firmware_bridge.link import DisplayLink  # noqa: E402
from firmware_bridge.messages import Mask, Measurement  # noqa: E402
from firmware_bridge.synthetic import band_labels  # noqa: E402


class UartModel:
    """A pyserial-like port whose output drains at the baud rate into a display device."""

    def __init__(self, baudrate: int, width: int, height: int, buffer_bytes: int = 4096, clock=time.monotonic):
        self.bps = baudrate / 10.0
        self.cap = buffer_bytes
        self.clock = clock
        self.device = DisplayDevice(width, height, max_payload=0xFFFF, max_rate_hz=240)
        self.is_open = True
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._drained_until = clock()
        self._replies = bytearray()
        self.arrivals: list[tuple[float, object]] = []  # (time the last byte arrived, event)
        self.writes: list[tuple[float, int, int]] = []  # (time, bytes queued ahead, bytes accepted)

    def _advance(self) -> None:
        now = self.clock()
        n = int((now - self._drained_until) * self.bps)
        if not self._buf:
            self._drained_until = now
            return
        n = min(n, len(self._buf))
        if n <= 0:
            return
        chunk = bytes(self._buf[:n])
        del self._buf[:n]
        start = self._drained_until
        pos = 0
        while pos < n:  # feed up to each delimiter so every event gets its own arrival time
            z = chunk.find(0, pos)
            end = n if z < 0 else z + 1
            t = start + end / self.bps
            for ev in self.device.feed(chunk[pos:end]):
                self.arrivals.append((t, ev))
            pos = end
        self._drained_until = start + n / self.bps
        self._replies += self.device.take_replies()

    # the parts of the pyserial interface the bridge uses
    def write(self, data: bytes) -> int:
        with self._lock:
            self._advance()
            if not self._buf:  # an idle line: the new bytes start now, not when it emptied
                self._drained_until = self.clock()
            n = min(len(data), self.cap - len(self._buf))
            self.writes.append((self.clock(), len(self._buf), n))
            self._buf += data[:n]
            return n

    @property
    def in_waiting(self) -> int:
        with self._lock:
            self._advance()
            return len(self._replies)

    def read(self, n: int) -> bytes:
        with self._lock:
            out = bytes(self._replies[:n])
            del self._replies[:n]
            return out

    @property
    def out_waiting(self) -> int:
        with self._lock:
            self._advance()
            return len(self._buf)

    def flush_model(self, until: float) -> None:
        """Let the wire drain (after the run) without the host writing more."""
        while self.clock() < until:
            with self._lock:
                self._advance()
                if not self._buf:
                    return
            time.sleep(0.005)

    def close(self) -> None:
        self.is_open = False


def run(baudrate: int, fps: float, seconds: float, encoding: str = "auto", width: int = 320, height: int = 240) -> dict:
    model = UartModel(baudrate, width, height)
    link = DisplayLink(f"model://{baudrate}", baudrate, width, height, encoding=encoding, opener=lambda url, baud: model)
    link.open(handshake_timeout=0.5)
    offered: dict[int, float] = {}
    queued: dict[int, float] = {}  # frame -> time its first byte waited behind earlier bytes, in frame intervals
    period = 1.0 / fps
    t0 = time.monotonic()
    k = 0
    while True:
        due = t0 + k * period
        now = time.monotonic()
        if due - t0 >= seconds:
            break
        if due > now:
            time.sleep(due - now)  # the synthetic scanner's frame clock
        labels = band_labels(256, 256, phase=0.02 * k)
        m = Measurement(3.0 + 0.001 * k, 0.2, 0.1, 0, True, 0xBEEF, k)
        offered[k] = time.monotonic()
        before = len(model.writes)
        link.offer(m, labels)
        link.pump()
        interval = offered[k] - offered[k - 1] if k else period
        for t_w, ahead, n in model.writes[before:]:
            if n > 100:  # the burst carrying frame k
                queued[k] = ahead / model.bps / interval
        k += 1
    link.pump(timeout=0.5)
    model.flush_model(time.monotonic() + 1.0)
    stats = link.stats
    link.close()

    lat, wire_bytes, encodings = [], [], Counter()
    pending_measure: dict[int, float] = {}
    arrivals = [(t, ev) for t, ev in model.arrivals if isinstance(ev, Received)]
    for t, ev in arrivals:
        msg = ev.message
        if isinstance(msg, Measurement) and msg.model_id == 0xBEEF:
            pending_measure[msg.t_capture_us] = t
        elif isinstance(msg, Mask) and msg.t_capture_us in offered:
            cap = msg.t_capture_us
            encodings[msg.encoding] += 1
            wire_bytes.append(42 + 14 + 9 + len(msg.data) + (14 + 9 + len(msg.data)) // 254 + 2)
            lat.append(t - offered[cap])
    shown = len(lat)
    from firmware_bridge.messages import Encoding

    return {
        "baud": baudrate,
        "offered_fps": fps,
        "frames_offered": k,
        "displayed_fps": shown / seconds,
        "encoding": ",".join(Encoding(e).name for e, n in encodings.most_common()),
        "bytes_per_frame": statistics.mean(wire_bytes) if wire_bytes else 0.0,
        "link_load": (sum(wire_bytes) / seconds) / model.bps,
        "latency_ms_mean": 1000 * statistics.mean(lat) if lat else float("nan"),
        "latency_ms_p95": 1000 * sorted(lat)[int(0.95 * (len(lat) - 1))] if lat else float("nan"),
        "latency_ms_max": 1000 * max(lat) if lat else float("nan"),
        "queue_frames_max": max(queued.values()) if queued else float("nan"),
        "frames_replaced": stats["frames_replaced"],
        "device_errors": sum(v for kk, v in model.device.state.counters.items() if kk not in ("ok", "ignored", "lost")),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    scenarios = [  # (baud, offered fps, encoding option, frames per second required with a boundary mask)
        (115200, 20, "auto", 20), (115200, 30, "auto", None), (115200, 60, "auto", None),
        (921600, 60, "bounds_delta", 60), (921600, 60, "bounds16", None), (921600, 60, "auto", None),
        (921600, 120, "auto", None),
    ]
    print(f"display 320x240, source 256x256 labels, {args.seconds:g} s per scenario, pump once per offered frame")
    head = (f"{'baud':>7} {'offered':>7} {'shown':>6} {'encoding':<16} {'B/frame':>7} {'load':>5} "
            f"{'latency mean / p95 / max':>24} {'queued max':>10} {'replaced':>8} {'errors':>6}")
    print(head)
    print("-" * len(head))
    ok = True
    for baud, fps, encoding, required in scenarios:
        r = run(baud, fps, args.seconds, encoding)
        lat = f"{r['latency_ms_mean']:.1f} / {r['latency_ms_p95']:.1f} / {r['latency_ms_max']:.1f} ms"
        print(f"{r['baud']:>7} {r['offered_fps']:>7.0f} {r['displayed_fps']:>6.1f} {r['encoding']:<16} "
              f"{r['bytes_per_frame']:>7.0f} {r['link_load']:>5.0%} {lat:>24} {r['queue_frames_max']:>7.2f} fr "
              f"{r['frames_replaced']:>8} {r['device_errors']:>6}", flush=True)
        if required is not None:
            ok &= r["displayed_fps"] >= 0.95 * required and r["encoding"].startswith("BOUNDS")
        ok &= r["queue_frames_max"] <= 1.0
    print("latency: offer() to the frame's last byte at the device; queued: time a frame's first byte waited")
    print("behind earlier bytes in the port, in frame intervals (the bridge's added latency)")
    print("targets (>=20 fps at 115200, >=60 fps at 921600 with a boundary mask, queued <= 1 frame):",
          "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
