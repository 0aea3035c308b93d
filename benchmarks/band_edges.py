"""Where a model draws the TLF's edges: flat phantom bands of known thickness, at two depths.

    python benchmarks/band_edges.py [--bundle DIR | --model MODEL.keras] [--scenes 8]

Each scene is a random low-back anatomy (seeds fixed) with the TLF set to one thickness, a single
sublayer and no thickness variation, rendered with the default preset at 256 acquisition rows and
segmented as the device does (the int8 bundle, default the demo bundle) or by a float Keras model
(--model; needs TensorFlow; prior-corrected models as `tlf-convert train` saves them). Per depth
and thickness: the mean error of the top and bottom edges over the central half of the columns
(model pixels, positive = drawn lower than the truth) and the thickness error that follows (mm).
It separates a shift of the whole band (both edges alike) from a band drawn too thin or too thick.
Edges and thickness are as the model draws them: a bundle's thickness calibration (its measured
response, which the device inverts) is not applied here.
--screen-scale shows each scan enlarged first, as a scanner screen does before the device crops
and shrinks it (the display path's share of the error on screen video). --sublayers 1 2 3
compares uniform bands with layered ones. --remove-prior reads a checkpoint of a class-weighted
training (last.keras, or a run that did not finish) as the finished training would save it.
--axial-psf and --gain-db change the default look (one set of tables per axial
point-spread width): how the reading depends on the scanner's axial resolution and gain.
--profile prints, per table row, the mean grey level of each scan row around the band (central
half of the columns, scans of the first scene alike in all but the layering): what the model
is given at the edges.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge.sim import phantom  # noqa: E402
from edge.model.bundle import DEMO_BUNDLE, load_bundle  # noqa: E402
from edge.frame import Frame  # noqa: E402
from edge.model.preprocess import PreprocessSpec, to_float, to_model_image  # noqa: E402
from edge.measure.thickness import band_edges  # noqa: E402

DEPTHS_MM = (40.0, 50.0)
THICKNESS_MM = (0.8, 1.6, 2.4)


def scenes(depth_mm: float, tlf_mm: float, n: int, sublayers: int = 1, rows: int = 256,
           machine: phantom.Machine = phantom.PRESETS["default"]) -> list[phantom.Scan]:
    out = []
    for s in range(n):
        a = phantom.random_anatomy(np.random.default_rng([s, 99]), depth_mm=depth_mm)
        a = replace(a, tlf_mm=tlf_mm, sublayers=sublayers, thickness_var=0.0)
        out.append(phantom.render(a, machine, (rows, 256), seed=1000 + s))
    return out


def displayed(image: np.ndarray, scale: float) -> np.ndarray:
    """The scan scan-converted to `scale` times its size (the device shrinks it back to the model grid)."""
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)


def profile(scan: phantom.Scan) -> str:
    """Mean grey level of the scan rows from 3 above the band's top edge to 3 below its bottom edge
    (central half of the columns), with | between the two row centres a true edge lies between."""
    w = scan.image.shape[1]
    c = slice(w // 4, 3 * w // 4)
    top, bottom = float(np.median(scan.top_px[c])), float(np.median(scan.bottom_px[c]))
    levels = scan.image[:, c].astype(np.float64).mean(axis=1)
    first, last = int(top) - 3, int(bottom) + 3
    out = []
    for r in range(first, last + 1):
        if r - 0.5 < top <= r + 0.5 or r - 0.5 < bottom <= r + 0.5:  # an edge lies between row r - 1's centre and r's
            out.append("|")
        out.append(f"{levels[r]:.0f}")
    return f"rows {first}-{last} (edges at {top:.2f}, {bottom:.2f}): " + " ".join(out)


def int8_scorer(bundle_dir):
    from edge.model.segmenter import Segmenter

    seg = Segmenter(load_bundle(bundle_dir), 1)

    def score(images):
        results = [seg.segment(Frame(image, 0.0, i)) for i, image in enumerate(images)]
        return [(r.labels, r.logits.astype(np.float32)) for r in results]

    return score


def float_scorer(model_path, remove_prior=None, label_smoothing: float = 0.0):
    from convert.quantize import load_keras_model

    model = load_keras_model(model_path)
    if remove_prior:
        from convert.train import remove_class_weight_prior

        remove_class_weight_prior(model, remove_prior, label_smoothing)
    spec = PreprocessSpec(height=model.input_shape[1], width=model.input_shape[2], channels=model.input_shape[3])

    def score(images):
        x = np.stack([to_float(to_model_image(image, spec), spec) for image in images])
        out = model.predict(x, verbose=0, batch_size=8)
        return [(np.argmax(o, -1).astype(np.uint8), o) for o in out]

    return score


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(DEMO_BUNDLE), help="int8 bundle (the device's path)")
    ap.add_argument("--model", help="a float Keras model instead of the bundle")
    ap.add_argument("--scenes", type=int, default=8, help="scenes per depth and thickness")
    ap.add_argument("--depths", type=float, nargs="+", default=DEPTHS_MM, help="fields of view (mm)")
    ap.add_argument("--thickness", type=float, nargs="+", default=THICKNESS_MM, help="TLF thicknesses (mm)")
    ap.add_argument("--sublayers", type=int, nargs="+", default=[1], help="bright sublayers in the band (one table each)")
    ap.add_argument("--rows", type=int, default=256, help="acquisition rows of each scan")
    ap.add_argument("--screen-scale", type=float, default=1.0,
                    help="show each scan this many times larger (linear interpolation), as a scanner screen does")
    ap.add_argument("--remove-prior", metavar="W,W,W",
                    help="with --model: class weights the checkpoint was trained with; their prior is removed first")
    ap.add_argument("--label-smoothing", type=float, default=0.0, help="with --remove-prior: the training's smoothing")
    ap.add_argument("--axial-psf", type=float, nargs="+", default=[phantom.PRESETS["default"].axial_psf_mm],
                    help="axial point-spread widths (Gaussian sigma, mm) of the look, one set of tables each")
    ap.add_argument("--gain-db", type=float, default=phantom.PRESETS["default"].gain_db, help="gain of the look (dB)")
    ap.add_argument("--profile", action="store_true", help="also print the grey levels across the band")
    args = ap.parse_args(argv)
    if args.remove_prior and not args.model:
        ap.error("--remove-prior needs --model")
    weights = tuple(float(v) for v in args.remove_prior.split(",")) if args.remove_prior else None
    score = float_scorer(args.model, weights, args.label_smoothing) if args.model else int8_scorer(args.bundle)
    print(f"model: {args.model or args.bundle} ({'float' if args.model else 'int8'}), {args.scenes} scenes each, "
          f"{args.rows} acquisition rows, screen scale {args.screen_scale:g}"
          + (f", class-weight prior {weights} removed" if weights else ""))
    errors = []
    for psf in args.axial_psf:
        machine = replace(phantom.PRESETS["default"], axial_psf_mm=psf, gain_db=args.gain_db)
        print(f"look: default, axial PSF {psf:g} mm, gain {args.gain_db:+g} dB")
        print(f"{'layers':>6} {'depth mm':>8} {'TLF mm':>6} {'top px':>7} {'bottom px':>9} {'thickness mm':>12}")
        for layers in args.sublayers:
            errors += table(score, layers, machine, args)
    print(f"mean |thickness error| {np.mean(np.abs(errors)):.3f} mm")
    return 0


def table(score, layers: int, machine: phantom.Machine, args) -> list[float]:
    errors = []
    for depth in args.depths:
        for t in args.thickness:
            scans = scenes(depth, t, args.scenes, layers, args.rows, machine)
            images = [displayed(sc.image, args.screen_scale) for sc in scans]
            top, bottom = [], []
            for sc, (labels, logits) in zip(scans, score(images)):
                e = band_edges(labels, logits)
                h, w = labels.shape
                k = h / sc.image.shape[0]  # scan rows to model rows
                c = slice(w // 4, 3 * w // 4)  # the central half: the device's measurement window
                cols = ((np.arange(w)[c] + 0.5) * sc.image.shape[1] / w).astype(int)  # scan column under each
                top.append(np.nanmedian(e.top[c] - sc.top_px[cols] * k))
                bottom.append(np.nanmedian(e.bottom[c] - sc.bottom_px[cols] * k))
                sy = depth / h  # mm per model row
            err = (np.mean(bottom) - np.mean(top)) * sy
            errors.append(err)
            print(f"{layers:6d} {depth:8.0f} {t:6.1f} {np.mean(top):+7.2f} {np.mean(bottom):+9.2f} {err:+12.3f}")
            if args.profile:
                print("       " + profile(scans[0]))
    return errors


if __name__ == "__main__":
    sys.exit(main())
