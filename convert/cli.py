"""`tlf-convert`: train the U-Net, quantize it to an int8 bundle, validate, and make phantom data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# Phantom seed ranges kept apart so that training, calibration and validation never share a scene.
CALIBRATION_SEEDS = 20_000_000
VALIDATION_SEEDS = 30_000_000
DEMO_CLASS_WEIGHTS = (1.0, 6.0, 1.0)  # above, TLF, below


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tlf-convert", description="Host-side training and int8 conversion for tlf-edge.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the U-Net on a labelled folder or on phantom data")
    t.add_argument("--data", help="folder with images/ and masks/ (class-index PNGs); default: phantom stream")
    t.add_argument("--out", required=True, help="output folder (model.keras, history.csv)")
    t.add_argument("--epochs", type=int, default=200)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--steps", type=int, default=25, help="phantom batches per epoch")
    t.add_argument("--base-filters", type=int, default=16)
    t.add_argument("--depth", type=int, default=4)
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--patience", type=int, default=20)
    t.add_argument("--resume", action="store_true", help="continue a training in --out from its last epoch")
    t.add_argument("--class-weights", help="comma-separated cross-entropy weight per class, e.g. 1,6,1")

    q = sub.add_parser("quantize", help="full-integer int8 conversion into a model bundle")
    q.add_argument("model", help=".keras or .h5 model")
    q.add_argument("--calib", default="phantom", help="'phantom' or a folder of images (preprocessed like the device)")
    q.add_argument("--calib-n", type=int, default=200, help="calibration images to use")
    q.add_argument("--out", required=True, help="bundle folder to write")
    q.add_argument("--size", type=int, default=None, help="input size (default: the model's)")
    q.add_argument("--data", help="labelled folder (images/, masks/): the calibration set must resemble it, "
                                  "and the float-versus-int8 gate runs on it")
    q.add_argument("--spacing-mm", help="ROW,COL mm per model-input pixel of --data (default: pixels)")
    q.add_argument("--max-miou-drop", type=float, default=0.01)
    q.add_argument("--max-bias", type=float, default=0.05)
    q.add_argument("--layer-report", help="also write a per-layer int8 error report (SNR, levels used) to this CSV")

    d = sub.add_parser("demo-bundle", help="train, quantize and validate the bundled demo model on phantom data")
    d.add_argument("--out", default="edge/models/demo")
    d.add_argument("--work", default="build/demo-train", help="folder for the float model and training history")
    d.add_argument("--epochs", type=int, default=14)
    d.add_argument("--steps", type=int, default=25)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--validate-n", type=int, default=64)
    d.add_argument("--model", help="reuse this trained float model (.keras) instead of training")

    v = sub.add_parser("validate", help="compare float and int8 on a labelled set; non-zero exit when the gate fails")
    v.add_argument("bundle")
    v.add_argument("--float", dest="float_model", required=True, help="the float .keras model the bundle came from")
    v.add_argument("--data", default="phantom", help="'phantom' or a folder with images/ and masks/")
    v.add_argument("--n", type=int, default=64, help="phantom images to validate on")
    v.add_argument("--spacing-mm", help="ROW,COL mm per model-input pixel of the data folder (default: pixels)")
    v.add_argument("--out", help="report folder (default: BUNDLE/validation)")
    v.add_argument("--max-miou-drop", type=float, default=0.01)
    v.add_argument("--max-bias", type=float, default=0.05)

    ph = sub.add_parser("phantom", help="write a labelled phantom data set (images/ and masks/)")
    ph.add_argument("--out", required=True)
    ph.add_argument("--n", type=int, default=100)
    ph.add_argument("--seed", type=int, default=0)

    args = p.parse_args(argv)
    from convert.quantize import QuantizeError

    try:
        return {"train": cmd_train, "quantize": cmd_quantize, "demo-bundle": cmd_demo_bundle,
                "validate": cmd_validate, "phantom": cmd_phantom}[args.command](args)
    except (QuantizeError, ValueError, OSError) as e:
        print(f"tlf-convert: error: {e}", file=sys.stderr)
        return 2


def cmd_train(args) -> int:
    from convert.data import read_labelled_folder
    from convert.train import TrainOptions, train
    from edge.preprocess import PreprocessSpec

    spec = PreprocessSpec(height=args.size, width=args.size)
    train_data = val_data = None
    if args.data:
        x, y = read_labelled_folder(Path(args.data), spec)
        rng = np.random.default_rng(args.seed)
        order = rng.permutation(len(x))
        n_val = max(1, len(x) // 5)
        val_data = (x[order[:n_val]], y[order[:n_val]])
        train_data = (x[order[n_val:]], y[order[n_val:]])
    classes = int(max(train_data[1].max(), val_data[1].max()) + 1) if train_data else 3
    opts = TrainOptions(epochs=args.epochs, batch_size=args.batch, seed=args.seed, base_filters=args.base_filters,
                        depth=args.depth, patience=args.patience, classes=classes,
                        class_weights=tuple(float(v) for v in args.class_weights.split(",")) if args.class_weights else None)
    best = train(Path(args.out), spec, opts, train_data, val_data, phantom_steps=args.steps, resume=args.resume)
    print(f"trained model: {best}")
    return 0


def calibration_images(source: str, n: int, spec) -> np.ndarray:
    from convert.data import IMAGE_SUFFIXES, phantom_batch
    from edge.preprocess import to_model_image

    if source == "phantom":
        return phantom_batch(range(CALIBRATION_SEEDS, CALIBRATION_SEEDS + n), spec)[0]
    import cv2

    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(f"calibration source {source!r} is neither 'phantom' nor a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:n]
    images = []
    for path in paths:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR if spec.channels == 3 else cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ValueError(f"cannot read calibration image {str(path)!r}")
        images.append(to_model_image(img, spec))
    if not images:
        raise ValueError(f"no images in calibration folder {source!r}")
    return np.stack(images)


def cmd_quantize(args) -> int:
    from convert.data import read_labelled_folder
    from convert.quantize import load_keras_model, quantize_to_bundle
    from convert.validate import GateLimits
    from edge.preprocess import PreprocessSpec

    model = load_keras_model(args.model)
    _, h, w, c = model.input_shape
    size = args.size or h
    spec = PreprocessSpec(height=size, width=args.size or w, channels=c)
    calib = calibration_images(args.calib, args.calib_n, spec)
    data = read_labelled_folder(Path(args.data), spec) if args.data else None
    bundle = quantize_to_bundle(model, calib, spec, args.out, reference=data[0] if data else None, progress=True)
    if args.layer_report:
        write_layer_report(model, calib, spec, Path(args.layer_report))
    print(f"bundle written: {bundle.path} (sha256 {bundle.sha256[:12]}, {bundle.model_path.stat().st_size} bytes)")
    if data is None:
        return 0
    spacing = tuple(float(v) for v in args.spacing_mm.split(",")) if args.spacing_mm else None
    limits = GateLimits(max_miou_drop=args.max_miou_drop, max_thickness_bias=args.max_bias)
    passed = validate_and_record(bundle, model, data[0], data[1], [spacing] * len(data[0]), bundle.path / "validation",
                                 str(args.data), limits)
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
    from convert.quantize import load_keras_model, quantize_to_bundle
    from convert.train import TrainOptions, read_history, train
    from convert.validate import GateLimits
    from edge.preprocess import PreprocessSpec

    spec = PreprocessSpec()
    opts = TrainOptions(epochs=args.epochs, seed=args.seed, patience=args.epochs, class_weights=DEMO_CLASS_WEIGHTS)
    work = Path(args.model).parent if args.model else Path(args.work)
    best = Path(args.model) if args.model else train(work, spec, opts, phantom_steps=args.steps, verbose=2)
    model = load_keras_model(best)
    calib = calibration_images("phantom", 200, spec)
    training = {"phantom_images": args.epochs * args.steps * opts.batch_size, **{k: v for k, v in vars(opts).items()}}
    history = read_history(work / "history.csv") if (work / "history.csv").is_file() else []
    training["final"] = history[-1] if history else {}
    bundle = quantize_to_bundle(model, calib, spec, args.out, extra={"training": training, "name": "tlf-demo-phantom"}, progress=True)
    images, labels, spacings = phantom_validation_set(args.validate_n, spec)
    passed = validate_and_record(bundle, model, images, labels, spacings, bundle.path / "validation",
                                 f"phantom seeds {VALIDATION_SEEDS}+{args.validate_n}", GateLimits())
    print(f"demo bundle written: {bundle.path}")
    return 0 if passed else 3


def phantom_validation_set(n: int, spec):
    from convert.data import phantom_sample
    from edge.preprocess import model_spacing

    samples = [phantom_sample(VALIDATION_SEEDS + i, spec) for i in range(n)]
    images = np.stack([s[0] for s in samples])
    labels = np.stack([s[1] for s in samples])
    spacings = [model_spacing(s[2].spacing_mm, s[2].image.shape, spec) for s in samples]
    return images, labels, spacings


def validate_and_record(bundle, model, images, labels, spacings, out_dir, set_name, limits) -> bool:
    """Run the float-versus-int8 gate, write its reports and record the result in the manifest."""
    from convert.report import write_report
    from convert.validate import compare, gate
    from edge.bundle import update_manifest

    report = compare(bundle, model, images, labels, spacings)
    failures = gate(report, limits)
    summary = write_report(report, images, labels, Path(out_dir), failures)
    update_manifest(bundle, validation={"set": set_name, "limits": vars(limits), **summary})
    f, q = summary["float"], summary["int8"]
    th = summary["thickness"]
    print(f"float mean IoU {f['mean_iou']:.4f}, int8 {q['mean_iou']:.4f}; TLF Dice int8 {q['dice'][bundle.tlf_class]:.4f}; "
          f"int8-float thickness bias {th['int8_vs_float'].get('bias')} {summary['unit']}, "
          f"int8-truth MAE {th['int8_vs_truth'].get('mae')} {summary['unit']}")
    print(("gate PASSED" if not failures else "gate FAILED: " + "; ".join(failures)) + f" (report: {out_dir}/validation.md)")
    return not failures


def cmd_validate(args) -> int:
    from convert.data import read_labelled_folder
    from convert.quantize import load_keras_model
    from convert.validate import GateLimits
    from edge.bundle import load_bundle
    from edge.errors import BundleError

    try:
        bundle = load_bundle(args.bundle)
    except BundleError as e:
        raise ValueError(str(e)) from e
    model = load_keras_model(args.float_model)
    spec = bundle.spec
    if args.data == "phantom":
        images, labels, spacings = phantom_validation_set(args.n, spec)
        set_name = f"phantom seeds {VALIDATION_SEEDS}+{args.n}"
    else:
        images, labels = read_labelled_folder(Path(args.data), spec)
        spacing = tuple(float(v) for v in args.spacing_mm.split(",")) if args.spacing_mm else None
        spacings = [spacing] * len(images)
        set_name = str(args.data)
    limits = GateLimits(max_miou_drop=args.max_miou_drop, max_thickness_bias=args.max_bias)
    out = Path(args.out) if args.out else bundle.path / "validation"
    return 0 if validate_and_record(bundle, model, images, labels, spacings, out, set_name, limits) else 3


def cmd_phantom(args) -> int:
    from convert.data import write_labelled_folder
    from edge import phantom

    scans = [phantom.scan(args.seed + i) for i in range(args.n)]
    write_labelled_folder(Path(args.out), [s.image for s in scans], [s.labels for s in scans])
    print(f"{args.n} phantom images with masks written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
