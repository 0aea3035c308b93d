"""What `tlf-convert` reads from the user: float models (a file, or --weights into the built-in
U-Net) and bundles, labelled folders, representative (calibration) images, thickness spacings,
and the held-out phantom sets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from convert.errors import ConvertError
from convert.options import builder_options
from edge import logs
from edge.sim.recipes import CALIBRATION_SEEDS, DOMAIN_SEEDS, PHANTOM_DATA_SEEDS, held_out_look

log = logs.get(__name__)

MAX_LEGACY_CLASSES = 8  # masks without a config holding higher values are not class indices


def read_float_model(args, spec=None):
    """The float model of a quantize or validate command: a file or folder, or --weights into the
    built-in U-Net (its size and channels from `spec`, else --size and --channels)."""
    from convert.quantize import load_keras_model

    path = _float_path(args)
    if args.weights:
        from convert.load import weights_into_unet

        return weights_into_unet(args.weights, **builder_options(args, spec))
    return load_keras_model(path, trust_code=args.trust_code, custom_objects=args.custom_objects)


def _float_path(args) -> str | None:
    path = getattr(args, "model", None) or getattr(args, "float_model", None)
    if args.weights and path:
        raise ConvertError("give a model file or --weights, not both")
    if not args.weights and not path:
        raise ConvertError("give the float model (a .keras or .h5 file or a SavedModel folder) or --weights FILE")
    return path


def float_identity(args, spec=None) -> dict:
    """The float model's identity (convert.load.model_identity) as the command names it."""
    from convert.load import model_identity

    if args.weights:
        return model_identity(args.weights, builder=builder_options(args, spec))
    path = _float_path(args)
    assert path is not None  # without --weights, _float_path returns the model's path or raises
    return model_identity(path)


def checked_float_model(args, bundle) -> dict:
    """The identity of the float model validate was given, refused (one line) when the bundle
    records another one unless --other-model; with it, the identity says it is another
    (`made_from` false). A bundle made before the record gets a warning."""
    from convert.load import same_model

    given = float_identity(args, bundle.spec)
    recorded = bundle.manifest.get("float_model")
    if not isinstance(recorded, dict):
        log.warning(
            "bundle %r does not record the float model it was made from (made before tlf-convert recorded it): "
            "validating against %r unchecked",
            str(bundle.path),
            given["name"],
        )
        return {**given, "made_from": None}
    if same_model(recorded, given):
        return {**given, "made_from": True}
    line = (
        f"{given['name']!r} (sha256 {given['sha256'][:12]}...) is not the float model bundle "
        f"{str(bundle.path)!r} was made from ({recorded.get('name')!r}, sha256 {str(recorded.get('sha256'))[:12]}..."
        f"{', builder ' + str(recorded['builder']) if recorded.get('builder') else ''})"
    )
    if not args.other_model:
        raise ConvertError(
            f"{line}: validate against that model, or pass --other-model to validate against this one "
            "(the bundle's validation record then names it)"
        )
    log.warning("%s; validating against it (--other-model), as the validation record says", line)
    return {**given, "made_from": False}


def read_bundle(path):
    """A verified bundle, or ConvertError with the loader's one line."""
    from edge.errors import BundleError
    from edge.model.bundle import load_bundle

    try:
        return load_bundle(path)
    except BundleError as e:
        raise ConvertError(str(e)) from e


def dataset_config(folder, config_path=None):
    """The DatasetConfig of a labelled folder: the file `config_path` when given, else the one
    beside its images/ (none: a legacy config, class-index masks)."""
    from convert.data import load_dataset_config, read_dataset_config

    return read_dataset_config(Path(config_path)) if config_path else load_dataset_config(Path(folder))


def labelled_set(folder, spec, config_path=None):
    """A labelled folder on the model grid: (images NxHxWxC, labels NxHxW, its DatasetConfig,
    native (height, width) of each image, the native label maps). config_path: a config file
    used instead of the one beside images/."""
    from convert.data import iter_dataset
    from edge.model.preprocess import resize_labels, to_model_image

    config = dataset_config(folder, config_path)
    images, labels, shapes, native = [], [], [], []
    for _, img, lab in iter_dataset(Path(folder), config):
        images.append(to_model_image(img, spec))
        labels.append(resize_labels(lab, spec))
        shapes.append(img.shape[:2])
        native.append(lab)
    return np.stack(images), np.stack(labels), config, shapes, native


def model_classes(config, labels: np.ndarray) -> int:
    """The number of model outputs: the config's classes (a set whose masks lack the last class
    still gets a model with all of them), else the highest label + 1 (legacy masks)."""
    if not config.legacy:
        return len(config.classes)
    top = int(labels.max())
    if top >= MAX_LEGACY_CLASSES:
        raise ConvertError(
            f"the masks hold the value {top} and the data set has no config: give it a dataset.json "
            "(or --dataset-config) saying how to read them, e.g. binary 0/255 masks"
        )
    return top + 1


