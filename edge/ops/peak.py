"""The machine's own int8 limit, as `tlf-edge bench` measures it: one large int8 convolution run
through the same LiteRT interpreter and XNNPACK delegate as the model, at the same thread count.

The convolution ships with the package (PEAK_MODEL, made on the host by `tlf-convert peak-model`
with TensorFlow's full-integer int8 converter): a 3x3 convolution of a 64x64x128 int8 tensor
into 128 channels, 0.60 GMAC per invoke. Its channels are many times those of a U-Net's outer
layers, so little of its time goes to anything but multiply-accumulates: its rate stands for
what int8 convolution reaches on this CPU through this interpreter. The model's own rate beside
it (its MACs over its invoke time) says how close invoke is to that limit.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge.host import all_threads_cpu
from edge.model.macs import count_macs
from edge.model.segmenter import open_interpreter

PEAK_MODEL = Path(__file__).resolve().parents[1] / "models" / "peak" / "int8_conv.tflite"
PEAK_INPUT = (1, 64, 64, 128)  # batch, height, width, channels
PEAK_KERNEL = (3, 3)
PEAK_FILTERS = 128
PEAK_RUNS = 30  # timed invokes, after PEAK_WARMUP untimed ones
PEAK_WARMUP = 3


def gmac_per_s(macs: int, ms: float) -> float:
    """Giga multiply-accumulates per second of `macs` done in `ms` milliseconds."""
    return macs / (ms * 1e6)


def peak_int8(threads: int, runs: int = PEAK_RUNS, model: Path = PEAK_MODEL) -> dict:
    """The peak convolution's invoke time (median of `runs`) and rate at `threads` LiteRT threads:
    {"threads", "gmac" (per invoke), "invoke_ms_p50", "gmac_per_s"}, and the same by CPU time
    ("invoke_cpu_ms_p50", "gmac_per_cpu_s": all the interpreter's threads' CPU, see
    edge.host.all_threads_cpu, which other processes on a shared machine do not stretch as they
    stretch wall time)."""
    interp, _ = open_interpreter(model, threads)
    inp = interp.get_input_details()[0]
    rng = np.random.default_rng(0)
    interp.set_tensor(inp["index"], rng.integers(-128, 128, size=inp["shape"], dtype=np.int8))
    for _ in range(PEAK_WARMUP):
        interp.invoke()
    ms, cpu_ms = [], []
    for _ in range(max(1, runs)):
        c0 = all_threads_cpu()
        t0 = time.perf_counter()
        interp.invoke()
        ms.append((time.perf_counter() - t0) * 1000)
        cpu_ms.append((all_threads_cpu() - c0) * 1000)
    macs = count_macs(model).total
    p50, cpu_p50 = float(np.median(ms)), float(np.median(cpu_ms))
    return {
        "threads": threads,
        "gmac": round(macs / 1e9, 4),
        "invoke_ms_p50": round(p50, 3),
        "gmac_per_s": round(gmac_per_s(macs, p50), 1),
        "invoke_cpu_ms_p50": round(cpu_p50, 3),
        "gmac_per_cpu_s": round(gmac_per_s(macs, cpu_p50), 1) if cpu_p50 > 0 else None,
    }
