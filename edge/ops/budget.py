"""Where a frame's time goes: each stage of the per-frame chain timed inside bench's sequential
pass, with the thread of `tlf-edge run` that runs it.

`StageMeter` times nested stages on one thread: a stage's CPU time (time.thread_time: this
thread's CPU only, not what other processes on the cart take from it) and wall time, without the
stages timed inside it. `instrumented(chain, meter)` times the parts of the chain's own stages in
place, by wrapping the callables the chain already calls (the ROI tracker, the scale reader, the
freeze check, the LUT fill and the invoke, the argmax, the domain guard, the temporal filter) for
the length of the pass: the chain computes what it always computes. What stays in an outer stage
once its parts are taken out is named for what it holds (the crop copies the B-mode region; the
resize is what remains of the stage before the model, the tensor copy what remains of the model's
call beside the invoke: the input set and the output read; the measurement what remains of the
output stage).

Invoke runs on the interpreter's threads, not only on the calling one: its CPU time is that of
every thread of the process during the invoke (edge.host.all_threads_cpu; nothing else runs in the
sequential pass). The other stages count their own thread only: work a library hands to helper
threads of its own (a decoder's, OpenCV's) is not in their CPU time, only in their wall time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edge.host import all_threads_cpu

# Stage -> the thread of `tlf-edge run` that runs it (edge.runtime.pipeline); sinks are added as
# "<name> sink" on the output thread.
THREADS = {
    "decode": "capture",
    "roi": "capture",
    "spacing": "capture",
    "crop": "capture",
    "freeze check": "capture",
    "resize": "capture",
    "int8 lookup": "capture",
    "tensor copy": "inference",
    "invoke": "inference",
    "argmax": "output",
    "measurement": "output",
    "domain guard": "output",
    "temporal filter": "output",
}
MODEL_STAGE = "invoke"
WHOLE_PROCESS = {MODEL_STAGE}  # stages whose CPU is that of all the process's threads (the interpreter's)


def sink_stage(name: str) -> str:
    return f"{name} sink"


class StageMeter:
    """Nested stage timer for one thread. `with meter.stage(name):` around a stage; the stages
    timed inside it are taken out of its own time. `end_frame()` closes one frame (a stage run
    several times in a frame, e.g. once per band, adds up); `discard_frame()` forgets one that
    was not measured."""

    def __init__(self) -> None:
        self.frames: list[dict[str, tuple[float, float]]] = []  # stage -> (cpu, wall) s
        self._frame: dict[str, list[float]] = {}
        self._stack: list[list[float]] = []  # the children's (thread cpu, wall) of each open stage

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        whole = name in WHOLE_PROCESS
        outer_c0, outer_w0 = time.thread_time(), time.perf_counter()
        a0 = all_threads_cpu() if whole else 0.0
        c0, w0 = time.thread_time(), time.perf_counter()
        self._stack.append([0.0, 0.0])
        try:
            yield
        finally:
            c, w = time.thread_time() - c0, time.perf_counter() - w0
            a = all_threads_cpu() - a0 if whole else c
            inner = self._stack.pop()
            totals = self._frame.setdefault(name, [0.0, 0.0])
            totals[0] += a - inner[0]
            totals[1] += w - inner[1]
            if self._stack:  # the enclosing stage loses this one whole, the clock readings too
                outer = self._stack[-1]
                outer[0] += time.thread_time() - outer_c0
                outer[1] += time.perf_counter() - outer_w0

    def timed(self, name: str, fn: Callable) -> Callable:
        """`fn` timed as stage `name` at each call."""

        def call(*args, **kwargs):
            with self.stage(name):
                return fn(*args, **kwargs)

        return call

    def end_frame(self) -> None:
        self.frames.append({k: (v[0], v[1]) for k, v in self._frame.items()})
        self._frame = {}

    def discard_frame(self) -> None:
        self._frame = {}

    def budget(self, stages: list[str]) -> dict:
        """The budget: "stages": stage -> {thread, cpu_ms_p50, cpu_ms_mean, wall_ms_p50, frames} over the frames closed, a stage absent from a frame counting 0 there (`frames`: in
        how many it ran); "outside_model_cpu_ms": p50 and mean of the CPU of every stage but the
        invoke, summed per frame; "thread_cpu_ms_mean": each thread's stages' mean CPU per frame."""
        n = len(self.frames)
        out: dict[str, Any] = {"frames": n, "stages": {}}
        if n == 0:
            return out
        per_stage = {s: np.array([f.get(s, (0.0, 0.0)) for f in self.frames]) * 1000 for s in stages}
        for s, v in per_stage.items():
            out["stages"][s] = {
                "thread": THREADS.get(s, "output"),
                "cpu_ms_p50": _ms(np.median(v[:, 0])),
                "cpu_ms_mean": _ms(v[:, 0].mean()),
                "wall_ms_p50": _ms(np.median(v[:, 1])),
                "frames": sum(s in f for f in self.frames),
            }
        others = sum(v[:, 0] for s, v in per_stage.items() if s != MODEL_STAGE)
        out["outside_model_cpu_ms"] = {"p50": _ms(np.median(others)), "mean": _ms(np.mean(others))}
        threads: dict[str, float] = {}
        for s, v in per_stage.items():
            thread = out["stages"][s]["thread"]
            threads[thread] = threads.get(thread, 0.0) + float(v[:, 0].mean())
        out["thread_cpu_ms_mean"] = {t: _ms(v) for t, v in threads.items()}
        return out


def _ms(v) -> float:
    return round(float(v), 3)


@contextlib.contextmanager
def _replaced(holder: Any, attr: str, value: Any) -> Iterator[None]:
    """`holder.attr` is `value` inside the block, and what it was after it."""
    own = attr in vars(holder)
    before = vars(holder)[attr] if own else None
    setattr(holder, attr, value)
    try:
        yield
    finally:
        if own:
            setattr(holder, attr, before)
        else:
            delattr(holder, attr)


class _TimedCheck:
    """The domain guard (edge.measure.domain.DomainModel, frozen) with its `check` timed."""

    def __init__(self, domain, meter: StageMeter):
        self._domain, self.check = domain, meter.timed("domain guard", domain.check)

    def __getattr__(self, name):
        return getattr(self._domain, name)


@contextlib.contextmanager
def instrumented(chain, meter: StageMeter) -> Iterator[None]:
    """Within the block, the parts of `chain` (an edge.runtime.chain.FrameChain) are timed as
    THREADS names them; the chain, its segmenter and its interpreter are as before after it."""
    seg = chain.segmenter
    filter_of = chain.filter_of
    with contextlib.ExitStack() as stack:
        if chain.prepare is not None:
            tracker, calibrator = chain.prepare.tracker, chain.prepare.calibrator
            stack.enter_context(_replaced(tracker, "update", meter.timed("roi", tracker.update)))
            stack.enter_context(_replaced(calibrator, "update", meter.timed("spacing", calibrator.update)))
        if chain.freeze is not None:
            stack.enter_context(_replaced(chain, "freeze", meter.timed("freeze check", chain.freeze)))
        stack.enter_context(_replaced(seg, "input_tensor", meter.timed("int8 lookup", seg.input_tensor)))
        interp = seg.interpreter
        stack.enter_context(_replaced(interp, "invoke", meter.timed(MODEL_STAGE, interp.invoke)))
        stack.enter_context(_replaced(seg, "segmentation", meter.timed("argmax", seg.segmentation)))
        if chain.domain is not None:
            stack.enter_context(_replaced(chain, "domain", _TimedCheck(chain.domain, meter)))
        stack.enter_context(_replaced(chain, "filter_of", lambda band: meter.timed("temporal filter", filter_of(band))))
        yield
