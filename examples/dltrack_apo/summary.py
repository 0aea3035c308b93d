"""Print the example's figures from a validated bundle (BUNDLE/validation/validation.json) as a
Markdown table: band Dice, mean IoU, band thickness errors, float versus int8.

    python examples/dltrack_apo/summary.py build/dltrack_apo/bundle
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DEPTH_NAMES = {"1": "1st (most superficial)", "2": "2nd", "3": "3rd", "4": "4th"}


def _err(e: dict) -> str:
    return f"{e['bias']:+.2f} / {e['mae']:.2f} (n={e['n']})" if e.get("n") else "- (n=0)"


def table(v: dict, manifest: dict) -> str:
    band = int(manifest.get("tlf_class", 1))
    name = manifest["classes"][band]
    f, q, th, unit = v["float"], v["int8"], v["thickness"], v.get("unit", "px")
    lines = [
        f"| figure ({v['images']} held-out images) | float | int8 |",
        "| --- | --- | --- |",
        f"| {name} Dice | {f['dice'][band]:.3f} | {q['dice'][band]:.3f} |",
        f"| {name} IoU | {f['iou'][band]:.3f} | {q['iou'][band]:.3f} |",
        f"| mean IoU (both classes) | {f['mean_iou']:.3f} | {q['mean_iou']:.3f} |",
        f"| band thickness vs mask, bias / MAE ({unit}) | {_err(th['float_vs_truth'])} | {_err(th['int8_vs_truth'])} |",
        f"| int8 vs float: mean IoU drop, thickness bias / MAE ({unit}) | | "
        f"{f['mean_iou'] - q['mean_iou']:+.4f}, {_err(th['int8_vs_float'])} |",
        f"| int8 vs float pixel agreement | | {v['int8_vs_float_pixel_agreement']:.4f} |",
    ]
    bands = v.get("bands")
    if bands:
        lines.append(f"| bands in the masks / measured on the mask / on float / on int8 | | {bands['true']} / "
                     f"{bands['truth_measured']} / {bands['float_measured']} / {bands['int8_measured']} |")
        for d, e in bands["by_depth"].items():
            lines.append(f"| {DEPTH_NAMES.get(d, d + 'th')} band ({e.get('true', '?')} in the masks): "
                         f"thickness vs mask, bias / MAE ({unit}) | "
                         f"{_err(e['float_vs_truth'])} | {_err(e['int8_vs_truth'])} |")
    gate = v.get("gate", {})
    verdict = "passed" if gate.get("passed") else "FAILED: " + "; ".join(gate.get("failures", []))
    lines += ["", f"int8 gate (mean IoU drop <= {v.get('limits', {}).get('max_miou_drop', '?')}, |thickness bias| <= "
                  f"{v.get('limits', {}).get('max_thickness_bias', '?')} {unit}): {verdict}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    bundle = Path(argv[0])
    manifest = json.loads((bundle / "manifest.json").read_text())
    validation = manifest.get("validation")
    if not validation:
        print(f"{bundle} has not been validated (no 'validation' in its manifest)", file=sys.stderr)
        return 1
    print(table(validation, manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
