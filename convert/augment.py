"""Augmentation of labelled B-mode images for training (numpy and OpenCV only: no TensorFlow).

Each training image is changed in ways a B-mode image of the same anatomy can differ: the probe
held the other way round (horizontal flip; depth never flips), tilted a little (rotation),
pressed closer or set to another depth (scale) or moved along the skin (translation); the
operator's gain, the display's contrast and gamma; another speckle pattern (multiplicative
noise with a correlation of about a pixel), another point-spread function (blur) and another
depth attenuation (time-gain compensation). The label map follows every geometric change by
nearest neighbour, so no class is invented; the intensity changes leave it alone.

Everything is drawn from a seeded generator per (seed, epoch, image), so a training run repeats
exactly and the order in which batches are made does not matter. Pixels that were blank (0:
outside the scanner's image outline, as `edge.screen.roi.crop` leaves them) stay blank.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import cv2
import numpy as np

from convert.errors import ConvertError

PARTS = ("flip", "rotate", "scale", "translate", "gain", "contrast", "gamma", "speckle", "blur", "attenuation")


@dataclass(frozen=True)
class AugmentOptions:
    """How far each part may change an image; a part with 0 (flip: False) is off.

    Each part is applied to an image with `probability`, at a strength drawn uniformly within
    its limit (a flip, when applied, is a flip).
    """

    flip: bool = True  # horizontal (lateral) mirror
    rotate: float = 10.0  # degrees, either way
    scale: float = 0.10  # zoom factor within 1 -+ this, both axes alike
    translate: float = 0.05  # shift within -+ this fraction of the width and of the height
    gain: float = 3.0  # dB, either way
    contrast: float = 0.25  # grey levels spread around their mean by a factor within 1/(1+c) .. 1+c
    gamma: float = 0.3  # exponent within 1/(1+g) .. 1+g
    speckle: float = 0.15  # standard deviation of the log of a multiplicative noise field
    blur: float = 1.0  # Gaussian sigma in pixels of the image augmented, up to this (axial and lateral apart)
    attenuation: float = 0.8  # grey levels times exp(a * (depth - 1/2)), depth 0-1, a within -+ this
    probability: float = 0.5  # of each part, per image

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "flip":
                if not isinstance(v, bool):
                    raise ConvertError(f"augmentation flip must be true or false, not {v!r}")
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ConvertError(f"augmentation {f.name} must be a number >= 0, not {v!r}")
        if not 0 <= self.probability <= 1:
            raise ConvertError(f"augmentation probability must be in 0-1, not {self.probability!r}")
        if self.rotate > 45 or self.scale >= 0.5 or self.translate >= 0.5:
            raise ConvertError("augmentation rotate must be at most 45 degrees, scale and translate under 0.5")

    def without(self, parts) -> AugmentOptions:
        """These options with the named parts switched off (ValueError naming an unknown part)."""
        parts = [p.strip() for p in parts if p.strip()]
        unknown = sorted(set(parts) - set(PARTS))
        if unknown:
            raise ConvertError(f"unknown augmentation part(s) {unknown}; the parts are {', '.join(PARTS)}")
        return replace(self, **{p: (False if p == "flip" else 0.0) for p in parts})  # type: ignore[arg-type]  # flip's off is False, the others' 0.0

    @property
    def active(self) -> list[str]:
        """The parts that are on."""
        return [p for p in PARTS if getattr(self, p)] if self.probability > 0 else []

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AugmentOptions:
        return cls(**d)


NONE = AugmentOptions().without(PARTS)  # every part off


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one image's augmentation in one epoch."""
    return np.random.default_rng([int(seed), int(epoch), int(index), 2404])


def augment(image: np.ndarray, labels: np.ndarray, options: AugmentOptions, rng: np.random.Generator):
    """One augmented copy of a model image and its label map.

    image: uint8 (H, W) or (H, W, C); labels: (H, W) class indices (uint8). Returns (image,
    labels, applied), image and labels of the same shapes and dtypes, `applied` a dict of the
    parts drawn and their strengths (for contact sheets and logs).
    """
    o = options
    h, w = labels.shape
    applied: dict[str, float] = {}

    def drawn(part: str) -> bool:
        return bool(getattr(o, part)) and rng.random() < o.probability

    # Geometric changes: one affine map about the image centre (flip, rotation, scale, shift).
    flip = drawn("flip")
    angle = float(rng.uniform(-o.rotate, o.rotate)) if drawn("rotate") else 0.0
    zoom = float(rng.uniform(1 - o.scale, 1 + o.scale)) if drawn("scale") else 1.0
    shift = rng.uniform(-o.translate, o.translate, 2) * (w, h) if drawn("translate") else np.zeros(2)
    if flip:
        applied["flip"] = 1.0
    if angle:
        applied["rotate"] = angle
    if zoom != 1.0:
        applied["scale"] = zoom
    if shift.any():
        applied["translate"] = float(np.hypot(*shift))
    img = image
    lab = labels
    if flip or angle or zoom != 1.0 or shift.any():
        c = ((w - 1) / 2.0, (h - 1) / 2.0)
        m = cv2.getRotationMatrix2D(c, angle, zoom)
        if flip:  # mirror the columns first: x -> w - 1 - x
            m = m @ np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        m[:, 2] += shift
        img = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        lab = cv2.warpAffine(labels, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    img = img.reshape(image.shape)

    # Intensity changes, in float grey levels; blank pixels stay blank.
    x = img.astype(np.float32)
    blank = img == 0
    if drawn("blur"):
        sy, sx = (float(v) for v in rng.uniform(0.3, max(o.blur, 0.3), 2))
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT_101).reshape(x.shape)
        applied["blur"] = max(sx, sy)
    if drawn("speckle"):
        s = float(rng.uniform(0.3, 1.0)) * o.speckle
        field: np.ndarray = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.7)
        field /= max(float(field.std()), 1e-6)
        noise = np.exp(s * field - s * s / 2)
        x = x * (noise[..., None] if x.ndim == 3 else noise)
        applied["speckle"] = s
    if drawn("attenuation"):
        a = float(rng.uniform(-o.attenuation, o.attenuation))
        ramp = np.exp(a * ((np.arange(h, dtype=np.float32) + 0.5) / h - 0.5))
        x = x * (ramp[:, None, None] if x.ndim == 3 else ramp[:, None])
        applied["attenuation"] = a
    if drawn("gain"):
        g = float(rng.uniform(-o.gain, o.gain))
        x = x * np.float32(10 ** (g / 20))
        applied["gain"] = g
    if drawn("contrast"):
        k = float(np.exp(rng.uniform(-np.log1p(o.contrast), np.log1p(o.contrast))))
        inside = ~blank
        mean = float(x[inside].mean()) if inside.any() else float(x.mean())
        x = (x - mean) * np.float32(k) + np.float32(mean)
        applied["contrast"] = k
    if drawn("gamma"):
        gm = float(np.exp(rng.uniform(-np.log1p(o.gamma), np.log1p(o.gamma))))
        x = 255.0 * np.power(np.clip(x, 0, 255) / 255.0, np.float32(gm))
        applied["gamma"] = gm
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    out[blank] = 0
    return out, lab.astype(labels.dtype, copy=False), applied