def data_spacings(args, shapes, spec, config=None):
    """Per-image (row, col) thickness units per model pixel of a labelled folder, and the unit's
    name: --spacing-mm (mm per model pixel, the same for every image), --native-px (each image's
    own pixels), else the data set's spacing_mm (mm per image pixel, in its dataset.json or
    --dataset-config: mm per model pixel of each image), else model pixels. A note says which."""
    if args.native_px and args.spacing_mm:
        raise ConvertError("give --spacing-mm or --native-px, not both")
    if args.native_px:
        return [(h / spec.height, w / spec.width) for h, w in shapes], "px"
    if args.spacing_mm:
        return [tuple(float(v) for v in args.spacing_mm.split(","))] * len(shapes), None
    stated = getattr(config, "spacing_mm", None)
    if stated is not None:
        from edge.model.preprocess import model_spacing

        print(
            f"tlf-convert: note: thickness in mm: the data set states spacing_mm {stated[0]:g},{stated[1]:g} per "
            "image pixel (--spacing-mm or --native-px instead to override)",
            file=sys.stderr,
        )
        return [model_spacing(stated, shape, spec) for shape in shapes], None
    print(
        "tlf-convert: note: thickness in model pixels: the data set states no spacing_mm (give --spacing-mm for mm)",
        file=sys.stderr,
    )
    return [None] * len(shapes), None


def calibration_images(source: str, n: int, spec) -> np.ndarray:
    """Up to `n` uint8 model images: phantom scenes, or the images of a folder (read recursively;
    of a labelled set, with images/ and masks/, its images/ only)."""
    from convert.data import IMAGE_SUFFIXES, phantom_batch
    from edge.model.preprocess import to_model_image

    if isinstance(n, bool) or int(n) < 1:
        raise ConvertError(f"the number of images to read must be at least 1, not {n}")
    if source == "phantom":
        return phantom_batch(range(CALIBRATION_SEEDS, CALIBRATION_SEEDS + n), spec)[0]
    import cv2

    folder = Path(source)
    if not folder.is_dir():
        raise ConvertError(f"calibration source {source!r} is neither 'phantom' nor a folder")
    if (folder / "images").is_dir() and (folder / "masks").is_dir():  # a labelled set: not its masks
        folder = folder / "images"
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:n]
    images = []
    for path in paths:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR if spec.channels == 3 else cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ConvertError(f"cannot read calibration image {str(path)!r}")
        images.append(to_model_image(img, spec))
    if not images:
        raise ConvertError(f"no images in calibration folder {source!r}")
    return np.stack(images)


def validation_split(images: np.ndarray, seed: int) -> np.ndarray:
    """A bool per image, True for the ~fifth kept for validation: whole look-alike groups
    (convert.folds), so that no near-copy of a training image picks the best epoch."""
    from convert.folds import look_alike_groups, split_groups, thumbnail

    if len(images) < 2:
        raise ConvertError(f"training on --data needs at least 2 images (one for validation), got {len(images)}")
    groups = look_alike_groups(np.stack([thumbnail(im) for im in images]))
    held = split_groups(groups, 0.2, seed)
    if held.all():  # one group holds every image: fall back to a random fifth
        held = np.zeros(len(images), bool)
        held[np.random.default_rng(seed).permutation(len(images))[: max(1, len(images) // 5)]] = True
    return held


def phantom_validation_set(n: int, spec):
    """Held-out phantom images: seeds no training or calibration uses, and the scanner looks of the
    named presets in turn (training draws random looks and never a preset's exact settings).

    Returns (images, labels, spacings, presets), presets naming the look of each image.
    """
    from convert.data import phantom_sample
    from edge.model.preprocess import model_spacing
    from edge.sim import phantom

    looks = [held_out_look(i) for i in range(n)]
    samples = [phantom_sample(PHANTOM_DATA_SEEDS + i, spec, phantom.PRESETS[look]) for i, look in enumerate(looks)]
    images = np.stack([s[0] for s in samples])
    labels = np.stack([s[1] for s in samples])
    spacings = [model_spacing(s[2].spacing_mm, s[2].image.shape, spec) for s in samples]
    return images, labels, spacings, looks


def phantom_set_name(n: int) -> str:
    from edge.sim import phantom

    return f"phantom seeds {PHANTOM_DATA_SEEDS}+{n}, presets {', '.join(sorted(phantom.PRESETS))} in turn"


def phantom_domain_images(n: int, spec):
    """Fresh phantom scenes of the training's random looks (a seed range no training uses), and their name."""
    from convert.data import phantom_batch

    return (
        phantom_batch(range(DOMAIN_SEEDS, DOMAIN_SEEDS + n), spec)[0],
        f"phantom seeds {DOMAIN_SEEDS}+{n}, the training's random looks",
    )
