"""Helpers for tests that watch the file system around a `tlf-edge` subprocess."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path


def wait_until(predicate, timeout: float, what: str) -> None:
    """For a subprocess's files, which give no event to wait on: check every 50 ms."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        pause.wait(0.05)


def listing(root: Path, skip: Path) -> dict:
    """Every path below `root` but `skip`, with its size (None for folders; ("link", target) for symlinks)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            else:
                out[rel] = None if p.is_dir() else p.lstat().st_size
    return out


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity (which json.dumps writes by default)."""
    return json.loads(text, parse_constant=_no_constant)
