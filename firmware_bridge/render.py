"""Draws the display state as the cart display would, and saves it as a PNG."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from firmware_bridge.device import DisplayState
from firmware_bridge.masks import NO_BAND

# RGB per label class: above the band, TLF, below, other
CLASS_RGB = np.array([[40, 44, 52], [250, 200, 40], [90, 60, 40], [120, 120, 120]], np.uint8)
BACKGROUND = (16, 16, 16)
BAND_RGB = (250, 200, 40)
EDGE_RGB = (255, 255, 255)


def render_rgb(state: DisplayState) -> np.ndarray:
    """(height, width, 3) uint8 RGB picture of the current mask (no text)."""
    h, w = state.height, state.width
    img = np.empty((h, w, 3), np.uint8)
    img[:] = BACKGROUND
    mask = state.mask
    if mask is not None and mask.labels is not None:
        img[:] = CLASS_RGB[np.clip(mask.labels, 0, 3)]
    elif mask is not None and mask.top is not None and mask.bottom is not None:
        rows = np.arange(h)[:, None]
        top = mask.top.astype(np.int64)
        bottom = mask.bottom.astype(np.int64)
        present = top != NO_BAND
        inside = present & (rows >= top) & (rows < bottom)
        img[inside] = BAND_RGB
        cols = np.flatnonzero(present)
        img[np.clip(top[cols], 0, h - 1), cols] = EDGE_RGB
        img[np.clip(bottom[cols] - 1, 0, h - 1), cols] = EDGE_RGB
    return img


def printable(text: str) -> str:
    """`text` with every character but printable ASCII replaced by '?': the display's font has no
    others, and OpenCV's text drawing crashes on text that is not valid UTF-8 (a STATUS whose
    bytes were not, decoded with surrogates)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def caption(state: DisplayState) -> list[str]:
    """The text lines the display shows: thickness with unit and validity (`Measurement.shown`:
    a rejected, NaN or impossible value shows as --), and the status (printable ASCII only)."""
    lines = []
    m = state.measurement
    if m is None:
        lines.append("TLF  --")
    elif m.bands == 1:
        lines.append(f"TLF {m.shown or '--'}" + ("" if m.unit_mm else " (uncal.)"))
    else:  # a frame of several bands: one line each, superficial first, numbered from 1
        for i in range(m.bands):
            b = state.bands.get(i)
            shown = (b.shown if b is not None else None) or "--"
            lines.append(f"band {i + 1} {shown}" + ("" if m.unit_mm else " (uncal.)"))
    status = state.status
    if status is not None and status.code != 0:
        lines.append(status.name.replace("_", " ").lower() + (f": {status.text}" if status.text else ""))
    elif status is not None and status.text:  # running, with a word to show (e.g. SIMULATED)
        lines.append(status.text)
    return [printable(line) for line in lines]


def render_png(state: DisplayState, path) -> Path:
    """Write the display to ``path`` as PNG: through OpenCV with the caption when it is
    installed, else a plain RGB PNG written with zlib."""
    path = Path(path)
    img = render_rgb(state)
    try:
        import cv2
    except ImportError:
        path.write_bytes(_png_bytes(img))
        return path
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    scale = max(0.35, state.height / 480)
    for i, line in enumerate(caption(state)):
        y = int((i + 1) * 22 * scale * 1.6)
        cv2.putText(bgr, line, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), bgr):
        path.write_bytes(_png_bytes(img))
    return path


def _png_bytes(rgb: np.ndarray) -> bytes:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
