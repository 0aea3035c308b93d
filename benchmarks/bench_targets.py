"""Issue #7's performance targets, measured on this machine, each with its verdict.

    python benchmarks/bench_targets.py [--compare compare.json] [--frames 300] [--markdown targets.md]

1. A 1280x720 phantom scanner-screen video is written with OpenCV (edge.sim.phantom_screen, MJPG).
2. `tlf-edge bench --source VIDEO --threads 1,2` runs in a child process: its invoke-only frames/s
   (1000 / median invoke time of the sequential pass) against the threaded pipeline's frames/s
   (decode, B-mode region and calibration, preprocessing, invoke, measurement, display link).
3. `tlf-edge run --source VIDEO --quiet` runs in a child process, --repeat times: its peak resident
   memory (from the kernel, wait4) and the time from launching the command to the first line
   of its frames log (Python start, imports, model load, first screen's region and scale); the
   pipeline's own start-to-first-measurement from its summary is shown beside it.
4. The speed ratios come from benchmarks/compare_runtimes.py --json (same machine, same weights).

Targets (issue #7): int8 invoke >= 3x faster than TFLite float32 and >= 8x faster than Keras float,
faster than ONNX Runtime int8; pipeline fps >= 0.9x invoke-only fps; peak RSS <= 150 MB; start to
first measurement <= 1.5 s. Timings depend on the machine's load, printed with the results.
Not a test: run it by hand, on a quiet machine for figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

CLI = "import sys; from edge.cli import main; sys.exit(main())"


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def write_screen_video(path: Path, frames: int, seed: int) -> float:
    from edge.sim import phantom_screen

    t0 = time.perf_counter()
    phantom_screen.write_clip(path, seed, frames=frames, size=(1280, 720))
    return time.perf_counter() - t0


def run_bench(video: Path, frames: int, threads: str, out: Path) -> dict:
    cmd = [sys.executable, "-c", CLI, "bench", "--source", str(video), "--frames", str(frames), "--threads", threads,
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env())
    if proc.returncode != 0:
        sys.exit(f"bench_targets: tlf-edge bench failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / "bench.json").read_text())


def run_once(video: Path, frames: int, work: Path) -> dict:
    """One `tlf-edge run` from launch: time to the first logged measurement, peak RSS, its summary."""
    if work.exists():
        shutil.rmtree(work)  # a run folder of an earlier invocation
    work.mkdir(parents=True)
    cmd = [sys.executable, "-c", CLI, "run", "--source", str(video), "--frames", str(frames), "--quiet",
           "--out", str(work / "runs")]
    with open(work / "stdout.txt", "w") as out, open(work / "stderr.txt", "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=work, env=env(), stdout=out, stderr=err)
        first = None
        while True:  # wait4 (not Popen.poll) so that the child's resource usage is ours to read
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if first is None:
                logs = list((work / "runs").glob("*/frames.jsonl"))
                if logs and logs[0].stat().st_size > 0:
                    first = time.perf_counter() - t0
            if pid:
                break
            time.sleep(0.005)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"bench_targets: tlf-edge run failed:\n{(work / 'stderr.txt').read_text()[-3000:]}")
    summary = json.loads(next((work / "runs").glob("*/summary.json")).read_text())
    return {"launch_to_first_s": round(first, 3) if first is not None else None,
            "pipeline_start_to_first_s": summary.get("start_to_first_measurement_s"),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "fps": summary.get("fps"), "frames": summary.get("frames")}


def verdict(measured: float | None, target: float, higher_is_better: bool) -> str:
    if measured is None:
        return "not measured"
    ok = measured >= target if higher_is_better else measured <= target
    margin = (measured / target - 1) * 100 if higher_is_better else (1 - measured / target) * 100
    return f"met ({margin:+.0f} %)" if ok else f"missed ({margin:+.0f} %)"


def speed_rows(compare: dict) -> list[dict]:
    rows = []
    by = {(r["runtime"], r["threads"]): r for r in compare["rows"]}
    for t in sorted({r["threads"] for r in compare["rows"]}):
        ours = by.get(("tflite_int8", t))
        if ours is None:
            continue
        for runtime, target, label in (("tflite_f32", 3.0, "int8 invoke vs TFLite float32"),
                                       ("keras_f32", 8.0, "int8 invoke vs Keras float"),
                                       ("onnxrt_int8", 1.0, "int8 invoke vs ONNX Runtime int8")):
            other = by.get((runtime, t))
            x = round(other["p50_ms"] / ours["p50_ms"], 2) if other else None
            rows.append({"target": f"{label}, {t} thread(s)", "measured": x, "unit": "x faster",
                         "goal": f">= {target:g}x" if target > 1 else "> 1x", "verdict": verdict(x, target, True),
                         "detail": f"{other['p50_ms']} ms vs ours {ours['p50_ms']} ms (p50)" if other else ""})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", help="JSON written by benchmarks/compare_runtimes.py --json")
    ap.add_argument("--frames", type=int, default=300, help="frames of the 1280x720 screen video")
    ap.add_argument("--threads", default="1,2", help="LiteRT thread counts for tlf-edge bench")
    ap.add_argument("--repeat", type=int, default=3, help="cold starts of tlf-edge run (median and worst reported)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", help="folder for the video and the runs (default: a temporary folder)")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="bench_targets_")
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    load0 = [round(v, 2) for v in os.getloadavg()]
    video = work / "screen_1280x720.avi"
    if not video.exists():
        seconds = write_screen_video(video, args.frames, args.seed)
        print(f"wrote {args.frames} frames of 1280x720 phantom screen in {seconds:.0f} s", flush=True)

    bench = run_bench(video, args.frames, args.threads, work / "bench")
    print(f"tlf-edge bench done (load {os.getloadavg()[0]:.2f})", flush=True)
    runs = [run_once(video, args.frames, work / f"run{i}") for i in range(args.repeat)]
    print(f"tlf-edge run x{args.repeat} done (load {os.getloadavg()[0]:.2f})", flush=True)

    rows = speed_rows(json.loads(Path(args.compare).read_text())) if args.compare else []
    for r in bench["runs"]:
        st = r["stage_ms"]
        other = sum(st[s]["p50"] for s in ("capture", "roi", "preprocess", "postprocess", "sinks"))
        rows.append({"target": f"pipeline fps / invoke-only fps, 1280x720 screen video, {r['threads']} thread(s)",
                     "measured": r["pipeline_vs_invoke"], "unit": "", "goal": ">= 0.9",
                     "verdict": verdict(r["pipeline_vs_invoke"], 0.9, True),
                     "detail": f"{r['pipeline_fps']} fps vs {r['invoke_fps']} fps; the other stages take {other:.1f} ms "
                               f"per frame (p50) beside {st['invoke']['p50']} ms of invoke on "
                               f"{bench['device']['physical_cores']} cores"})
    rss = [x["peak_rss_mb"] for x in runs]
    rows.append({"target": "peak RSS of `tlf-edge run` on the screen video", "measured": max(rss), "unit": "MB",
                 "goal": "<= 150 MB", "verdict": verdict(max(rss), 150.0, False),
                 "detail": f"runs: {rss}; `tlf-edge bench` process (two interpreters, stage pass): {bench['peak_rss_mb']} MB"})
    cold = [x["launch_to_first_s"] for x in runs if x["launch_to_first_s"] is not None]
    inner = [x["pipeline_start_to_first_s"] for x in runs if x["pipeline_start_to_first_s"] is not None]
    median = round(float(np.median(cold)), 3) if cold else None
    rows.append({"target": "start to first measurement (launching `tlf-edge run`)", "measured": median,
                 "unit": "s", "goal": "<= 1.5 s", "verdict": verdict(median, 1.5, False),
                 "detail": f"launch to first logged measurement, runs: {cold}; pipeline start to first measurement: {inner}"})
    load1 = [round(v, 2) for v in os.getloadavg()]
    report = {"device": bench["device"], "load_average": {"start": load0, "end": load1}, "frames": args.frames,
              "video": str(video), "bench_runs": bench["runs"], "runs": runs, "targets": rows,
              "resource_self_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    d = bench["device"]
    lines = [f"Machine: {d['cpu']}, {d['physical_cores']} physical cores, "
             f"int8 features: {', '.join(d['int8_features']) or 'none'}; load average {load0} at start, {load1} at end.", "",
             "| target | goal | measured | verdict | detail |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['goal']} | {r['measured']} {r['unit']} | {r['verdict']} | {r['detail']} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
