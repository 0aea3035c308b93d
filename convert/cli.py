"""`tlf-convert`: train the U-Net, quantize it to an int8 bundle, validate, and make phantom data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from convert.errors import ConvertError, missing_extra
from convert.quiet import native_output_hidden
from edge import logs
from edge.cli_help import conventions
from edge.errors import EdgeError
from edge.sim.recipes import (
    CALIBRATION_SEEDS,
    DOMAIN_SEEDS,
    PHANTOM_DATA_SEEDS,
    STAGE4_SEED_OFFSET,
    STAGE5_SEED_OFFSET,
    held_out_look,
)

log = logs.get(__name__)

# The commands that run a Keras model or the TFLite converter; the others work without TensorFlow
# (`domain` runs the int8 model only).
NEEDS_TENSORFLOW = {"train", "cv", "quantize", "demo-bundle", "validate", "peak-model"}

DEMO_CLASS_WEIGHTS = (1.0, 6.0, 1.0)  # above, TLF, below
DATASET_CONFIG_HELP = (
    "data-set config file (dataset.json or .toml) to read --data with, instead of the one beside "
    "its images/ (for a folder you cannot write in)"
)
MAX_LEGACY_CLASSES = 8  # masks without a config holding higher values are not class indices
NATIVE_PX_HELP = (
    "thickness in each image's own pixels (its size over the model's, per axis) instead of model "
    "pixels, for data without a pixel spacing"
)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tlf-convert", description="Host-side training and int8 conversion for tlf-edge.")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's own log (native notices, converter logs, export dumps); hidden by default",
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the U-Net on a labelled folder or on phantom data")
    t.add_argument(
        "--data",
        help="folder with images/ and masks/ (read by its dataset.json/.toml, class-index "
        "masks without one); default: phantom stream",
    )
    t.add_argument("--dataset-config", help=DATASET_CONFIG_HELP)
    t.add_argument("--out", required=True, help="output folder (model.keras, history.csv)")
    t.add_argument("--steps", type=int, default=25, help="phantom batches per epoch")
    t.add_argument("--resume", action="store_true", help="continue a training in --out from its last epoch")
    add_training_options(t)

    cv = sub.add_parser(
        "cv",
        help="k-fold cross-validation of a training recipe on a labelled folder: train, "
        "quantize and validate each fold (look-alike images kept in one fold)",
    )
    cv.add_argument("--data", required=True, help="folder with images/ and masks/")
    cv.add_argument("--dataset-config", help=DATASET_CONFIG_HELP)
    cv.add_argument(
        "--out", required=True, help="output folder (a fold_K/ per fold, summary.json, summary.md); run again to resume"
    )
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument(
        "--only", help="comma-separated fold numbers to run now (default: all; the summary covers the folds done)"
    )
    cv.add_argument(
        "--similar", type=float, default=0.8, help="thumbnail correlation that makes two images one look-alike group"
    )
    cv.add_argument("--calib-n", type=int, default=200, help="calibration images per fold (from its training part)")
    cv.add_argument("--spacing-mm", help="ROW,COL mm per model-input pixel of --data (default: native pixels)")
    cv.add_argument("--model-px", action="store_true", help="thickness in model pixels (default: native pixels)")
    cv.add_argument("--max-miou-drop", type=float, default=0.01)
    cv.add_argument("--max-bias", type=float, default=0.5, help="int8 gate: |thickness bias| against float")
    cv.add_argument(
        "--revalidate",
        action="store_true",
        help="score the folds done again with their models as they are (no training)",
    )
    cv.add_argument("--docs", help="also write a Markdown page of the results here (figures beside it)")
    cv.add_argument("--title", default="Cross-validation", help="--docs: the page's title")
    cv.add_argument(
        "--targets",
        help="--docs: targets to check, e.g. band_dice>=0.8,thickness_mae<=1.5,int8_dice_drop<=0.01,fold_minutes<=20",
    )
    add_training_options(cv)

    q = sub.add_parser("quantize", help="full-integer int8 conversion into a model bundle")
    q.add_argument(
        "model", nargs="?", help="the float model: a .keras or .h5 file or a SavedModel folder (or --weights)"
    )
    q.add_argument("--calib", default="phantom", help="'phantom' or a folder of images (preprocessed like the device)")
    q.add_argument("--calib-n", type=int, default=200, help="calibration images to use")
    q.add_argument("--out", required=True, help="bundle folder to write")
    q.add_argument(
        "--size",
        default=None,
        help="input grid, N or HxW pixels: a model of any size (keras.Input((None, "
        "None, C))) is converted at it (default: the model's; --weights: 256)",
    )
    q.add_argument("--channels", type=int, choices=(1, 3), default=1, help="--weights: the U-Net's input channels")
    add_model_options(q)
    add_preprocess_options(q)
    q.add_argument(
        "--class-names",
        help="comma-separated class names in output order (default: the --data or "
        "--dataset-config classes, else above,tlf,below for 3 and background,tlf for 2)",
    )
    q.add_argument(
        "--allow-one-class",
        action="store_true",
        help="convert even when the float model gives one class to almost every calibration pixel",
    )
    q.add_argument(
        "--trust-preprocessing",
        action="store_true",
        help="convert as declared even when the float model's labels do not follow its input's level "
        "while they do under another common --input-scale",
    )
    q.add_argument(
        "--allow-partitions",
        action="store_true",
        help="convert even when XNNPACK cannot take the graph whole (the cost is printed)",
    )
    q.add_argument(
        "--data",
        help="labelled folder (images/, masks/): the calibration set must resemble it, "
        "and the float-versus-int8 gate runs on it",
    )
    q.add_argument("--dataset-config", help=DATASET_CONFIG_HELP + "; its class names go into the bundle")
    q.add_argument("--spacing-mm", help="ROW,COL mm per model-input pixel of --data (default: pixels)")
    q.add_argument("--native-px", action="store_true", help=NATIVE_PX_HELP)
    q.add_argument("--max-miou-drop", type=float, default=0.01)
    q.add_argument("--max-bias", type=float, default=0.05)
    q.add_argument("--layer-report", help="also write a per-layer int8 error report (SNR, levels used) to this CSV")

    d = sub.add_parser("demo-bundle", help="train, quantize and validate the bundled demo model on phantom data")
    d.add_argument("--out", default="edge/models/demo")
    d.add_argument("--work", default="build/demo", help="folder for the float model and training history")
    d.add_argument("--epochs", type=int, default=14, help="stage 1 epochs (class-weighted cross-entropy)")
    d.add_argument(
        "--finetune-epochs",
        type=int,
        default=8,
        help="stage 2 epochs (label smoothing 0.1, learning rate 3e-4 decaying to 3e-5)",
    )
    d.add_argument(
        "--polish-epochs", type=int, default=10, help="stage 3 epochs (as stage 2, learning rate 1e-4 decaying to 1e-5)"
    )
    d.add_argument(
        "--cubic-epochs",
        type=int,
        default=20,
        help="stage 4 epochs (as stage 3, on scenes no earlier stage saw, the images reduced to the "
        "model grid with the cubic kernel the device then uses)",
    )
    d.add_argument(
        "--more-epochs",
        type=int,
        default=12,
        help="stage 5 epochs (as stage 4, from its last weights, on scenes of a seed range of its own)",
    )
    d.add_argument("--steps", type=int, default=25)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--validate-n", type=int, default=220, help="held-out phantom images (presets in turn)")
    d.add_argument("--model", help="reuse a trained model (.keras, with its train.json) instead of training")
    d.add_argument(
        "--response-n",
        type=int,
        default=1000,
        help="phantom scanner screens the bundle's thickness response is fitted on (see thickness-response)",
    )

    r = sub.add_parser(
        "thickness-response",
        help="fit a phantom-trained bundle's thickness response on phantom images of known thickness "
        "into its manifest (the device then inverts it)",
    )
    r.add_argument("bundle")
    r.add_argument("--n", type=int, default=1000, help="phantom images to fit on")
    r.add_argument(
        "--images",
        choices=["screens", "scans"],
        default="screens",
        help="screens: the phantom scanner's, cropped to the B-mode region as a cart sees them (the "
        "response for that scanner); scans: the training's random looks (convert.response)",
    )
    r.add_argument(
        "--no-layering",
        action="store_true",
        help="fit without the term for the band's layering contrast (an older bundle's form)",
    )

    v = sub.add_parser("validate", help="compare float and int8 on a labelled set; non-zero exit when the gate fails")
    v.add_argument("bundle")
    v.add_argument(
        "--float",
        dest="float_model",
        help="the float model the bundle came from (.keras, .h5 or a SavedModel folder; or --weights)",
    )
    add_model_options(v)
    v.add_argument("--data", default="phantom", help="'phantom' or a folder with images/ and masks/")
    v.add_argument("--n", type=int, default=220, help="phantom images to validate on (presets in turn)")
    v.add_argument("--dataset-config", help=DATASET_CONFIG_HELP)
    v.add_argument("--spacing-mm", help="ROW,COL mm per model-input pixel of the data folder (default: pixels)")
    v.add_argument("--native-px", action="store_true", help=NATIVE_PX_HELP)
    v.add_argument("--out", help="report folder (default: BUNDLE/validation)")
    v.add_argument("--max-miou-drop", type=float, default=0.01)
    v.add_argument("--max-bias", type=float, default=0.05)
    v.add_argument(
        "--other-model",
        action="store_true",
        help="validate against a float model other than the one the bundle records it was made from "
        "(the validation record names it)",
    )

    dm = sub.add_parser(
        "domain",
        help="record in a bundle what its training images looked like (image statistics) "
        "and how sure its model is of held-out images, for the device's "
        "out-of-domain guard (edge.measure.domain)",
    )
    dm.add_argument("bundle")
    dm.add_argument(
        "--train",
        required=True,
        help="'phantom' (fresh scenes of the training's random looks) or a folder of training images",
    )
    dm.add_argument(
        "--heldout",
        required=True,
        help="'phantom' (the held-out validation scenes, presets in turn) or a folder of images the "
        "model was not trained on",
    )
    dm.add_argument("--n", type=int, default=600, help="phantom training images, or the most images read per folder")
    dm.add_argument("--heldout-n", type=int, default=220, help="phantom held-out images")

    ph = sub.add_parser("phantom", help="write a labelled phantom data set (images/, masks/ and dataset.json)")
    ph.add_argument("--out", required=True)
    ph.add_argument("--n", type=int, default=100)
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument(
        "--mask",
        choices=("index", "palette", "binary"),
        default="index",
        help="class-index masks, colour (palette PNG) masks, or 0/255 masks of the TLF alone",
    )
    ph.add_argument("--base", type=int, choices=(0, 1), default=0, help="index masks: value of the first class")
    ph.add_argument("--image-format", choices=("png", "tif", "jpg"), default="png")
    ph.add_argument("--preset", help="scanner preset for every image (default: a random look per image)")
    ph.add_argument("--size", default="256x256", help="HxW pixels")
    ph.add_argument("--field-mm", default="40x40", help="DEPTHxWIDTH of the imaged region in mm")
    ph.add_argument("--wide", action="store_true", help="draw scenes (and looks) from the wider ranges")
    ph.add_argument("--artefacts", type=float, default=0.0, help="probability of each artefact kind per image")

    cs = sub.add_parser("contact-sheet", help="a PNG of phantom samples beside their masks and one scanner screen")
    cs.add_argument("--out", required=True, help="PNG file to write")
    cs.add_argument("--seed", type=int, default=0)
    cs.add_argument(
        "--presets",
        default="default,l15_fine,l6_deep,rf_10mhz,low_gain,washed_out",
        help="comma-separated scanner presets, one row each",
    )
    cs.add_argument("--per-row", type=int, default=2, help="image/mask pairs per row")
    cs.add_argument("--tile", type=int, default=140, help="tile size in pixels")
    cs.add_argument("--wide", action="store_true", help="scenes from the wider ranges")
    cs.add_argument("--artefacts", type=float, default=0.0, help="probability of each artefact kind per image")

    pk = sub.add_parser(
        "peak-model",
        help="write the int8 convolution tlf-edge bench measures the machine's int8 peak with "
        "(shipped as edge/models/peak/int8_conv.tflite)",
    )
    pk.add_argument("--out", default="edge/models/peak/int8_conv.tflite", help=".tflite file to write")
    pk.add_argument("--seed", type=int, default=0, help="seed of the weights and the representative set")

    ag = sub.add_parser(
        "augment-sheet",
        help="a PNG of labelled images beside augmented copies as training draws them, with their label outlines",
    )
    ag.add_argument("--data", required=True, help="folder with images/ and masks/")
    ag.add_argument("--dataset-config", help=DATASET_CONFIG_HELP)
    ag.add_argument("--out", required=True, help="PNG file to write")
    ag.add_argument("--images", type=int, default=4, help="images, one row each (the first by name)")
    ag.add_argument("--per-image", type=int, default=5, help="augmented copies per image")
    ag.add_argument("--size", type=int, default=256, help="the model grid the images are augmented on")
    ag.add_argument("--tile", type=int, default=160, help="tile size in pixels")
    ag.add_argument("--seed", type=int, default=0)
    ag.add_argument(
        "--augment-off",
        metavar="PARTS",
        default="",
        help="comma-separated augmentation parts to switch off (as for train)",
    )

    conventions(p, sub, codes=(0, 1, 2, 3, 130))
    args = p.parse_args(argv)
    logs.one_line("tlf-convert")  # every warning of the product: one line on stderr
    args.argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "train": cmd_train,
        "cv": cmd_cv,
        "quantize": cmd_quantize,
        "demo-bundle": cmd_demo_bundle,
        "thickness-response": cmd_thickness_response,
        "domain": cmd_domain,
        "augment-sheet": cmd_augment_sheet,
        "validate": cmd_validate,
        "phantom": cmd_phantom,
        "contact-sheet": cmd_contact_sheet,
        "peak-model": cmd_peak_model,
    }
    try:
        with native_output_hidden(args.verbose):  # native libraries' notices (TensorFlow, LiteRT, OpenCV)
            if args.command in NEEDS_TENSORFLOW:
                require_tensorflow(args.command)
            return commands[args.command](args)
    except ImportError as e:
        extra = missing_extra(e, f"'tlf-convert {args.command}'")
        if extra is None:
            raise
        print(f"tlf-convert: error: {extra}", file=sys.stderr)
        return 2
    except (ConvertError, EdgeError, OSError) as e:  # bad input; any other exception is a defect: a traceback
        print(f"tlf-convert: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def require_tensorflow(command: str) -> None:
    """TensorFlow and Keras imported (quietly, once), or MissingExtra naming the extra."""
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError as e:
        extra = missing_extra(e, f"'tlf-convert {command}'")
        if extra is None:
            raise
        raise extra from e


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


def builder_options(args, spec=None) -> dict:
    """The built-in U-Net's options for --weights (its size and channels from `spec`, else --size and --channels)."""
    if spec:
        size = spec.height
    else:
        h, w = _grid(args.size) or (256, 256)
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


