"""The one definition of how a B-mode image becomes model input, shared by convert/ and edge/.

A model's preprocessing is stated in its bundle manifest as a PreprocessSpec; training,
calibration, validation and the device all call `to_model_image` with that spec, so what the
int8 model was calibrated on is exactly what the device feeds it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

_INTERPOLATION = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST_EXACT,
}


CHANNEL_ORDERS = ("bgr", "rgb")  # the order of a 3-channel model's input (frames arrive as BGR)


@dataclass(frozen=True)
class PreprocessSpec:
    """How a B-mode region becomes the model's input, as the model was fed in training.

    The image is resized to (height, width) with `interpolation`, converted to `channels` (grey,
    or 3 channels in `channel_order`), and each uint8 pixel p becomes (p * scale - mean) / std.
    mean and std are one number or one per channel (in the model's channel order). The defaults
    (p / 255, BGR) are what a manifest without the fields means.
    """

    height: int = 256
    width: int = 256
    channels: int = 1
    interpolation: str = "area"
    scale: float = 1.0 / 255.0  # float input = (uint8 pixel * scale - mean) / std
    mean: float | tuple[float, ...] = 0.0
    std: float | tuple[float, ...] = 1.0
    channel_order: str = "bgr"

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
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {list(CHANNEL_ORDERS)}, not {self.channel_order!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                if len(value) not in (1, self.channels):
                    raise ValueError(f"{name} {list(value)!r} needs 1 or {self.channels} values (one per channel)")
                value = tuple(float(v) for v in value)
                object.__setattr__(self, name, value[0] if len(value) == 1 else value)
            values = np.atleast_1d(np.asarray(getattr(self, name), np.float64))
            if not np.isfinite(values).all() or (name == "std" and not (values > 0).all()):
                raise ValueError(
                    f"{name} {getattr(self, name)!r} must be finite" + (" and positive" if name == "std" else "")
                )

    @property
    def per_channel(self) -> bool:
        """True when mean or std differs between channels (the int8 lookup then has a column per channel)."""
        return isinstance(self.mean, tuple) or isinstance(self.std, tuple)

    def to_dict(self) -> dict:
        """The manifest's form. The normalisation and channel order appear only when declared
        (not the defaults), so a default spec reads as before they existed."""
        d = asdict(self)
        for name, default in (("mean", 0.0), ("std", 1.0), ("channel_order", "bgr")):
            value = d[name]
            if value == default:
                del d[name]
            elif isinstance(value, tuple):
                d[name] = list(value)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessSpec:
        if not isinstance(d, dict):
            raise ValueError(f"a preprocessing spec is an object, not {type(d).__name__}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown preprocessing keys: {sorted(unknown)}")
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in d.items()
        }  # __post_init__ checks
        return cls(**fields)

    def describe(self) -> str:
        """One line for messages: how a pixel p becomes the model input."""
        scale = (
            f"p/{1 / self.scale:g}"
            if self.scale < 1 and abs(1 / self.scale - round(1 / self.scale)) < 1e-9
            else f"p*{self.scale:g}"
        )
        text = scale
        if self.mean != 0.0:
            text = f"({text} - {self.mean})"
        if self.std != 1.0:
            text = f"{text} / {self.std}"
        order = f", {self.channel_order.upper()}" if self.channels == 3 else ""
        return f"{text}{order}, {self.interpolation} resize to {self.height}x{self.width}"


def to_model_image(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 HxW or HxWx3 (BGR) image -> uint8 (spec.height, spec.width, spec.channels), the
    channels in the model's order."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and spec.channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 2 and spec.channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif spec.channels == 3 and spec.channel_order == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[:2] != (spec.height, spec.width):
        image = cv2.resize(image, (spec.width, spec.height), interpolation=_INTERPOLATION[spec.interpolation])
    return image.reshape(spec.height, spec.width, spec.channels)


def to_float(model_image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The float tensor the float model sees (training, calibration, float validation)."""
    x = model_image.astype(np.float32) * np.float32(spec.scale)
    if spec.mean != 0.0 or spec.std != 1.0:
        x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return x


def int8_lookup(spec: PreprocessSpec, scale: float, zero_point: int) -> np.ndarray:
    """A table mapping a uint8 pixel straight to the model's int8 input code: 256 entries, or
    (256, channels) when the normalisation differs per channel (index it with `fill_int8`)."""
    pixels = np.arange(256, dtype=np.uint8)
    if spec.per_channel:
        pixels = np.repeat(pixels[:, None], spec.channels, axis=1)
    codes = np.round(to_float(pixels, spec).astype(np.float64) / scale) + zero_point
    return np.clip(codes, -128, 127).astype(np.int8)


def fill_int8(lookup: np.ndarray, model_image: np.ndarray) -> np.ndarray:
    """The int8 input tensor (H, W, C) of a uint8 model image through an `int8_lookup` table.
    One table for every channel: OpenCV's LUT (the same codes as numpy's indexing, in a third of
    its time)."""
    if lookup.ndim == 1:
        if model_image.dtype == np.uint8 and model_image.size and lookup.shape == (256,) and lookup.dtype == np.int8:
            return cv2.LUT(model_image, lookup).reshape(model_image.shape)
        return lookup[model_image]
    return lookup[model_image, np.arange(lookup.shape[1])]


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
