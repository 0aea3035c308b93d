"""One clip through the cart's own chain: source -> ROI + spacing -> segmenter -> measurement ->
temporal filter (and freeze check), run by edge.runtime.pipeline.Pipeline with the clip as a source
that is not live (no frame dropped, as fast as the CPU decodes and infers).

The only change to what the cart does: a frame's time is its time in the clip (a recording's
capture times, a DICOM's frame time, or frame number over frame rate), not the moment it was
decoded, so the temporal filter's window in seconds holds the same frames however fast or busy
the machine: the measurements of a clip are the same on one worker or many.

Everything a clip gives is returned as a `ClipResult` (rows, summary, PNG bytes) for the
caller to write, so that a worker on another machine needs no access to the output folder.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge.analyze.inputs import Clip
from edge.frame import Measurement, Segmentation
from edge.measure.quality import REJECTING, Quality, names
from edge.numbers import rounded
from edge.screen.prepare import CONFIG_NOT_USED
from edge.sinks.base import Sink
from edge.sources.folder import FolderSource

DEFAULT_FPS = 30.0  # the frame rate taken for a clip that states none (an image folder)
THUMB_WIDTH = 240  # pixels of the ROI thumbnail's longer side at most
FORMAT = 1  # of frames.jsonl and summary.json; part of the key, so a new format analyses again


@dataclass
class ClipResult:
    """What one clip gave. error: its one-line reason when it failed (then only `summary`'s
    identity fields are set). seconds: the time it took (not part of the results)."""

    clip_id: str
    summary: dict
    frames: list[dict] = field(default_factory=list)
    plot_png: bytes | None = None
    thumb_png: bytes | None = None
    error: str | None = None
    seconds: float = 0.0


class ClipTimeline:
    """A clip's source whose frames carry their time in the clip as `t_capture`: the source's
    own (`clip_time(frame)`, a cart recording) or frame number / frame rate (the rate the file
    states, else DEFAULT_FPS). Everything else is the source's."""

    live = False

    def __init__(self, source):
        self.source = source
        self.fps_used = DEFAULT_FPS
        self.fps_stated = False

    def open(self) -> ClipTimeline:
        self.source.open()
        fps = getattr(self.source, "fps", None)
        self.fps_stated = bool(fps and math.isfinite(fps) and fps > 0)
        self.fps_used = float(fps) if fps and self.fps_stated else DEFAULT_FPS
        return self

    def read(self):
        frame = self.source.read()
        if frame is None:
            return None
        own = getattr(self.source, "clip_time", None)
        t = own(frame) if own is not None else None
        return replace(frame, t_capture=float(t) if t is not None else frame.seq / self.fps_used)

    def close(self) -> None:
        self.source.close()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):  # cropped, corrupt, oversize, dropped, note, ...
        return getattr(self.source, name)

    @property
    def grayscale_only(self) -> bool:  # set by the pipeline: for the wrapped source to read
        return bool(getattr(self.source, "grayscale_only", False))

    @grayscale_only.setter
    def grayscale_only(self, value: bool) -> None:
        self.source.grayscale_only = value


def frame_row(m: Measurement, seg: Segmentation) -> dict:
    """The frames.jsonl record of one measurement: only what the clip's content decides (no
    timing of this machine)."""
    spacing = seg.frame.spacing_mm
    row = {
        "seq": int(m.seq),
        "t": rounded(m.t_capture, 6),
        "thickness": rounded(m.thickness, 6),
        "spread": rounded(m.spread, 6),
        "unit": m.unit,
        "flags": int(m.flags),
        "flag_names": names(m.flags),
        "columns": int(m.columns),
        "coverage": rounded(m.extra.get("coverage"), 6),
        "filtered": rounded(m.extra.get("filtered"), 6),
        "low": rounded(m.extra.get("low"), 6),
        "high": rounded(m.extra.get("high"), 6),
        "uncertainty": rounded(m.extra.get("uncertainty"), 6),
        "calibration": m.extra.get("calibration"),
        "spacing_mm": None if spacing is None else [rounded(v, 8) for v in spacing],
    }
    for key in ("layout", "layout_event"):
        if key in m.extra:
            row[key] = m.extra[key]
    return row


