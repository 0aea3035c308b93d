"""Clips per minute of `tlf-edge analyze`: 1 and 2 local workers, and Ray on this machine.

    python benchmarks/analyze_throughput.py [--clips 8] [--frames 30] [--repeat 1] [--no-ray]

Writes `--clips` phantom scanner screen videos (1280x720 MJPEG AVI, `--frames` each, the depth
scale read off the screen as on a cart) into a temporary folder, then times the whole command
`tlf-edge analyze` on them into a fresh output folder for each engine: `--workers 1`,
`--workers 2`, and `--engine ray --workers 2` (a local Ray started by the command itself, so its
start-up is in the figure, as a user meets it). Two figures per row: the command's wall time,
start-up and hashing included, and the analysis alone (analysis.json `seconds`). The best of
`--repeat` runs of each. It also checks that every engine wrote the same frames.jsonl.

Figures depend on the CPU (printed first) and on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.sim import phantom_screen  # noqa: E402
from edge.ops.bench import fingerprint  # noqa: E402


def frames_of(out: Path) -> dict:
    return {d.name: (d / "frames.jsonl").read_text() for d in sorted((out / "clips").iterdir()) if (d / "frames.jsonl").exists()}


def timed(clips: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, analysis seconds) of one `tlf-edge analyze` into a fresh `out`."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "edge.cli", "analyze", str(clips), "--out", str(out), "--quiet", *extra]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"analyze_throughput: {' '.join(extra)} failed: {r.stderr.strip().splitlines()[-1:]}")
    return wall, json.loads((out / "analysis.json").read_text())["seconds"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray row")
    args = ap.parse_args()
    print(f"CPU: {fingerprint()['cpu']}, {os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}")
    engines = [("local, 1 worker", ["--workers", "1"]), ("local, 2 workers", ["--workers", "2"])]
    if not args.no_ray:
        engines.append(("Ray (local, 2 CPUs), 2 actors", ["--engine", "ray", "--workers", "2"]))
    with tempfile.TemporaryDirectory(prefix="tlf-analyze-bench-") as tmp:
        clips = Path(tmp) / "clips"
        clips.mkdir()
        for i in range(args.clips):
            phantom_screen.write_clip(clips / f"screen{i}.avi", 100 + i, frames=args.frames, size=(1280, 720))
        print(f"{args.clips} clips of {args.frames} frames (1280x720 MJPEG screens), best of {args.repeat}\n")
        print("| engine | command s | clips/min (command) | analysis s | clips/min (analysis) |")
        print("| --- | ---: | ---: | ---: | ---: |")
        rates, outputs = {}, {}
        for name, extra in engines:
            out = Path(tmp) / name.split(",")[0].split()[0].lower() / extra[-1]
            wall, inner = min(timed(clips, out, extra) for _ in range(args.repeat))
            outputs[name] = frames_of(out)
            rates[name] = (60 * args.clips / wall, 60 * args.clips / inner)
            print(f"| {name} | {wall:.1f} | {rates[name][0]:.1f} | {inner:.1f} | {rates[name][1]:.1f} |")
        one, two = rates["local, 1 worker"], rates["local, 2 workers"]
        print(f"\nscaling 1 -> 2 local workers: x{two[0] / one[0]:.2f} (command), x{two[1] / one[1]:.2f} (analysis)")
        same = all(o == outputs["local, 1 worker"] for o in outputs.values())
        print(f"every engine wrote the same frames.jsonl: {'yes' if same else 'NO'}; "
              f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