def float_identity(args, spec=None) -> dict:
    """The float model's identity (convert.load.model_identity) as the command names it."""
    from convert.load import model_identity

    if args.weights:
        return model_identity(args.weights, builder=builder_options(args, spec))
    path = _float_path(args)
    assert path is not None  # without --weights, _float_path returns the model's path or raises
    return model_identity(path)


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


def cmd_train(args) -> int:
    from convert.train import train
    from edge.model.preprocess import PreprocessSpec

    spec = PreprocessSpec(height=args.size, width=args.size, interpolation=args.interpolation)
    train_data = val_data = None
    classes = 3
    if args.data:
        x, y, config, _, _ = labelled_set(args.data, spec, args.dataset_config)
        classes = model_classes(config, y)
        val = validation_split(x, args.seed)
        val_data = (x[val], y[val])
        train_data = (x[~val], y[~val])
    elif args.dataset_config:
        raise ConvertError("--dataset-config needs --data")
    opts = training_options(args, classes, bool(args.data))
    best = train(
        Path(args.out),
        spec,
        opts,
        train_data,
        val_data,
        phantom_steps=args.steps,
        resume=args.resume,
        verbose=1 if sys.stdout.isatty() else 2,
    )  # progress bars only on a terminal, else a line per epoch
    print(f"trained model: {best}")
    return 0


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


