"""The machine the product runs on: its CPU's name, instruction-set flags and cores, all read from
/proc/cpuinfo by one parser (`cpuinfo`); the CPU time of all this process's threads; and how many
memory pools the C library's allocator keeps for them (`limit_malloc_arenas`)."""

from __future__ import annotations

import ctypes
import os
import platform
import time
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
NAME_KEYS = ("model name", "Model", "Hardware")  # x86, then the keys ARM kernels use


def cpuinfo() -> list[dict[str, str]]:
    """The blocks of /proc/cpuinfo (one per logical CPU, and on ARM a last one about the board),
    each as key -> value; empty where there is no such file."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return []
    blocks: list[dict[str, str]] = []
    block: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if block:
                blocks.append(block)
            block = {}
            continue
        key, _, value = line.partition(":")
        block.setdefault(key.strip(), value.strip())
    if block:
        blocks.append(block)
    return blocks


def cpu_name() -> str:
    """The CPU's model name (as `lscpu` prints it), for every figure that is a time."""
    for block in cpuinfo():
        for key, value in block.items():  # in the file's order
            if key in NAME_KEYS and value:
                return value
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The instruction-set flags of the first CPU ("flags" on x86, "Features" on ARM)."""
    for block in cpuinfo():
        for key in ("flags", "Features"):
            if key in block:
                return set(block[key].split())
    return set()


def usable_cpus() -> int:
    """Logical CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def physical_cores() -> int:
    """Physical CPU cores available to this process (hyper-threads not counted)."""
    logical = usable_cpus()
    cores = {(block.get("physical id"), block["core id"]) for block in cpuinfo() if "core id" in block}
    if cores:
        return max(1, min(logical, len(cores)))
    return max(1, logical)


FAST_INT8_FLAGS = {"avx512_vnni", "avx_vnni", "avx2", "asimddp"}  # instruction sets that speed up int8 kernels


def device_identity() -> dict:
    """What a speed measured on this machine depends on: the CPU's name, architecture, physical
    cores and int8 instruction sets (a measurement made with other values is of another machine)."""
    return {
        "cpu": cpu_name(),
        "machine": platform.machine(),
        "physical_cores": physical_cores(),
        "int8_features": sorted(cpu_flags() & FAST_INT8_FLAGS),
    }


def installed_version(distribution: str) -> str | None:
    """The installed version of a Python distribution ("ai-edge-litert"), or None."""
    import importlib.metadata  # (not at start: it reads every installed distribution's metadata)

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


TASKS = Path("/proc/self/task")


def _thread_clock(tid: int) -> int:
    """Linux's CPU-time clock id of thread `tid` (MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED))."""
    return ((~tid) << 3) | 6


def all_threads_cpu() -> float:
    """CPU seconds of every live thread of this process so far, native threads (an interpreter's
    workers) included, each read from its own clock: the process clock (time.process_time) counts
    the threads running on other cores only up to their last scheduler tick, so over an invoke of
    a few milliseconds it misses most of their work. A difference of two readings is the CPU spent
    between them if no thread ended meanwhile. Outside Linux: time.process_time()."""
    try:
        tids = [int(t) for t in os.listdir(TASKS)]
    except OSError:
        return time.process_time()
    total = 0.0
    for tid in tids:
        try:
            total += time.clock_gettime(_thread_clock(tid))
        except OSError:  # the thread has ended since the listing
            pass
    return total


MALLOC_ARENAS = 2  # the C library's memory pools for a run's threads (glibc's default: 8 per core)
_M_ARENA_MAX = -8  # mallopt's parameter for it (glibc's malloc.h)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Let glibc's allocator keep at most `arenas` memory pools for all this process's threads,
    as MALLOC_ARENA_MAX would; True when glibc accepted it (it holds only if called before the
    process has 8 pools, which a run's start is). Called before a run starts its threads:
    each thread that allocates gets a pool of its own, up to 8 per core, and each may keep the
    buffers its thread freed (the capture, model and output threads of a run, and the ROI
    tracker's detection thread, started anew every 300 frames). On the 2-core AVX2 EPYC,
    `python benchmarks/peak_memory.py --env MALLOC_ARENA_MAX=16` (glibc's default there)
    measured a 300-frame run's peak at 142.3 MB against 143.8, a small share of that run's
    memory; it is kept for the threads a long run starts. A MALLOC_ARENA_MAX in the environment is left to the C library, and outside glibc
    nothing is done."""
    if "MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(_M_ARENA_MAX, int(arenas)) == 1
