"""The Source contract and the URL dispatcher.

A source starts no threads of its own; the pipeline calls `read()` from its capture thread.
`read()` returns the next Frame, or None when a finite source is exhausted. A live source
returns the newest frame and counts the ones it had to drop (`dropped`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from edge.errors import SourceError
from edge.frame import Frame


class Source:
    """Base class; also a usable fake in tests (it yields nothing)."""

    live: bool = False
    dropped: int = 0
    fps: float | None = None  # nominal frame rate, when the source knows it

    def open(self) -> "Source":
        return self

    def read(self) -> Frame | None:
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame


def parse_options(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def open_source(url: str) -> Source:
    """Build the source named by `url` (not yet opened).

    phantom://clip?seed=7&frames=90&fps=30&size=400x400&preset=default  the built-in phantom
    """
    parts = urlsplit(url)
    if parts.scheme == "phantom":
        from edge.sources.phantom import PhantomSource

        return PhantomSource.from_url(parts.netloc or parts.path, parse_options(parts.query))
    raise SourceError(f"unknown source {url!r} (expected phantom://...)")
