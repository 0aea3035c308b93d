"""The one /proc/cpuinfo parser and what is read from it, on an x86 and an ARM file; the C
library's memory pools a run's threads share."""

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge import host

ROOT = Path(__file__).resolve().parents[1]

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
physical id\t: 0
core id\t\t: 0
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx2 avx512_vnni

processor\t: 1
physical id\t: 0
core id\t\t: 0
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx2 avx512_vnni

processor\t: 2
physical id\t: 0
core id\t\t: 1
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx2 avx512_vnni
"""

ARM = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd asimddp crc32

processor\t: 1
BogoMIPS\t: 108.00
Features\t: fp asimd asimddp crc32

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


def test_x86_name_flags_and_cores(tmp_path, monkeypatch):
    (tmp_path / "cpuinfo").write_text(X86)
    monkeypatch.setattr(host, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(host, "usable_cpus", lambda: 3)
    assert len(host.cpuinfo()) == 3
    assert host.cpu_name() == "AMD EPYC 9B14"
    assert host.cpu_flags() == {"fpu", "sse2", "avx2", "avx512_vnni"}
    assert host.physical_cores() == 2  # two threads of core 0, one of core 1


def test_arm_board_model_and_features(tmp_path, monkeypatch):
    (tmp_path / "cpuinfo").write_text(ARM)
    monkeypatch.setattr(host, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(host, "usable_cpus", lambda: 2)
    assert host.cpu_name() == "BCM2835"  # the first name key in the file, as `tlf-edge bench` reported it
    assert "asimddp" in host.cpu_flags()
    assert host.physical_cores() == 2  # no core ids: every usable CPU


def test_without_cpuinfo_the_platform_answers(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "CPUINFO", tmp_path / "missing")
    assert host.cpuinfo() == [] and host.cpu_flags() == set()
    assert host.cpu_name()
    assert host.physical_cores() == max(1, host.usable_cpus())


# Six threads alive at once, each allocating, then glibc's own count of its memory pools
# ("Arena N:" lines of malloc_stats on stderr); argv[1] "limit" calls limit_malloc_arenas first.
ARENAS = textwrap.dedent("""
    import ctypes, sys, threading
    from edge.host import limit_malloc_arenas
    if sys.argv[1] == "limit":
        print(limit_malloc_arenas())
    barrier = threading.Barrier(7)
    def work():
        kept = [bytearray(2000) for _ in range(100)]
        barrier.wait()
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join()
    ctypes.CDLL(None).malloc_stats()
""")


def arenas(mode: str, **env: str) -> tuple[str, int]:
    """What the child printed, and how many pools it had (its environment: ours without a
    MALLOC_ARENA_MAX, plus `env`)."""
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    proc = subprocess.run(
        [sys.executable, "-c", ARENAS, mode],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), sum(line.startswith("Arena ") for line in proc.stderr.splitlines())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_a_runs_threads_share_two_memory_pools():
    """limit_malloc_arenas keeps six threads to MALLOC_ARENAS pools (glibc gives them one each
    without it), and leaves a MALLOC_ARENA_MAX of the environment to the C library."""
    said, limited = arenas("limit")
    assert said == "True" and limited == host.MALLOC_ARENAS
    assert arenas("none")[1] > host.MALLOC_ARENAS + 2  # what the limit saves: a pool per thread
    said, from_env = arenas("limit", MALLOC_ARENA_MAX="3")
    assert said == "False" and from_env == 3
