"""Frames from a DICOM file (single or multi-frame), cropped to its ultrasound region.

A DICOM ultrasound file states where its image region is and how large its pixels are
(SequenceOfUltrasoundRegions: region bounds, PhysicalDeltaX/Y in cm). This source crops each
frame to that region and sets the spacing, so DICOM frames skip ROI detection. Without a usable
region the whole frame is delivered, uncalibrated (`cropped` is False, spacing None).

Colour: palette colour goes through the file's lookup table, YBR is converted to RGB (pydicom
does both), everything ends as uint8 gray or BGR; 16-bit data is scaled to 8 bits. Compressed
transfer syntaxes need a decoder plugin (pylibjpeg with pylibjpeg-libjpeg / -openjpeg); when it
is missing, opening fails with one line saying what to install. pydicom is an optional
dependency (the `dicom` extra).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge.errors import SourceError
from edge.frame import Frame
from edge.screen.spacing import UNKNOWN, Calibration, from_dicom_region
from edge.sources.base import DEFAULT_MAX_PIXELS, Source, check_frame_size, check_options, flag_option

INSTALL_HINT = "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg"


def _import_pydicom():
    try:
        import pydicom
        import pydicom.errors
        import pydicom.pixels
    except ImportError as e:
        raise SourceError(f"cannot read DICOM: pydicom is not installed ({e}); install the 'dicom' extra") from e
    return pydicom


def pick_region(ds, shape: tuple[int, int], index: int | None = None):
    """The ultrasound region to use: (x, y, w, h), Calibration, note.

    Prefers 2-D tissue regions (spatial format 1, data type 1) that fit inside the frame, the
    largest first; `index` forces one item. A region whose bounds exceed the frame (the pixels
    were resampled after the region was written) is not trusted, nor its spacing.
    """
    regions = list(ds.get("SequenceOfUltrasoundRegions", []) or [])
    if not regions:
        return None, UNKNOWN, "no ultrasound regions"
    rows, cols = shape
    candidates = []
    for i, r in enumerate(regions):
        try:
            x0, y0 = int(r.RegionLocationMinX0), int(r.RegionLocationMinY0)
            x1, y1 = int(r.RegionLocationMaxX1), int(r.RegionLocationMaxY1)
        except (AttributeError, TypeError, ValueError):
            continue
        # Max bounds are inclusive; scanners often write one past the last pixel: clamp that.
        fits = 0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows
        x1, y1 = min(x1, cols - 1), min(y1, rows - 1)
        tissue = r.get("RegionSpatialFormat") == 1 and r.get("RegionDataType") in (1, None)
        candidates.append((i, (x0, y0, x1 - x0 + 1, y1 - y0 + 1), fits, tissue, r))
    if index is not None:
        if not 0 <= index < len(regions):
            raise SourceError(f"DICOM region {index!r} does not exist ({len(regions)} regions)")
        match = [c for c in candidates if c[0] == index]
        if not match or not match[0][2]:
            raise SourceError(f"DICOM region {index!r} does not fit the {cols}x{rows} frame")
        _, rect, _, _, r = match[0]
        return rect, _shown_extent(from_dicom_region(r), rect), f"region {index}"
    usable = [c for c in candidates if c[2] and c[3]]
    if not usable:
        if any(c[3] for c in candidates):
            return None, UNKNOWN, f"tissue region bounds exceed the {cols}x{rows} frame (resampled file)"
        return None, UNKNOWN, "no 2-D tissue region"
    i, rect, _, _, r = max(usable, key=lambda c: c[1][2] * c[1][3])
    return rect, _shown_extent(from_dicom_region(r), rect), f"region {i}"


# The depth and width a tissue region of a B-mode image can show: a high-frequency probe's or a
# zoomed region's few millimetres to an abdominal 30 cm; a phased array's 90-degree sector is
# about 1.4 times as wide as it is deep.
REGION_DEPTH_MM = (3.0, 300.0)
REGION_WIDTH_MM = 600.0


def _shown_extent(cal: Calibration, rect) -> Calibration:
    """`cal`, or no spacing (with the reason) when the region it spans is deeper, shallower or
    wider than a B-mode image shows (REGION_DEPTH_MM, REGION_WIDTH_MM): a PhysicalDelta off by a
    factor of ten or more (a unit slip) is caught so, on all but very shallow or very deep images."""
    if cal.spacing_mm is None:
        return cal
    _, _, w, h = rect
    depth, width = h * cal.spacing_mm[0], w * cal.spacing_mm[1]
    lo, hi = REGION_DEPTH_MM
    if lo <= depth <= hi and width <= REGION_WIDTH_MM:
        return cal
    return Calibration(
        None,
        "none",
        f"DICOM region spacing {cal.spacing_mm[0]:g} x {cal.spacing_mm[1]:g} mm per pixel makes the {w}x{h} px "
        f"region {depth:.3g} mm deep and {width:.3g} mm wide, beyond the {lo:g}-{hi:g} mm deep and "
        f"{REGION_WIDTH_MM:g} mm wide a B-mode image shows: not used",
    )


def to_display(arr: np.ndarray, ds, photometric: str) -> np.ndarray:
    """One decoded frame as uint8 gray or BGR."""
    from pydicom.pixels import apply_color_lut, apply_voi_lut

    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 2:
        if arr.dtype != np.uint8:
            if "WindowCenter" in ds or "VOILUTSequence" in ds:
                arr = apply_voi_lut(arr, ds)
                lo, hi = float(arr.min()), float(arr.max())
            elif arr.dtype.kind == "u":
                lo, hi = 0.0, float(2 ** int(ds.get("BitsStored", 16) or 16) - 1)
            else:
                lo, hi = float(arr.min()), float(arr.max())
            arr = np.clip((arr.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)
        if photometric == "MONOCHROME1":
            arr = 255 - arr
        return np.ascontiguousarray(arr)
    if arr.dtype != np.uint8:  # 16-bit colour (a 16-bit palette): keep the top byte
        arr = (arr >> 8).astype(np.uint8) if arr.dtype == np.uint16 else np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[:, :, ::-1])  # RGB -> BGR


class DicomSource(Source):
    """The frames of one DICOM file, in order (not paced, not live).

    region: force one SequenceOfUltrasoundRegions item by index; crop=False delivers whole
    frames (still calibrated). After open(): `roi` is the region (x, y, w, h) or None,
    `calibration` the spacing's origin, `cropped` whether frames are already the B-mode region.
    A frame that fails to decode is skipped and counted in `corrupt`.
    """

    def __init__(self, path, region: int | None = None, crop: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.path = str(path)
        self.max_pixels = int(max_pixels)
        self.region, self.crop = region, bool(crop)
        self.corrupt = 0
        self.frames = 0
        self.roi: tuple[int, int, int, int] | None = None
        self.calibration: Calibration = UNKNOWN
        self.cropped = False
        self.note = ""
        self._ds = None
        self._i = 0
        self._seq = 0

    @classmethod
    def from_url(cls, path: str, options: dict[str, str], max_pixels: int = DEFAULT_MAX_PIXELS) -> DicomSource:
        check_options(options, {"region", "crop"}, "DICOM")
        try:
            region = int(options["region"]) if "region" in options else None
        except ValueError as e:
            raise SourceError(f"DICOM region {options['region']!r} is not an integer") from e
        return cls(path, region=region, crop=flag_option(options, "crop", True), max_pixels=max_pixels)

    def open(self) -> DicomSource:
        pydicom = _import_pydicom()
        if not Path(self.path).is_file():
            raise SourceError(f"no such DICOM file {self.path!r}")
        try:
            ds = pydicom.dcmread(self.path)
        except pydicom.errors.InvalidDicomError as e:  # its text suggests force=True, which no user can give
            raise SourceError(
                f"cannot read DICOM {self.path!r}: not a DICOM file (no 'DICM' marker, no file meta information)"
            ) from e
        except Exception as e:  # pydicom raises several kinds for a damaged or foreign file
            raise SourceError(f"cannot read DICOM {self.path!r}: {type(e).__name__}: {e}") from e
        if "PixelData" not in ds:
            raise SourceError(f"DICOM {self.path!r} holds no image (no PixelData)")
        meta = getattr(ds, "file_meta", None)
        ts = meta.get("TransferSyntaxUID") if meta is not None else None
        if ts is None:
            ts = pydicom.uid.ImplicitVRLittleEndian
        self._check_decoder(pydicom, ts)
        try:
            self.frames = int(ds.get("NumberOfFrames", 1) or 1)
            rows, cols = int(ds.Rows), int(ds.Columns)
        except (AttributeError, TypeError, ValueError) as e:
            raise SourceError(f"DICOM {self.path!r} states no usable image size: {e}") from e
        check_frame_size(cols, rows, self.max_pixels, f"DICOM {self.path!r}")  # before any pixel is decoded
        self._ds = ds
        rect, self.calibration, self.note = pick_region(ds, (rows, cols), self.region)
        if rect is not None and self.calibration.spacing_mm is None:
            self.note += f" ({self.calibration.note})"  # e.g. a PhysicalDelta no scanner can have
        self.roi = rect
        self.cropped = rect is not None and self.crop
        ft = ds.get("FrameTime")
        self.fps = 1000.0 / float(ft) if ft else (float(ds.CineRate) if ds.get("CineRate") else None)
        self._i = self._seq = 0
        self.corrupt = 0
        return self

    def _check_decoder(self, pydicom, ts) -> None:
        uid = pydicom.uid.UID(str(ts))
        if not uid.is_compressed:
            return
        try:
            decoder = pydicom.pixels.get_decoder(uid)
        except NotImplementedError as e:
            raise SourceError(f"cannot decode DICOM {self.path!r}: no decoder exists for {uid.name!r}") from e
        if not decoder.is_available:
            raise SourceError(
                f"cannot decode DICOM {self.path!r}: {uid.name!r} needs a decoder plugin ({INSTALL_HINT})"
            )

    def read(self) -> Frame | None:
        if self._ds is None:
            raise SourceError(f"DICOM {self.path!r} read before open()")
        from pydicom.pixels import pixel_array

        ds = self._ds
        while self._i < self.frames:
            i = self._i
            self._i += 1
            try:
                arr = pixel_array(ds, index=i if self.frames > 1 else None)
            except Exception:  # a truncated or damaged frame: skip it, keep going
                self.corrupt += 1
                continue
            # pydicom converts YBR to RGB; anything else keeps its photometric interpretation.
            photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
            if photometric.startswith("YBR"):
                photometric = "RGB"
            img = to_display(arr, ds, photometric)
            if self.cropped:
                x, y, w, h = self.roi
                img = np.ascontiguousarray(img[y : y + h, x : x + w])
            frame = Frame(img, time.monotonic(), self._seq, spacing_mm=self.calibration.spacing_mm)
            self._seq += 1
            return frame
        return None

    def close(self) -> None:
        self._ds = None