def augment_batch(
    images: np.ndarray, labels: np.ndarray, options: AugmentOptions, seed: int, epoch: int, indices
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented copies of images[indices] and labels[indices], each from `sample_rng(seed, epoch, index)`."""
    pairs = [augment(images[i], labels[i], options, sample_rng(seed, epoch, i))[:2] for i in indices]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def describe(applied: dict) -> str:
    """A short caption of what `augment` drew, e.g. 'flip rot+7 x1.05 g-2dB'."""
    words = []
    for part, v in applied.items():
        words.append(
            {
                "flip": lambda _: "flip",
                "rotate": lambda a: f"rot{a:+.0f}",
                "scale": lambda s: f"x{s:.2f}",
                "translate": lambda t: f"shift{t:.0f}",
                "gain": lambda g: f"g{g:+.1f}dB",
                "contrast": lambda k: f"c{k:.2f}",
                "gamma": lambda g: f"gam{g:.2f}",
                "speckle": lambda s: f"spk{s:.2f}",
                "blur": lambda s: f"blur{s:.1f}",
                "attenuation": lambda a: f"att{a:+.1f}",
            }[part](v)
        )
    return " ".join(words) or "as is"


MASK_BGR = [
    (0, 0, 0),
    (40, 200, 255),
    (60, 120, 240),
    (80, 200, 60),
    (200, 80, 200),
    (255, 160, 40),
    (0, 0, 200),
    (255, 255, 255),
]  # class outline colours; class 0 (background, or the tissue above) is not drawn


def sheet_tile(image: np.ndarray, labels: np.ndarray, tile: int, caption: str) -> np.ndarray:
    """One contact-sheet tile: the image in grey with every class but the first outlined in its
    colour (labels nearest-neighbour), and a caption."""
    grey = (
        image.reshape(image.shape[:2])
        if image.ndim == 2 or image.shape[2] == 1
        else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    )
    out = cv2.cvtColor(cv2.resize(grey, (tile, tile), interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    lab = cv2.resize(labels.astype(np.uint8), (tile, tile), interpolation=cv2.INTER_NEAREST_EXACT)
    for c in range(1, int(lab.max()) + 1):
        contours, _ = cv2.findContours((lab == c).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, MASK_BGR[c % len(MASK_BGR)], 1)
    lines, line = [], ""
    for word in caption.split():  # wrapped to the tile's width, bottom line last
        if line and cv2.getTextSize(line + " " + word, cv2.FONT_HERSHEY_SIMPLEX, 0.33, 1)[0][0] > tile - 6:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    for k, text in enumerate(reversed(lines)):
        for colour, width in (((0, 0, 0), 3), ((235, 235, 235), 1)):
            cv2.putText(out, text, (3, tile - 5 - 12 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, width, cv2.LINE_AA)
    return out


def augment_sheet(
    images: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    options: AugmentOptions,
    seed: int = 0,
    per_image: int = 5,
    tile: int = 160,
) -> np.ndarray:
    """A BGR contact sheet: per image a row of the image as it is, then `per_image` augmented
    copies as training draws them (epochs 0, 1, ... of `seed`), each with its label outlines and
    what was drawn. For looking, not for measuring."""
    rows = []
    for i, (img, lab, name) in enumerate(zip(images, labels, names)):
        tiles = [sheet_tile(img, lab, tile, name[:22])]
        for epoch in range(per_image):
            a_img, a_lab, applied = augment(img, lab, options, sample_rng(seed, epoch, i))
            tiles.append(sheet_tile(a_img, a_lab, tile, describe(applied)))
        rows.append(np.hstack(tiles))
    sep = np.full((3, rows[0].shape[1], 3), 60, np.uint8)
    out = [rows[0]]
    for r in rows[1:]:
        out += [sep, r]
    return np.vstack(out)
