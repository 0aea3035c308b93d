"""Frames of a recording made by `tlf-edge run` ([recording] enabled), as the cart measured them.

A cart recording is the B-mode region only (Motion-JPEG AVI, one part file per ROI size) with a
sidecar `<stem>.jsonl` (edge.sinks.recording): for every frame its part file and index, its time since
the first frame and the spacing of its pixels with where that came from. This source delivers
the frames in recorded order, already cropped (`cropped`), each with the spacing the cart used;
`clip_time(frame)` is the frame's time in the recording (the cart's capture times, so a
re-analysis sees the frame rate the cart saw, dropped frames included).

A recording whose sidecar says the overlay (band contour, reading) was drawn into its pixels is
refused at open: the model would measure the drawing. A frame the sidecar lists but the video
lacks (the last frames of a recording cut off by a power loss) ends the clip; a frame the video
holds but the sidecar does not list (its line was never written) is left out, counted in
`unlisted`, because its spacing is unknown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge.errors import SourceError
from edge.frame import Frame
from edge.sinks.recording import SIDECAR_FORMAT, sidecar_path
from edge.sources.base import DEFAULT_MAX_PIXELS, Source
from edge.sources.video import VideoSource

PART = re.compile(r"^(?P<stem>.+)-part\d+$")  # a later part of a recording: <stem>-part2.avi
MAX_SIDECAR_BYTES = 256 * 2**20  # about 2.5 million frames: a day at 30 fps


def recording_of(video: str | Path) -> Path | None:
    """The first part of the cart recording `video` belongs to (itself, or `<stem>.avi` for a
    `<stem>-partN.avi`), when its sidecar is there; None for any other video."""
    video = Path(video)
    if sidecar_path(video).is_file():
        return video
    m = PART.match(video.stem)
    if m:
        first = video.with_name(m.group("stem") + video.suffix)
        if sidecar_path(first).is_file():
            return first
    return None


def read_sidecar(video: str | Path) -> tuple[dict, list[dict]]:
    """(header, frame lines) of the sidecar of the recording `video`; SourceError (one line) when
    it is missing, not a recording's sidecar, or damaged before its last line (a last line cut
    short by a power loss is dropped)."""
    path = sidecar_path(video)
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise SourceError(f"recording sidecar {path.name!r} is larger than any recording's")
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise SourceError(f"cannot read the recording sidecar {path.name!r}: {e.strerror or e}") from e
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1 and i > 0:
                break  # the line being written when the cart stopped
            raise SourceError(f"recording sidecar {path.name!r} line {i + 1} is not JSON") from None
    if not records or not isinstance(records[0], dict) or records[0].get("tlf_edge_recording") != SIDECAR_FORMAT:
        raise SourceError(f"{path.name!r} is not the sidecar of a tlf-edge recording (format {SIDECAR_FORMAT})")
    frames = records[1:]
    for n, r in enumerate(frames, 2):
        ok = (
            isinstance(r, dict)
            and isinstance(r.get("file"), str)
            and isinstance(r.get("index"), int)
            and isinstance(r.get("t"), (int, float))
            and (
                r.get("spacing_mm") is None
                or (
                    isinstance(r["spacing_mm"], list)
                    and len(r["spacing_mm"]) == 2
                    and all(isinstance(v, (int, float)) for v in r["spacing_mm"])
                )
            )
        )
        if not ok or Path(r["file"]).name != r["file"]:
            raise SourceError(f"recording sidecar {path.name!r} line {n} is damaged")
    return records[0], frames


class RecordingSource(Source):
    """The frames of one cart recording (every part), with the spacing and times of its sidecar.

    After open(): `header` (the sidecar's first line), `frames` (frames the sidecar lists),
    `calibrations` (where the recorded spacings came from, e.g. {"screen"}), `corrupt` (frames
    that failed to decode), `unlisted` (frames without a sidecar line, left out).
    """

    cropped = True  # a recording holds the B-mode region only

    def __init__(self, video, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.path = Path(video)
        self.max_pixels = int(max_pixels)
        self.header: dict = {}
        self.frames = 0
        self.calibrations: set[str] = set()
        self.corrupt = 0
        self.unlisted = 0
        self._lines: list[dict] = []
        self._i = 0
        self._part: VideoSource | None = None
        self._part_name = ""
        self._part_corrupt = 0  # corrupt frames of the parts already closed
        self._seq = 0
        self._times: dict[int, float] = {}

    def open(self) -> RecordingSource:
        first = recording_of(self.path)
        if first is None:
            raise SourceError(f"{self.path.name!r} has no recording sidecar ({sidecar_path(self.path).name})")
        self.path = first
        self.header, self._lines = read_sidecar(first)
        if self.header.get("overlay", True):
            raise SourceError(
                "recorded with the overlay (band contour and reading) drawn into its frames: the model "
                "would measure the drawing; record with [recording] overlay = false to re-analyse"
            )
        if not self._lines:
            raise SourceError("the recording lists no frame")
        fps = self.header.get("fps")
        self.fps = float(fps) if isinstance(fps, (int, float)) and 0 < fps <= 1000 else None
        self.frames = len(self._lines)
        self.calibrations = {str(r.get("calibration") or "none") for r in self._lines}
        self._i = self._seq = self.corrupt = self.unlisted = self._part_corrupt = 0
        self._times = {}
        return self

    def _open_part(self, name: str) -> None:
        self._close_part()
        part = self.path.with_name(name)
        self._part = VideoSource(part, max_pixels=self.max_pixels).open()
        self._part_name = name

    def _close_part(self) -> None:
        if self._part is not None:
            self._part_corrupt += self._part.corrupt
            self._part.close()
            self._part = None

    def read(self) -> Frame | None:
        while self._i < len(self._lines):
            line = self._lines[self._i]
            if self._part is None or line["file"] != self._part_name:
                self._open_part(line["file"])
            assert self._part is not None  # _open_part opened it
            frame = self._part.read()
            if frame is None:  # the video ends before its sidecar: the frames lost at a cut
                self._skip_part()
                continue
            index = frame.seq + self._part.corrupt  # this frame's position in its part file
            while (
                self._i < len(self._lines)
                and self._lines[self._i]["file"] == self._part_name
                and self._lines[self._i]["index"] < index
            ):
                self._i += 1  # listed, but did not decode
            if (
                self._i >= len(self._lines)
                or self._lines[self._i]["file"] != self._part_name
                or self._lines[self._i]["index"] != index
            ):
                self.unlisted += 1
                continue
            line = self._lines[self._i]
            self._i += 1
            spacing = None
            if line["spacing_mm"] is not None:  # two numbers: read_sidecar checked
                row_mm, col_mm = line["spacing_mm"]
                spacing = (float(row_mm), float(col_mm))
            calibration = str(line.get("calibration") or ("source" if spacing else "none"))
            out = Frame(frame.image, frame.t_capture, self._seq, spacing_mm=spacing, spacing_source=calibration)
            self._times[self._seq] = float(line["t"])
            self._seq += 1
            self.corrupt = self._part_corrupt + self._part.corrupt
            return out
        if self._part is not None:  # frames after the sidecar's last line (it was never written)
            while self._part.read() is not None:
                self.unlisted += 1
        self._close_part()
        self.corrupt = self._part_corrupt
        return None

    def _skip_part(self) -> None:
        name = self._part_name
        while self._i < len(self._lines) and self._lines[self._i]["file"] == name:
            self._i += 1
        self._close_part()

    def clip_time(self, frame: Frame) -> float | None:
        """The time of `frame` in the recording, in seconds from its first frame."""
        return self._times.pop(frame.seq, None)

    def close(self) -> None:
        self._close_part()
