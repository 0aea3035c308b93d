"""The built-in phantom scanner as a frame source, with ground truth on every frame."""

from __future__ import annotations

import time

from edge import phantom
from edge.errors import SourceError
from edge.frame import Frame
from edge.sources.base import Source


class PhantomSource(Source):
    """A phantom clip: `frames` frames of one slowly moving scene at `fps` (not paced)."""

    def __init__(self, seed: int = 7, frames: int = 90, fps: float = 30.0, size=(400, 400), preset: str = "default"):
        if preset not in phantom.PRESETS:
            raise SourceError(f"unknown phantom preset {preset!r} (one of {sorted(phantom.PRESETS)})")
        self.seed, self.frames, self.fps, self.size, self.preset = seed, frames, fps, size, preset
        self._clip = None
        self._seq = 0

    @classmethod
    def from_url(cls, kind: str, options: dict[str, str]) -> "PhantomSource":
        if kind not in ("", "clip"):
            raise SourceError(f"unknown phantom kind {kind!r} (expected phantom://clip)")
        known = {"seed", "frames", "fps", "size", "preset"}
        unknown = set(options) - known
        if unknown:
            raise SourceError(f"unknown phantom option(s) {sorted(unknown)} (known: {sorted(known)})")
        try:
            size = tuple(int(v) for v in options.get("size", "400x400").lower().split("x"))
            if len(size) != 2:
                raise ValueError(size)
            return cls(
                seed=int(options.get("seed", 7)),
                frames=int(options.get("frames", 90)),
                fps=float(options.get("fps", 30.0)),
                size=size,
                preset=options.get("preset", "default"),
            )
        except ValueError as e:
            raise SourceError(f"bad phantom option in {options!r}: {e}") from e

    def open(self) -> "PhantomSource":
        self._clip = phantom.clip(self.seed, frames=self.frames, fps=self.fps, shape=self.size, machine=self.preset)
        self._seq = 0
        return self

    def read(self) -> Frame | None:
        if self._clip is None:
            raise SourceError("phantom source read before open()")
        scan = next(self._clip, None)
        if scan is None:
            return None
        self._seq += 1
        truth = {"thickness_mm": scan.thickness_mm, "labels": scan.labels}
        return Frame(scan.image, time.monotonic(), self._seq - 1, spacing_mm=scan.spacing_mm, truth=truth)
