"""The one definition of how a B-mode image becomes model input, shared by convert/ and edge/.

A model's preprocessing is stated in its bundle manifest as a PreprocessSpec; training,
calibration, validation and the device all call `to_model_image` with that spec, so what the
int8 model was calibrated on is exactly what the device feeds it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

_INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
                  "nearest": cv2.INTER_NEAREST_EXACT}


@dataclass(frozen=True)
class PreprocessSpec:
    """Resize the B-mode region to (height, width), convert to `channels`, scale uint8 to [0, 1]."""

    height: int = 256
    width: int = 256
    channels: int = 1
    interpolation: str = "area"
    scale: float = 1.0 / 255.0  # float input = uint8 pixel * scale

    def __post_init__(self):
        if not isinstance(self.interpolation, str) or self.interpolation not in _INTERPOLATION:
            raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATION)}, not {self.interpolation!r}")
        if isinstance(self.channels, bool) or self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels!r}")
        for name in ("height", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096:
                raise ValueError(f"{name} must be a whole number of pixels from 1 to 4096, not {v!r}")
        s = self.scale
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (math.isfinite(s) and s > 0):
            raise ValueError(f"scale must be a positive number, not {s!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        if not isinstance(d, dict):
            raise ValueError(f"a preprocessing spec is an object, not {type(d).__name__}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown preprocessing keys: {sorted(unknown)}")
        return cls(**d)


def to_model_image(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 HxW or HxWx3 (BGR) image -> uint8 (spec.height, spec.width, spec.channels)."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and spec.channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 2 and spec.channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[:2] != (spec.height, spec.width):
        image = cv2.resize(image, (spec.width, spec.height), interpolation=_INTERPOLATION[spec.interpolation])
    return image.reshape(spec.height, spec.width, spec.channels)


def to_float(model_image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The float tensor the float model sees (training, calibration, float validation)."""
    return model_image.astype(np.float32) * np.float32(spec.scale)


def int8_lookup(spec: PreprocessSpec, scale: float, zero_point: int) -> np.ndarray:
    """A 256-entry table mapping a uint8 pixel straight to the model's int8 input code."""
    codes = np.round(np.arange(256) * spec.scale / scale) + zero_point
    return np.clip(codes, -128, 127).astype(np.int8)


def resize_labels(labels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Resize a class-index map to the model grid (nearest neighbour: no invented classes).

    Each model pixel takes the class at its own centre (cv2.INTER_NEAREST_EXACT). Plain
    cv2.INTER_NEAREST samples at the pixel's top-left corner instead: on a 480 -> 256 downscale it
    moves every class edge down by about half a model pixel against the image, which a model then
    learns as an offset."""
    if labels.shape[:2] == (spec.height, spec.width):
        return labels
    return cv2.resize(labels, (spec.width, spec.height), interpolation=cv2.INTER_NEAREST_EXACT)


def model_spacing(spacing_mm: tuple[float, float] | None, roi_shape: tuple[int, int], spec: PreprocessSpec):
    """mm per model pixel (row, column) for a ROI of `roi_shape` with `spacing_mm` per ROI pixel."""
    if spacing_mm is None:
        return None
    h, w = roi_shape[:2]
    return (spacing_mm[0] * h / spec.height, spacing_mm[1] * w / spec.width)
