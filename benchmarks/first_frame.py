"""Wall time of a screen's first frame in a fresh process: finding the B-mode region and reading
the scale (the chain's capture stage, edge.runtime.chain.FrameChain.crop), then the model and the
measurement, with Tesseract started ahead of the scale reading (edge.screen.ocr.started_ahead)
and without, in turns.

    python benchmarks/first_frame.py [--source V] [--rounds 5]

Without --source, a 1280x720 phantom scanner-screen clip (as benchmarks/bench_targets.py writes
it) in a temporary folder. Each round runs one child process with Tesseract started ahead and one
without (the order alternating), so both see the same load; each prints its times, and the
spacing it read, which must be the same. Prints the median and range of each, with the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_targets import SIZES, env, write_screen_video  # noqa: E402
from edge.host import cpu_flags, cpu_name  # noqa: E402

CHILD = """
import contextlib, json, sys, time
from edge.model.bundle import DEMO_BUNDLE, load_bundle
from edge.model.segmenter import Segmenter
from edge.runtime.chain import ChainOptions, FrameChain
from edge.runtime.factory import open_source
from edge.screen import ocr
from edge.screen.options import RoiOptions, SpacingOptions

if sys.argv[2] == "without":
    ocr.started_ahead = contextlib.nullcontext
seg = Segmenter(load_bundle(DEMO_BUNDLE), 2)
chain = FrameChain(seg, ChainOptions(roi=RoiOptions(), calibration=SpacingOptions()))
source = open_source(sys.argv[1])
source.grayscale_only = chain.grayscale_input
with source:
    frame = source.read()
    t0 = time.perf_counter()
    prepared, _ = chain.crop(frame, source.cropped, source.calibration)
    t1 = time.perf_counter()
    result = chain.finish(chain.infer(prepared)) if prepared is not None else None
    t2 = time.perf_counter()
print(json.dumps({"layout_and_scale_s": t1 - t0, "model_and_measurement_s": t2 - t1,
                  "spacing_mm": None if prepared is None else prepared.spacing_mm,
                  "measured": result is not None}))
"""


def child(source: Path, mode: str, work: Path) -> dict:
    """One fresh process's first frame, Tesseract started ahead ("ahead") or not ("without")."""
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), mode], capture_output=True, text=True, env=env(work), cwd=work
    )
    if r.returncode != 0:
        raise SystemExit(f"first_frame: error: the child failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, help="a screen video (default: a 1280x720 phantom screen clip)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    flags = " ".join(sorted(f for f in cpu_flags() if f.startswith("avx")))
    print(f"CPU: {cpu_name()} ({flags})")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = args.source
        if source is None:
            source = work / "screen_720p.avi"
            write_screen_video(source, 30, SIZES["720p"], seed=7)
        times: dict[str, list[dict]] = {"ahead": [], "without": []}
        for i in range(args.rounds):
            for mode in ("ahead", "without") if i % 2 == 0 else ("without", "ahead"):
                times[mode].append(child(source.resolve(), mode, work))
    spacings = {json.dumps(t["spacing_mm"]) for ts in times.values() for t in ts}
    print(f"{source.name}: spacing read {' / '.join(sorted(spacings))} mm per pixel")
    for mode, label in (("ahead", "Tesseract started ahead"), ("without", "without")):
        for key in ("layout_and_scale_s", "model_and_measurement_s"):
            v = [t[key] for t in times[mode]]
            print(f"  {label:24s} {key}: median {statistics.median(v):.3f} s ({min(v):.3f}-{max(v):.3f})")
    return 0 if len(spacings) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
