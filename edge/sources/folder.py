"""Frames from image files: a folder, a glob pattern or one file, in natural name order.

Only regular files are read (a FIFO or a device named `a.png` would block the run or never
end). Each file's width and height are read from its header first (imagesize: no pixel is
decoded), and a picture of more than `max_pixels` pixels is skipped and counted in `oversize`
before OpenCV would spend seconds and gigabytes decoding it.
"""

from __future__ import annotations

import glob
import os
import re
import stat
import time
from pathlib import Path

import cv2
import numpy as np

from edge.errors import SourceError
from edge.frame import Frame
from edge.sources.base import DEFAULT_MAX_PIXELS, Source

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")


def to_uint8_image(img: np.ndarray | None) -> np.ndarray | None:
    """A decoded picture as the runtime wants it: uint8 gray HxW or BGR HxWx3; None if unusable.

    16-bit pictures are scaled by their bit depth (the top byte), BGRA loses alpha, a single
    channel in 3-D is squeezed, float pictures in 0-1 are scaled to 0-255.
    """
    if img is None or img.size == 0 or img.ndim not in (2, 3):
        return None
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 4:
            img = img[:, :, :3]
        elif img.shape[2] != 3:
            return None
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        scale = 255.0 if float(np.nanmax(img)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(img) * scale, 0, 255).astype(np.uint8)
    return None


def _natural_key(path: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", os.path.basename(path))]


def _regular(path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def header_size(path: str) -> tuple[int, int] | None:
    """(width, height) from an image file's header, None when the header does not tell.

    imagesize is imported here, not with the module: it imports urllib.request, and with it
    http, email and ssl (OpenSSL's libraries), 8.6 MB of resident memory that a run from a video
    or a capture card, which imports this module for `to_uint8_image`, would hold for nothing."""
    import imagesize

    try:
        w, h = imagesize.get(path)
    except Exception:  # a damaged header can fail in many ways; decoding will tell
        return None
    return (int(w), int(h)) if w > 0 and h > 0 else None


class FolderSource(Source):
    """Every image of a folder (or glob pattern, or a single file), once, not paced.

    An unreadable or corrupt file is skipped and counted in `corrupt`, one larger than
    `max_pixels` in `oversize` (the first such is named in `note`).
    """

    stills = True  # pictures, not a live screen: no flicker to wait out before finding a changed layout

    def __init__(self, pattern: str, fps: float | None = None, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.pattern = str(pattern)
        self.fps = fps
        self.max_pixels = int(max_pixels)
        self.corrupt = 0
        self.oversize = 0
        self.note = ""
        self.files: list[str] = []
        self._i = 0
        self._seq = 0

    def open(self) -> FolderSource:
        p = Path(self.pattern)
        if p.is_dir():
            files = [str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and _regular(f)]
        elif p.exists():
            if not _regular(p):
                raise SourceError(f"{self.pattern!r} is not a regular file (a pipe or a device is not read)")
            files = [str(p)]
        elif glob.has_magic(self.pattern):
            files = [f for f in glob.glob(self.pattern) if Path(f).suffix.lower() in IMAGE_SUFFIXES and _regular(f)]
        else:
            raise SourceError(f"no such image file or folder {self.pattern!r}")
        if not files:
            raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}; regular files) in {self.pattern!r}")
        self.files = sorted(files, key=_natural_key)
        self._i = self._seq = 0
        self.corrupt = self.oversize = 0
        return self

    def _too_large(self, path: str, size: tuple[int, int] | None) -> bool:
        if size is None or size[0] * size[1] <= self.max_pixels:
            return False
        self.oversize += 1
        self.note = self.note or (
            f"{os.path.basename(path)} is {size[0]}x{size[1]} pixels, more than [source] max_pixels ({self.max_pixels})"
        )
        return True

    def read(self) -> Frame | None:
        while self._i < len(self.files):
            path = self.files[self._i]
            self._i += 1
            if not _regular(path):  # replaced by a pipe or removed since the folder was listed
                self.corrupt += 1
                continue
            if self._too_large(path, header_size(path)):
                continue
            img = to_uint8_image(cv2.imread(path, cv2.IMREAD_UNCHANGED))
            if img is None:
                self.corrupt += 1
                continue
            if self._too_large(path, (img.shape[1], img.shape[0])):  # a header that did not tell
                continue
            frame = Frame(img, time.monotonic(), self._seq)
            self._seq += 1
            return frame
        return None
