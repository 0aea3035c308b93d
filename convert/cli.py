"""`tlf-convert`: train the U-Net, quantize it to an int8 bundle, validate, and make phantom data.

The command line only: the parser (a function per subcommand), the dispatch and the error
handling. The commands live beside what they drive (convert.commands, convert.demo,
convert.sheets), what they read in convert.inputs and their shared option sets in convert.options.
"""

from __future__ import annotations

import argparse
import sys

from convert import commands, demo, sheets
from convert.errors import ConvertError, missing_extra
from convert.options import add_model_options, add_preprocess_options, add_training_options
from convert.quiet import native_output_hidden
from edge import logs
from edge.cli_help import Parser, conventions
from edge.errors import EdgeError

# The commands that run a Keras model or the TFLite converter; the others work without TensorFlow
# (`domain` runs the int8 model only).
NEEDS_TENSORFLOW = {"train", "cv", "quantize", "demo-bundle", "validate", "peak-model", "rewrite"}

DATASET_CONFIG_HELP = (
    "data-set config file (dataset.json or .toml) to read --data with, instead of the one beside "
    "its images/ (for a folder you cannot write in)"
)
NATIVE_PX_HELP = (
    "thickness in each image's own pixels (its size over the model's, per axis) instead of model "
    "pixels, for data without a pixel spacing"
)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    logs.one_line("tlf-convert")  # every warning of the product: one line on stderr
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with native_output_hidden(args.verbose):  # native libraries' notices (TensorFlow, LiteRT, OpenCV)
            if args.command in NEEDS_TENSORFLOW:
                require_tensorflow(args.command)
            return command(args.command)(args)
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


def command(name: str):
    """The function that runs subcommand `name`, looked up when it runs (a test may replace one)."""
    return {
        "train": commands.cmd_train,
        "cv": commands.cmd_cv,
        "quantize": commands.cmd_quantize,
        "demo-bundle": demo.cmd_demo_bundle,
        "thickness-response": commands.cmd_thickness_response,
        "domain": commands.cmd_domain,
        "rewrite": commands.cmd_rewrite,
        "augment-sheet": sheets.cmd_augment_sheet,
        "validate": commands.cmd_validate,
        "phantom": commands.cmd_phantom,
        "contact-sheet": sheets.cmd_contact_sheet,
        "peak-model": commands.cmd_peak_model,
    }[name]


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


def parser() -> argparse.ArgumentParser:
    """The whole command line, a subparser per command in the order --help lists them."""
    p = Parser(prog="tlf-convert", description="Host-side training and int8 conversion for tlf-edge.")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's own log (native notices, converter logs, export dumps); hidden by default",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    conventions(p, sub, codes=(0, 1, 2, 3, 130))
    return p


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train the U-Net on a labelled folder or on phantom data")
    p.add_argument(
        "--data",
        help="folder with images/ and masks/ (read by its dataset.json/.toml, class-index "
        "masks without one); default: phantom stream",
    )
    p.add_argument("--dataset-config", help=DATASET_CONFIG_HELP)
    p.add_argument("--out", required=True, help="output folder (model.keras, history.csv)")
    p.add_argument("--steps", type=int, default=25, help="phantom batches per epoch")
    p.add_argument("--resume", action="store_true", help="continue a training in --out from its last epoch")
    add_training_options(p)


