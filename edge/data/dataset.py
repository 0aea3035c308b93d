"""Labelled data sets on disk: reading (and writing) images/ + masks/ with their config, with
numpy and OpenCV only, so the device (`tlf-edge bench --data`) and training (convert/) read a
data set the same way.

A labelled data set is a folder with images/ and masks/ (matching stems) and, optionally, a small
config file beside them, dataset.json (or dataset.toml), that says how to read the masks:

    {"version": 1,
     "classes": ["above", "tlf", "below"],
     "mask": {"kind": "index", "base": 0},
     "spacing_mm": [0.156, 0.156]}

mask.kind is one of
- "index": the pixel value is the class; "base": 1 for 1-based masks, or an explicit
  "values": {"0": "above", "128": "tlf", "255": "below"} (pixel value -> class name or index);
- "palette": colour masks, "colours": {"#000000": "above", "#ff0000": "tlf", "#0000ff": "below"}
  (RGB, hex or [r, g, b]; several colours may share a class); "tolerance": per-channel slack for
  lossy files; indexed (palette) PNGs are read as their colours;
- "binary": one band class on background, e.g. 0/255 masks: pixel >= "threshold" (128) is class 1.
spacing_mm (row, column mm per pixel) is optional. Without a config file the masks are read as
before: class indices as they are (the first channel of a colour file).

Images may be PNG, TIFF, JPEG, BMP, PGM/PPM or WebP (edge.sources.folder.IMAGE_SUFFIXES, the files the
device reads), grayscale, RGB or RGBA (alpha dropped; 16-bit scaled to 8).
Every problem is a DatasetError subclass whose one-line message names the file.

`labelled_frames` yields the images of such a folder at native size with their spacing, for
scoring on the device ("phantom[:N]", the held-out phantom scans with their exact truth, are the
simulator's: edge.sim.recipes).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.model.preprocess import PreprocessSpec, resize_labels, to_model_image
from edge.sources.folder import IMAGE_SUFFIXES  # the image files the device reads, read alike here

PHANTOM_DATA_DEFAULT_N = 64  # held-out phantom scenes in 'phantom' data without a count
MASK_KINDS = ("index", "palette", "binary")
CONFIG_NAMES = ("dataset.json", "dataset.toml")
IMAGE_FORMATS = {"png": ".png", "tif": ".tif", "tiff": ".tif", "jpg": ".jpg", "jpeg": ".jpg"}


class DatasetError(EdgeError, ValueError):
    """A labelled data set cannot be read as it is; the message names the file."""


class DatasetConfigError(DatasetError):
    """The data-set config file is unreadable, has an unknown key or a bad value."""


class MissingMaskError(DatasetError):
    """An image has no mask with the same stem."""


class SizeMismatchError(DatasetError):
    """An image and its mask differ in size."""


class UnknownClassError(DatasetError):
    """A mask holds a value or colour that the config maps to no class."""


class UnreadableFileError(DatasetError):
    """An image or mask file cannot be decoded."""


@dataclass(frozen=True)
class DatasetConfig:
    """How a data set's masks map to classes (see the module docstring for the file format).

    classes: the class names, index = class. An empty tuple is the legacy reading: mask values
    are used as class indices, unchecked.
    """

    classes: tuple[str, ...] = ()
    mask: str = "index"
    base: int = 0
    values: tuple[tuple[int, int], ...] = ()  # index masks: (pixel value, class)
    colours: tuple[tuple[tuple[int, int, int], int], ...] = ()  # palette masks: ((r, g, b), class)
    threshold: int = 128
    tolerance: int = 0
    spacing_mm: tuple[float, float] | None = None
    source: str = field(default="", compare=False)  # where it was read from, for messages

    def __post_init__(self):
        where = f" in {self.source!r}" if self.source else ""
        if self.mask not in MASK_KINDS:
            raise DatasetConfigError(f"mask kind {self.mask!r}{where} is not one of {list(MASK_KINDS)}")
        if self.mask == "binary" and self.classes and len(self.classes) != 2:
            raise DatasetConfigError(f"binary masks need exactly 2 classes{where}, not {list(self.classes)!r}")
        if self.mask == "palette" and not self.colours:
            raise DatasetConfigError(f"palette masks need 'colours'{where}")
        n = len(self.classes)
        for _, c in tuple(self.values) + tuple(self.colours):
            if n and not 0 <= c < n:
                raise DatasetConfigError(f"class {c!r}{where} is out of range for {n} classes")

    @property
    def legacy(self) -> bool:
        return not self.classes

    def to_dict(self) -> dict:
        mask: dict = {"kind": self.mask}
        if self.mask == "index":
            if self.values:
                mask["values"] = {str(v): self.classes[c] for v, c in self.values}
            else:
                mask["base"] = self.base
        elif self.mask == "palette":
            mask["colours"] = {"#{:02x}{:02x}{:02x}".format(*rgb): self.classes[c] for rgb, c in self.colours}
            if self.tolerance:
                mask["tolerance"] = self.tolerance
        else:
            mask["threshold"] = self.threshold
        d = {"version": 1, "classes": list(self.classes), "mask": mask}
        if self.spacing_mm is not None:
            d["spacing_mm"] = [float(v) for v in self.spacing_mm]
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "") -> DatasetConfig:
        where = f" in {source!r}" if source else ""

        def bad(msg: str) -> DatasetConfigError:
            return DatasetConfigError(msg + where)

        if not isinstance(d, dict):
            raise bad("the config is not a table of keys")
        unknown = set(d) - {"version", "classes", "mask", "spacing_mm"}
        if unknown:
            raise bad(f"unknown config key(s) {sorted(unknown)}")
        if d.get("version", 1) != 1:
            raise bad(f"unsupported config version {d.get('version')!r} (this reader knows 1)")
        classes = d.get("classes")
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise bad(f"'classes' must be a non-empty list of names, not {classes!r}")
        if len(set(classes)) != len(classes) or len(classes) > 255:
            raise bad(f"'classes' must be unique names (at most 255): {classes!r}")
        mask = d.get("mask", {"kind": "index"})
        if not isinstance(mask, dict):
            raise bad(f"'mask' must be a table, not {mask!r}")
        kind = mask.get("kind", "index")
        allowed = {
            "index": {"kind", "base", "values"},
            "palette": {"kind", "colours", "tolerance"},
            "binary": {"kind", "threshold"},
        }.get(kind)
        if allowed is None:
            raise bad(f"mask kind {kind!r} is not one of {list(MASK_KINDS)}")
        unknown = set(mask) - allowed
        if unknown:
            raise bad(f"unknown key(s) {sorted(unknown)} for {kind!r} masks")

        def cls_of(v) -> int:
            if isinstance(v, str):
                if v not in classes:
                    raise bad(f"class {v!r} is not in {classes!r}")
                return classes.index(v)
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(classes):
                return v
            raise bad(f"class {v!r} is neither a class name nor an index below {len(classes)}")

        args: dict = {"classes": tuple(classes), "mask": kind, "source": source}
        try:
            if kind == "index":
                base = mask.get("base", 0)
                if base not in (0, 1):
                    raise bad(f"index base must be 0 or 1, not {base!r}")
                args["base"] = base
                if "values" in mask:
                    if not isinstance(mask["values"], dict):
                        raise bad("'values' must map pixel values to classes")
                    args["values"] = tuple(sorted((int(k), cls_of(v)) for k, v in mask["values"].items()))
                    if any(not 0 <= v < 65536 for v, _ in args["values"]):
                        raise bad("pixel values must be 0-65535")
            elif kind == "palette":
                colours = mask.get("colours")
                if not isinstance(colours, dict) or not colours:
                    raise bad('\'colours\' must map colours ("#rrggbb" or "r,g,b") to classes')
                args["colours"] = tuple((_parse_colour(k, bad), cls_of(v)) for k, v in colours.items())
                args["tolerance"] = int(mask.get("tolerance", 0))
            else:
                args["threshold"] = int(mask.get("threshold", 128))
                if not 1 <= args["threshold"] <= 65535:
                    raise bad(f"binary threshold {args['threshold']!r} must be 1-65535")
            if "spacing_mm" in d:
                sp = d["spacing_mm"]
                if not isinstance(sp, list) or len(sp) != 2 or not all(float(v) > 0 for v in sp):
                    raise bad(f"'spacing_mm' must be [row_mm, column_mm], not {sp!r}")
                args["spacing_mm"] = (float(sp[0]), float(sp[1]))
        except (TypeError, ValueError) as e:
            if isinstance(e, DatasetError):
                raise
            raise bad(f"bad value: {e}") from e
        return cls(**args)


def _parse_colour(v, bad) -> tuple[int, int, int]:
    try:
        if isinstance(v, str) and v.startswith("#") and len(v) == 7:
            rgb = tuple(int(v[i : i + 2], 16) for i in (1, 3, 5))
        elif isinstance(v, str):
            rgb = tuple(int(p) for p in v.split(","))
        else:
            rgb = tuple(int(p) for p in v)
    except (TypeError, ValueError):
        raise bad(f"colour {v!r} is not '#rrggbb', 'r,g,b' or [r, g, b]") from None
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise bad(f"colour {v!r} is not three values 0-255")
    return rgb  # type: ignore[return-value]


def load_dataset_config(root: Path) -> DatasetConfig:
    """The config beside images/ and masks/ (dataset.json or dataset.toml); legacy reading if none."""
    root = Path(root)
    found = [root / n for n in CONFIG_NAMES if (root / n).is_file()]
    if not found:
        return DatasetConfig()
    if len(found) > 1:
        raise DatasetConfigError(f"both {str(found[0])!r} and {str(found[1])!r} exist; keep one")
    return read_dataset_config(found[0])


def read_dataset_config(path: Path) -> DatasetConfig:
    """Read one config file (.json, or .toml)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10: the backport, a dependency there
                import tomli as tomllib

            d = tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            d = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DatasetConfigError(f"cannot read data-set config {str(path)!r}: {e}") from e
    except ValueError as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise DatasetConfigError(f"data-set config {str(path)!r} is not valid {path.suffix[1:].upper()}: {e}") from e
    return DatasetConfig.from_dict(d, str(path))