def cmd_cv(args) -> int:
    from convert.cv import command_line, cross_validate, docs_page, parse_targets
    from convert.data import load_dataset_config, read_dataset_config
    from convert.validate import GateLimits
    from edge.model.preprocess import PreprocessSpec

    if args.folds < 2:
        raise ConvertError(f"--folds must be at least 2, not {args.folds}")
    targets = parse_targets(args.targets)
    if args.spacing_mm and args.model_px:
        raise ConvertError("give --spacing-mm or --model-px, not both")
    spacing = "model" if args.model_px else "native"
    if args.spacing_mm:
        spacing = tuple(float(v) for v in args.spacing_mm.split(","))
    only = None
    if args.only:
        try:
            only = [int(v) for v in args.only.split(",")]
        except ValueError:
            raise ConvertError(f"--only {args.only!r} is not comma-separated fold numbers") from None
    config = (
        read_dataset_config(Path(args.dataset_config)) if args.dataset_config else load_dataset_config(Path(args.data))
    )
    if config.legacy:
        raise ConvertError(
            f"{args.data!r} has no dataset.json/.toml: give one (or --dataset-config) naming the classes"
        )
    spec = PreprocessSpec(height=args.size, width=args.size, interpolation=args.interpolation)
    opts = training_options(args, len(config.classes), True)
    summary = cross_validate(
        args.data,
        args.out,
        spec,
        opts,
        folds=args.folds,
        seed=args.seed,
        similar=args.similar,
        dataset_config=args.dataset_config,
        spacing=spacing,
        limits=GateLimits(max_miou_drop=args.max_miou_drop, max_thickness_bias=args.max_bias),
        only=only,
        calib_n=args.calib_n,
        verbose=1 if sys.stdout.isatty() else 2,
        revalidate=args.revalidate,
    )
    print((Path(args.out) / "summary.md").read_text())
    if args.docs:
        page = docs_page(summary, Path(args.out), Path(args.docs), args.title, command_line(args.argv), targets)
        print(f"docs page written: {page}")
    return 0