def add_cv(sub) -> None:
    p = sub.add_parser(
        "cv",
        help="k-fold cross-validation of a training recipe on a labelled folder: train, "
        "quantize and validate each fold (look-alike images kept in one fold)",
    )
    p.add_argument("--data", required=True, help="folder with images/ and masks/")
    p.add_argument("--dataset-config", help=DATASET_CONFIG_HELP)
    p.add_argument(
        "--out", required=True, help="output folder (a fold_K/ per fold, summary.json, summary.md); run again to resume"
    )
    p.add_argument("--folds", type=int, default=5)
    p.add_argument(
        "--only", help="comma-separated fold numbers to run now (default: all; the summary covers the folds done)"
    )
    p.add_argument(
        "--similar", type=float, default=0.8, help="thumbnail correlation that makes two images one look-alike group"
    )
    p.add_argument("--calib-n", type=int, default=200, help="calibration images per fold (from its training part)")
    p.add_argument("--spacing-mm", help="ROW,COL mm per model-input pixel of --data (default: native pixels)")
    p.add_argument("--model-px", action="store_true", help="thickness in model pixels (default: native pixels)")
    p.add_argument("--max-miou-drop", type=float, default=0.01)
    p.add_argument("--max-bias", type=float, default=0.5, help="int8 gate: |thickness bias| against float")
    p.add_argument(
        "--revalidate",
        action="store_true",
        help="score the folds done again with their models as they are (no training)",
    )
    p.add_argument(
        "--requantize",
        action="store_true",
        help="quantize the folds done again from their trained models and score them, each new bundle "
        "swapped in once scored "
        "(no training): copy --out first to compare two exports of the same models",
    )
    p.add_argument(
        "--transpose-as-depth-to-space",
        action="store_true",
        help="as tlf-convert quantize's: each 2x2, stride 2 Conv2DTranspose as a 1x1 convolution and a depth-to-space",
    )
    p.add_argument("--docs", help="also write a Markdown page of the results here (figures beside it)")
    p.add_argument("--title", default="Cross-validation", help="--docs: the page's title")
    p.add_argument(
        "--targets",
        help="--docs: targets to check, e.g. band_dice>=0.8,thickness_mae<=1.5,int8_dice_drop<=0.01,fold_minutes<=20",
    )
    add_training_options(p)


def add_quantize(sub) -> None:
    p = sub.add_parser("quantize", help="full-integer int8 conversion into a model bundle")
    p.add_argument(
        "model", nargs="?", help="the float model: a .keras or .h5 file or a SavedModel folder (or --weights)"
    )
    p.add_argument(
        "--calib",
        help="a folder of images like the cart's (preprocessed like the device), or 'phantom': the "
        "built-in phantom scanner's scenes, fit for a model of phantom images only (the default, with a note)",
    )
    p.add_argument("--calib-n", type=int, default=200, help="calibration images to use (default: 200)")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument(
        "--size",
        default=None,
        help="input grid, N or HxW pixels: a model of any size (keras.Input((None, "
        "None, C))) is converted at it (default: the model's; --weights: 256)",
    )
    p.add_argument("--channels", type=int, choices=(1, 3), default=1, help="--weights: the U-Net's input channels")
    add_model_options(p)
    add_preprocess_options(p)
    p.add_argument(
        "--class-names",
        help="comma-separated class names in output order (default: the --data or "
        "--dataset-config classes, else above,tlf,below for 3 and background,tlf for 2)",
    )
    p.add_argument(
        "--allow-one-class",
        action="store_true",
        help="convert even when the float model's labels of the calibration images look degenerate: one class "
        "on almost every pixel, or almost none of the band class",
    )
    p.add_argument(
        "--trust-preprocessing",
        action="store_true",
        help="convert as declared even when the float model's labels do not follow its input's level "
        "while they do under another common --input-scale",
    )
    p.add_argument(
        "--allow-partitions",
        action="store_true",
        help="convert even when XNNPACK cannot take the graph whole (the cost is printed)",
    )
    p.add_argument(
        "--transpose-as-depth-to-space",
        action="store_true",
        help="make each Conv2DTranspose whose kernel equals its stride (2x2, stride 2) a 1x1 convolution and a "
        "depth-to-space in Keras, before converting: the same function in float, rounded otherwise in int8. "
        "Without it the same pair is written into the int8 graph after converting, with the same outputs "
        "as the transposed convolution (the default); run the gate (--data) on the result",
    )
    p.add_argument(
        "--data",
        help="labelled folder (images/, masks/): the calibration set must resemble it, "
        "and the float-versus-int8 gate runs on it",
    )
    p.add_argument("--dataset-config", help=DATASET_CONFIG_HELP + "; its class names go into the bundle")
    p.add_argument("--spacing-mm", help="ROW,COL mm per model-input pixel of --data (default: pixels)")
    p.add_argument("--native-px", action="store_true", help=NATIVE_PX_HELP)
    p.add_argument("--max-miou-drop", type=float, default=0.01)
    p.add_argument("--max-bias", type=float, default=0.05)
    p.add_argument("--layer-report", help="also write a per-layer int8 error report (SNR, levels used) to this CSV")


