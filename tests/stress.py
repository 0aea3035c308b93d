"""Run the test suite on a machine made slow and different on purpose (`make test-stress`).

A test that passes only on a fast, idle machine with this machine's instruction set fails a user
with another one. This runner starts CPU burners (by default one per core, each a busy loop at
the tests' own priority), optionally limits the SIMD code paths numpy and OpenCV may dispatch to,
runs pytest with the arguments given after `--`, stops the burners and exits with pytest's status.

    python tests/stress.py                       # burners on every core, native SIMD
    python tests/stress.py --simd avx2 -- -x     # and numpy/OpenCV without their AVX-512 paths
    python tests/stress.py --burners 0 --simd baseline -- tests/test_phantom_pinned.py

How the SIMD limit works: numpy reads NPY_DISABLE_CPU_FEATURES and OpenCV reads
OPENCV_CPU_DISABLE when they are imported, and then skip the code paths built for the named
features. The names are taken from what this numpy and this OpenCV were built to dispatch to, so
the same command works on any CPU (a feature the CPU lacks is simply not listed). LiteRT's
XNNPACK kernels pick their own paths and cannot be limited this way.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

LEVELS = ("native", "avx2", "baseline")


def _above(level: str, name: str) -> bool:
    """Whether a dispatch target `name` is beyond `level`."""
    if level == "baseline":
        return True
    return level == "avx2" and ("AVX512" in name.replace("-", "").replace("_", "") or name in ("X86_V4",))


def simd_environment(level: str) -> dict[str, str]:
    """Environment variables that keep numpy and OpenCV to `level` ('native' changes nothing)."""
    if level == "native":
        return {}
    probe = subprocess.run(
        [sys.executable, "-c",
         "import numpy, cv2\n"
         "try:\n from numpy._core._multiarray_umath import __cpu_dispatch__ as d\n"
         "except ImportError:\n from numpy.core._multiarray_umath import __cpu_dispatch__ as d\n"
         "print(' '.join(d)); print(cv2.getCPUFeaturesLine())"],
        capture_output=True, text=True, check=True, env={**os.environ, "NPY_DISABLE_CPU_FEATURES": "",
                                                          "OPENCV_CPU_DISABLE": ""})
    numpy_targets, cv_line = probe.stdout.splitlines()[:2]
    numpy_off = [t for t in numpy_targets.split() if _above(level, t)]
    cv_off = [t.strip("*?") for t in cv_line.split() if t.startswith("*") and _above(level, t.strip("*?"))]
    return {"NPY_DISABLE_CPU_FEATURES": " ".join(numpy_off), "OPENCV_CPU_DISABLE": ",".join(cv_off)}


def start_burners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, pytest_args = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--burners", type=int, default=os.cpu_count() or 2, help="busy-loop processes (default: one per core)")
    p.add_argument("--simd", choices=LEVELS, default="native", help="highest SIMD level numpy and OpenCV may use")
    args = p.parse_args(own)
    env = {**os.environ, **simd_environment(args.simd)}
    print(f"stress: {args.burners} CPU burner(s) on {os.cpu_count()} core(s); SIMD {args.simd}"
          + "".join(f"; {k}={env[k]!r}" for k in ("NPY_DISABLE_CPU_FEATURES", "OPENCV_CPU_DISABLE") if env.get(k)),
          flush=True)
    burners = start_burners(args.burners)
    try:
        return subprocess.run([sys.executable, "-m", "pytest", *pytest_args], env=env).returncode
    finally:
        for b in burners:
            b.kill()
        for b in burners:
            b.wait()


if __name__ == "__main__":
    sys.exit(main())
