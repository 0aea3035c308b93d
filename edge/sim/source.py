"""The built-in phantom scanner as a frame source, with the ground truth of every frame.

phantom://clip    the B-mode region alone, calibrated (as a DICOM file cropped to its region)
phantom://screen  the whole scanner screen around it, uncalibrated (as a capture card delivers it)

By default every frame is delivered as fast as it is rendered (like a file: nothing is dropped).
With live=1 frames come at `fps` on the wall clock like a scanner's video output, and the source
is live: when inference is slower than the scanner the newest frame wins and the rest are dropped.
The truth stays out of the frames: `source.truth(seq)` gives it for the last TRUTH_KEPT frames,
which edge.sinks.scoring matches to the measurements by sequence number.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from edge.errors import SourceError
from edge.frame import Frame
from edge.sim import phantom
from edge.sources.base import Source, check_frame_size, check_options, flag_option, parse_options

COMMON_OPTIONS = {"seed", "frames", "fps", "size", "live"}
MIN_SIDE = 16  # pixels: smaller pictures hold no anatomy
# Frames whose truth a phantom source keeps: more than the pipeline can hold between reading a
# frame and writing its measurement (2 queued frames, 16 queued results, one frame in each of
# its three threads), few enough that the labels kept stay a few MB.
TRUTH_KEPT = 32


def _check_known(options: dict[str, str], own: set[str], what: str) -> None:
    check_options(options, COMMON_OPTIONS | own, what)


def _common(options: dict[str, str], default_size: str) -> dict:
    """seed, frames, fps and size (WIDTHxHEIGHT) from URL options; ValueError naming the one
    that is malformed or out of range."""
    text = options.get("size", default_size)
    try:
        size = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) != 2:
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT")
    if min(size) < MIN_SIDE:
        raise ValueError(f"size {text!r} is too small (at least {MIN_SIDE}x{MIN_SIDE})")
    try:
        live = flag_option(options, "live", False)
    except SourceError as e:
        raise ValueError(str(e)) from None
    fps = float(options.get("fps", 30.0))
    if not 0 < fps <= 1000:
        raise ValueError(f"fps {options['fps']!r} is out of range (0-1000]")
    seed, frames = int(options.get("seed", 7)), int(options.get("frames", 90))
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed {options['seed']!r} is out of range (0 to 2**32 - 1)")
    if frames < 1:
        raise ValueError(f"frames {options['frames']!r} must be at least 1")
    return {"seed": seed, "frames": frames, "fps": fps, "size": size, "live": live}


class _Pacer:
    """Holds each frame back until its time on `clock`: frame n at start + n / fps."""

    def __init__(self, fps: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.period = 1.0 / fps
        self.start: float | None = None
        self._clock, self._sleep = clock, sleep

    def wait(self, n: int) -> None:
        now = self._clock()
        if self.start is None:
            self.start = now
        delay = self.start + n * self.period - now
        if delay > 0:
            self._sleep(delay)


class _ClipSource(Source):
    """A phantom clip as a source: `_items()` starts the clip, `_frame(item, seq)` turns one of its
    items into a Frame and its truth; frames come at `fps` on `clock` when `live` (the wall clock
    unless a test gives its own clock and sleep)."""

    fps: float
    live: bool
    what: str  # the kind of clip, for messages
    simulated = True
    clock: Callable[[], float] = staticmethod(time.monotonic)
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def _items(self):
        raise NotImplementedError

    def _frame(self, item, seq: int) -> tuple[Frame, dict]:
        raise NotImplementedError

    def truth(self, seq: int) -> dict | None:
        """The truth of frame `seq` (None once it is older than the last TRUTH_KEPT frames)."""
        if self._clip is None:  # not opened yet
            return None
        with self._truth_lock:
            return self._truths.get(seq)

    def open(self):
        self._clip = self._items()
        self._seq = 0
        self._truths: OrderedDict[int, dict] = OrderedDict()
        self._truth_lock = threading.Lock()
        self._pacer = _Pacer(self.fps, self.clock, self.sleep) if self.live else None
        return self

    def read(self) -> Frame | None:
        if self._clip is None:
            raise SourceError(f"{self.what} source read before open()")
        item = next(self._clip, None)  # rendered first, so a frame leaves on time when rendering keeps up
        if item is None:
            return None
        if self._pacer is not None:
            self._pacer.wait(self._seq)
        frame, truth = self._frame(item, self._seq)
        self._seq += 1
        with self._truth_lock:  # read by the pipeline's output thread
            self._truths[frame.seq] = truth
            while len(self._truths) > TRUTH_KEPT:
                self._truths.popitem(last=False)
        return frame


class PhantomSource(_ClipSource):
    """A phantom clip: `frames` frames of one slowly moving scene at `fps` (paced only when live).

    Its frames are the B-mode region already (`cropped`), with their pixel spacing.
    """

    cropped = True
    what = "phantom"

    def __init__(
        self,
        seed: int = 7,
        frames: int = 90,
        fps: float = 30.0,
        size=(400, 400),
        preset: str = "default",
        live: bool = False,
    ):
        """size: (width, height) of the B-mode image in pixels. live: frames at `fps` on the wall clock."""
        if preset not in phantom.PRESETS:
            raise SourceError(f"unknown phantom preset {preset!r} (one of {sorted(phantom.PRESETS)})")
        self.seed, self.frames, self.fps, self.size, self.preset = seed, frames, fps, size, preset
        self.live = bool(live)
        self._pacer = None
        self._clip = None
        self._seq = 0

    @classmethod
    def from_url(cls, kind: str, options: dict[str, str]) -> PhantomSource:
        if kind not in ("", "clip"):
            raise SourceError(f"unknown phantom kind {kind!r} (expected phantom://clip or phantom://screen)")
        _check_known(options, {"preset"}, "phantom")
        try:
            return cls(**_common(options, "400x400"), preset=options.get("preset", "default"))
        except ValueError as e:
            raise SourceError(f"bad phantom option in {options!r}: {e}") from e

    def _items(self):
        width, height = self.size
        return phantom.clip(self.seed, frames=self.frames, fps=self.fps, shape=(height, width), machine=self.preset)

    def _frame(self, scan, seq: int) -> tuple[Frame, dict]:
        truth = {"thickness_mm": scan.thickness_mm, "labels": scan.labels}
        return Frame(scan.image, self.clock(), seq, spacing_mm=scan.spacing_mm), truth


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def column_truth(thickness_mm: np.ndarray, width: int) -> np.ndarray:
    """Per-column thickness of an acquisition-size scan, resampled to `width` screen columns
    (the scan is stretched over the ROI, so ROI column j sees scan column (j + 0.5) * n / width - 0.5)."""
    n = len(thickness_mm)
    at = (np.arange(width) + 0.5) * n / width - 0.5
    return np.interp(at, np.arange(n), np.asarray(thickness_mm, np.float64))


class PhantomScreenSource(_ClipSource):
    """Whole scanner screens around a phantom clip (see edge.sim.phantom_screen), paced only when live.

    Frames are the full screen (BGR) without a spacing, as from a capture card (`cropped` is
    False): ROI and scale must be found on the screen. Each frame's truth holds the B-mode
    rectangle ("roi", x, y, w, h), the screen's mm per pixel ("spacing_mm"), the depth
    ("depth_mm") and the thickness per ROI column ("thickness_mm"). depths / change_at: the
    depth steps through `depths`, the next one starting at each frame of `change_at`.
    """

    cropped = False
    what = "phantom screen"

    def __init__(
        self,
        seed: int = 7,
        frames: int = 90,
        fps: float = 30.0,
        size=(1280, 720),
        depths=(40.0,),
        change_at=(),
        width_mm: float = 40.0,
        preset: str = "default",
        lateral_scale: bool = True,
        live: bool = False,
        style: str = "default",
    ):
        from edge.sim import phantom_screen

        if style not in phantom_screen.STYLES:
            raise SourceError(f"unknown screen style {style!r} (one of {', '.join(phantom_screen.STYLES)})")
        if preset not in phantom.PRESETS:
            raise SourceError(f"unknown phantom preset {preset!r} (one of {sorted(phantom.PRESETS)})")
        steps = list(change_at)
        if len(steps) != len(depths) - 1 or sorted(steps) != steps or any(s <= 0 for s in steps):
            raise SourceError(
                f"phantom screen: change_at {tuple(steps)!r} does not fit depths {tuple(depths)!r} "
                "(one increasing frame index per depth after the first)"
            )
        self.seed, self.frames, self.fps, self.size = seed, frames, fps, tuple(size)
        self.depths, self.change_at, self.width_mm = tuple(depths), tuple(steps), width_mm
        self.preset, self.lateral_scale, self.live, self.style = preset, lateral_scale, bool(live), style
        self._pacer = None
        self._clip = None
        self._seq = 0

    @classmethod
    def from_url(cls, options: dict[str, str]) -> PhantomScreenSource:
        """phantom://screen?seed=7&frames=90&fps=30&size=1280x720&depth=40,50&change_at=45
        &width=40&preset=default&lateral=1&live=0&style=default (edge.sim.phantom_screen.STYLES)"""
        _check_known(options, {"depth", "change_at", "width", "preset", "lateral", "style"}, "phantom screen")
        try:
            depths, width_mm = _floats(options.get("depth", "40")), float(options.get("width", 40.0))
            if not depths or not all(math.isfinite(d) for d in depths + (width_mm,)):
                raise ValueError(
                    f"depth {options.get('depth', '40')!r} and width {options.get('width', '40')!r} (mm) "
                    "must be finite numbers"
                )
            return cls(
                **_common(options, "1280x720"),
                depths=depths,
                change_at=_ints(options.get("change_at", "")),
                width_mm=width_mm,
                preset=options.get("preset", "default"),
                lateral_scale=flag_option(options, "lateral", True),
                style=options.get("style", "default"),
            )
        except ValueError as e:
            raise SourceError(f"bad phantom screen option in {options!r}: {e}") from e

    def open(self) -> PhantomScreenSource:
        from edge.errors import ConfigError
        from edge.sim import phantom_screen

        try:
            for depth in self.depths:  # checks size and field early
                phantom_screen.layout(self.size, depth, self.width_mm, style=self.style)
        except ConfigError as e:
            raise SourceError(f"phantom screen: {e}") from e
        return super().open()

    def _items(self):
        from edge.sim import phantom_screen

        return phantom_screen.screen_clip(
            self.seed,
            self.frames,
            self.size,
            self.depths,
            self.change_at,
            self.fps,
            self.width_mm,
            self.preset,
            lateral_scale=self.lateral_scale,
            style=self.style,
        )

    def _frame(self, shot, seq: int) -> tuple[Frame, dict]:
        truth = {
            "roi": tuple(shot.roi),
            "spacing_mm": tuple(shot.spacing_mm),
            "depth_mm": shot.depth_mm,
            "thickness_mm": column_truth(shot.scan.thickness_mm, shot.roi[2]),
        }
        return Frame(shot.image, self.clock(), seq, spacing_mm=None), truth


def open_phantom(parts, max_pixels: int) -> Source:
    """The phantom source a phantom:// URL names (`parts`: its urllib SplitResult), not yet opened.

    phantom://clip?seed=7&frames=90&fps=30&size=400x400&preset=default  the built-in phantom
    phantom://screen?seed=7&frames=90&size=1280x720&depth=40,50&change_at=45  its whole screen
    """
    kind = parts.netloc or parts.path
    if kind == "screen":
        source = PhantomScreenSource.from_url(parse_options(parts.query))
    else:
        source = PhantomSource.from_url(kind, parse_options(parts.query))
    width, height = source.size  # two numbers: _common checked the size option
    check_frame_size(width, height, max_pixels, f"phantom {kind or 'clip'} size")
    return source