def add_demo_bundle(sub) -> None:
    p = sub.add_parser("demo-bundle", help="train, quantize and validate the bundled demo model on phantom data")
    p.add_argument("--out", default="edge/models/demo")
    p.add_argument("--work", default="build/demo", help="folder for the float model and training history")
    p.add_argument("--epochs", type=int, default=14, help="stage 1 epochs (class-weighted cross-entropy)")
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=8,
        help="stage 2 epochs (label smoothing 0.1, learning rate 3e-4 decaying to 3e-5)",
    )
    p.add_argument(
        "--polish-epochs", type=int, default=10, help="stage 3 epochs (as stage 2, learning rate 1e-4 decaying to 1e-5)"
    )
    p.add_argument(
        "--cubic-epochs",
        type=int,
        default=20,
        help="stage 4 epochs (as stage 3, on scenes no earlier stage saw, the images reduced to the "
        "model grid with the cubic kernel the device then uses)",
    )
    p.add_argument(
        "--more-epochs",
        type=int,
        default=12,
        help="stage 5 epochs (as stage 4, from its last weights, on scenes of a seed range of its own)",
    )
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--validate-n", type=int, default=220, help="held-out phantom images (presets in turn)")
    p.add_argument("--model", help="reuse a trained model (.keras, with its train.json) instead of training")
    p.add_argument(
        "--response-n",
        type=int,
        default=1000,
        help="phantom scanner screens the bundle's thickness response is fitted on (see thickness-response)",
    )


def add_thickness_response(sub) -> None:
    p = sub.add_parser(
        "thickness-response",
        help="fit a phantom-trained bundle's thickness response on phantom images of known thickness "
        "into its manifest (the device then inverts it)",
    )
    p.add_argument("bundle")
    p.add_argument("--n", type=int, default=1000, help="phantom images to fit on")
    p.add_argument(
        "--images",
        choices=["screens", "scans"],
        default="screens",
        help="screens: the phantom scanner's, cropped to the B-mode region as a cart sees them (the "
        "response for that scanner); scans: the training's random looks (convert.response)",
    )
    p.add_argument(
        "--no-layering",
        action="store_true",
        help="fit without the term for the band's layering contrast (an older bundle's form)",
    )


def add_validate(sub) -> None:
    p = sub.add_parser("validate", help="compare float and int8 on a labelled set; non-zero exit when the gate fails")
    p.add_argument("bundle")
    p.add_argument(
        "--float",
        dest="float_model",
        help="the float model the bundle came from (.keras, .h5 or a SavedModel folder; or --weights)",
    )
    add_model_options(p)
    p.add_argument("--data", default="phantom", help="'phantom' or a folder with images/ and masks/")
    p.add_argument("--n", type=int, default=220, help="phantom images to validate on (presets in turn)")
    p.add_argument("--dataset-config", help=DATASET_CONFIG_HELP)
    p.add_argument("--spacing-mm", help="ROW,COL mm per model-input pixel of the data folder (default: pixels)")
    p.add_argument("--native-px", action="store_true", help=NATIVE_PX_HELP)
    p.add_argument("--out", help="report folder (default: BUNDLE/validation)")
    p.add_argument("--max-miou-drop", type=float, default=0.01)
    p.add_argument("--max-bias", type=float, default=0.05)
    p.add_argument(
        "--other-model",
        action="store_true",
        help="validate against a float model other than the one the bundle records it was made from "
        "(the validation record names it)",
    )


def add_domain(sub) -> None:
    p = sub.add_parser(
        "domain",
        help="record in a bundle what its training images looked like (image statistics) "
        "and how sure its model is of held-out images, for the device's "
        "out-of-domain guard (edge.measure.domain)",
    )
    p.add_argument("bundle")
    p.add_argument(
        "--train",
        required=True,
        help="'phantom' (fresh scenes of the training's random looks) or a folder of training images",
    )
    p.add_argument(
        "--heldout",
        required=True,
        help="'phantom' (the held-out validation scenes, presets in turn) or a folder of images the "
        "model was not trained on",
    )
    p.add_argument("--n", type=int, default=600, help="phantom training images, or the most images read per folder")
    p.add_argument("--heldout-n", type=int, default=220, help="phantom held-out images")


