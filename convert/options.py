"""The option sets several `tlf-convert` commands share, and what they read into: the training
recipe (TrainOptions fields), the built-in U-Net's options for --weights, the declared
preprocessing, model grids (--size) and phantom scanner presets."""

from __future__ import annotations

import json
from pathlib import Path

from convert.errors import ConvertError


def add_training_options(p) -> None:
    """The U-Net and optimiser options of `train` and `cv`, then the recipe (`add_recipe_options`)."""
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--base-filters", type=int, default=16)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--class-weights", help="comma-separated cross-entropy weight per class, e.g. 1,6,1")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument(
        "--final-learning-rate",
        type=float,
        help="decay the learning rate to this along a cosine over the epochs (default: constant)",
    )
    p.add_argument(
        "--interpolation",
        choices=["area", "linear", "cubic"],
        default="area",
        help="how images are resized to the model grid (the bundle states it; the device does the same)",
    )
    add_recipe_options(p)


def training_options(args, classes: int, has_data: bool):
    """TrainOptions from `add_training_options` flags."""
    from convert.train import TrainOptions

    weights = None
    if args.class_weights:
        try:
            weights = tuple(float(v) for v in args.class_weights.split(","))
        except ValueError:
            raise ConvertError(f"--class-weights {args.class_weights!r} is not comma-separated numbers") from None
    return TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch,
        seed=args.seed,
        base_filters=args.base_filters,
        depth=args.depth,
        patience=args.patience,
        classes=classes,
        learning_rate=args.learning_rate,
        final_learning_rate=args.final_learning_rate,
        class_weights=weights,
        **recipe_options(args, has_data),
    )


def add_recipe_options(p) -> None:
    """Loss, selection and augmentation options of `train` and `cv`."""
    from convert.augment import PARTS

    p.add_argument(
        "--loss",
        choices=("ce", "dice_ce", "focal"),
        default="ce",
        help="cross-entropy (the study's), Dice + cross-entropy, or focal loss; --class-weights weigh the "
        "cross-entropy part (focal: its alpha)",
    )
    p.add_argument("--dice-weight", type=float, default=1.0, help="dice_ce: weight of the Dice term")
    p.add_argument("--focal-gamma", type=float, default=2.0, help="focal: the focusing exponent")
    p.add_argument(
        "--select",
        choices=("band_dice", "mean_iou", "val_loss"),
        help="validation figure that picks the best epoch and stops early (default: band_dice for two "
        "classes, mean_iou otherwise)",
    )
    p.add_argument(
        "--no-augment",
        action="store_true",
        help="train on the --data images as they are (augmentation is on by default for --data)",
    )
    p.add_argument(
        "--augment-off",
        metavar="PARTS",
        default="",
        help=f"comma-separated augmentation parts to switch off: {','.join(PARTS)}",
    )


def recipe_options(args, has_data: bool) -> dict:
    """TrainOptions fields from the recipe flags (`add_recipe_options`)."""
    from convert.augment import AugmentOptions

    augment = None
    if has_data and not args.no_augment:
        augment = AugmentOptions().without(args.augment_off.split(","))
    elif args.augment_off and not has_data:
        raise ConvertError("--augment-off needs --data (the phantom stream is not augmented)")
    return {
        "loss": args.loss,
        "dice_weight": args.dice_weight,
        "focal_gamma": args.focal_gamma,
        "select": args.select,
        "augment": augment,
    }


def add_model_options(p) -> None:
    """How the float model is read: a file's safe-mode exceptions, or weights into the built-in U-Net."""
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="load Lambda layers (runs the Python code stored in the model file; only for files you trust)",
    )
    p.add_argument(
        "--custom-objects", metavar="FILE.py", help="a Python file defining the model's custom layers (it is run)"
    )
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="weights only (.weights.h5, .h5 or .keras), loaded into the built-in U-Net of the options below",
    )
    p.add_argument("--base-filters", type=int, default=16, help="--weights: filters of the first level")
    p.add_argument("--depth", type=int, default=4, help="--weights: poolings")
    p.add_argument("--classes", type=int, default=3, help="--weights: output classes")
    p.add_argument("--output", choices=("logits", "softmax"), default="logits", help="--weights: the U-Net's head")
    p.add_argument(
        "--concat-skips",
        action="store_true",
        help="--weights: skips as concatenations (the classic U-Net) instead of the builder's split form",
    )


def builder_options(args, spec=None) -> dict:
    """The built-in U-Net's options for --weights (its size and channels from `spec`, else --size and --channels)."""
    if spec:
        size = spec.height
    else:
        h, w = parse_grid(args.size) or (256, 256)
        if h != w:
            raise ConvertError(f"--size {args.size}: the built-in U-Net of --weights is square; give --size N")
        size = h
    return {
        "input_size": size,
        "channels": spec.channels if spec else args.channels,
        "classes": args.classes,
        "base_filters": args.base_filters,
        "depth": args.depth,
        "output": args.output,
        "split_skip": not args.concat_skips,
    }