def read_image(path: Path) -> np.ndarray:
    """A data-set image as uint8 grayscale (H, W) or BGR (H, W, 3)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise UnreadableFileError(f"cannot decode image {str(path)!r}")
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise UnreadableFileError(f"image {str(path)!r} has pixel type {img.dtype} (expected 8 or 16 bit)")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    elif img.ndim == 3 and img.shape[2] == 2:  # grey + alpha
        img = img[..., 0]
    return img


def decode_mask(mask: np.ndarray, config: DatasetConfig, path: Path | str = "") -> np.ndarray:
    """A mask file's pixels (as cv2 reads them: grey, BGR or BGRA) -> uint8 class indices."""
    name = str(path)
    if mask.ndim == 3 and mask.shape[2] == 4:
        mask = mask[..., :3]
    if config.legacy:
        return (mask[..., 0] if mask.ndim == 3 else mask).astype(np.uint8)
    if config.mask == "palette":
        rgb = mask[..., ::-1] if mask.ndim == 3 else np.repeat(mask[..., None], 3, axis=2)
        if rgb.dtype != np.uint8:
            raise UnknownClassError(f"palette mask {name!r} is {rgb.dtype}, expected 8-bit colours")
        keys = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        uniq, inverse = np.unique(keys, return_inverse=True)
        pal = np.array([c for c, _ in config.colours], np.int64)
        pal_cls = np.array([k for _, k in config.colours], np.int64)
        uc = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1)
        diff = np.abs(uc[:, None, :] - pal[None, :, :]).max(axis=2)
        best = diff.argmin(axis=1)
        ok = diff[np.arange(len(uniq)), best] <= config.tolerance
        if not ok.all():
            missing = [f"#{int(u):06x}" for u in uniq[~ok][:5]]
            raise UnknownClassError(f"mask {name!r} has colour(s) {missing} that map to no class")
        return pal_cls[best][inverse].reshape(keys.shape).astype(np.uint8)
    if mask.ndim == 3:
        if not (np.array_equal(mask[..., 0], mask[..., 1]) and np.array_equal(mask[..., 0], mask[..., 2])):
            raise UnknownClassError(f"mask {name!r} is in colour, but the config says {config.mask!r} masks")
        mask = mask[..., 0]
    if config.mask == "binary":
        return (mask >= config.threshold).astype(np.uint8)
    lut = np.full(65536 if mask.dtype == np.uint16 else 256, 255, np.uint8)
    if config.values:
        for v, c in config.values:
            if v < len(lut):
                lut[v] = c
    else:
        n = len(config.classes)
        lut[config.base : config.base + n] = np.arange(n, dtype=np.uint8)
    if mask.dtype not in (np.uint8, np.uint16):
        raise UnknownClassError(f"mask {name!r} has pixel type {mask.dtype} (expected 8 or 16 bit)")
    out = lut[mask]
    bad = out == 255
    if bad.any():
        values = np.unique(mask[bad])
        raise UnknownClassError(
            f"mask {name!r} has value(s) {values[:5].tolist()} that map to no class "
            f"(classes {list(config.classes)}, {config.mask} masks, base {config.base})"
        )
    return out


