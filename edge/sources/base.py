"""The Source contract and the URL dispatcher.

A source starts no threads of its own; the pipeline calls `read()` from its capture thread.
`read()` returns the next Frame, or None when a finite source is exhausted. A live source
returns the newest frame and counts the ones it had to drop (`dropped`); while its device is
lost it raises `edge.errors.SignalLost` (wait `retry_in` seconds, then read again) and, when it
has given up, SourceError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from edge.errors import SourceError
from edge.frame import Frame

if TYPE_CHECKING:
    from edge.screen.spacing import Calibration


class Source:
    """Base class; also a usable fake in tests (it yields nothing).

    The attributes below are what the runtime reads of every source; a source sets those it
    knows (`cropped` and `calibration` once open, the counts as it goes).
    """

    live: bool = False
    simulated: bool = False  # the built-in phantom scanner: its readings are nobody's
    cropped: bool = False  # its frames are the B-mode region already (no screen around them)
    stills: bool = False  # each frame is a picture of its own (image files): a changed screen is looked at at once
    calibration: Calibration | None = None  # what the source states of its spacing (a DICOM region), if anything
    fps: float | None = None  # nominal frame rate, when the source knows it
    dropped: int = 0  # frames a live source let go because a newer one came
    corrupt: int = 0  # frames it could not decode (skipped)
    oversize: int = 0  # frames larger than [source] max_pixels (skipped)
    reconnects: int = 0  # times a live source reopened its device
    note: str = ""  # one line about the source for the run summary (why frames were skipped)
    # Set by the runtime before open when its model takes grayscale: a source that can decode
    # less (a video of JPEG frames) then delivers each frame's grayscale, its colour on demand
    # (Frame.colour). Others ignore it.
    grayscale_only: bool = False

    def truth(self, seq: int) -> dict | None:
        """Ground truth of frame `seq`, when the source knows it (the phantom scanner keeps it for
        its recent frames; edge.sinks.scoring matches it to measurements by sequence number)."""
        return None

    def open(self) -> Source:
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


DEFAULT_MAX_PIXELS = 4096 * 4096  # [source] max_pixels: a 4K screen (3840x2160) fits with room to spare
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_options(query: str) -> dict[str, str]:
    """The options of a URL's query; SourceError for an empty name or an option given twice."""
    out: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if not name:
            raise SourceError(f"malformed URL options {query!r}: an option without a name")
        if name in out:
            raise SourceError(f"URL option {name!r} is given twice in {query!r}")
        out[name] = value
    return out


def check_options(options: dict[str, str], known, what: str) -> None:
    """SourceError naming the options of `options` that are not in `known`."""
    unknown = set(options) - set(known)
    if unknown:
        raise SourceError(f"unknown {what} option(s) {sorted(unknown)} (known: {sorted(known)})")


def flag_option(options: dict[str, str], name: str, default: bool) -> bool:
    """A yes/no URL option (1/0, true/false, yes/no, on/off); SourceError naming it otherwise."""
    if name not in options:
        return default
    value = options[name].strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise SourceError(f"URL option {name}={options[name]!r} is not 1 or 0 (true/false, yes/no)")


def check_frame_size(width: int, height: int, max_pixels: int, what: str) -> None:
    """SourceError when a width x height frame is empty or holds more than `max_pixels` pixels."""
    if width <= 0 or height <= 0:
        raise SourceError(f"{what} has an empty frame size {width}x{height}")
    if width * height > max_pixels:
        raise SourceError(
            f"{what} is {width}x{height} pixels, more than [source] max_pixels ({max_pixels}); "
            "a larger limit can be set there"
        )


def _is_index(text: str) -> bool:
    return text.isascii() and text.isdigit()


def split_url(url: str):
    """`url` split into its parts (urllib's SplitResult); SourceError (one line) when it is malformed."""
    url = str(url)
    if "\0" in url:
        raise SourceError(f"source {url!r} holds a NUL character")
    if not url.strip():
        raise SourceError("empty source URL")
    try:
        return urlsplit(url)
    except ValueError as e:  # e.g. an unclosed [ in the host part
        raise SourceError(f"malformed source URL {url!r}: {e}") from e


