"""A cart's performance targets, measured on this machine, each with its verdict.

    python benchmarks/bench_targets.py [--frames 300] [--soak-minutes 10] [--runtime-venv .venv]
        [--compare compare.json] [--json targets.json] [--markdown targets.md]

Every `tlf-edge` command runs in a child process, as a user runs it, with this checkout's
compiled bytecode kept in the work folder as a cart's pip install keeps it (`env`):
1. Phantom scanner-screen videos are written with OpenCV (edge.sim.phantom_screen, MJPG, 60 fps),
   --frames frames each at 1280x720 and at 1920x1080 (what most capture cards deliver).
2. `tlf-edge bench --source VIDEO --threads 1,...,N` (every count up to the physical cores) on
   each video: the threaded pipeline's frames/s end to end (decode, B-mode region and
   calibration, preprocessing, invoke, measurement, display link), the invoke-only rate (1000 /
   median invoke of its sequential pass) and the per-frame budget (each stage's CPU, the CPU
   outside the model, edge.ops.budget).
3. `tlf-edge run --source VIDEO --display PORT --quiet` (PORT: a pty this process reads and
   discards, a display that only listens: edge.ops.drain) on the 1280x720 video, --repeat times, each in a data
   folder holding the 1280x720 bench's report as bench/bench.json, as on a cart where bench ran
   once: its peak resident memory (the kernel's, wait4), the time from launching the command to
   the first line of its frames log, and the LiteRT thread count it then uses without --threads
   and why (its summary).
4. The soak: `tlf-edge run --source 'file:///VIDEO?live=1&loop=1'`, the 1280x720 clip played
   over and over as a live 60 fps source (frames the pipeline is too late for are dropped, as a
   capture card drops them), stopped by SIGTERM after --soak-minutes. Latency per frame comes from
   the run's frames log: p99 over the whole soak, and of each minute (the first frame, which waits
   for the screen's layout, left out), the last against the first. Resident memory is sampled
   every 0.5 s and judged as benchmarks/soak.py judges its own (a warm-up left out, growth from
   after it to the end).
5. The disk use of the runtime venv named by --runtime-venv (`make demo`'s .venv: the base install,
   no extras), measured with du; a figure to state, not a target.
6. The start to the first measurement, and with --compare (the JSON of
   benchmarks/compare_runtimes.py --json) the int8 invoke against the other runtimes.

Targets: at 1280x720 MJPEG end to end >= 80 fps at the default thread count (edge.model.threads:
what bench measured best, else the physical cores but one) and >= 0.85x the invoke-only rate
there, with about 2 ms of CPU per frame outside
the model; at 1920x1080 MJPEG >= 60 fps; from a 60 fps live source latency p99 <= 35 ms, stable
over 10 minutes (no growth of latency or memory); peak RSS of `tlf-edge run` <= 150 MB. Timings
depend on the machine's load, printed with the results. Not a test: run it by hand, on a quiet
machine for figures to quote.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.soak import MAX_GROWTH_MB, SAMPLE_S, memory, rss_mb, warmup_s  # noqa: E402
from edge.host import physical_cores  # noqa: E402
from edge.ops.budget import MODEL_STAGE  # noqa: E402
from edge.ops.drain import DrainedPort  # noqa: E402

CLI = "import sys; from edge.cli import main; sys.exit(main())"
FPS = 60.0  # the screen videos' frame rate: the live source's
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
FPS_720P, OF_INVOKE, OUTSIDE_MODEL_MS, FPS_1080P = 80.0, 0.85, 2.0, 60.0
BEST_SHARE = 0.97  # the default thread count's fps against the best count's (runs differ by a few %)
README_BEGIN = "<!-- performance table: written by benchmarks/bench_targets.py --readme -->"
README_END = "<!-- end of the performance table -->"
LATENCY_P99_MS, LATENCY_GROWTH = 35.0, 1.1  # p99 of the last minute at most 1.1x that of the first
PEAK_RSS_MB, START_S = 150.0, 1.5
PYCACHE = "pycache"  # the children's compiled bytecode, in the work folder (env)


def env(work: Path) -> dict:
    """The environment of a `tlf-edge` child: this checkout on PYTHONPATH, and its compiled
    bytecode kept in `work`/pycache, as on a cart, whose pip install compiles every module once.
    Where PYTHONDONTWRITEBYTECODE is set (or the checkout cannot be written), every start would
    compile tlf-edge's modules again, which a cart never does. The first child
    (`tlf-edge bench`) writes the cache; the runs whose start is measured read it."""
    out = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    out["PYTHONPYCACHEPREFIX"] = str(work / PYCACHE)
    return out


def write_screen_video(path: Path, frames: int, size: tuple[int, int], seed: int) -> float:
    """A phantom screen clip at FPS (written beside `path` first, so that an interrupted write is
    not reused); the seconds it took. An existing `path` is kept as it is."""
    from edge.sim import phantom_screen

    t0 = time.perf_counter()
    if not path.exists():
        part = path.with_suffix(".part.avi")
        phantom_screen.write_clip(part, seed, frames=frames, fps=FPS, size=size)
        os.replace(part, path)
    return time.perf_counter() - t0


def run_bench(video: Path, frames: int, threads: str, out: Path) -> dict:
    """`tlf-edge bench` on `video` at `threads` (a comma-separated list): its bench.json."""
    cmd = [sys.executable, "-c", CLI, "bench", "--source", str(video), "--frames", str(frames)]
    cmd += ["--threads", threads, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(out.parent))
    if proc.returncode != 0:
        sys.exit(f"bench_targets: tlf-edge bench failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / "bench.json").read_text())


def run_tlf(
    source: str,
    work: Path,
    frames: int | None = None,
    stop_after_s: float | None = None,
    bench_json: Path | None = None,
    display: str | None = None,
    settings: tuple[str, ...] = (),
) -> dict:
    """One `tlf-edge run --source SOURCE --quiet` (a --set for each of `settings`) from launch, in
    `work` (emptied first, then given
    `bench_json` as its data folder's bench/bench.json, whose thread count the run takes), writing
    to the serial port `display` (the default: the display emulator, in the run's process): seconds from
    launch to the first line of its frames log, its peak resident memory (wait4), its memory every
    SAMPLE_S (seconds since launch, MB), its summary and its frames log. With `stop_after_s` it is
    sent SIGTERM that long after its first logged frame (it stops cleanly and writes its summary)."""
    if work.exists():
        shutil.rmtree(work)  # a run folder of an earlier invocation
    work.mkdir(parents=True)
    if bench_json is not None:
        (work / "bench").mkdir()
        shutil.copy(bench_json, work / "bench" / "bench.json")
    runs = work / "runs"
    cmd = [sys.executable, "-c", CLI, "run", "--source", source, "--quiet", "--out", str(runs)]
    cmd += ["--frames", str(frames)] if frames else []
    cmd += ["--display", display] if display else []
    cmd += [a for kv in settings for a in ("--set", kv)]
    samples: list[tuple[float, float]] = []
    with open(work / "stdout.txt", "w") as out, open(work / "stderr.txt", "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=work, env=env(work.parent), stdout=out, stderr=err)
        first, next_sample, stopped = None, 0.0, False
        while True:  # wait4 (not Popen.poll) so that the child's resource usage is ours to read
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter() - t0
            if first is None and any(log.stat().st_size for log in runs.glob("*/frames.jsonl")):
                first = now
            if now >= next_sample:
                with contextlib.suppress(OSError):  # it may have just ended
                    if mb := rss_mb(proc.pid):  # 0: ended, not yet waited for
                        samples.append((now, mb))
                next_sample += SAMPLE_S
            if stop_after_s is not None and first is not None and not stopped and now >= first + stop_after_s:
                proc.send_signal(signal.SIGTERM)
                stopped = True
            time.sleep(0.005 if first is None else 0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"bench_targets: tlf-edge run failed:\n{(work / 'stderr.txt').read_text()[-3000:]}")
    run_dir = next(runs.glob("*/summary.json")).parent
    return {
        "launch_to_first_s": round(first, 3) if first is not None else None,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "rss_samples": samples,
        "summary": json.loads((run_dir / "summary.json").read_text()),
        "frames_log": run_dir / "frames.jsonl",
    }


def latency_over_time(frames_log: Path, window_s: float) -> dict:
    """Latency per frame from a run's frames log (one line per frame and band: the first of each
    frame counts): p50/p90/p99 over the run, with the p50 of its parts the log holds (wait: from
    capture to the resize; infer: resize and invoke); p99 of each `window_s` of the run in order,
    the first frame left out (it waits for the screen's layout to be found: start to first
    measurement, a target of its own), and the last window's against the first's; frames per
    second, and how far the last frame was read behind the source's FPS schedule (a live source
    drops the frames a slower pipeline cannot take, so it stays near 0; latency counts from each
    frame's arrival)."""
    first: dict[int, dict] = {}
    for line in frames_log.read_text().splitlines():
        r = json.loads(line)
        first.setdefault(r["seq"], r)
    recs = [first[s] for s in sorted(first)]
    if len(recs) < 3:
        return {"frames": len(recs)}
    t = np.array([r["t_capture"] for r in recs])
    t -= t[0]
    lat = np.array([r["latency_ms"] for r in recs])
    span = float(t[-1])
    n = max(1, round(span / window_s))
    window = np.minimum((t / span * n).astype(int), n - 1) if span else np.zeros(len(t), int)
    window[0] = -1  # the first frame in no window
    p99 = [round(float(np.percentile(lat[window == i], 99)), 2) for i in range(n) if (window == i).any()]
    parts = {k: [r[k] for r in recs if k in r] for k in ("wait_ms", "infer_ms")}
    return {
        "frames": len(recs),
        "seconds": round(span, 1),
        "fps": round((len(recs) - 1) / span, 2) if span else None,
        "behind_schedule_s": round(span - (recs[-1]["seq"] - recs[0]["seq"]) / FPS, 2),
        "latency_ms": {f"p{q}": round(float(np.percentile(lat, q)), 2) for q in (50, 90, 99)},
        "parts_ms_p50": {k: round(float(np.median(v)), 2) for k, v in parts.items() if v},
        "first_frame_ms": float(lat[0]),
        "window_s": round(span / n, 1),
        "window_p99_ms": p99,
        "last_vs_first_p99": round(p99[-1] / p99[0], 3) if len(p99) > 1 and p99[0] else None,
    }


def soak(
    clip: Path,
    work: Path,
    minutes: float,
    bench_json: Path | None = None,
    display: str | None = None,
    settings: tuple[str, ...] = (),
) -> dict:
    """`tlf-edge run` on `clip` played over and over as a live source at FPS (late frames dropped,
    as a capture card drops them), for `minutes`: its latency over time (windows of a minute, a
    third of the soak when shorter), its dropped frames and its memory."""
    seconds = minutes * 60
    url = clip.resolve().as_uri() + "?live=1&loop=1"  # options need file://
    run = run_tlf(url, work / "soak", stop_after_s=seconds, bench_json=bench_json, display=display, settings=settings)
    samples = run.pop("rss_samples")
    warmup = warmup_s(samples[-1][0]) if samples else 0.0
    return {
        **run,
        "minutes": minutes,
        "latency": latency_over_time(run["frames_log"], min(60.0, seconds / 3)),
        "memory": {"warmup_s": round(warmup, 1), **memory(samples, warmup)},
    }


def du_mb(paths: list[Path]) -> dict[str, float]:
    """Disk use of each path (du -sk), MB; paths must not lie inside one another."""
    if not paths:
        return {}
    out = subprocess.run(["du", "-sk", "--", *map(str, paths)], capture_output=True, text=True, check=True).stdout
    return {name: round(int(kb) / 1024, 1) for kb, name in (line.split("\t", 1) for line in out.splitlines())}


def venv_size(venv: Path) -> dict:
    """Disk use of a venv, of its site-packages and of the five largest entries there, MB."""
    site = sorted(venv.glob("lib/python*/site-packages"))
    entries = du_mb(sorted(site[0].iterdir())) if site else {}
    largest = sorted(entries.items(), key=lambda kv: -kv[1])[:5]
    return {
        "path": str(venv),
        "venv_mb": du_mb([venv])[str(venv)],
        "site_packages_mb": du_mb(site[:1]).get(str(site[0])) if site else None,
        "largest_mb": {Path(name).name: mb for name, mb in largest},
    }


def verdict(measured: float | None, target: float, higher_is_better: bool) -> str:
    if measured is None:
        return "not measured"
    ok = measured >= target if higher_is_better else measured <= target
    margin = (measured / target - 1) * 100 if higher_is_better else (1 - measured / target) * 100
    return f"met ({margin:+.0f} %)" if ok else f"missed ({margin:+.0f} %)"


def row(
    target: str, goal: float, unit: str, measured, higher_is_better: bool, detail: str, goal_text: str = ""
) -> dict:
    sign = ">=" if higher_is_better else "<="
    return {
        "target": target,
        "goal": goal_text or f"{sign} {goal:g} {unit}".rstrip(),
        "measured": measured,
        "unit": unit,
        "verdict": verdict(measured, goal, higher_is_better),
        "detail": detail,
    }


def budget_detail(run: dict) -> str:
    """Where a bench run's frame time goes: the invoke, the CPU outside the model and its largest
    parts, and the CPU per frame of each thread of `tlf-edge run`."""
    b = run["budget"]
    model = b["stages"][MODEL_STAGE]
    parts = sorted(((s, st["cpu_ms_p50"]) for s, st in b["stages"].items() if s != MODEL_STAGE), key=lambda p: -p[1])
    return (
        f"invoke {model['wall_ms_p50']} ms wall, {model['cpu_ms_p50']} ms CPU (p50, all its threads); CPU outside "
        f"the model {b['outside_model_cpu_ms']['p50']} ms (largest: {', '.join(f'{s} {ms}' for s, ms in parts[:3])}); "
        f"CPU ms per frame by thread: {', '.join(f'{t} {ms}' for t, ms in b['thread_cpu_ms_mean'].items())}"
    )


def speed_rows(
    label: str, bench: dict, fps_goal: float, default: str, threads: int, runs: list[dict] | None = None
) -> list[dict]:
    """The end-to-end rate at the default thread count; at 1280x720 (`runs` given: `tlf-edge run`
    on the same video) also its ratio to the invoke-only rate and the CPU outside the model."""
    r = at_default(bench, threads)
    cores = bench["device"]["physical_cores"]
    outside = r["budget"]["outside_model_cpu_ms"]
    detail = f"invoke-only {r['invoke_fps']} fps; {budget_detail(r)}; {cores} physical cores"
    if runs:
        detail += f"; `tlf-edge run` (display on a pty that only listens; the whole run, start included): {[x['summary']['fps'] for x in runs]} fps"
    rows = [row(f"{label}: end-to-end fps, {default}", fps_goal, "fps", r["pipeline_fps"], True, detail)]
    if runs is None:
        return rows
    model_cpu = r["budget"]["stages"][MODEL_STAGE]["cpu_ms_p50"]
    rows.append(
        row(
            f"{label}: end-to-end / invoke-only rate, {default}",
            OF_INVOKE,
            "x",
            r["pipeline_vs_invoke"],
            True,
            f"{r['pipeline_fps']} fps against {r['invoke_fps']} fps invoke-only; CPU per frame outside the model "
            f"{outside['p50']} ms beside {model_cpu} ms of invoke CPU, on {cores} physical cores",
        )
    )
    parts = sorted(r["budget"]["stages"].items(), key=lambda kv: -kv[1]["cpu_ms_p50"])
    rows.append(
        row(
            f"{label}: CPU per frame outside the model",
            OUTSIDE_MODEL_MS,
            "ms",
            outside["p50"],
            False,
            f"p50 of the per-frame sum (mean {outside['mean']}); by stage, CPU ms p50: "
            + ", ".join(f"{s} {st['cpu_ms_p50']}" for s, st in parts if s != MODEL_STAGE and st["cpu_ms_p50"]),
            goal_text=f"about {OUTSIDE_MODEL_MS:g} ms",
        )
    )
    return rows


def at_default(bench: dict, threads: int) -> dict:
    """bench's run at `threads`."""
    return next(r for r in bench["runs"] if r["threads"] == threads)


def thread_row(label: str, bench: dict, threads: int) -> dict:
    """Does the default thread count give the most frames end to end? Its rate against the best
    count's that bench measured (every count up to the physical cores)."""
    rates = {r["threads"]: r["pipeline_fps"] for r in bench["runs"]}
    best = max(rates, key=lambda t: rates[t])
    share = round(rates[threads] / rates[best], 3) if rates.get(best) else None
    return row(
        f"{label}: the default thread count ({threads}) against the best one",
        BEST_SHARE,
        "x",
        share,
        True,
        "end-to-end fps by LiteRT threads: "
        + ", ".join(f"{t}: {v}" for t, v in sorted(rates.items()))
        + f"; the most at {best}",
        goal_text=f">= {BEST_SHARE:g} x the best count's fps",
    )


def soak_rows(s: dict | None, minutes: float) -> list[dict]:
    label = f"60 fps live 1280x720 MJPEG, {minutes:g} min"
    if s is None:
        lat, mem, ran = {}, {}, "not run (--soak-minutes 0)"
    else:
        lat, mem = s["latency"], s["memory"]
        ran = f"{lat.get('frames')} frames over {lat.get('seconds')} s, {s['summary']['threads']} threads"
    pct = lat.get("latency_ms", {})
    kept = (
        f"; the pipeline measured {lat['fps']} of the source's {FPS:g} frames per second, "
        f"{s['summary'].get('dropped_frames')} frames dropped as a capture card drops them (latency counts "
        "from each frame's arrival)"
        if s is not None and lat.get("fps")
        else ""
    )
    parts = ", ".join(f"{k.removesuffix('_ms')} {ms} ms" for k, ms in lat.get("parts_ms_p50", {}).items())
    w = lat.get("window_s")
    return [
        row(
            f"{label}: latency p99",
            LATENCY_P99_MS,
            "ms",
            pct.get("p99"),
            False,
            f"{ran}; p50 {pct.get('p50')}, p90 {pct.get('p90')} ms, the first frame {lat.get('first_frame_ms')} ms; "
            f"p50 of its parts: {parts or None}{kept}",
        ),
        row(
            f"{label}: latency p99, last {w:g} s / first {w:g} s"
            if w
            else f"{label}: latency p99, last / first minute",
            LATENCY_GROWTH,
            "x",
            lat.get("last_vs_first_p99"),
            False,
            f"p99 of each {w} s, in order (the first frame left out): {lat.get('window_p99_ms')} ms",
        ),
        row(
            f"{label}: resident memory growth",
            MAX_GROWTH_MB,
            "MB",
            mem.get("growth"),
            False,
            f"after a {mem.get('warmup_s')} s warm-up {mem.get('after_warmup')} MB, at the end {mem.get('end')} MB "
            f"(medians of 10 s, as benchmarks/soak.py); trend {mem.get('trend')}; peak {s['peak_rss_mb'] if s else None} MB",
        ),
    ]


def memory_row(runs: list[dict], frames: int, soaked: dict | None, bench: dict) -> dict:
    rss = [x["peak_rss_mb"] for x in runs]
    soak_peak = f"the soak's run: {soaked['peak_rss_mb']} MB; " if soaked else ""
    return row(
        f"peak RSS of `tlf-edge run`, 1280x720 MJPEG, {frames} frames",
        PEAK_RSS_MB,
        "MB",
        max(rss),
        False,
        f"runs: {rss}; {soak_peak}`tlf-edge bench` process (two interpreters, stage pass): {bench['peak_rss_mb']} MB",
    )


def venv_row(size: dict | None) -> dict:
    r = {"target": "install size of the runtime venv", "goal": "stated (no target)", "unit": "MB"}
    if size is None:
        return {**r, "measured": None, "verdict": "not measured", "detail": "give --runtime-venv PATH"}
    largest = ", ".join(f"{name} {mb}" for name, mb in size["largest_mb"].items())
    return {
        **r,
        "measured": size["venv_mb"],
        "verdict": "measured",
        "detail": f"{size['path']} (du); site-packages {size['site_packages_mb']} MB, largest: {largest} MB",
    }


def start_row(runs: list[dict]) -> dict:
    cold = [x["launch_to_first_s"] for x in runs if x["launch_to_first_s"] is not None]
    inner = [x["summary"].get("start_to_first_measurement_s") for x in runs]
    median = round(float(np.median(cold)), 3) if cold else None
    return row(
        "start to first measurement (launching `tlf-edge run`)",
        START_S,
        "s",
        median,
        False,
        f"launch to first logged measurement (median), runs: {cold}; pipeline start to first measurement: {inner}; "
        "the modules' bytecode compiled beforehand, as a pip install does",
    )


def compare_rows(compare: dict) -> list[dict]:
    """The int8 invoke against the other runtimes on the same weights, from compare_runtimes.py --json."""
    rows = []
    by = {(r["runtime"], r["threads"]): r for r in compare["rows"]}
    for t in sorted({r["threads"] for r in compare["rows"]}):
        ours = by.get(("tflite_int8", t))
        if ours is None:
            continue
        for runtime, target, label in (
            ("tflite_f32", 3.0, "int8 invoke vs TFLite float32"),
            ("keras_f32", 8.0, "int8 invoke vs Keras float"),
            ("onnxrt_int8", 1.0, "int8 invoke vs ONNX Runtime int8"),
        ):
            other = by.get((runtime, t))
            x = round(other["p50_ms"] / ours["p50_ms"], 2) if other else None
            detail = f"{other['p50_ms']} ms vs ours {ours['p50_ms']} ms (p50)" if other else ""
            goal = f">= {target:g}x" if target > 1 else "> 1x"
            rows.append(row(f"{label}, {t} thread(s)", target, "x", x, True, detail, goal_text=goal))
    return rows


def markdown(device: dict, load: dict, rows: list[dict]) -> str:
    lines = [
        f"Machine: {device['cpu']}, {device['physical_cores']} physical cores, int8 features: "
        f"{', '.join(device['int8_features']) or 'none'}; load average {load['start']} at start, {load['end']} at end.",
        "",
        "| target | goal | measured | verdict | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['target']} | {r['goal']} | {r['measured']} {r['unit']} | {r['verdict']} | {r['detail']} |")
    return "\n".join(lines) + "\n"


def readme_block(device: dict, load: dict, rows: list[dict], command: str) -> str:
    """The README's performance table: the machine, then each target's goal, figure and verdict
    (the details stay in --markdown)."""
    lines = [
        f"Measured on {device['cpu']}, {device['physical_cores']} physical cores, int8 features: "
        f"{', '.join(device['int8_features']) or 'none'} (load average {load['start'][0]} at start, "
        f"{load['end'][0]} at end), by `{command}`:",
        "",
        "| target | goal | measured | verdict |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {r['target']} | {r['goal']} | {r['measured']} {r['unit']} | {r['verdict']} |" for r in rows]
    return "\n".join(lines) + "\n"


def write_readme(path: Path, block: str) -> None:
    """Put `block` between the README's performance-table markers."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        sys.exit(f"bench_targets: {path} has no performance-table markers ({README_BEGIN} ... {README_END})")
    head = text[: start + len(README_BEGIN)]
    path.write_text(f"{head}\n{block}{text[end:]}", encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--frames", type=int, default=300, help="frames of each screen video (the soak plays it over and over)"
    )
    ap.add_argument("--soak-minutes", type=float, default=10.0, help="length of the live soak (0: not run)")
    ap.add_argument("--runtime-venv", type=Path, help="a runtime-only venv (`make demo`'s .venv) to state the size of")
    ap.add_argument("--compare", help="JSON written by benchmarks/compare_runtimes.py --json (the other runtimes)")
    ap.add_argument("--repeat", type=int, default=3, help="cold starts of tlf-edge run (peak RSS and start time)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", help="folder for the videos and the runs, kept (default: a temporary folder)")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--readme", type=Path, help="write the table into this README, between its markers")
    ap.add_argument(
        "--from-json",
        type=Path,
        help="measure nothing: print (and with --readme write) the table of this --json report",
    )
    args = ap.parse_args(argv)
    if args.frames < 1 or args.repeat < 1 or args.soak_minutes < 0:
        ap.error("--frames and --repeat must be at least 1, --soak-minutes at least 0")
    if args.runtime_venv is not None and not args.runtime_venv.is_dir():
        ap.error(f"--runtime-venv {str(args.runtime_venv)!r} is not a folder")
    command = " ".join(["python benchmarks/bench_targets.py", *(argv if argv is not None else sys.argv[1:])])
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        command = (
            report.get("command") or f"python benchmarks/bench_targets.py (the run that wrote {args.from_json.name})"
        )
    elif args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
        report = measure(args, Path(args.work))
    else:
        with tempfile.TemporaryDirectory(prefix="bench_targets_") as tmp:
            report = measure(args, Path(tmp))
    report.setdefault("command", command)
    text = markdown(report["device"], report["load_average"], report["targets"])
    print("\n" + text)
    if args.json and not args.from_json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.readme:
        write_readme(args.readme, readme_block(report["device"], report["load_average"], report["targets"], command))
    return 0


def measure(args, work: Path) -> dict:
    """Every measurement, in `work`: the report (its "targets" are the rows)."""
    load0 = [round(v, 2) for v in os.getloadavg()]
    videos = {}
    for name, (w, h) in SIZES.items():
        videos[name] = work / f"screen_{w}x{h}_{args.frames}f.avi"
        took = write_screen_video(videos[name], args.frames, (w, h), args.seed)
        print(
            f"{videos[name].name}: {args.frames} frames of {w}x{h} phantom screen at {FPS:g} fps ({took:.0f} s)",
            flush=True,
        )

    counts = ",".join(str(t) for t in range(1, physical_cores() + 1))  # every count up to the physical cores
    bench = {name: run_bench(v, args.frames, counts, work / f"bench_{name}") for name, v in videos.items()}
    print(f"tlf-edge bench at 1280x720 and 1920x1080 done (load {os.getloadavg()[0]:.2f})", flush=True)
    # as on a cart: bench once in the data folder, then every run takes the thread count it measured best
    measured = work / "bench_720p" / "bench.json"
    with DrainedPort() as display:  # the display: a serial port that only listens, as on a cart
        runs = [
            run_tlf(str(videos["720p"]), work / f"run{i}", args.frames, bench_json=measured, display=display)
            for i in range(args.repeat)
        ]
        threads, chosen_by = runs[0]["summary"]["threads"], runs[0]["summary"]["threads_chosen_by"]
        print(f"tlf-edge run x{args.repeat} done: {threads} threads, {chosen_by} (load {os.getloadavg()[0]:.2f})")
        soaked = soak(videos["720p"], work, args.soak_minutes, measured, display) if args.soak_minutes else None
    if soaked:
        print(f"soak done (load {os.getloadavg()[0]:.2f})", flush=True)
    size = venv_size(args.runtime_venv) if args.runtime_venv else None

    how = "as tlf-edge bench measured best" if chosen_by.startswith("measured") else "the physical cores but one"
    default = f"{threads} threads (the default, {how})"
    rows = [
        *speed_rows("1280x720 MJPEG", bench["720p"], FPS_720P, default, threads, runs),
        thread_row("1280x720 MJPEG", bench["720p"], threads),
        *speed_rows("1920x1080 MJPEG", bench["1080p"], FPS_1080P, default, threads),
        *soak_rows(soaked, args.soak_minutes),
        memory_row(runs, args.frames, soaked, bench["720p"]),
        venv_row(size),
        start_row(runs),
        *(compare_rows(json.loads(Path(args.compare).read_text())) if args.compare else []),
    ]
    load = {"start": load0, "end": [round(v, 2) for v in os.getloadavg()]}
    device = bench["720p"]["device"]
    for run in [*runs, *([soaked] if soaked else [])]:
        run["frames_log"] = str(run["frames_log"])
        run.pop("rss_samples", None)
    report = {
        "device": device,
        "load_average": load,
        "frames": args.frames,
        "videos": {name: str(v) for name, v in videos.items()},
        "default_threads": threads,
        "threads_chosen_by": chosen_by,
        "bench_runs": {name: b["runs"] for name, b in bench.items()},
        "runs": runs,
        "soak": soaked,
        "runtime_venv": size,
        "targets": rows,
        "resource_self_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    return report


if __name__ == "__main__":
    sys.exit(main())
