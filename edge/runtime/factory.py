"""Components the runtime builds from what the user names."""

from __future__ import annotations

from edge import sources
from edge.sources.base import DEFAULT_MAX_PIXELS, Source, split_url


def open_source(url: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Source:
    """Build the source named by `url` (not yet opened): a scanner source (edge.sources.open_source
    lists them) or the built-in phantom scanner, whose simulator is loaded only when it is asked for:

    phantom://clip?seed=7&frames=90&fps=30&size=400x400&preset=default  the built-in phantom
    phantom://screen?seed=7&frames=90&size=1280x720&depth=40,50&change_at=45  its whole screen

    SourceError (one line) for anything malformed.
    """
    parts = split_url(url)
    if parts.scheme.lower() == "phantom":
        from edge.sim.source import open_phantom

        return open_phantom(parts, max_pixels)
    return sources.open_source(url, max_pixels)