def labelled_set(folder, spec, config_path=None):
    """A labelled folder on the model grid: (images NxHxWxC, labels NxHxW, its DatasetConfig,
    native (height, width) of each image, the native label maps). config_path: a config file
    used instead of the one beside images/."""
    from convert.data import iter_dataset, load_dataset_config, read_dataset_config
    from edge.model.preprocess import resize_labels, to_model_image

    config = read_dataset_config(Path(config_path)) if config_path else load_dataset_config(Path(folder))
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
    from convert.data import IMAGE_SUFFIXES, phantom_batch
    from edge.model.preprocess import to_model_image

    if source == "phantom":
        return phantom_batch(range(CALIBRATION_SEEDS, CALIBRATION_SEEDS + n), spec)[0]
    import cv2

    folder = Path(source)
    if not folder.is_dir():
        raise ConvertError(f"calibration source {source!r} is neither 'phantom' nor a folder")
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


def _grid(text: str | None) -> tuple[int, int] | None:
    """(height, width) of --size N or HxW, or None."""
    if text is None:
        return None
    return _pair(text if "x" in text.lower() else f"{text}x{text}", "--size", int)


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


def cmd_quantize(args) -> int:
    from convert.data import read_dataset_config
    from convert.domain import record_domain
    from convert.quantize import quantize_to_bundle
    from convert.validate import GateLimits

    size = _grid(args.size)
    model = read_float_model(args)
    _, h, w, c = model.input_shape
    if not args.weights:
        h, w = model_grid(model, size, args.size)
    spec = declared_spec(args, Path(args.model or args.weights), h, w, c)
    calib = calibration_images(args.calib, args.calib_n, spec)
    data = labelled_set(args.data, spec, args.dataset_config) if args.data else None
    config = data[2] if data else read_dataset_config(Path(args.dataset_config)) if args.dataset_config else None
    classes = list(config.classes) if config is not None and not config.legacy else None
    if args.class_names:
        classes = [n.strip() for n in args.class_names.split(",")]
    identity = float_identity(args)
    bundle = quantize_to_bundle(
        model,
        calib,
        spec,
        args.out,
        classes=classes,
        reference=data[0] if data else None,
        progress=sys.stdout.isatty(),
        check_prediction=not args.allow_one_class,
        allow_partitions=args.allow_partitions,
        check_preprocessing=not args.trust_preprocessing,
        extra={"float_model": identity},
    )
    bundle = record_domain(
        bundle,
        calib,
        data[0] if data else calib,
        f"calibration images ({args.calib})",
        f"{args.data} (the gate's labelled set)"
        if data
        else f"calibration images ({args.calib}; no held-out set given)",
    )
    if args.layer_report:
        write_layer_report(model, calib, spec, Path(args.layer_report))
    print(
        f"bundle written: {bundle.path} (sha256 {bundle.sha256[:12]}, {bundle.model_path.stat().st_size} bytes; "
        f"{bundle.output_kind} head, {len(bundle.classes)} classes {bundle.classes}; input {spec.describe()})"
    )
    if data is None:
        return 0
    spacings, unit = data_spacings(args, data[3], spec, data[2])
    limits = GateLimits(max_miou_drop=args.max_miou_drop, max_thickness_bias=args.max_bias)
    passed = validate_and_record(
        bundle,
        model,
        data[0],
        data[1],
        spacings,
        bundle.path / "validation",
        str(args.data),
        limits,
        unit=unit,
        native_labels=data[4],
        float_model={**identity, "made_from": True},
    )
    return 0 if passed else 3


