"""Prepare the DL_Track aponeurosis images for the example: crop each scanner screenshot to its
B-mode region, as the device does, and split the images into a training and a held-out set.

    python examples/dltrack_apo/prepare.py --src ../shared/realdata/dltrack_apo --out build/dltrack_apo

writes OUT/train and OUT/heldout (images/, masks/, dataset.json: data sets `tlf-convert` reads)
and OUT/split.json (the stems of each part, the B-mode rectangle of each image, the settings).

Cropping: `edge.roi.detect_roi` finds the B-mode region of the screenshot and `edge.roi.crop`
cuts it out, blanking the pixels outside its outline; the mask is cut with the same region, so
the model is trained on what the device's ROI stage hands to the segmenter.

Split: images of one recording look alike but do not sit next to each other in the stem order,
so a split by stem alone would put near-copies on both sides. Images whose B-mode thumbnails
(48x48, normalised) correlate at or above --similar are joined into one group (transitively),
and whole groups, drawn with a seeded generator, go to the held-out part until it holds about
--holdout of the images. No held-out image then correlates that closely with a training image;
the script checks this and prints the largest cross-split correlation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # the TIFFs carry private tags OpenCV warns about

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from convert.data import iter_dataset, read_dataset_config, write_dataset  # noqa: E402
from edge.roi import crop, detect_roi  # noqa: E402

HERE = Path(__file__).resolve().parent
THUMB = 48


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A 48x48 grey thumbnail, zero mean and unit variance, flattened."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    t = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    return (t - t.mean()) / max(t.std(), 1e-6)


def look_alike_groups(thumbs: np.ndarray, threshold: float) -> np.ndarray:
    """A group number per image: images linked by a thumbnail correlation >= threshold share one."""
    corr = thumbs @ thumbs.T / thumbs.shape[1]
    parent = list(range(len(thumbs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(corr >= threshold, k=1))):
        parent[root(i)] = root(j)
    return np.unique([root(i) for i in range(len(thumbs))], return_inverse=True)[1]


def split_groups(groups: np.ndarray, holdout: float, seed: int) -> np.ndarray:
    """A bool per image, True for held-out: whole groups in a seeded order until ~holdout of the
    images (a group that would overshoot the target by more than 2 images is passed over)."""
    rng = np.random.default_rng(seed)
    want = max(1, round(holdout * len(groups)))
    held = np.zeros(len(groups), bool)
    for g in rng.permutation(groups.max() + 1):
        members = groups == g
        if held.sum() + members.sum() > want + 2:
            continue
        held |= members
        if held.sum() >= want:
            break
    return held


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", default=str(REPO.parent / "shared" / "realdata" / "dltrack_apo"),
                   help="the DL_Track folder (images/, masks/); it is only read")
    p.add_argument("--config", default=str(HERE / "dataset.toml"), help="its data-set config")
    p.add_argument("--out", default=str(REPO / "build" / "dltrack_apo"))
    p.add_argument("--holdout", type=float, default=0.2, help="fraction of the images held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--similar", type=float, default=0.8, help="thumbnail correlation that makes two images one group")
    p.add_argument("--no-crop", action="store_true", help="keep the whole screenshots (for comparison)")
    p.add_argument("--max-images", type=int, help="use only the first N images by stem (quick tests)")
    args = p.parse_args(argv)
    if not 0 < args.holdout < 1:
        p.error(f"--holdout must be between 0 and 1, not {args.holdout}")

    config = read_dataset_config(Path(args.config))
    stems, images, labels, rects, thumbs = [], [], [], [], []
    for stem, image, lab in iter_dataset(Path(args.src), config):
        if args.max_images is not None and len(stems) >= args.max_images:
            break
        roi = detect_roi(image)
        rect = list(roi.rect) if roi is not None else [0, 0, image.shape[1], image.shape[0]]
        cropped = (crop(image, roi), crop(lab, roi)) if roi is not None else (image, lab)
        thumbs.append(thumbnail(cropped[0]))  # the split compares B-mode regions, cropped or not
        if not args.no_crop:
            image, lab = cropped
        stems.append(stem)
        images.append(image)
        labels.append(lab)
        rects.append(rect)
    if len(stems) < 2:
        p.error(f"need at least 2 images, found {len(stems)} in {args.src!r}")

    thumbs = np.stack(thumbs)
    groups = look_alike_groups(thumbs, args.similar)
    held = split_groups(groups, args.holdout, args.seed)
    corr = thumbs @ thumbs.T / thumbs.shape[1]
    cross = float(corr[np.ix_(held, ~held)].max())
    if set(groups[held]) & set(groups[~held]) or cross >= args.similar:
        raise SystemExit(f"split leaks: a held-out image correlates {cross:.3f} with a training image")

    out = Path(args.out)
    parts = {}
    for name, sel in (("train", ~held), ("heldout", held)):
        idx = np.flatnonzero(sel)
        write_dataset(out / name, [images[i] for i in idx], [labels[i] for i in idx], config,
                      stems=[stems[i] for i in idx])
        parts[name] = [stems[i] for i in idx]
    info = {
        "source": str(args.src), "config": str(args.config), "crop": not args.no_crop, "seed": args.seed,
        "holdout": args.holdout, "similar": args.similar, "groups": int(groups.max() + 1),
        "max_cross_split_correlation": round(cross, 4), **parts,
        "rects": dict(zip(stems, rects)),
    }
    (out / "split.json").write_text(json.dumps(info, indent=1) + "\n")
    band = [float(lab.mean()) for lab in labels]
    print(f"{len(stems)} images in {groups.max() + 1} look-alike groups -> train {len(parts['train'])}, "
          f"held-out {len(parts['heldout'])} (seed {args.seed}); largest held-out/train thumbnail "
          f"correlation {cross:.3f} (< {args.similar}); {'cropped to the B-mode region' if not args.no_crop else 'whole screens'}, "
          f"band pixels {100 * np.mean(band):.1f}%; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