def open_source(url: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Source:
    """Build the scanner source named by `url` (not yet opened); SourceError (one line) for anything malformed.

    The built-in phantom scanner (phantom://) is the simulator's: edge.runtime.factory.open_source
    opens it too.

    0, /dev/video0, v4l2:///dev/video0?width=1280&height=720&fps=30&fourcc=MJPG  a capture card
        (also retry_max=2: longest wait in s between attempts to reopen a lost card;
        give_up=600: end the run after that many s without signal; absent: keep trying)
    gst://videotestsrc ! videoconvert ! appsink  an OpenCV GStreamer pipeline
    file:///data/clip.mp4?pace=1, /data/clip.avi                        a video file
        (pace=1: at its frame rate; live=1: as the card delivered it, the newest frame wins;
        loop=1: played over and over)
    /data/frames/, /data/frames/*.png, /data/one.png                    image files
    dicom:///data/cine.dcm?region=0&crop=1, /data/cine.dcm              a DICOM file

    Unknown options, an option given twice and malformed values are refused with the option
    named. max_pixels: frames larger than this (width x height) are refused or skipped.
    """
    url = str(url)
    parts = split_url(url)
    scheme = parts.scheme.lower()
    if scheme == "phantom":
        raise SourceError(f"{url!r}: phantom:// is the built-in simulator, opened by edge.runtime.factory.open_source")
    if scheme == "gst":
        from edge.sources.capture import CaptureSource

        pipeline = url[len("gst://") :].strip()
        if not pipeline:
            raise SourceError(f"empty GStreamer pipeline in {url!r}")
        return CaptureSource(pipeline, backend="gstreamer", max_pixels=max_pixels)
    if scheme == "v4l2":
        from edge.sources.capture import CaptureSource

        return CaptureSource.from_v4l2_url(parts.netloc + parts.path, parse_options(parts.query), max_pixels)
    if scheme in ("file", "dicom"):
        if parts.netloc not in ("", "localhost"):
            raise SourceError(
                f"{scheme}:// takes an absolute path ({scheme}:///data/clip), not the host {parts.netloc!r}, in {url!r}"
            )
        if parts.fragment:
            raise SourceError(f"{url!r}: a '#' in a {scheme}:// URL is not part of the path (write it as %23)")
        return _file_source(
            unquote(parts.path), parse_options(parts.query), dicom=scheme == "dicom", url=url, max_pixels=max_pixels
        )
    if scheme == "" or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):  # a plain path (or C:\...)
        if _is_index(url.strip()):
            from edge.sources.capture import CaptureSource

            return CaptureSource(int(url.strip()), max_pixels=max_pixels)
        if url.startswith("/dev/video"):
            from edge.sources.capture import CaptureSource

            return CaptureSource(url, max_pixels=max_pixels)
        return _file_source(url, {}, dicom=False, url=url, max_pixels=max_pixels)
    raise SourceError(
        f"unknown source {url!r} (expected phantom://, v4l2://, gst://, file://, dicom://, "
        "a device index, or a path to a video, image folder or DICOM file)"
    )


def _file_source(path: str, options: dict[str, str], dicom: bool, url: str, max_pixels: int) -> Source:
    """A source for a path: DICOM, video, or image files, by what the path is."""
    from pathlib import Path

    from edge.sources.folder import IMAGE_SUFFIXES, FolderSource
    from edge.sources.video import VIDEO_SUFFIXES, VideoSource

    if not path:
        raise SourceError(f"no path in {url!r}")
    suffix = Path(path).suffix.lower()
    if dicom or suffix in (".dcm", ".dicom"):
        from edge.sources.dicom import DicomSource

        return DicomSource.from_url(path, options, max_pixels)
    if suffix in VIDEO_SUFFIXES:
        return VideoSource.from_url(path, options, max_pixels)
    if options:
        raise SourceError(f"options {sorted(options)} are not understood for {url!r}")
    if Path(path).is_dir() or suffix in IMAGE_SUFFIXES or any(c in path for c in "*?["):
        return FolderSource(path, max_pixels=max_pixels)
    if not Path(path).exists():
        raise SourceError(f"no such file, folder or device {path!r}")
    raise SourceError(f"cannot tell what kind of source {path!r} is (video, image, folder or .dcm expected)")