def accepted(row: dict) -> bool:
    """A frame whose thickness counts: measured and not rejected by a quality flag."""
    return row["thickness"] is not None and not row["flags"] & REJECTING


class ClipRecorder(Sink):
    """Collects the rows of a clip and the B-mode region of one frame for its thumbnail (the
    first accepted frame, else the first)."""

    name = "analysis"

    def __init__(self, tlf_class: int):
        self.rows: list[dict] = []
        self.tlf_class = tlf_class
        self.thumb: Segmentation | None = None
        self._thumb_accepted = False

    def write(self, m: Measurement, seg: Segmentation) -> None:
        row = frame_row(m, seg)
        self.rows.append(row)
        if self.thumb is None or (not self._thumb_accepted and accepted(row)):
            self.thumb, self._thumb_accepted = seg, accepted(row)


class ImageFiles(FolderSource):
    """The image files of a clip in the clip's order: a FolderSource reading a fixed list."""

    def __init__(self, files, max_pixels: int):
        super().__init__(files[0], max_pixels=max_pixels)
        self._listed = list(files)

    def open(self) -> ImageFiles:
        self.files = list(self._listed)
        self._i = self._seq = 0
        self.corrupt = self.oversize = 0
        return self


def open_clip_source(clip: Clip, max_pixels: int):
    """The source of a clip (not opened)."""
    if clip.kind == "dicom":
        from edge.sources.dicom import DicomSource

        return DicomSource(clip.path, max_pixels=max_pixels)
    if clip.kind == "video":
        from edge.sources.video import VideoSource

        return VideoSource(clip.path, max_pixels=max_pixels)
    if clip.kind == "recording":
        from edge.sources.recording import RecordingSource

        return RecordingSource(clip.path, max_pixels=max_pixels)
    if clip.kind == "images":
        return ImageFiles(clip.files, max_pixels=max_pixels)
    raise ValueError(f"no source for a clip of kind {clip.kind!r}")


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    text = text[0] if text else ""
    from edge.errors import EdgeError

    return text if isinstance(e, EdgeError) and text else f"{type(e).__name__}: {text}".rstrip(": ")


def scrub(text: str, clip: Clip, clip_id: str) -> str:
    """`text` with the clip's paths and file names replaced by its id (names can hold a patient's)."""
    for p in sorted({clip.path, *clip.files, str(Path(clip.path).resolve())}, key=len, reverse=True):
        text = text.replace(p, clip_id)
    for p in sorted({Path(f).name for f in (clip.path, *clip.files)}, key=len, reverse=True):
        if p:
            text = text.replace(p, clip_id)
    return text


