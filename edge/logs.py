"""Messages to the operator (warnings, notes) go through `logging`, under the "tlf_edge" logger
for the device side and "tlf_convert" for the converter.

A command line calls `one_line(prog)` once: each message is then one line on stderr, as
`tlf-edge: warning: 4 LiteRT threads asked for, ...`, whichever part of the product said it. A
program that uses the packages as a library configures `logging` as it likes instead (with
nothing configured, Python prints warnings alone on stderr).
"""

from __future__ import annotations

import logging
import sys

FAMILIES = ("tlf_edge", "tlf_convert")


def get(name: str) -> logging.Logger:
    """The logger of one module: `get(__name__)` in edge/ is tlf_edge.<module>, in convert/ tlf_convert.<module>."""
    family = "tlf_convert" if name.split(".")[0] == "convert" else "tlf_edge"
    return logging.getLogger(f"{family}.{name}")


class _Stderr(logging.StreamHandler):
    """A handler that writes to the sys.stderr of the moment (tests and tools swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _OneLine(logging.Formatter):
    def __init__(self, prog: str) -> None:
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())  # one line, whatever the message held
        return f"{self.prog}: {record.levelname.lower()}: {text}"


def one_line(prog: str, level: int = logging.WARNING) -> None:
    """Show the product's messages of `level` and above as one line each on stderr, named for `prog`."""
    for family in FAMILIES:
        logger = logging.getLogger(family)
        for h in [h for h in logger.handlers if isinstance(h, _Stderr)]:
            logger.removeHandler(h)
        handler = _Stderr()
        handler.setFormatter(_OneLine(prog))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
