"""CPU time of the out-of-domain guard's image statistics (edge.measure.domain.image_features) per
256x256 model image, this checkout's against another revision's.

    python benchmarks/domain_features_speed.py [--against REV] [--calls 300] [--rounds 15] [--threads 1]

REV's edge/measure/domain.py is read with `git show` and run beside this checkout's, in turns
(round by round, so that both see the same load). CPU time of the whole process (time.process_time,
every OpenCV thread counted) per call: the median and the best of the rounds, user and system
time apart, with OpenCV at --threads threads (the cart's output thread runs it beside the LiteRT
interpreter: 1 is the figure to quote). Prints the CPU and whether it has AVX-512.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge.host import cpu_name, cpuinfo  # noqa: E402
from edge.measure.domain import image_features  # noqa: E402
from edge.sim.render import scan  # noqa: E402


def features_of(rev: str):
    """image_features as revision `rev` of edge/measure/domain.py defines it."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:edge/measure/domain.py"], capture_output=True, text=True, check=True
    ).stdout
    name = f"domain_at_{''.join(c if c.isalnum() else '_' for c in rev)}"
    folder = Path(tempfile.mkdtemp(prefix="domain_features_"))
    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.image_features


def one_round(fn, images, calls: int) -> tuple[float, float]:
    """(user + system, system) CPU ms per call over `calls` calls."""
    t0, s0 = time.process_time(), os.times().system
    for i in range(calls):
        fn(images[i % len(images)])
    return (time.process_time() - t0) / calls * 1e3, (os.times().system - s0) / calls * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", default="HEAD", help="the git revision to compare with")
    ap.add_argument("--calls", type=int, default=300, help="calls per round")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads")
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    flags = next((b.get("flags", "") for b in cpuinfo() if "flags" in b), "").split()
    avx512 = sorted(f for f in flags if f.startswith("avx512"))
    print(
        f"CPU {cpu_name()}, {os.cpu_count()} logical CPUs; AVX-512: {', '.join(avx512) or 'no'}; "
        f"AVX2: {'yes' if 'avx2' in flags else 'no'}; OpenCV {cv2.__version__} at {cv2.getNumThreads()} thread(s)"
    )
    images = [scan(seed).image for seed in range(8)]
    rows = {f"{args.against} (git show)": features_of(args.against), "this checkout": image_features}
    for fn in rows.values():
        one_round(fn, images, 20)  # warm-up: first-call costs, a thread's buffers
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, fn in rows.items():
            times[name].append(one_round(fn, images, args.calls))
    for name, t in times.items():
        total, system = np.array(t).T
        print(
            f"{name:28s} median {np.median(total):.3f} ms (system {np.median(system):.3f}), "
            f"best {total.min():.3f} ms per call; {args.rounds} rounds of {args.calls}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
