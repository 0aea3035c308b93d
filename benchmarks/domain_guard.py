"""How often a bundle's out-of-domain guard (edge.measure.domain) flags the frames of some sources, each
frame taken through the runtime's ROI stage and segmented as on the cart.

    python benchmarks/domain_guard.py [--bundle edge/models/demo] SOURCE...

SOURCE: a source URL (phantom://screen?frames=60, a video, a .dcm: every frame) or a folder, whose
image and DICOM files are each read as a source of their own (first frame; every frame with
--all-frames).
Prints per source the frames flagged and which rule flagged them (nearest training image,
training images as a whole, model confidence), and the CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.model.bundle import DEMO_BUNDLE, load_bundle  # noqa: E402
from edge.sources.folder import IMAGE_SUFFIXES  # noqa: E402
from edge.measure.domain import MARGIN_FEATURES, MARGIN_LOW_IS_OUT  # noqa: E402
from edge.screen.prepare import Prepare  # noqa: E402
from edge.model.preprocess import to_model_image  # noqa: E402
from edge.model.segmenter import Segmenter  # noqa: E402
from edge.runtime.factory import open_source  # noqa: E402
from edge.host import cpu_name  # noqa: E402


def frames(url: str, every: bool):
    with open_source(url) as src:
        cropped, prep = bool(getattr(src, "cropped", False)), Prepare()
        while (f := src.read()) is not None:
            g, _ = prep(f, cropped)
            if g is not None:
                yield g
                if not every:
                    return


def urls(source: str) -> list[str]:
    p = Path(source)
    if p.is_dir():
        return [str(f) for f in sorted(p.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES + (".dcm",)]
    return [source]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="+")
    ap.add_argument("--bundle", default=str(DEMO_BUNDLE))
    ap.add_argument("--all-frames", action="store_true", help="every frame of a multi-frame file, not the first")
    args = ap.parse_args(argv)
    bundle = load_bundle(args.bundle)
    if bundle.domain is None:
        print(f"{args.bundle} records no domain statistics (tlf-convert domain)", file=sys.stderr)
        return 1
    seg, d = Segmenter(bundle, 2), bundle.domain
    cpu = cpu_name()
    print(f"bundle {args.bundle} (sha256 {bundle.sha256[:12]}); limits: nearest {d.distance_limit:.2f}, as a whole "
          f"{d.spread_limit:.2f}, margins {d.margin_limits}; CPU {cpu}")
    for source in args.sources:
        n = nearest = whole = margin = flagged = 0
        files = urls(source)
        for url in files:
            for f in frames(url, args.all_frames or files == [source]):
                im = to_model_image(f.image, seg.spec)
                c = d.check(im, seg.logits(seg.infer(im)), seg.logit_scale)
                n += 1
                flagged += c.out
                nearest += c.distance > c.distance_limit
                whole += c.spread > c.spread_limit
                margin += any((v < lim) if low else (v > lim) for v, lim, low in
                              zip(c.margins, c.margin_limits or (), MARGIN_LOW_IS_OUT))
        print(f"{source}: {flagged} of {n} frames flagged (nearest training image {nearest}, training images as a "
              f"whole {whole}, model confidence {margin}; {len(MARGIN_FEATURES)} margin summaries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
