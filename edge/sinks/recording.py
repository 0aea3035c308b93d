"""Recording sink: the B-mode region (ROI) as a video, with the TLF band and the reading drawn on it.

Only `segmentation.frame.image` (the ROI the model saw) is ever written, at its own size; the
full screen, with its patient fields, never reaches the file.

Container and codec: Motion-JPEG in AVI, written by OpenCV's built-in encoder
(`cv2.CAP_OPENCV_MJPEG`), because
- it is part of OpenCV itself, so every cart writes the same file whatever FFmpeg or GStreamer
  build is installed (no H.264 licence or plugin needed);
- it keeps the exact ROI size (the FFmpeg writer rounds odd widths and heights down to even);
- every frame is a complete JPEG with no reference to its neighbours, and the AVI chunks follow
  one another in file order, so a file cut short still holds every whole frame before the cut;
- it costs little CPU next to the model.

Clean close: `close()` releases the writer, which appends the AVI index and fixes the header
counts; the file then plays anywhere. Abrupt stop (power cut, kill): the index and counts are
missing. OpenCV's own AVI reader refuses such a file, but FFmpeg-based readers (OpenCV's
default reader, ffplay, VLC) scan the chunks and play every frame that reached the disk; the
writer keeps up to about 64 KB in memory, so the last frame or few are lost. (An MP4, whose
index is written only at the end, would be unreadable.)

Full disk: OpenCV's writer reports no write errors. Before each frame the free space of the
recording's folder is checked against `min_free_bytes`, and the file is checked to keep
growing; when either fails, `write()` raises a one-line SinkError, the pipeline reports
"recording output stopped: ..." and closes this sink (the margin leaves room for the index, so
the part written stays playable) while measurement goes on. When the disk fills regardless (no
margin, or another writer took the room), the writes fail silently and the file stops growing:
the writer flushes in blocks of about 64 KB, so once the frames written since the last growth
hold more than two such blocks (as the file's bytes per frame so far tell), the recording
stops; the frames that reached the disk play with an FFmpeg-based reader.

Re-analysis (`tlf-edge analyze`): beside `<stem>.avi` a sidecar `<stem>.jsonl` gets one JSON line
per frame written (appended a whole line at a time, as the logs are): which part file and
frame index it is, its time since the recording's first frame, and the pixel spacing of the
ROI with where it came from. Its first line says whether the overlay is drawn into the pixels
(`overlay`; `[recording] overlay = false` records the B-mode region as the model saw it, the
only kind a re-analysis can measure). The sidecar holds no wall-clock time and nothing of the
screen outside the B-mode region.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edge.errors import SinkError
from edge.frame import Measurement, Segmentation
from edge.measure.quality import names
from edge.sinks.base import FrameBands, LineFile, Sink

DEFAULT_FPS = 30.0
BAND_COLOUR = (0, 255, 0)  # BGR green: the TLF band contour
TEXT_COLOUR = (0, 255, 255)  # BGR yellow: the reading
FLAG_COLOUR = (0, 0, 255)  # BGR red: quality flags when any is raised
OK_COLOUR = (255, 255, 255)
WRITER_BLOCK = 64 * 1024  # OpenCV's MJPG writer reaches the file in blocks of about this size
SIDECAR_FORMAT = 1  # the first line of a recording's sidecar: {"tlf_edge_recording": 1, ...}


def sidecar_path(video: str | Path) -> Path:
    """The sidecar of the recording whose first part is `video` (`<stem>.jsonl`)."""
    video = Path(video)
    return video.with_name(video.stem + ".jsonl")


def _fmt(v) -> str | None:
    return None if v is None or not math.isfinite(float(v)) else f"{float(v):.2f}"


def overlay_text(m: Measurement | list[Measurement]) -> tuple[str, str]:
    """The two overlay lines: the reading (with the temporally filtered value and its 95 % band,
    in words, when known) and the flags. A frame of several bands (a list) reads 'bands' and one
    value per band, superficial first, and the flags of any of them."""
    if isinstance(m, list) and len(m) > 1:
        flags = 0
        for b in m:
            flags |= b.flags
        values = " | ".join(_fmt(b.thickness) or "--" for b in m)
        return f"bands {values} {m[0].unit}", "|".join(names(flags)) or "ok"
    if isinstance(m, list):
        m = m[0]
    value = _fmt(m.thickness)
    line = f"TLF {value if value else '--'} {m.unit}"
    filtered, low, high = (_fmt(m.extra.get(k)) for k in ("filtered", "low", "high"))
    if filtered:
        line += f"  filtered {filtered} {m.unit}"
        if low and high:
            line += f" ({low}-{high})"
    return line, "|".join(names(m.flags)) or "ok"


FONT = cv2.FONT_HERSHEY_SIMPLEX


def text_layout(width: int) -> tuple[float, int, int]:
    """(font scale, stroke thickness, outline width in pixels) of the overlay text on an image
    `width` pixels wide."""
    scale = max(0.35, width / 900)
    return scale, max(1, round(scale * 2)), max(1, round(scale * 1.5))


def text_masks(height: int, width: int, lines: list[str]) -> list[np.ndarray]:
    """Each overlay line drawn once, white on black (uint8, anti-aliased), one under the other
    from the top left as draw_overlay places them on an image `width` pixels wide; the masks
    cover the strip of rows the text and its outline take (at most `height` rows)."""
    scale, thick, pad = text_layout(width)
    (_, th), base = cv2.getTextSize(lines[0], FONT, scale, thick)
    step = th + base + 4
    rows = min(height, step * len(lines) + 2 * pad + 4)
    y = th + base + 2
    masks = []
    for text in lines:
        mask = np.zeros((rows, width), np.uint8)
        cv2.putText(mask, text, (4, y), FONT, scale, 255, thick, cv2.LINE_AA)
        masks.append(mask)
        y += step
    return masks


def draw_overlay(
    image: np.ndarray, m: Measurement | list[Measurement], labels: np.ndarray, tlf_class: int = 1
) -> np.ndarray:
    """A BGR copy of the ROI `image` with the TLF band contour (from model-grid `labels`, scaled to
    the image) and the reading drawn on it. `image` itself is left untouched.

    Each line of text is drawn once, into a mask; its dark outline is that mask grown by a few
    pixels, so outline and glyphs coincide whatever the font renderer makes of a stroke
    thickness (OpenCV 5 draws a thicker stroke with wider letters: text drawn twice, outline
    then colour, drifted apart along the line)."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[..., :3].copy()
    h, w = out.shape[:2]
    band = (labels == tlf_class).astype(np.uint8)
    if band.shape != (h, w):
        band = cv2.resize(band, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    contours, _ = cv2.findContours(band, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    line_w = max(1, round(min(h, w) / 200))
    cv2.drawContours(out, contours, -1, BAND_COLOUR, line_w + 1, cv2.LINE_8)

    reading, flags = overlay_text(m)
    masks = text_masks(h, w, [reading, flags])
    _, _, pad = text_layout(w)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pad + 1, 2 * pad + 1))
    strip = out[: masks[0].shape[0]]  # a view: the rows the text takes
    strip[cv2.dilate(np.maximum.reduce(masks), kernel) > 0] = 0  # a dark rim keeps the text legible on bright tissue
    for mask, colour in zip(masks, (TEXT_COLOUR, OK_COLOUR if flags == "ok" else FLAG_COLOUR)):
        ink = mask > 0
        alpha = mask[ink].astype(np.float32)[:, None] / 255.0
        strip[ink] = (strip[ink] * (1 - alpha) + np.asarray(colour, np.float32) * alpha).astype(np.uint8)
    return out


