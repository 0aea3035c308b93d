"""Soak: the whole runtime on the phantom for a long time, with every output on.

    python benchmarks/soak.py [--minutes 30] [--out DIR] [--json report.json]

Runs the pipeline (bundled model, phantom scanner, ROI off as the phantom is the B-mode region)
into an emulated display over a pseudo-terminal, a recording, the JSON-lines and CSV logs and
the console line (to /dev/null), and reports as JSON on stdout:

- rss_growth_mb: resident memory at the end less resident memory after the warm-up (each the
  median of the samples in its last / first 10 s); must be <= 5 MB; rss_trend_mb: the median
  of each tenth of the time after the warm-up (a leak climbs steadily, a bounded buffer levels);
- fps: frames measured per window of `--window` seconds after the warm-up, p5 / p50 / p95;
- log lines: JSON lines and CSV rows counted after the run against the frames measured
  (lost must be 0); the recording's frames and the display's frames likewise reported.

The warm-up is a quarter of the run, at most 2 minutes. The machine may be busy: fps figures
are whatever it gives; memory and lost lines must hold regardless.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

MAX_GROWTH_MB = 5.0
SAMPLE_S = 0.5  # seconds between two memory samples


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of process `pid` (this one by default), MB."""
    with open(f"/proc/{pid}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def warmup_s(seconds: float) -> float:
    """The start of a run of `seconds` that the memory figures leave out: a quarter, at most 2 minutes."""
    return min(120.0, seconds / 4)


def memory(samples: list[tuple[float, float]], warmup: float) -> dict:
    """What resident memory did over a run, from `samples` (seconds since the start, MB) taken
    every SAMPLE_S: MB at the start, after the warm-up and at the end (each the median of the
    samples in the first / last 10 s after the warm-up), the peak, the growth (end less after the
    warm-up) and the trend (the median of each tenth of the time after the warm-up: a leak climbs
    steadily, a bounded buffer levels)."""
    after = [mb for t, mb in samples if t >= warmup]
    span = max(1, min(round(10 / SAMPLE_S), len(after) // 3))
    warm = float(np.median(after[:span])) if after else None
    end = float(np.median(after[-span:])) if after else None
    tenths = np.array_split(np.array(after), min(10, len(after))) if after else []
    return {
        "start": round(samples[0][1], 1) if samples else None,
        "after_warmup": None if warm is None else round(warm, 1),
        "end": None if end is None else round(end, 1),
        "peak": round(max(mb for _, mb in samples), 1) if samples else None,
        "growth": None if warm is None or end is None else round(end - warm, 2),
        "trend": [round(float(np.median(part)), 1) for part in tenths if part.size],
    }


def percentiles(values, qs=(5, 50, 95)) -> dict:
    if not values:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in qs}


class Meter:
    """A sink counting the frames that reach the outputs (read by the sampler thread)."""

    name = "meter"
    dead = None

    def __init__(self):
        self.frames = 0

    def open(self):
        return self

    def write(self, m, seg):
        self.frames += 1

    def close(self):
        pass


def soak(seconds: float, out: Path, window_s: float = 10.0, size: str = "256x256", threads: int = 0) -> dict:
    from edge.model.segmenter import Segmenter, SegmenterOptions
    from edge.runtime.factory import open_source
    from edge.runtime.pipeline import Pipeline
    from edge.sinks.console import ConsoleStatus
    from edge.sinks.csvlog import CsvLog
    from edge.sinks.display import DisplaySink
    from edge.sinks.jsonl import JsonLinesLog
    from edge.sinks.recording import RecordingSink
    from firmware_bridge.emulator import DisplayEmulator

    out.mkdir(parents=True, exist_ok=True)
    warmup = warmup_s(seconds)
    window_s = min(window_s, max(1.0, (seconds - warmup) / 3))
    source = open_source(f"phantom://clip?seed=9&frames=100000000&size={size}")
    segmenter = Segmenter.create(SegmenterOptions(num_threads=threads))
    emulator = DisplayEmulator(320, 240).start()
    meter = Meter()
    recording = RecordingSink(
        out / "soak.avi", fps=30.0, min_free_bytes=200 * 2**20, tlf_class=segmenter.bundle.tlf_class
    )
    display = DisplaySink(emulator.port, segmenter.bundle.model_id, 921600, segmenter.bundle.tlf_class)
    devnull = open(os.devnull, "w")
    sinks = [
        JsonLinesLog(out / "frames.jsonl", segmenter.bundle.sha256),
        CsvLog(out / "frames.csv", segmenter.bundle.sha256),
        display,
        recording,
        ConsoleStatus(devnull),
        meter,
    ]
    err = open(out / "stderr.log", "w", buffering=1)
    pipeline = Pipeline(source, segmenter, sinks, err=err)

    samples: list[tuple[float, float, int]] = []  # (seconds since start, rss MB, frames)
    done = threading.Event()

    def sample():
        t0 = time.monotonic()
        while not done.is_set():
            samples.append((time.monotonic() - t0, rss_mb(), meter.frames))
            if samples[-1][0] >= seconds:
                pipeline.stop_event.set()
            done.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, name="soak-sampler", daemon=True)
    sampler.start()
    try:
        stats = pipeline.run()
    finally:
        done.set()
        sampler.join(5)
        emulator.wait_idle(timeout=2.0)
        shown = emulator.frames_received
        crc = emulator.crc_errors
        emulator.stop()
        devnull.close()
        err.close()

    mem = memory([(t, mb) for t, mb, _ in samples], warmup)
    fps = []
    edges = np.arange(warmup, samples[-1][0] + 1e-9, window_s) if samples else []
    for a, b in zip(edges, edges[1:]):
        ia = min(range(len(samples)), key=lambda i: abs(samples[i][0] - a))
        ib = min(range(len(samples)), key=lambda i: abs(samples[i][0] - b))
        if ib > ia:
            fps.append((samples[ib][2] - samples[ia][2]) / (samples[ib][0] - samples[ia][0]))

    jsonl = len((out / "frames.jsonl").read_text().splitlines())
    csv_rows = len((out / "frames.csv").read_text().splitlines()) - 1
    import cv2

    cap = cv2.VideoCapture(str(out / "soak.avi"))
    recorded = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    report = {
        "seconds": round(seconds, 1),
        "warmup_s": round(warmup, 1),
        "frames": stats.frames,
        "fps": {
            "window_s": round(window_s, 1),
            "windows": len(fps),
            **percentiles(fps),
            "overall": round(stats.fps, 2),
        },
        "rss_mb": {k: mem[k] for k in ("start", "after_warmup", "end", "peak")},
        "rss_growth_mb": mem["growth"],
        "rss_trend_mb": mem["trend"],
        "log_lines": {"jsonl": jsonl, "csv": csv_rows, "lost": (stats.frames - jsonl) + (stats.frames - csv_rows)},
        "recording": {"frames": recorded, "lost": stats.frames - recorded, "bytes": (out / "soak.avi").stat().st_size},
        "display": {
            "frames_sent": display.link_stats.get("frames_sent") if display.link_stats else None,
            "frames_received": shown,
            "crc_errors": crc,
        },
        "dead_outputs": stats.dead_sinks,
        "dropped_frames": stats.dropped_frames,
    }
    report["ok"] = bool(
        mem["growth"] is not None
        and mem["growth"] <= MAX_GROWTH_MB
        and report["log_lines"]["lost"] == 0
        and report["recording"]["lost"] == 0
        and not stats.dead_sinks
    )
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30; CI uses 1)")
    ap.add_argument("--window", type=float, default=10.0, help="seconds per fps window")
    ap.add_argument("--size", default="256x256", help="phantom frame size WIDTHxHEIGHT")
    ap.add_argument("--threads", type=int, default=0, help="LiteRT threads (0: physical cores)")
    ap.add_argument("--out", help="folder for the logs and recording (default: a temporary folder, removed)")
    ap.add_argument("--json", help="also write the report to this file")
    args = ap.parse_args(argv)
    if args.minutes <= 0:
        ap.error("--minutes must be more than 0")
    if args.out:
        report = soak(args.minutes * 60, Path(args.out), args.window, args.size, args.threads)
    else:
        with tempfile.TemporaryDirectory(prefix="tlf-soak-") as tmp:
            report = soak(args.minutes * 60, Path(tmp), args.window, args.size, args.threads)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