def write_layer_report(model, calib, spec, path: Path) -> None:
    import csv

    from convert.quantize import layer_report
    from convert.unet import split_skip_connections

    rows = layer_report(split_skip_connections(model), calib, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["tensor", "snr_db", "levels_used"])
        writer.writeheader()
        writer.writerows(rows)
    print("worst int8 layers (SNR dB, levels used):")
    for r in rows[:5]:
        print(f"  {r['snr_db']:7.2f}  {r['levels_used']:4d}  {r['tensor']}")


def cmd_demo_bundle(args) -> int:
    """Five training stages, then int8 conversion and the validation gate.

    Stage 1 learns the task with a class-weighted cross-entropy at a constant rate. Stage 2
    fine-tunes with a rate decaying from 3e-4 to 3e-5 (the band edges settle) and label
    smoothing, which bounds the logits: without it the last layer's outputs span about +-250 and
    int8 steps of 2 lose the thin TLF (measured: int8 mean IoU 0.09 below float). Stage 3 goes on
    from stage 2's last weights at 1e-4 to 1e-5 (it was added when label maps began to be resized
    at pixel centres: it moved the band edges the half pixel the old resize had taught). The class
    weights' shift of the boundaries is removed from the final bias after the last stage. Stage 4
    goes on from stage 3's last weights as stage 3 did, for longer, on scenes from a seed range of
    its own, with images reduced to the model grid by a cubic kernel: the bundle states that
    reduction, because a scanner's screen shows the B-mode enlarged, and an area average of an
    enlargement blurs the band's edges (README, "The demo model"). Stage 5 is stage 4 again from
    its last weights for 12 more epochs, on scenes from the next seed range. After conversion the int8
    model's thickness response is fitted on the phantom scanner's screens (known thickness) and recorded in the
    manifest (convert.response); the validation then measures as the device does, with it.
    """
    import shutil

    from convert.quantize import load_keras_model, quantize_to_bundle
    from convert.response import write_phantom_response
    from convert.train import TrainOptions, read_history, train
    from convert.validate import GateLimits
    from edge.model.preprocess import PreprocessSpec

    spec_early, spec = PreprocessSpec(), PreprocessSpec(interpolation="cubic")
    stage1 = TrainOptions(
        epochs=args.epochs, seed=args.seed, patience=args.epochs, class_weights=DEMO_CLASS_WEIGHTS, select="val_loss"
    )
    stage2 = TrainOptions(
        epochs=args.finetune_epochs,
        seed=args.seed + 1,
        patience=args.finetune_epochs,
        class_weights=DEMO_CLASS_WEIGHTS,
        label_smoothing=0.1,
        learning_rate=3e-4,
        final_learning_rate=3e-5,
        select="val_loss",
    )
    stage3 = TrainOptions(
        epochs=args.polish_epochs,
        seed=args.seed + 2,
        patience=args.polish_epochs,
        class_weights=DEMO_CLASS_WEIGHTS,
        label_smoothing=0.1,
        learning_rate=1e-4,
        final_learning_rate=1e-5,
        select="val_loss",
    )
    stage4 = TrainOptions(
        epochs=args.cubic_epochs,
        seed=args.seed + STAGE4_SEED_OFFSET,
        patience=args.cubic_epochs,
        class_weights=DEMO_CLASS_WEIGHTS,
        label_smoothing=0.1,
        learning_rate=1e-4,
        final_learning_rate=1e-5,
        select="val_loss",
    )
    stage5 = TrainOptions(
        epochs=args.more_epochs,
        seed=args.seed + STAGE5_SEED_OFFSET,
        patience=args.more_epochs,
        class_weights=DEMO_CLASS_WEIGHTS,
        label_smoothing=0.1,
        learning_rate=1e-4,
        final_learning_rate=1e-5,
        select="val_loss",
    )
    stages = {"stage1": stage1, "stage2": stage2, "stage3": stage3, "stage4": stage4, "stage5": stage5}
    if args.model:
        best, work = Path(args.model), Path(args.model).parent
    else:
        work = Path(args.work)
        train(work / "stage1", spec_early, stage1, phantom_steps=args.steps, verbose=2)
        train(
            work / "stage2",
            spec_early,
            stage2,
            phantom_steps=args.steps,
            verbose=2,
            init_weights=work / "stage1" / "last.keras",
        )
        train(
            work / "stage3",
            spec_early,
            stage3,
            phantom_steps=args.steps,
            verbose=2,
            init_weights=work / "stage2" / "last.keras",
        )
        train(
            work / "stage4",
            spec,
            stage4,
            phantom_steps=args.steps,
            verbose=2,
            init_weights=work / "stage3" / "last.keras",
        )
        best = train(
            work / "stage5",
            spec,
            stage5,
            phantom_steps=args.steps,
            verbose=2,
            init_weights=work / "stage4" / "last.keras",
        )
        work = work / "stage5"
    info = json.loads((work / "train.json").read_text()) if (work / "train.json").is_file() else {}
    if not info.get("prior_corrected"):
        raise ConvertError(f"{str(best)!r} was not saved by a weighted training (no prior correction recorded)")
    if "preprocess" in info:
        spec = PreprocessSpec.from_dict(info["preprocess"])  # a reused model keeps what it was trained with
    model = load_keras_model(best)
    calib = calibration_images("phantom", 200, spec)
    history = read_history(work / "history.csv") if (work / "history.csv").is_file() else []
    training = {
        "phantom_images": sum(o.epochs for o in stages.values()) * args.steps * stage1.batch_size,
        **{name: vars(o) for name, o in stages.items()},
        "final": history[-1] if history else {},
    }
    from convert.load import model_identity

    identity = model_identity(best)
    bundle = quantize_to_bundle(
        model,
        calib,
        spec,
        args.out,
        progress=True,
        extra={"training": training, "name": "tlf-demo-phantom", "float_model": identity},
    )
    bundle, figures = write_phantom_response(bundle, args.response_n)
    print_response(bundle, figures)
    bundle = record_phantom_domain(bundle, 600, 220)
    print_domain(bundle)
    (bundle.path / "training").mkdir(exist_ok=True)
    for stage in stages:
        for name in ("history.csv", "history.png"):
            src = work.parent / stage / name
            if src.is_file():
                shutil.copy(src, bundle.path / "training" / f"{stage}_{name}")
    images, labels, spacings, looks = phantom_validation_set(args.validate_n, spec)
    passed = validate_and_record(
        bundle,
        model,
        images,
        labels,
        spacings,
        bundle.path / "validation",
        phantom_set_name(args.validate_n),
        GateLimits(),
        groups=looks,
        float_model={**identity, "made_from": True},
    )
    print(f"demo bundle written: {bundle.path}")
    return 0 if passed else 3


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