class RecordingSink(Sink):
    """Writes the ROI of every frame, with the overlay, to an MJPG AVI at `path`.

    fps: the source's nominal frame rate, or a callable returning it (asked when the first
    frame arrives, i.e. after the source has opened), or None; 30 when unknown.
    min_free_bytes: recording stops when the folder's free space falls below this.
    stall_frames: recording stops when the file has not grown over this many frames (a write
    failing silently); a JPEG frame is at least ~600 bytes and the writer buffers ~64 KB. Once
    the file's bytes per frame are known, fewer: as many frames as hold two writer blocks.
    If the ROI changes size mid-run, the current file is closed and a new part
    `<stem>-part2.avi`, `-part3`, ... is started at the new size; `files` lists every part.
    overlay: draw the TLF band and the reading into the frames (a recording to watch); False
    writes the ROI as the model saw it (a recording `tlf-edge analyze` can measure again).
    Every frame also gets a line in the sidecar (`sidecar_path`; see the module docstring).
    """

    name = "recording"

    def __init__(
        self,
        path: str | Path,
        fps: float | Callable[[], float | None] | None = None,
        tlf_class: int = 1,
        min_free_bytes: int = 100 * 2**20,
        quality: int = 90,
        stall_frames: int = 256,
        overlay: bool = True,
    ):
        self.path = Path(path)
        self.overlay = bool(overlay)
        self._sidecar = LineFile(sidecar_path(self.path))
        self._sidecar_open = False
        self._t0: float | None = None
        self.fps, self.tlf_class = fps, tlf_class
        self.min_free_bytes, self.quality, self.stall_frames = int(min_free_bytes), int(quality), int(stall_frames)
        self.files: list[Path] = []
        self.frames = 0  # written to all parts
        self._bands = FrameBands()
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None  # (width, height) of the open part
        self._last_bytes = 0
        self._stalled = 0
        self._part_frames = 0  # frames written to the open part
        self._grown_frames = 0  # of those, how many had been written when the file last grew

    @classmethod
    def in_folder(cls, folder: str | Path, **kwargs) -> RecordingSink:
        """A sink recording to `folder/tlf-YYYYmmdd-HHMMSS.avi` (local time of creation)."""
        return cls(Path(folder) / time.strftime("tlf-%Y%m%d-%H%M%S.avi"), **kwargs)

    def open(self) -> RecordingSink:
        # the writer is made on the first frame, when the ROI size is known
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"cannot make the recording folder {str(self.path.parent)!r}: {e.strerror or e}") from e
        return self

    def _nominal_fps(self) -> float:
        fps = self.fps() if callable(self.fps) else self.fps
        return float(fps) if fps and math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS

    def _start_part(self, size: tuple[int, int]) -> None:
        part = (
            self.path
            if not self.files
            else self.path.with_name(f"{self.path.stem}-part{len(self.files) + 1}{self.path.suffix}")
        )
        self._check_space(part)
        writer = cv2.VideoWriter(
            str(part),
            cv2.CAP_OPENCV_MJPEG,
            cv2.VideoWriter.fourcc(*"MJPG"),
            self._nominal_fps(),
            size,
            [cv2.VIDEOWRITER_PROP_QUALITY, self.quality],
        )
        if not writer.isOpened():
            raise SinkError(f"cannot open {str(part)!r} for writing an MJPG video of {size[0]}x{size[1]}")
        self._writer, self._size = writer, size
        self.files.append(part)
        self._last_bytes, self._stalled, self._part_frames, self._grown_frames = 0, 0, 0, 0

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def _check_space(self, target: Path) -> None:
        try:
            free = shutil.disk_usage(target.parent).free
        except OSError as e:
            raise SinkError(f"cannot check free space for {str(target)!r}: {e.strerror or e}") from e
        if free < self.min_free_bytes:
            raise SinkError(
                f"disk nearly full ({free / 2**20:.0f} MB free, {self.min_free_bytes / 2**20:.0f} MB kept in reserve);"
                f" {self.frames} frames kept in {str(target)!r}"
            )

    def _check_growth(self) -> None:
        part = self.files[-1]
        try:
            size = os.path.getsize(part)
        except OSError as e:
            raise SinkError(f"recording file {str(part)!r} is gone: {e.strerror or e}") from e
        if size > self._last_bytes:
            self._stalled, self._last_bytes, self._grown_frames = 0, size, self._part_frames
        else:
            self._stalled += 1
        limit = self.stall_frames
        if self._grown_frames:
            per_frame = self._last_bytes / self._grown_frames
            limit = min(limit, 2 + math.ceil(2 * WRITER_BLOCK / max(per_frame, 1.0)))
        if self._stalled >= limit:
            raise SinkError(
                f"{str(part)!r} stopped growing over {self._stalled} frames (disk full? write failing?);"
                f" about {self._grown_frames} frames of it reached the disk"
            )

    def write(self, m: Measurement, seg: Segmentation) -> None:
        if self.dead:
            return
        frame = self._bands.add(m)  # one video frame per scanner frame, with all its bands
        if frame is None:
            return
        try:
            image = seg.frame.image
            size = (image.shape[1], image.shape[0])
            if self._writer is None or size != self._size:
                self._release()
                self._start_part(size)
            else:
                self._check_space(self.files[-1])
            if self.overlay:
                picture = draw_overlay(image, frame, seg.labels, self.tlf_class)
            else:
                picture = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[..., :3]
            assert self._writer is not None  # opened above for this file
            self._writer.write(picture)
            self._note(seg.frame)
            self.frames += 1
            self._part_frames += 1
            self._check_growth()
        except SinkError as e:
            self.dead = str(e)
            raise
        except (cv2.error, OSError) as e:
            detail = (str(e).strip().splitlines() or [""])[-1]
            self.dead = f"recording failed: {type(e).__name__}: {detail}"
            raise SinkError(self.dead) from e

    def _note(self, frame) -> None:
        """The sidecar line of the frame just written (the header line first)."""
        if not self._sidecar_open:
            self._sidecar.open()
            self._sidecar_open = True
            self._sidecar.write_line(
                json.dumps(
                    {
                        "tlf_edge_recording": SIDECAR_FORMAT,
                        "overlay": self.overlay,
                        "video": self.path.name,
                        "fps": self._nominal_fps(),
                    }
                )
            )
        if self._t0 is None:
            self._t0 = frame.t_capture
        spacing = None if frame.spacing_mm is None else [round(float(v), 8) for v in frame.spacing_mm]
        source = frame.spacing_source or ("source" if spacing is not None else "none")
        self._sidecar.write_line(
            json.dumps(
                {
                    "file": self.files[-1].name,
                    "index": self._part_frames,
                    "seq": int(frame.seq),
                    "t": round(frame.t_capture - self._t0, 6),
                    "spacing_mm": spacing,
                    "calibration": source,
                }
            )
        )

    def close(self) -> None:
        # release() writes the AVI index: after it the part written so far plays anywhere
        self._release()
        self._sidecar.close()
