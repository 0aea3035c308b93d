"""Which scene properties move the TLF's drawn edges: random low-back scenes of one look and depth,
the per-scene edge and thickness errors regressed on the anatomy's parameters.

    python benchmarks/edge_factors.py [--bundle DIR | --model MODEL.keras] [--depth 50] [--scenes 120]

Scenes are `edge.sim.phantom.random_anatomy` draws (seeds fixed) rendered with one preset at 256x256
acquisition pixels and segmented as in benchmarks/band_edges.py (edges as drawn, over the central
half of the columns). Printed per target (thickness mm, top and bottom edge in model pixels,
positive = lower): the mean and spread over scenes, the spread left after a linear fit on the
standardised parameters, and each parameter's effect per standard deviation of it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.band_edges import float_scorer, int8_scorer  # noqa: E402
from edge.sim import phantom  # noqa: E402
from edge.model.bundle import DEMO_BUNDLE  # noqa: E402
from edge.measure.thickness import band_edges  # noqa: E402

PARAMETERS = ("tlf_mm", "sublayers", "gap_mm", "epimysium_mm", "abs_tilt_deg", "wave_amp_mm", "fat_mm", "thickness_var")


def parameters(a: phantom.Anatomy) -> list[float]:
    return [a.tlf_mm, a.sublayers, a.gap_mm, a.epimysium_mm, abs(a.tilt_deg), a.wave_amp_mm, a.fat_mm, a.thickness_var]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(DEMO_BUNDLE), help="int8 bundle (the device's path)")
    ap.add_argument("--model", help="a float Keras model instead of the bundle")
    ap.add_argument("--depth", type=float, default=50.0, help="field of view (mm)")
    ap.add_argument("--scenes", type=int, default=120)
    ap.add_argument("--preset", default="default")
    args = ap.parse_args(argv)
    score = float_scorer(args.model) if args.model else int8_scorer(args.bundle)
    anatomies = [phantom.random_anatomy(np.random.default_rng([i, 7]), depth_mm=args.depth) for i in range(args.scenes)]
    scans = [phantom.render(a, phantom.PRESETS[args.preset], (256, 256), seed=2000 + i) for i, a in enumerate(anatomies)]
    rows, targets = [], []
    for a, sc, (labels, logits) in zip(anatomies, scans, score([sc.image for sc in scans])):
        e = band_edges(labels, logits)
        h, w = labels.shape
        c = slice(w // 4, 3 * w // 4)
        cols = ((np.arange(w)[c] + 0.5) * sc.image.shape[1] / w).astype(int)
        k = h / sc.image.shape[0]
        top = np.nanmedian(e.top[c] - sc.top_px[cols] * k)
        bottom = np.nanmedian(e.bottom[c] - sc.bottom_px[cols] * k)
        thick = (np.nanmedian(e.bottom[c] - e.top[c]) - np.median(sc.bottom_px[cols] - sc.top_px[cols]) * k) * args.depth / h
        if np.isfinite([top, bottom, thick]).all():
            rows.append(parameters(a))
            targets.append((thick, top, bottom))
    x, y = np.array(rows), np.array(targets)
    design = np.c_[np.ones(len(x)), (x - x.mean(0)) / x.std(0)]
    print(f"model: {args.model or args.bundle}; preset {args.preset}, depth {args.depth:g} mm, {len(x)} of {args.scenes} scenes measured")
    for j, name in enumerate(("thickness mm", "top edge px", "bottom edge px")):
        coef, *_ = np.linalg.lstsq(design, y[:, j], rcond=None)
        left = y[:, j] - design @ coef
        print(f"{name}: mean {y[:, j].mean():+.3f}, sd {y[:, j].std():.3f}, sd left by the fit {left.std():.3f}")
        print("   per sd of " + ", ".join(f"{p} {c:+.3f}" for p, c in zip(PARAMETERS, coef[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