def validate_and_record(
    bundle,
    model,
    images,
    labels,
    spacings,
    out_dir,
    set_name,
    limits,
    groups=None,
    unit=None,
    native_labels=None,
    float_model: dict | None = None,
) -> bool:
    """Run the float-versus-int8 gate, write its reports and record the result in the manifest
    (with the float model's identity, `float_model`, when given)."""
    from convert.report import write_report
    from convert.validate import compare, gate
    from edge.model.bundle import update_manifest

    report = compare(bundle, model, images, labels, spacings, groups=groups, unit=unit, native_labels=native_labels)
    failures = gate(report, limits)
    summary = write_report(report, images, labels, Path(out_dir), failures)
    against = {"float_model": float_model} if float_model is not None else {}
    update_manifest(bundle, validation={"set": set_name, "limits": vars(limits), **against, **summary})
    f, q = summary["float"], summary["int8"]
    th = summary["thickness"]
    print(
        f"float mean IoU {f['mean_iou']:.4f}, int8 {q['mean_iou']:.4f}; TLF Dice int8 {q['dice'][bundle.tlf_class]:.4f}; "
        f"int8-float thickness bias {th['int8_vs_float'].get('bias')} {summary['unit']}, "
        f"int8-truth MAE {th['int8_vs_truth'].get('mae')} {summary['unit']}"
    )
    print(
        ("gate PASSED" if not failures else "gate FAILED: " + "; ".join(failures))
        + f" (report: {out_dir}/validation.md)"
    )
    return not failures


def read_bundle(path):
    """A verified bundle, or ConvertError with the loader's one line."""
    from edge.errors import BundleError
    from edge.model.bundle import load_bundle

    try:
        return load_bundle(path)
    except BundleError as e:
        raise ConvertError(str(e)) from e


def cmd_domain(args) -> int:
    from convert.domain import record_domain

    bundle = read_bundle(args.bundle)
    spec = bundle.spec
    if args.n < 4 or args.heldout_n < 2:
        raise ConvertError("--n must be at least 4 and --heldout-n at least 2")
    if args.train == "phantom":
        train, train_name = phantom_domain_images(args.n, spec)
    else:
        train, train_name = calibration_images(args.train, args.n, spec), str(args.train)
    if args.heldout == "phantom":
        heldout = phantom_validation_set(args.heldout_n, spec)[0]
        heldout_name = phantom_set_name(args.heldout_n)
    else:
        heldout, heldout_name = calibration_images(args.heldout, args.n, spec), str(args.heldout)
    bundle = record_domain(bundle, train, heldout, train_name, heldout_name)
    print_domain(bundle)
    return 0


def phantom_domain_images(n: int, spec):
    """Fresh phantom scenes of the training's random looks (a seed range no training uses), and their name."""
    from convert.data import phantom_batch

    return (
        phantom_batch(range(DOMAIN_SEEDS, DOMAIN_SEEDS + n), spec)[0],
        f"phantom seeds {DOMAIN_SEEDS}+{n}, the training's random looks",
    )


def record_phantom_domain(bundle, n: int, heldout_n: int):
    """A phantom-trained bundle's domain statistics: `n` fresh training-like scenes, margins on
    the held-out validation scenes (as `tlf-convert domain BUNDLE --train phantom --heldout phantom`)."""
    from convert.domain import record_domain

    train, name = phantom_domain_images(n, bundle.spec)
    return record_domain(
        bundle, train, phantom_validation_set(heldout_n, bundle.spec)[0], name, phantom_set_name(heldout_n)
    )


def print_domain(bundle) -> None:
    d = bundle.domain
    limits = "none" if d.margin_limits is None else ", ".join(f"{v:.4g}" for v in d.margin_limits)
    print(
        f"domain statistics of {len(d.reference)} training images ({d.fitted_on}) recorded in {bundle.path}: "
        f"limits {d.distance_limit:.2f} from the nearest, {d.spread_limit:.2f} from them as a whole; margin limits "
        f"(mean, 10th percentile, uncertain share) {limits} ({d.margins_on or 'no held-out images'})"
    )


def cmd_thickness_response(args) -> int:
    from convert.response import write_phantom_response
    from edge.model.bundle import load_bundle

    bundle, figures = write_phantom_response(
        load_bundle(args.bundle), args.n, images=args.images, layering=not args.no_layering
    )
    print_response(bundle, figures)
    print("validate the bundle again (tlf-convert validate) for figures measured with it")
    return 0


