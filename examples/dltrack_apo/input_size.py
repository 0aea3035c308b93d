"""What the model grid does to the aponeurosis bands, before any training: for whole screens and
for B-mode crops at several input sizes, the band thickness in model pixels and the best Dice a
perfect model on that grid could reach at native resolution.

    python examples/dltrack_apo/input_size.py build/dltrack_apo/train [--screens build/dltrack_apo_screens/train]

Per option: the median and 10th percentile of the band's vertical thickness in model pixels
(per column of the central half, labels resized by nearest neighbour as training does), the share
of those columns where the band is under 3 model pixels, and the ceiling Dice (the native mask
area-averaged onto the grid, brought back by linear interpolation and thresholded at 0.5,
against the native mask).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from convert.data import read_dataset  # noqa: E402


def runs_in_window(mask: np.ndarray) -> np.ndarray:
    """Lengths of the vertical band runs in the central half of the columns."""
    w = mask.shape[1]
    sub = mask[:, w // 4 : 3 * w // 4].astype(np.int8)
    pad = np.pad(sub, ((1, 1), (0, 0)))
    d = np.diff(pad, axis=0)
    starts = np.argwhere(d.T == 1)
    ends = np.argwhere(d.T == -1)
    return (ends[:, 1] - starts[:, 1]).astype(float)


def grid_figures(labels: list[np.ndarray], size: int) -> dict:
    runs, inter, total = [], 0.0, 0.0
    for lab in labels:
        h, w = lab.shape
        grid = cv2.resize(lab, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)
        runs.append(runs_in_window(grid))
        soft = cv2.resize(lab.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        back = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
        inter += float((back & (lab > 0)).sum())
        total += float(back.sum() + (lab > 0).sum())
    r = np.concatenate(runs)
    return {"median": float(np.median(r)), "p10": float(np.percentile(r, 10)), "under3": float((r < 3).mean()),
            "ceiling_dice": 2 * inter / total}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("crops", help="a prepared data set of B-mode crops (prepare.py)")
    p.add_argument("--screens", help="the same images as whole screens (prepare.py --no-crop)")
    p.add_argument("--sizes", default="192,256,384,512")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    sets = [("B-mode crop", read_dataset(Path(args.crops)).labels)]
    if args.screens:
        sets.insert(0, ("whole screen", read_dataset(Path(args.screens)).labels))
    native = np.concatenate([runs_in_window(lab) for lab in sets[-1][1]])
    print(f"native band thickness (px, vertical, central half): median {np.median(native):.1f}, "
          f"10th percentile {np.percentile(native, 10):.1f}")
    print("| input | size | band median (model px) | 10th pct | columns < 3 px | ceiling Dice |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, labels in sets:
        for size in sizes:
            f = grid_figures(labels, size)
            print(f"| {name} | {size} | {f['median']:.1f} | {f['p10']:.1f} | {100 * f['under3']:.1f}% | {f['ceiling_dice']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
