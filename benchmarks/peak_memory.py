"""Peak resident memory of `tlf-edge run` on a screen video, run by run, with an environment or
another checkout's code in turns with this one's.

    python benchmarks/peak_memory.py [--video screen.avi] [--frames 300] [--repeat 2]
        [--env NAME=VALUE,...] [--checkout DIR] [--display emulate]

Each round runs this checkout's `tlf-edge run --source VIDEO --display DISPLAY --quiet` (the
display emulator by default, as `tlf-edge run` without --display: a thread of its own), then the
same with `--env` set (e.g. MALLOC_ARENA_MAX=16, glibc's default pool count on two cores, against
the two pools `tlf-edge run` sets itself) and with the code of `--checkout` (a `git worktree` of
an older commit), so that what the machine does meanwhile falls on all alike. Prints each run's
peak (the kernel's ru_maxrss of the child) and the median per kind. Without --video a 1280x720
phantom screen clip of --frames frames at 60 fps is written to the work folder, as
benchmarks/bench_targets.py writes its own. Not a test: the figures depend on the machine, its
libraries and their allocator.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_targets import write_screen_video  # noqa: E402

CLI = "import sys; from edge.cli import main; sys.exit(main())"


def peak_mb(checkout: Path, video: Path, work: Path, env: dict[str, str], display: str) -> float:
    """One `tlf-edge run` of `checkout`'s code on `video`: the child's peak resident memory (MB)."""
    cmd = [sys.executable, "-c", CLI, "run", "--source", str(video), "--display", display, "--quiet"]
    cmd += ["--out", str(work / "runs")]
    # compiled bytecode kept (as a pip install keeps it), one cache per checkout
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    child_env |= {"PYTHONPATH": str(checkout), "PYTHONPYCACHEPREFIX": str(work / "pycache" / checkout.name), **env}
    proc = subprocess.Popen(cmd, cwd=work, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"peak_memory: tlf-edge run of {checkout} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return round(usage.ru_maxrss / 1024, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2, help="rounds over the kinds of run")
    ap.add_argument("--env", default="", help="NAME=VALUE,... for a second kind of run")
    ap.add_argument("--checkout", type=Path, help="another checkout whose code is a third kind of run")
    ap.add_argument("--display", default="emulate", help="tlf-edge run's --display ('none': no display thread)")
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="peak_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    video = args.video or work / f"screen_1280x720_{args.frames}f.avi"
    if args.video is None:
        write_screen_video(video, args.frames, (1280, 720), seed=1)
    extra = dict(kv.split("=", 1) for kv in args.env.split(",") if kv)
    kinds = {"this checkout": (ROOT, {})}
    if extra:
        kinds[f"this checkout, {args.env}"] = (ROOT, extra)
    if args.checkout:
        kinds[f"{args.checkout}"] = (args.checkout.resolve(), {})
    peaks: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.repeat):
        for kind, (checkout, env) in kinds.items():
            peaks[kind].append(peak_mb(checkout, video, work, env, args.display))
            print(f"{kind}: {peaks[kind][-1]} MB", flush=True)
    for kind, values in peaks.items():
        print(
            f"peak RSS of `tlf-edge run --display {args.display}` on {video.name}, {kind}: "
            f"median {statistics.median(values)} MB, runs {values}"
        )


if __name__ == "__main__":
    main()