def print_response(bundle, figures: dict) -> None:
    cal = bundle.thickness_response
    print(
        f"thickness response: measured rows = {cal.a:+.3f} {cal.b:+.4f}*true {cal.c:+.3f}*s {cal.d:+.4f}*true*s "
        f"{cal.e:+.3f}*L (s {cal.s_range[0]:.4f}-{cal.s_range[1]:.4f} mm per row, L the band's layering contrast; "
        f"{cal.fitted_on})"
    )
    print(
        f"on those images: bias {figures['bias_mm_before']:+.4f} -> {figures['bias_mm_after']:+.4f} mm, "
        f"MAE {figures['mae_mm_before']:.4f} -> {figures['mae_mm_after']:.4f} mm"
    )


def cmd_validate(args) -> int:
    from convert.validate import GateLimits

    bundle = read_bundle(args.bundle)
    spec = bundle.spec
    identity = checked_float_model(args, bundle)
    model = read_float_model(args, spec)
    unit = None
    if args.data == "phantom":
        if args.dataset_config or args.native_px:
            raise ConvertError("--dataset-config and --native-px need a --data folder")
        images, labels, spacings, groups = phantom_validation_set(args.n, spec)
        native = None
        set_name = phantom_set_name(args.n)
    else:
        images, labels, config, shapes, native = labelled_set(args.data, spec, args.dataset_config)
        if not config.legacy and len(config.classes) != len(bundle.manifest["classes"]):
            raise ConvertError(
                f"the data set has {len(config.classes)} classes {list(config.classes)} but the bundle "
                f"has {len(bundle.manifest['classes'])} {bundle.manifest['classes']}"
            )
        spacings, unit = data_spacings(args, shapes, spec, config)
        set_name = str(args.data)
        groups = None
        native = native if len(bundle.manifest["classes"]) == 2 else None
    limits = GateLimits(max_miou_drop=args.max_miou_drop, max_thickness_bias=args.max_bias)
    out = Path(args.out) if args.out else bundle.path / "validation"
    return (
        0
        if validate_and_record(
            bundle,
            model,
            images,
            labels,
            spacings,
            out,
            set_name,
            limits,
            groups,
            unit=unit,
            native_labels=native,
            float_model=identity,
        )
        else 3
    )


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


def checked_preset(name: str):
    """The phantom scanner preset `name`, or ConvertError listing the known ones."""
    from edge.sim import phantom

    try:
        return phantom.preset(name)
    except ValueError as e:  # the simulator's own message: the name and the presets there are
        raise ConvertError(str(e)) from None


