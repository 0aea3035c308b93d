"""How much memory one ROI detection takes above a run's: its resident-memory peak over the RSS
before it, on a phantom screen at each size, on a thread of its own with two malloc pools, as the
ROI tracker's routine detection runs beside a live source's frames in `tlf-edge run`; and the
peak of the arrays it holds at once (numpy's and OpenCV's results, as tracemalloc sees them: the
same on every run, where the resident peak depends on what the allocator kept from before).

    python benchmarks/roi_memory.py [--sizes 1280x720,1920x1080] [--repeat 8] [--checkout DIR]

--checkout measures another checkout's code (a `git worktree` of an older commit; it needs
edge.host.limit_malloc_arenas, from 8556122 on).

Linux only: the peak is the kernel's VmHWM, reset before each detection (/proc/self/clear_refs).
Each size is measured in a fresh process (the allocator's state after one size would shape the
next); the first detection of each pays for pages the later ones reuse, so the median of the rest
is printed beside it. Not a test: the figures depend on the C library and its allocator.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _status_mb(key: str) -> float:
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def measure(size: tuple[int, int], repeat: int) -> dict:
    """In this process: each detection's VmHWM above the VmRSS before it (MB), and the ROI found."""
    from edge.host import limit_malloc_arenas
    from edge.screen.roi import detect_roi
    from edge.sim import phantom_screen

    limit_malloc_arenas()  # as `tlf-edge run` does before its threads start
    image = phantom_screen.screen(1, size=size).image
    above = []
    for _ in range(repeat):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _status_mb("VmRSS")
        found: list = []
        t = threading.Thread(target=lambda out: out.append(detect_roi(image)), args=(found,), name="roi-detect")
        t.start()
        t.join()
        above.append(round(_status_mb("VmHWM") - before, 1))
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    detect_roi(image)
    arrays = (tracemalloc.get_traced_memory()[1] - base) / 2**20
    tracemalloc.stop()
    roi = found[0]
    return {
        "size": f"{size[0]}x{size[1]}",
        "above_mb": above,
        "arrays_peak_mb": round(arrays, 2),
        "roi": None if roi is None else list(roi.rect),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--repeat", type=int, default=8)
    ap.add_argument("--checkout", type=Path, default=ROOT, help="the checkout whose code is measured")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a child's size
    args = ap.parse_args()
    if args.one:
        sys.path.insert(0, str(args.checkout))  # its edge, not this one's (imported by measure)
        w, h = (int(v) for v in args.one.split("x"))
        print(json.dumps(measure((w, h), args.repeat)))
        return
    for size in args.sizes.split(","):
        cmd = [sys.executable, __file__, "--one", size, "--repeat", str(args.repeat)]
        cmd += ["--checkout", str(args.checkout.resolve())]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        rest = statistics.median(r["above_mb"][1:]) if len(r["above_mb"]) > 1 else None
        print(
            f"{r['size']}: a detection's peak above the RSS before it: first {r['above_mb'][0]} MB, "
            f"then median {rest} MB (all: {r['above_mb']}); arrays held at once at most "
            f"{r['arrays_peak_mb']} MB; ROI {r['roi']}"
        )


if __name__ == "__main__":
    main()
