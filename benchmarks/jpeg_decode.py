"""CPU time of decoding a capture card's MJPEG frames at each size OpenCV's JPEG decoder offers:
what reduced-size decoding would save before the B-mode region is cut from the screen.

    python benchmarks/jpeg_decode.py [--video V ...] [--frames 60] [--rounds 7] [--held 4]

Without --video, phantom scanner-screen clips at 1280x720 and 1920x1080 (MJPG, as
benchmarks/bench_targets.py writes them) are written to a temporary folder. Each video's
frames are read as their JPEG data (as edge.sources.video reads MJPEG for a grayscale model)
and decoded with cv2.imdecode: grayscale (what `tlf-edge run` decodes today), grayscale at a
half and a quarter of the size (IMREAD_REDUCED_GRAYSCALE_2 and _4: the decoder's scaled inverse
DCT) and colour. Prints the CPU ms per frame (this thread: time.thread_time) as the median and
the best of the rounds, and the page faults per frame, with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import collections
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from benchmarks.bench_targets import SIZES, write_screen_video  # noqa: E402
from edge.host import cpu_flags, cpu_name  # noqa: E402

HELD = 4  # decoded pictures kept alive at a time (see decode_ms)
MODES = {
    "grayscale": cv2.IMREAD_GRAYSCALE,
    "grayscale, half size": cv2.IMREAD_REDUCED_GRAYSCALE_2,
    "grayscale, quarter size": cv2.IMREAD_REDUCED_GRAYSCALE_4,
    "colour": cv2.IMREAD_COLOR,
}


def jpeg_frames(video: Path, frames: int) -> list:
    """The first `frames` frames of an MJPEG video as their encoded JPEG data."""
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened() or not cap.set(cv2.CAP_PROP_FORMAT, -1):
            raise SystemExit(f"jpeg_decode: error: {video} cannot be read as encoded frames")
        out = []
        while len(out) < frames:
            ok, data = cap.read()
            if not ok or data is None or not data.size:
                break
            out.append(data.copy())
    finally:
        cap.release()
    if not out or cv2.imdecode(out[0], cv2.IMREAD_GRAYSCALE) is None:
        raise SystemExit(f"jpeg_decode: error: {video} holds no JPEG frames (not MJPEG?)")
    return out


def decode_ms(datas: list, flag: int, rounds: int, held: int = HELD) -> tuple[float, float, float, tuple[int, ...]]:
    """Median and best over `rounds` of the CPU ms per frame to decode every frame, the minor
    page faults per frame, and the shape. The last `held` pictures stay alive, as frames do in
    the pipeline's queues; with 0 each is freed before the next is decoded, which gives its
    pages back to the kernel, and the next decode pays for fresh ones."""
    per_round = []
    kept: collections.deque = collections.deque(maxlen=max(held, 1))
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(rounds):
        t = time.thread_time()
        for d in datas:
            if not held:
                kept.clear()
            kept.append(cv2.imdecode(d, flag))
        per_round.append((time.thread_time() - t) / len(datas) * 1000)
    faults = (resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults) / (rounds * len(datas))
    return statistics.median(per_round), min(per_round), faults, kept[-1].shape


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, action="append", help="an MJPEG video (default: phantom screens)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--held", type=int, default=HELD, help="decoded pictures kept alive (0: each freed first)")
    args = ap.parse_args(argv)
    flags = " ".join(sorted(f for f in cpu_flags() if f.startswith("avx")))
    print(f"CPU: {cpu_name()} ({flags}); OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.video or []
        if not videos:
            for name, size in SIZES.items():
                path = Path(tmp) / f"screen_{name}.avi"
                write_screen_video(path, args.frames, size, seed=7)
                videos.append(path)
        for video in videos:
            datas = jpeg_frames(video, args.frames)
            size = sum(d.size for d in datas) // len(datas)
            print(f"\n{video.name}: {len(datas)} frames, {size} bytes each, {args.held} decoded pictures kept alive")
            full = None
            for name, flag in MODES.items():
                med, best, faults, shape = decode_ms(datas, flag, args.rounds, args.held)
                full = med if full is None else full
                print(
                    f"  {name:24s} {shape[1]}x{shape[0]:<5d} CPU ms per frame: median {med:.3f}, best {best:.3f}"
                    f" ({med / full:.2f}x grayscale), {faults:.0f} page faults"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