def _files(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"no {what} folder {str(folder)!r}")
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.stem in files:
            raise DatasetError(f"two {what} share the stem {p.stem!r}: {str(files[p.stem])!r} and {str(p)!r}")
        files[p.stem] = p
    return files


def iter_dataset(
    root: Path, config: DatasetConfig | Path | str | None = None
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield (stem, image, labels) at native size for every image of `root/images`, sorted by stem.

    config: a DatasetConfig, a config file, or None for the file beside images/ (legacy if none).
    Masks without an image are ignored; an image without a mask is a MissingMaskError.
    """
    root = Path(root)
    if config is None:
        config = load_dataset_config(root)
    elif not isinstance(config, DatasetConfig):
        config = read_dataset_config(Path(config))
    images = _files(root / "images", "images")
    if not images:
        raise DatasetError(f"no images in {str(root / 'images')!r}")
    masks = _files(root / "masks", "masks")
    for stem, path in images.items():
        if stem not in masks:
            raise MissingMaskError(f"no mask for image {str(path)!r} in {str(root / 'masks')!r}")
        img = read_image(path)
        raw = cv2.imread(str(masks[stem]), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise UnreadableFileError(f"cannot decode mask {str(masks[stem])!r}")
        if img.shape[:2] != raw.shape[:2]:
            raise SizeMismatchError(
                f"image {str(path)!r} is {img.shape[1]}x{img.shape[0]} but its mask "
                f"{str(masks[stem])!r} is {raw.shape[1]}x{raw.shape[0]}"
            )
        yield stem, img, decode_mask(raw, config, masks[stem])


@dataclass
class LabelledSet:
    """A data set at native size: images (uint8 grey or BGR), class-index labels, stems, config."""

    images: list[np.ndarray]
    labels: list[np.ndarray]
    stems: list[str]
    config: DatasetConfig


def read_dataset(root: Path, config: DatasetConfig | Path | str | None = None) -> LabelledSet:
    """Read a whole data set at native size (see iter_dataset)."""
    if config is None:
        config = load_dataset_config(Path(root))
    elif not isinstance(config, DatasetConfig):
        config = read_dataset_config(Path(config))
    out = LabelledSet([], [], [], config)
    for stem, img, lab in iter_dataset(root, config):
        out.stems.append(stem)
        out.images.append(img)
        out.labels.append(lab)
    return out


def read_labelled_folder(root: Path, spec: PreprocessSpec, config: DatasetConfig | Path | str | None = None):
    """Read `root/images/*` with masks of the same stem in `root/masks/` (mapped by the data set's
    config, see the module docstring; class indices as they are without one).

    Returns (N,H,W,C) uint8 images and (N,H,W) uint8 labels on the model grid.
    """
    xs, ys = [], []
    for _, img, lab in iter_dataset(Path(root), config):
        xs.append(to_model_image(img, spec))
        ys.append(resize_labels(lab, spec))
    return np.stack(xs), np.stack(ys)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_palette_png(path: Path, indices: np.ndarray, colours: list[tuple[int, int, int]]) -> None:
    """Write an indexed-colour (palette) PNG, as annotation tools export colour masks."""
    h, w = indices.shape
    raw = b"".join(b"\x00" + indices[r].astype(np.uint8).tobytes() for r in range(h))
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
    png += _png_chunk(b"PLTE", bytes(v for rgb in colours for v in rgb))
    png += _png_chunk(b"IDAT", zlib.compress(raw, 6)) + _png_chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def _imwrite(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise DatasetError(f"cannot write {str(path)!r}")


def write_dataset(
    root: Path, images, labels, config: DatasetConfig, stems=None, image_format: str = "png", palette_png: bool = True
) -> Path:
    """Write images, masks and dataset.json so that `read_dataset(root)` gives the same classes back.

    images: uint8 grey (H, W) or BGR (H, W, 3); labels: class indices. Masks are PNG in the
    config's kind (index values from its base or values map; palette colours as an indexed PNG,
    or an RGB PNG with palette_png=False; binary as 0/255). Returns the config file's path.
    """
    if config.legacy:
        raise DatasetConfigError("write_dataset needs a config with class names")
    ext = IMAGE_FORMATS.get(image_format.lower().lstrip("."))
    if ext is None:
        raise DatasetConfigError(f"image format {image_format!r} is not one of {sorted(set(IMAGE_FORMATS))}")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    n = len(config.classes)
    if config.mask == "index":
        code = np.arange(n) + config.base
        for v, c in reversed(config.values):
            code[c] = v
        if code.max() > 255:
            raise DatasetConfigError("index values above 255 cannot be written as 8-bit masks")
    elif config.mask == "palette":
        first: dict[int, tuple[int, int, int]] = {}
        for rgb, c in config.colours:
            first.setdefault(c, rgb)
        if len(first) != n:
            raise DatasetConfigError(f"every class needs a colour to write palette masks: {list(config.classes)}")
        colours = [first[c] for c in range(n)]
    for i, (img, lab) in enumerate(zip(images, labels)):
        stem = stems[i] if stems is not None else f"{i:05d}"
        lab = np.asarray(lab)
        if lab.max(initial=0) >= n:
            raise DatasetError(f"labels of {stem!r} hold class {int(lab.max())} but there are {n} classes")
        img = np.asarray(img)
        _imwrite(root / "images" / f"{stem}{ext}", img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img)
        mpath = root / "masks" / f"{stem}.png"
        if config.mask == "index":
            _imwrite(mpath, code[lab].astype(np.uint8))
        elif config.mask == "binary":
            _imwrite(mpath, (lab > 0).astype(np.uint8) * 255)
        elif palette_png:
            write_palette_png(mpath, lab, colours)
        else:
            _imwrite(mpath, np.array(colours, np.uint8)[lab][..., ::-1])
    path = root / "dataset.json"
    path.write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def phantom_dataset_config(mask: str = "index", base: int = 0, spacing_mm=None) -> DatasetConfig:
    """The config of a phantom data set: three classes, or background/tlf for binary masks."""
    if mask == "binary":
        return DatasetConfig(classes=("background", "tlf"), mask="binary", spacing_mm=spacing_mm)
    classes = ("above", "tlf", "below")
    if mask == "palette":
        colours = (((0, 0, 0), 0), ((255, 0, 0), 1), ((0, 0, 255), 2))
        return DatasetConfig(classes=classes, mask="palette", colours=colours, spacing_mm=spacing_mm)
    return DatasetConfig(classes=classes, mask=mask, base=base, spacing_mm=spacing_mm)


def write_labelled_folder(root: Path, images: np.ndarray, labels: np.ndarray, stems=None) -> None:
    """Write images and class-index masks as PNGs in the layout `read_labelled_folder` reads."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, (img, lab) in enumerate(zip(images, labels)):
        stem = stems[i] if stems is not None else f"{i:05d}"
        cv2.imwrite(str(root / "images" / f"{stem}.png"), img)
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), lab)


