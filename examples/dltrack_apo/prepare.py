"""Prepare the DL_Track aponeurosis images for the example: crop each scanner screenshot to its
B-mode region, as the device does, and split the images into a training and a held-out set.

    python examples/dltrack_apo/prepare.py --src ../shared/realdata/dltrack_apo --out build/dltrack_apo

writes OUT/train and OUT/heldout (images/, masks/, dataset.json: data sets `tlf-convert` reads)
and OUT/split.json (the stems of each part, the B-mode rectangle of each image, the settings).
With --all, every cropped image goes to OUT/all instead (for `tlf-convert cv`, which makes its
own look-alike folds of them).

Cropping: `edge.screen.roi.detect_roi` finds the B-mode region of the screenshot and `edge.screen.roi.crop`
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

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from convert.data import iter_dataset, read_dataset_config, write_dataset  # noqa: E402
from convert.folds import largest_cross_correlation, look_alike_groups, split_groups, thumbnail  # noqa: E402
from edge.screen.roi import crop, detect_roi  # noqa: E402

HERE = Path(__file__).resolve().parent


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
    p.add_argument("--all", action="store_true", help="write every image to OUT/all, unsplit (for tlf-convert cv)")
    args = p.parse_args(argv)
    if not args.all and not 0 < args.holdout < 1:
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
    out = Path(args.out)
    if args.all:
        write_dataset(out / "all", images, labels, config, stems=stems)
        info = {"source": str(args.src), "config": str(args.config), "crop": not args.no_crop, "all": stems,
                "similar": args.similar, "groups": int(groups.max() + 1), "rects": dict(zip(stems, rects))}
        (out / "split.json").write_text(json.dumps(info, indent=1) + "\n")
        print(f"{len(stems)} images ({groups.max() + 1} look-alike groups at {args.similar}), "
              f"{'cropped to the B-mode region' if not args.no_crop else 'whole screens'}, written to {out / 'all'}")
        return 0
    held = split_groups(groups, args.holdout, args.seed)
    cross = largest_cross_correlation(thumbs, held)
    if set(groups[held]) & set(groups[~held]) or cross >= args.similar:
        raise SystemExit(f"split leaks: a held-out image correlates {cross:.3f} with a training image")

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
