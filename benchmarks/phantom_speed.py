"""How fast the phantoms render: B-mode frames at 256x256 and whole scanner screens at 1280x720.

    python benchmarks/phantom_speed.py [--seconds 2] [--repeat 1]

The first rows are the phantom as the demo model sees it (default options); the rows marked
opt-in measure the optional realism (wide scenes, artefacts, focal zone, RF line, extension clips).

Single-threaded numbers on whatever else the machine is doing; run it on a quiet machine for
figures to quote, or take the best of several runs of each measurement (--repeat). Each line: what,
items per second, milliseconds per item.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from edge.sim import phantom, phantom_screen  # noqa: E402


def rate(make_items, seconds: float) -> float:
    """Items per second from an endless iterator factory, timed for about `seconds`."""
    items = make_items()
    next(items)  # warm-up (first-call costs, caches)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(items)
        n += 1
    return n / (time.perf_counter() - t0)


def endless(fn):
    def gen():
        i = 0
        while True:
            yield fn(i)
            i += 1

    return gen


def clips(make_clip):
    def gen():
        while True:
            yield from make_clip()

    return gen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the best one is shown")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    rows = [
        ("phantom.scan 256x256 (new scene each)", endless(lambda i: phantom.scan(i, (256, 256)))),
        ("phantom.clip 256x256 (moving scene)", clips(lambda: phantom.clip(1, frames=60, shape=(256, 256)))),
        # opt-in realism (off in the rows above)
        ("phantom.scan 256x256 wide + artefacts 0.3", endless(lambda i: phantom.scan(i, (256, 256), wide=True, artefacts=0.3))),
        ("phantom.scan 256x256 preset l15_fine (focus)", endless(lambda i: phantom.scan(i, (256, 256), "l15_fine"))),
        ("phantom.scan 256x256 preset rf_10mhz (RF + focus)", endless(lambda i: phantom.scan(i, (256, 256), "rf_10mhz"))),
        ("phantom.extension_clip 256x256 (freezes)", clips(lambda: phantom.extension_clip(1, frames=60, freeze=1))),
        ("phantom.extension_clip 256x256 rf_10mhz", clips(lambda: phantom.extension_clip(1, frames=60, machine="rf_10mhz"))),
        ("phantom_screen.screen 1280x720 (new scene each)", endless(lambda i: phantom_screen.screen(i, (1280, 720)))),
        (
            "phantom_screen.screen_clip 1280x720 (moving scene)",
            clips(lambda: phantom_screen.screen_clip(1, frames=60, size=(1280, 720))),
        ),
    ]
    for name, make in rows:
        r = max(rate(make, args.seconds) for _ in range(max(1, args.repeat)))
        print(f"{name:52s} {r:7.1f} /s  {1000 / r:6.1f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
