"""ROI tracking on phantom screens without a layout change, per scanner look: the region found
against the truth and the frames held back while the tracker was unsettled.

    python benchmarks/roi_stability.py [--presets default high_contrast ...] [--seeds 1 2 3] [--frames 60]
                                       [--size 1280x720]

Each clip is a moving scene at one depth on a screen of --size (no depth change), run through the
device's Prepare stage with the [roi] and [calibration] defaults. Printed per clip: the worst edge
error (px) of the region in effect, the detections that reported a change (none expected), and
the frames held back (`frames_layout_changing`; none expected).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.screen_accuracy import edge_error  # noqa: E402
from edge.sim import phantom
from edge.sim import phantom_screen  # noqa: E402
from edge.frame import Frame  # noqa: E402
from edge.screen.prepare import Prepare  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=sorted(phantom.PRESETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    print(f"{'preset':>14} {'seed':>4} {'worst ROI px':>12} {'changes':>7} {'held':>4}  first region found / truth")
    bad = 0
    for preset in args.presets:
        for seed in args.seeds:
            prepare = Prepare()
            worst, changes, first = 0, 0, None
            for shot in phantom_screen.screen_clip(seed, args.frames, size, machine=preset):
                frame, event = prepare(Frame(shot.image, 0.0, shot.index))
                if event is not None:
                    changes += not event.initial
                    first = first or (event.roi, shot.roi)
                if frame is not None:
                    worst = max(worst, edge_error(prepare.roi, shot.roi))
            bad += worst > 2 or changes > 0 or prepare.frames_layout_changing > 0
            print(f"{preset:>14} {seed:>4} {worst:>12} {changes:>7} {prepare.frames_layout_changing:>4}  "
                  f"{first[0] if first else None} / {first[1] if first else None}")
    print(f"clips with a region off by more than 2 px, a change or held frames: {bad} of {len(args.presets) * len(args.seeds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