def add_rewrite(sub) -> None:
    p = sub.add_parser(
        "rewrite",
        help="write each int8 transposed convolution of a bundle whose kernel equals its stride as a 1x1 "
        "convolution and a depth-to-space (what quantize now does itself; faster on CPUs where LiteRT's "
        "int8 transposed convolution is slow); in place, kept only when the outputs stay identical here",
    )
    p.add_argument("bundle")
    p.add_argument(
        "--images",
        default="phantom",
        help="compare the two graphs' outputs on the images of this folder, or on phantom scenes ('phantom', "
        "the default); seeded random inputs and the two constant ones are compared too",
    )
    p.add_argument("--n", type=int, default=64, help="the most images read from --images")


def add_phantom(sub) -> None:
    p = sub.add_parser("phantom", help="write a labelled phantom data set (images/, masks/ and dataset.json)")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--mask",
        choices=("index", "palette", "binary"),
        default="index",
        help="class-index masks, colour (palette PNG) masks, or 0/255 masks of the TLF alone",
    )
    p.add_argument("--base", type=int, choices=(0, 1), default=0, help="index masks: value of the first class")
    p.add_argument("--image-format", choices=("png", "tif", "jpg"), default="png")
    p.add_argument("--preset", help="scanner preset for every image (default: a random look per image)")
    p.add_argument("--size", default="256x256", help="HxW pixels")
    p.add_argument("--field-mm", default="40x40", help="DEPTHxWIDTH of the imaged region in mm")
    p.add_argument("--wide", action="store_true", help="draw scenes (and looks) from the wider ranges")
    p.add_argument("--artefacts", type=float, default=0.0, help="probability of each artefact kind per image")


def add_contact_sheet(sub) -> None:
    p = sub.add_parser("contact-sheet", help="a PNG of phantom samples beside their masks and one scanner screen")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--presets",
        default="default,l15_fine,l6_deep,rf_10mhz,low_gain,washed_out",
        help="comma-separated scanner presets, one row each",
    )
    p.add_argument("--per-row", type=int, default=2, help="image/mask pairs per row")
    p.add_argument("--tile", type=int, default=140, help="tile size in pixels")
    p.add_argument("--wide", action="store_true", help="scenes from the wider ranges")
    p.add_argument("--artefacts", type=float, default=0.0, help="probability of each artefact kind per image")


def add_peak_model(sub) -> None:
    p = sub.add_parser(
        "peak-model",
        help="write the int8 convolution tlf-edge bench measures the machine's int8 peak with "
        "(shipped as edge/models/peak/int8_conv.tflite)",
    )
    p.add_argument("--out", default="edge/models/peak/int8_conv.tflite", help=".tflite file to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the representative set")


def add_augment_sheet(sub) -> None:
    p = sub.add_parser(
        "augment-sheet",
        help="a PNG of labelled images beside augmented copies as training draws them, with their label outlines",
    )
    p.add_argument("--data", required=True, help="folder with images/ and masks/")
    p.add_argument("--dataset-config", help=DATASET_CONFIG_HELP)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--images", type=int, default=4, help="images, one row each (the first by name)")
    p.add_argument("--per-image", type=int, default=5, help="augmented copies per image")
    p.add_argument("--size", type=int, default=256, help="the model grid the images are augmented on")
    p.add_argument("--tile", type=int, default=160, help="tile size in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--augment-off",
        metavar="PARTS",
        default="",
        help="comma-separated augmentation parts to switch off (as for train)",
    )


SUBCOMMANDS = (
    add_train,
    add_cv,
    add_quantize,
    add_demo_bundle,
    add_thickness_response,
    add_validate,
    add_domain,
    add_rewrite,
    add_phantom,
    add_contact_sheet,
    add_peak_model,
    add_augment_sheet,
)


if __name__ == "__main__":
    sys.exit(main())