@contextlib.contextmanager
def _libraries_quiet():
    """Hold back the warnings and log lines of the readers (pydicom, OpenCV's FFmpeg) while a clip runs."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def analyse_clip(clip: Clip, clip_id: str, identity: dict, segmenter, config, keep_names: bool = False) -> ClipResult:
    """Run one clip through the pipeline; a ClipResult (with `error` set when it failed: a clip
    that cannot be opened, fails mid-way, or gives no frame to measure)."""
    from edge.runtime.pipeline import Pipeline

    t0 = time.monotonic()
    base = {"clip_id": clip_id, "kind": clip.kind, **({"name": clip.name} if keep_names else {}), **identity}

    def failed(reason: str) -> ClipResult:
        reason = reason if keep_names else scrub(reason, clip, clip_id)
        return ClipResult(
            clip_id, {**base, "status": "failed", "error": reason}, error=reason, seconds=time.monotonic() - t0
        )

    if clip.error:
        return failed(clip.error)
    try:
        source = ClipTimeline(open_clip_source(clip, config.source.max_pixels))
        recorder = ClipRecorder(segmenter.bundle.tlf_class)
        # A Source by delegation: ClipTimeline hands on the wrapped source's attributes (__getattr__).
        pipeline = Pipeline(
            source,  # type: ignore[arg-type]
            segmenter,
            [recorder],
            config.measurement,
            config.temporal,
            err=io.StringIO(),
            roi=config.roi,
            calibration=config.calibration,
        )
        with _libraries_quiet():  # a damaged file's warnings name its path: the clip's reason says what matters
            stats = pipeline.run()
    except Exception as e:  # one clip's failure is its own: the run goes on
        return failed(one_line(e))
    if recorder.dead:
        return failed(recorder.dead)
    if not recorder.rows:
        from edge.cli import nothing_measured

        why = nothing_measured(stats)
        assert why is not None  # no row: no measurement reached the recorder, so none was accepted
        return failed(why)
    summary = {
        **base,
        "status": "done",
        "error": None,
        **summarize_rows(recorder.rows),
        **clip_facts(source, stats, recorder.rows),
    }
    from edge.analyze.plots import plot_png, thumbnail_png

    plot = plot_png(recorder.rows, summary)
    thumb = thumbnail_png(recorder.thumb, recorder.tlf_class) if recorder.thumb is not None else None
    return ClipResult(clip_id, summary, recorder.rows, plot, thumb, seconds=time.monotonic() - t0)


def summarize_rows(rows: list[dict]) -> dict:
    """The summary numbers of a clip's rows: frames, accepted and rejected (by flag), median and
    IQR of the accepted thickness, the last filtered value and its 95 % band."""
    good = [r for r in rows if accepted(r)]
    units = [r["unit"] for r in good] or [r["unit"] for r in rows]
    unit = max(dict.fromkeys(units), key=units.count) if units else None
    values = np.array([r["thickness"] for r in good if r["unit"] == unit], float)
    by_flag: dict[str, int] = {}
    for r in rows:
        if not accepted(r):
            rejecting = [n for n in names(r["flags"] & REJECTING)] or ["NOT_MEASURED"]
            for n in rejecting:
                by_flag[n] = by_flag.get(n, 0) + 1
    last = next((r for r in reversed(rows) if r["filtered"] is not None and r["unit"] == unit), None)

    def count(flag):
        return sum(bool(r["flags"] & flag) for r in rows)

    return {
        "frames": len(rows),
        "accepted": len(good),
        "rejected": len(rows) - len(good),
        "rejected_by_flag": dict(sorted(by_flag.items())),
        "frozen": count(Quality.FROZEN),
        "outliers": count(Quality.OUTLIER),
        "unit": unit,
        "other_unit_frames": sum(r["unit"] != unit for r in good),
        "thickness_median": rounded(np.median(values), 6) if values.size else None,
        "thickness_iqr": rounded(np.subtract(*np.percentile(values, [75, 25])), 6) if values.size else None,
        "filtered": last["filtered"] if last else None,
        "filtered_low": last["low"] if last else None,
        "filtered_high": last["high"] if last else None,
    }


def clip_facts(source: ClipTimeline, stats, rows: list[dict]) -> dict:
    """Where the clip's spacing came from and what the source and the ROI stage met."""
    from edge.sources.dicom import DicomSource

    layouts = [lay for r in rows if (lay := r.get("layout") or r.get("layout_event"))]
    last = layouts[-1] if layouts else {}
    detail = last.get("calibration_note") or ""
    unused = next((part for part in detail.split("; ") if part.startswith(CONFIG_NOT_USED.split("{")[0])), None)
    recorded = getattr(source.source, "calibrations", None)
    if recorded:
        detail = "recorded by the cart: " + ", ".join(sorted(recorded))
    elif getattr(source.source, "calibration", None) is not None and getattr(source.source, "roi", None) is not None:
        detail = f"DICOM {source.source.note}"
    if unused and unused not in detail:  # the source's own spacing won over the config's
        detail += f"; {unused}"
    elif isinstance(source.source, DicomSource) and source.source.note and last.get("spacing_mm") is None:
        detail = f"{detail}; the DICOM file's regions: {source.source.note}" if detail else source.source.note
    return {
        "spacing_source": last.get("calibration"),
        "spacing_detail": detail,
        "spacing_mm": last.get("spacing_mm"),
        "roi": last.get("roi"),
        "layout_changes": stats.layout_changes,
        "fps": rounded(source.fps_used, 4),
        "fps_stated": source.fps_stated,
        "duration_s": rounded(rows[-1]["t"] - rows[0]["t"], 6) if rows else None,
        "frames_without_roi": stats.frames_without_roi,
        "frames_layout_changing": stats.frames_layout_changing,
        "corrupt_frames": stats.corrupt_frames,
        "oversize_frames": stats.oversize_frames,
        "unlisted_frames": int(getattr(source.source, "unlisted", 0)),
    }
