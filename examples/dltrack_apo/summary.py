"""Print the example's figures as Markdown: from a validated bundle (BUNDLE/validation/validation.json:
band Dice, mean IoU, band thickness errors, float versus int8), or, with --recipes, one row per
cross-validation folder (`tlf-convert cv` OUT/summary.json) comparing the recipes tried.

    python examples/dltrack_apo/summary.py build/dltrack_apo/bundle
    python examples/dltrack_apo/summary.py --recipes build/dltrack_apo/recipes/* [--out docs/PAGE.md]
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


def recipe_name(recipe: dict) -> str:
    """A short description of a cv folder's recipe: input, loss, class weights, augmentation, epochs."""
    o, p = recipe["options"], recipe["preprocess"]
    loss = {"ce": "cross-entropy", "dice_ce": "Dice + cross-entropy", "focal": "focal"}[o["loss"]]
    weights = f", class weights {','.join(f'{w:g}' for w in o['class_weights'])}" if o.get("class_weights") else ""
    aug = "augmented" if o.get("augment") else "no augmentation"
    lr = f"{o['learning_rate']:g}" + (f"→{o['final_learning_rate']:g}" if o.get("final_learning_rate") else "")
    return (f"{p['height']} px, base {o['base_filters']}, {loss}{weights}, {aug}, batch {o['batch_size']}, lr {lr}, "
            f"≤{o['epochs']} epochs (patience {o['patience']})")


def recipes_table(folders) -> str:
    """One row per cross-validation folder: its recipe and its figures over the folds done."""
    lines = ["| recipe | folds done | band Dice float / int8 | mean IoU float / int8 | band thickness MAE float / "
             "int8 (px) | training per fold (min) |", "| --- | --- | --- | --- | --- | --- |"]
    cpus = set()
    for folder in folders:
        path = Path(folder) / "summary.json"
        if not path.is_file():
            continue
        s = json.loads(path.read_text())
        cpus.add(s["cpu"])

        def ms(side, key, digits=3):
            d = s[side][key]
            return "-" if d["mean"] is None else f"{d['mean']:.{digits}f}" + (f" ± {d['sd']:.{digits}f}" if d["n"] > 1 else "")

        lines.append(f"| {recipe_name(s['recipe'])} | {', '.join(map(str, s['folds_done']))} | {ms('float', 'band_dice')} / "
                     f"{ms('int8', 'band_dice')} | {ms('float', 'mean_iou')} / {ms('int8', 'mean_iou')} | "
                     f"{ms('float', 'thickness_mae', 2)} / {ms('int8', 'thickness_mae', 2)} | "
                     f"{s['train_minutes']['mean']:.1f} |")
    lines += ["", f"CPU: {', '.join(sorted(cpus)) or '?'}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--recipes":
        folders, out = argv[1:], None
        if "--out" in folders:
            i = folders.index("--out")
            out, folders = Path(folders[i + 1]), folders[:i] + folders[i + 2:]
        text = recipes_table(sorted(folders))
        print(text)
        if out is not None:
            command = "python examples/dltrack_apo/summary.py " + " ".join(argv)
            out.write_text("# Recipes tried on the DL_Track aponeuroses\n\nGenerated by the command below from the "
                           "cross-validation folders it names (each written by `tlf-convert cv`, as "
                           "`examples/dltrack_apo/recipes.sh` runs them); do not edit by hand. Each recipe ran on the "
                           "folds it names of the same look-alike folds `run.sh` makes (fold 0: 76 training, 19 "
                           "validation and 24 held-out images); band Dice and mean IoU on the model grid, band "
                           "thickness per band in native pixels against the expert's masks at their own size."
                           f"\n\n```sh\n{command}\n```\n\n{text}\n")
            print(f"written to {out}")
        return 0
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