def _pair(text: str, what: str, kind=float) -> tuple:
    try:
        a, b = (kind(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConvertError(f"{what} {text!r} is not AxB (e.g. 256x256)") from None
    if a <= 0 or b <= 0:
        raise ConvertError(f"{what} {text!r} must be positive")
    return a, b


def cmd_phantom(args) -> int:
    import itertools

    from convert.data import phantom_dataset_config, write_dataset
    from edge.sim import phantom

    shape = _pair(args.size, "--size", int)
    field = _pair(args.field_mm, "--field-mm", float)
    machine = checked_preset(args.preset) if args.preset else None
    if args.n < 1:
        raise ConvertError(f"--n must be at least 1, not {args.n}")
    config = phantom_dataset_config(args.mask, args.base, spacing_mm=(field[0] / shape[0], field[1] / shape[1]))
    scans = (
        phantom.scan(args.seed + i, shape, machine, field, wide=args.wide, artefacts=args.artefacts)
        for i in range(args.n)
    )
    a, b = itertools.tee(scans)  # consumed in lockstep: one scan in memory at a time
    images = (s.image for s in a)
    labels = ((s.labels == phantom.TLF).astype(np.uint8) if args.mask == "binary" else s.labels for s in b)
    path = write_dataset(
        Path(args.out),
        images,
        labels,
        config,
        stems=[f"{args.seed + i:06d}" for i in range(args.n)],
        image_format=args.image_format,
    )
    print(f"{args.n} phantom images with {args.mask} masks written to {args.out} (config {path.name})")
    return 0


MASK_COLOURS_BGR = np.array([(70, 40, 20), (40, 200, 255), (60, 120, 40)], np.uint8)  # above, TLF, below


def contact_sheet(
    seed: int = 0,
    presets=("default", "l15_fine", "l6_deep", "rf_10mhz", "low_gain", "washed_out"),
    per_row: int = 2,
    tile: int = 140,
    wide: bool = False,
    artefacts: float = 0.0,
) -> np.ndarray:
    """A BGR picture: per preset a row of phantom B-modes beside their label maps, a strip of an
    extension clip (with a freeze) and one whole scanner screen. For looking, not for measuring."""
    import cv2

    from edge.sim import phantom, phantom_screen

    font, label_w = cv2.FONT_HERSHEY_SIMPLEX, 112

    def text(img, s, org, scale=0.42, colour=(235, 235, 235)):
        cv2.putText(img, s, org, font, scale, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(img, s, org, font, scale, colour, 1, cv2.LINE_AA)

    def as_tile(scan_):
        img = cv2.resize(scan_.image, (tile, tile), interpolation=cv2.INTER_AREA)
        lab = cv2.resize(scan_.labels, (tile, tile), interpolation=cv2.INTER_NEAREST_EXACT)
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), MASK_COLOURS_BGR[lab]

    width = label_w + per_row * 2 * tile
    rows: list[np.ndarray] = []
    for r, name in enumerate(presets):
        m = checked_preset(name)
        row = np.full((tile, width, 3), 24, np.uint8)
        text(row, name, (6, 20), 0.5)
        desc = [f"{m.dynamic_range_db:.0f} dB DR", f"gain {m.gain_db:+.0f}"]
        desc.append(f"focus {m.focus_mm:.0f} mm" if m.focus_mm else "no focus")
        desc.append(f"RF {m.rf_mhz:.0f} MHz" if m.rf_mhz else f"PSF {m.axial_psf_mm:.2f} mm")
        for j, d in enumerate(desc):
            text(row, d, (6, 44 + 18 * j), 0.36, (190, 190, 190))
        for k in range(per_row):
            sc = phantom.scan(seed + 100 * r + k, machine=m, wide=wide, artefacts=artefacts)
            img, mask = as_tile(sc)
            x0 = label_w + 2 * k * tile
            row[:, x0 : x0 + tile], row[:, x0 + tile : x0 + 2 * tile] = img, mask
            text(row, f"TLF {np.median(sc.thickness_mm):.2f} mm", (x0 + tile + 4, tile - 8), 0.38)
            if sc.artefacts is not None:
                kinds = [
                    n
                    for n, on in (
                        ("shadow", sc.artefacts.shadow_x_mm is not None),
                        ("reverb", sc.artefacts.reverb_mm is not None),
                        ("washed", sc.artefacts.low_contrast < 1.0),
                    )
                    if on
                ]
                text(row, "+".join(kinds), (x0 + 4, tile - 8), 0.36, (120, 220, 255))
        rows.append(row)

    # A trunk-extension clip: a few frames (every 20th), one inside a freeze.
    frames = list(phantom.extension_clip(seed, frames=100, shape=(256, 256), freeze=[(61, 20)], wide=wide))
    row = np.full((tile, width, 3), 24, np.uint8)
    text(row, "extension", (6, 20), 0.5)
    text(row, "clip, 30 fps", (6, 44), 0.36, (190, 190, 190))
    n_show = 2 * per_row
    for k, i in enumerate(np.linspace(0, 80, n_show).round().astype(int)):
        f = frames[i]
        img, _ = as_tile(f)
        x0 = label_w + k * tile
        row[:, x0 : x0 + tile] = img
        text(row, f"#{i} E {f.extension:.2f}", (x0 + 4, 16), 0.36)
        text(row, f"TLF {np.median(f.thickness_mm):.2f} mm", (x0 + 4, tile - 8), 0.36)
        if f.frozen:
            text(row, "FROZEN", (x0 + tile - 62, 16), 0.38, (80, 80, 255))
    rows.append(row)

    scr = phantom_screen.screen(seed, (1280, 720), machine=presets[0] if presets else None)
    h = round(720 * width / 1280)
    rows.append(cv2.resize(scr.image, (width, h), interpolation=cv2.INTER_AREA))
    sep = np.full((4, width, 3), 60, np.uint8)
    out = [rows[0]]
    for r in rows[1:]:
        out += [sep, r]
    return np.vstack(out)


def cmd_augment_sheet(args) -> int:
    import cv2

    from convert.augment import AugmentOptions, augment_sheet
    from convert.data import iter_dataset, load_dataset_config, read_dataset_config
    from edge.model.preprocess import PreprocessSpec, resize_labels, to_model_image

    if args.images < 1 or args.per_image < 1 or not 64 <= args.tile <= 512:
        raise ConvertError("need --images >= 1, --per-image >= 1 and --tile in 64-512")
    options = AugmentOptions().without(args.augment_off.split(","))
    spec = PreprocessSpec(height=args.size, width=args.size)
    config = (
        read_dataset_config(Path(args.dataset_config)) if args.dataset_config else load_dataset_config(Path(args.data))
    )
    names: list[str]
    names, images, labels = [], [], []
    for stem, img, lab in iter_dataset(Path(args.data), config):
        if len(names) >= args.images:
            break
        names.append(stem)
        images.append(to_model_image(img, spec))
        labels.append(resize_labels(lab, spec))
    sheet = augment_sheet(np.stack(images), np.stack(labels), names, options, args.seed, args.per_image, args.tile)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"cannot write {str(out)!r}")
    print(
        f"augment sheet {sheet.shape[1]}x{sheet.shape[0]} ({len(names)} images, {args.per_image} augmented copies "
        f"each; parts on: {', '.join(options.active) or 'none'}) written to {out}"
    )
    return 0


def cmd_contact_sheet(args) -> int:
    import cv2

    presets = tuple(p.strip() for p in args.presets.split(",") if p.strip())
    if not presets or args.per_row < 1 or not 64 <= args.tile <= 512:
        raise ConvertError("need at least one preset, --per-row >= 1 and --tile in 64-512")
    sheet = contact_sheet(args.seed, presets, args.per_row, args.tile, args.wide, args.artefacts)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"cannot write {str(out)!r}")
    print(f"contact sheet {sheet.shape[1]}x{sheet.shape[0]} written to {out} ({out.stat().st_size // 1024} KB)")
    return 0


def cmd_peak_model(args) -> int:
    from convert.peak import write_peak_model
    from edge.model.macs import count_macs

    out = write_peak_model(args.out, args.seed)
    macs = count_macs(out)
    print(f"peak model written to {out} ({out.stat().st_size // 1024} KB, {macs.gmac:.3f} GMAC per invoke)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
