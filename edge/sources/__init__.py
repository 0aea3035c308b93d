"""Frame sources: where B-mode frames come from. `open_source(url)` picks one by its URL."""

from edge.sources.base import Source, open_source

__all__ = ["Source", "open_source"]