def add_preprocess_options(p) -> None:
    p.add_argument(
        "--input-scale",
        help="how the model was fed: each pixel 0-255 times this (e.g. 1/255 for inputs "
        "0-1, 1 for raw pixels), before --mean/--std (default: the train.json "
        "beside the model; required without one)",
    )
    p.add_argument("--mean", help="subtracted after the scale: one value or one per channel (comma-separated)")
    p.add_argument("--std", help="divided by after the mean: one value or one per channel (comma-separated)")
    p.add_argument(
        "--channel-order",
        choices=("bgr", "rgb"),
        help="a 3-channel model's channel order in training (frames arrive as BGR; default bgr)",
    )
    p.add_argument(
        "--interpolation",
        choices=["area", "linear", "cubic"],
        help="how images are resized to the model grid (default: as in the train.json beside the model, else area)",
    )


def declared_spec(args, model_path: Path | None, height: int, width: int, channels: int):
    """The preprocessing a quantize command declares: its flags over the train.json beside the model
    (written by `tlf-convert train`); without either, --input-scale or --mean/--std is required."""
    from edge.model.preprocess import PreprocessSpec

    info = model_path.parent / "train.json" if model_path is not None else None
    trained = json.loads(info.read_text()).get("preprocess") if info is not None and info.is_file() else None
    base = PreprocessSpec.from_dict(trained).to_dict() if trained else None
    scale, mean, std = (
        _numbers(args.input_scale, "--input-scale"),
        _numbers(args.mean, "--mean"),
        _numbers(args.std, "--std"),
    )
    if isinstance(scale, tuple):
        raise ConvertError(f"--input-scale {args.input_scale!r} is one number")
    if base is None and scale is None:
        name = model_path.name if model_path is not None else "the model"
        raise ConvertError(
            f"how was {name} fed in training? declare it: --input-scale 1/255 (pixels scaled to 0-1), "
            "--input-scale 1 (raw 0-255 pixels), and --mean/--std if it was normalised after that"
        )
    d = dict(base or {}, height=height, width=width, channels=channels)
    for key, value in (
        ("scale", scale),
        ("mean", mean),
        ("std", std),
        ("channel_order", args.channel_order),
        ("interpolation", args.interpolation),
    ):
        if value is not None:
            d[key] = value
    return PreprocessSpec.from_dict(d)


def _numbers(text: str | None, what: str):
    """A number, or a tuple of them, from '0.5' or '0.485,0.456,0.406' (fractions like 1/255 allowed)."""
    if text is None:
        return None
    try:
        values = tuple(_fraction(v) for v in text.split(","))
    except (ValueError, ZeroDivisionError):
        raise ConvertError(
            f"{what} {text!r} is not a number or comma-separated numbers (e.g. 1/255, 0.5 or 0.485,0.456,0.406)"
        ) from None
    return values[0] if len(values) == 1 else values


def _fraction(text: str) -> float:
    a, slash, b = text.strip().partition("/")
    return float(a) / float(b) if slash else float(a)


def parse_grid(text: str | None) -> tuple[int, int] | None:
    """(height, width) of --size N or HxW, or None."""
    if text is None:
        return None
    return parse_pair(text if "x" in text.lower() else f"{text}x{text}", "--size", int)


def model_grid(model, size: tuple[int, int] | None, text: str | None) -> tuple[int, int]:
    """The grid a model is converted at: its own, with any side it leaves free (a fully
    convolutional model) taken from --size, as the batch is fixed to 1."""
    h, w = model.input_shape[1:3]
    if size is None:
        if h is None or w is None:
            raise ConvertError(
                f"model {model.name!r} takes images of any size ({h}x{w} px): give the grid it was trained "
                "at with --size, e.g. --size 256 (or --size HxW)"
            )
        return h, w
    if (h is not None and h != size[0]) or (w is not None and w != size[1]):
        raise ConvertError(f"--size {text}: the model takes {h}x{w} images")
    return size


def parse_pair(text: str, what: str, kind=float) -> tuple:
    try:
        a, b = (kind(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConvertError(f"{what} {text!r} is not AxB (e.g. 256x256)") from None
    if a <= 0 or b <= 0:
        raise ConvertError(f"{what} {text!r} must be positive")
    return a, b


def checked_preset(name: str):
    """The phantom scanner preset `name`, or ConvertError listing the known ones."""
    from edge.sim import phantom

    try:
        return phantom.preset(name)
    except ValueError as e:  # the simulator's own message: the name and the presets there are
        raise ConvertError(str(e)) from None
