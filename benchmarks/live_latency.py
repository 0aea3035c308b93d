"""Where a live frame's latency goes: `tlf-edge run` on a 60 fps live screen video, frame by frame.

    python benchmarks/live_latency.py [--minutes 1.5] [--size 1280x720] [--bench-json bench.json]
        [--set SECTION.KEY=VALUE] [--work DIR] [--json report.json]

The 10-minute soak of benchmarks/bench_targets.py, shorter and with each frame's latency split in
three from the run's frames log: wait (from the frame's arrival to the model's start: the B-mode
region, the model input, the frame waiting for the model), infer (the invoke) and output (the rest:
waiting for the output thread, argmax, measurement, domain guard, temporal filter). It prints the
p50/p90/p99 of the whole and of each part, and the slowest frames with their parts. With --bench-json the run takes that bench's thread count,
as a cart with bench/bench.json does; without it, the default (the physical cores but one).
Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.bench_targets import soak, write_screen_video  # noqa: E402


def parts(frames_log: Path, slowest: int) -> dict:
    """Each frame's latency and its parts (ms; the first record of each frame, the first frame
    left out): percentiles of each and the `slowest` frames."""
    first: dict[int, dict] = {}
    for line in frames_log.read_text().splitlines():
        r = json.loads(line)
        first.setdefault(r["seq"], r)
    recs = [first[s] for s in sorted(first)][1:]
    if not recs:
        raise SystemExit(f"live_latency: {frames_log} holds fewer than two frames")
    lat = np.array([r["latency_ms"] for r in recs])
    wait = np.array([r["wait_ms"] for r in recs])
    infer = np.array([r["infer_ms"] for r in recs])
    split = {"latency": lat, "wait": wait, "infer": infer, "output": lat - wait - infer}
    order = np.argsort(-lat)[:slowest]
    return {
        "frames": len(recs),
        "ms": {k: {f"p{q}": round(float(np.percentile(v, q)), 2) for q in (50, 90, 99)} for k, v in split.items()},
        "slowest": [
            {
                "seq": recs[i]["seq"],
                **{k: round(float(v[i]), 2) for k, v in split.items()},
            }
            for i in order
        ],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.5)
    ap.add_argument("--size", default="1280x720", help="the screen video's WxH")
    ap.add_argument("--frames", type=int, default=300, help="frames of the screen video (played over and over)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--bench-json", type=Path, help="a `tlf-edge bench` report: the run takes its thread count")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a config key for `tlf-edge run` (model.num_threads=2), as its --set",
    )
    ap.add_argument("--slowest", type=int, default=12)
    ap.add_argument("--work", type=Path, help="folder for the video and the run, kept (default: a temporary folder)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size {args.size!r} is not WxH")
    if args.minutes <= 0 or args.frames < 1:
        ap.error("--minutes must be above 0 and --frames at least 1")

    def measure(work: Path) -> dict:
        clip = work / f"screen_{w}x{h}_{args.frames}f.avi"
        write_screen_video(clip, args.frames, (w, h), args.seed)
        s = soak(clip, work, args.minutes, bench_json=args.bench_json, settings=tuple(args.set))
        return {
            "threads": s["summary"].get("threads"),
            "settings": args.set,
            "latency": s["latency"],
            "parts": parts(s["frames_log"], args.slowest),
        }

    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        report = measure(args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="live_latency_") as tmp:
            report = measure(Path(tmp))
    lat, p = report["latency"], report["parts"]
    settings = f", --set {' '.join(args.set)}" if args.set else ""
    head = f"{lat['frames']} frames over {lat['seconds']} s ({lat['fps']} fps)"
    print(f"{head}, threads {report['threads']}{settings}")
    for k, v in p["ms"].items():
        print(f"  {k:8s} p50 {v['p50']:7.2f}  p90 {v['p90']:7.2f}  p99 {v['p99']:7.2f} ms")
    print(f"  p99 of each {lat['window_s']} s: {lat['window_p99_ms']}")
    print("slowest frames (seq, latency = wait + infer + output ms):")
    for r in p["slowest"]:
        print(f"  {r['seq']:6d}  {r['latency']:7.2f} = {r['wait']:.2f} + {r['infer']:.2f} + {r['output']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
