"""TensorFlow's console noise off by default, on with `tlf-convert --verbose`.

TensorFlow and its converter write to the process's file descriptors from native code (oneDNN
and CPU-feature notices, absl and MLIR logs), LiteRT announces its XNNPACK delegate, OpenCV warns
about TIFF tags, and Keras prints the endpoints of every SavedModel export (TensorSpec dumps) to
stdout. None of it helps a user converting a model.
`native_output_hidden()` sends file descriptors 1 and 2 to a scratch file while Python's own
`sys.stdout` and `sys.stderr` keep writing to the console, so the converter's messages and
progress bars stay; `export_announcement_hidden()` keeps Keras' export print off stdout, and
`on_console()` lets a progress bar through inside it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings

_verbose = False
_console: list = []  # the stdout each export_announcement_hidden() replaced, innermost last


def hide_tensorflow_logs() -> None:
    """Before TensorFlow is imported: its C++ logs at ERROR only (as the converter's default)."""
    if not _verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def native_output_hidden(verbose: bool = False):
    """Native writes to fds 1 and 2 go to a scratch file; Python's streams still reach the console.

    With `verbose` nothing is hidden. Python warnings raised inside TensorFlow and Keras and
    their Python loggers below ERROR are hidden too.
    """
    global _verbose
    _verbose = verbose
    if verbose:
        yield
        return
    hide_tensorflow_logs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    swapped = []
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        try:
            on_fd = stream.fileno() == fd
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            on_fd = False  # a stream that is not the fd itself (a test's capture) is left alone
        if on_fd:
            kept = open(
                saved[fd],
                "w",
                buffering=1,
                encoding=getattr(stream, "encoding", None) or "utf-8",
                errors="replace",
                closefd=False,
            )
            swapped.append((name, stream, kept))
            setattr(sys, name, kept)
    levels = {n: logging.getLogger(n).level for n in ("tensorflow", "absl", "keras")}
    scratch = tempfile.TemporaryFile()
    try:
        os.dup2(scratch.fileno(), 1)
        os.dup2(scratch.fileno(), 2)
        for n in levels:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            for module in ("tensorflow", "keras", "tf_keras", "absl"):
                warnings.filterwarnings("ignore", module=module)
            yield
    finally:
        for name, original, kept in swapped:
            kept.flush()
            setattr(sys, name, original)
            kept.close()
        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        scratch.close()
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
        _verbose = False


@contextlib.contextmanager
def export_announcement_hidden():
    """Keras prints every SavedModel export's endpoints to stdout: hidden unless verbose."""
    if _verbose:
        yield
        return
    _console.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        _console.pop()


@contextlib.contextmanager
def on_console():
    """Inside export_announcement_hidden(): write to the stdout it replaced (a progress bar)."""
    if not _console:
        yield
        return
    with contextlib.redirect_stdout(_console[-1]):
        yield