# Labelled frames for on-device scoring (tlf-edge bench --data): a data-set folder or the phantom.


@dataclass(frozen=True)
class LabelledFrame:
    """One labelled image at native size: uint8 image, class-index labels, mm per pixel (row, column)
    or None, and the exact thickness (mm) in the measurement window when the truth is analytic."""

    stem: str
    image: np.ndarray
    labels: np.ndarray
    spacing_mm: tuple[float, float] | None
    exact_mm: float | None = None
    classes: tuple[str, ...] = ()  # the data set's class names; empty when it does not say


def phantom_count(data: str) -> int | None:
    """N for 'phantom' or 'phantom:N', None for anything else (a folder)."""
    if data != "phantom" and not data.startswith("phantom:"):
        return None
    _, _, n = data.partition(":")
    if not n:
        return PHANTOM_DATA_DEFAULT_N
    if not n.isdigit() or int(n) < 1:
        raise DatasetError(f"phantom:N takes a whole number of frames >= 1, not {data!r}")
    return int(n)


def labelled_frames(
    data: str | Path, spacing_mm: tuple[float, float] | None = None, model_classes: int | None = None
) -> Iterator[LabelledFrame]:
    """The frames of a data-set folder (read by iter_dataset); 'phantom[:N]' is the simulator's
    (edge.sim.recipes.held_out_frames, which `tlf-edge bench --data` reaches through
    edge.ops.bench.labelled_data).

    spacing_mm: mm per native pixel; it overrides the data set's config. model_classes: when given,
    a data set whose config names another number of classes is refused. Bad arguments fail here,
    before the first frame is read.
    """
    root = Path(data)
    if not root.is_dir():
        raise DatasetError(f"labelled data {str(data)!r} is neither a data-set folder nor 'phantom[:N]'")
    config = load_dataset_config(root)
    if model_classes is not None and config.classes and len(config.classes) != model_classes:
        raise DatasetError(
            f"the data set has {len(config.classes)} classes {list(config.classes)} but the model has {model_classes}"
        )
    spacing = spacing_mm if spacing_mm is not None else config.spacing_mm
    return (
        LabelledFrame(stem, image, labels, spacing, classes=config.classes)
        for stem, image, labels in iter_dataset(root, config)
    )
