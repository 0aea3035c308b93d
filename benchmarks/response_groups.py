"""Where a bundle's thickness response leaves errors: phantom scans of known thickness, grouped.

    python benchmarks/response_groups.py [--bundle DIR] [--scans 240] [--look PRESET] [--images screens]

The scans follow the thickness response's recipes (convert.response) from the seeds after the
1000 its fit used, so none of them was fitted on: by default the training's (random scene, size
and field of view), each with a random look as in training; --look gives them all one preset's
look (e.g. `default`, the look of the phantom scanner and its screens); --images screens takes
the phantom scanner's screens cropped to the B-mode region instead. Each is segmented and measured
as the device does. Per group: scans measured, the bias of the band's height as drawn (mm, no
response), and the bias and mean absolute error of the thickness the device reports (mm, with
the bundle's response). Groups: the TLF's bright sublayers (1 = a uniform band), and with random
looks the axial point-spread width (the scanner's axial resolution) in thirds of its range.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from convert.response import measured_scans  # noqa: E402
from edge.sim.recipes import RESPONSE_SEEDS  # noqa: E402
from edge.sim import phantom  # noqa: E402
from edge.model.bundle import DEMO_BUNDLE, load_bundle  # noqa: E402

FIRST_SEED = RESPONSE_SEEDS + 1000  # past the scans the response was fitted on


def scene_of(seed: int) -> tuple[phantom.Anatomy, phantom.Machine]:
    """The scene and random look `phantom_scan(seed)` draws (phantom.scan's order of draws)."""
    rng = np.random.default_rng(seed)
    return phantom.random_anatomy(rng), phantom.random_machine(rng)


def measure(bundle_dir, n: int, look: str | None, images: str = "scans"):
    """Per measured scan: (sublayers, axial PSF mm, height error mm as drawn, thickness error mm)."""
    seeds = range(FIRST_SEED, FIRST_SEED + n)
    look = "default" if images == "screens" else look  # the phantom scanner's screens have its look
    machine = phantom.preset(look) if look else None
    rows = []
    for seed, r, drawn, true, true_mm, s, _ in measured_scans(load_bundle(bundle_dir), seeds, machine=machine,
                                                              images=images):
        anatomy, random_look = scene_of(seed)
        psf = (machine or random_look).axial_psf_mm
        rows.append((anatomy.sublayers, psf, (drawn - true) * s, r.value - true_mm))
    return np.array(rows)


def report(name: str, d: np.ndarray) -> str:
    if d.size == 0:
        return f"{name:>22} {0:6d}"
    return f"{name:>22} {len(d):6d} {d[:, 2].mean():+12.3f} {d[:, 3].mean():+11.3f} {np.abs(d[:, 3]).mean():9.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(DEMO_BUNDLE))
    ap.add_argument("--scans", type=int, default=240)
    ap.add_argument("--look", choices=sorted(phantom.PRESETS), help="one preset's look for every scan (default: random)")
    ap.add_argument("--images", choices=["scans", "screens"], default="scans",
                    help="screens: the phantom scanner's screens (its default look), cropped to the B-mode region")
    args = ap.parse_args(argv)
    if args.images == "screens" and args.look not in (None, "default"):
        ap.error("the phantom scanner's screens have its default look")
    d = measure(args.bundle, args.scans, args.look, args.images)
    look = "default" if args.images == "screens" else args.look or "random"
    print(f"bundle {args.bundle}: {len(d)} of {args.scans} {args.images} measured (seeds {FIRST_SEED}-"
          f"{FIRST_SEED + args.scans - 1}), look {look}")
    print(f"{'group':>22} {'scans':>6} {'drawn bias':>12} {'bias mm':>11} {'MAE mm':>9}")
    print(report("all", d))
    for n in (1, 2, 3):
        print(report(f"{n} sublayer{'s' if n > 1 else ''}", d[d[:, 0] == n]))
    if look == "random":
        edges = np.linspace(0.08, 0.22, 4)  # random_machine's axial PSF range, in thirds
        for lo, hi in zip(edges[:-1], edges[1:]):
            print(report(f"axial PSF {lo:.3f}-{hi:.3f}", d[(d[:, 1] >= lo) & (d[:, 1] < hi)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
