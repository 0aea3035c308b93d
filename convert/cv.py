"""k-fold cross-validation of a training recipe on a labelled set: `tlf-convert cv`.

The images are grouped by look (convert.folds: near-copies of one recording stay together) and
whole groups are dealt to k folds. For each fold the other folds are the training part: its
look-alike groups are split again (about a fifth for validation, which picks the best epoch and
stops early, and on which the bundle's confidence margins are recorded); the model is trained,
quantized to an int8 bundle calibrated on the training part, and both float and int8 are scored
on the held-out fold exactly as `tlf-convert validate` scores them (convert.validate). Each fold
writes `fold_K/result.json` when it is done; a run started again skips the folds that are done
and resumes a fold's training from its last epoch, so an interrupted cross-validation loses at
most one epoch.

The summary gives, for float and int8, the mean and standard deviation over the folds of the
band Dice, the mean IoU and the band thickness MAE (every band of a two-class mask measured on
its own, edge.measure.bands), and the training time of each fold.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from convert.errors import ConvertError
from convert.folds import group_folds, largest_cross_correlation, look_alike_groups, split_groups, thumbnail
from edge.host import cpu_name

VALIDATION_SHARE = 0.2  # of the training part's images, in whole look-alike groups
FIGURES = ("band_dice", "mean_iou", "thickness_mae")


class CrossValidationError(ConvertError):
    """A cross-validation that cannot run or cannot resume."""


def read_set(folder, spec, config_path=None):
    """A labelled folder on the model grid: (stems, images N,H,W,C, labels N,H,W, config, native shapes,
    thumbnails of the native images for the look-alike groups, native label maps)."""
    from convert.data import iter_dataset, load_dataset_config, read_dataset_config
    from edge.model.preprocess import resize_labels, to_model_image

    config = read_dataset_config(Path(config_path)) if config_path else load_dataset_config(Path(folder))
    stems, images, labels, shapes, thumbs, native = [], [], [], [], [], []
    for stem, img, lab in iter_dataset(Path(folder), config):
        stems.append(stem)
        thumbs.append(thumbnail(img))
        native.append(lab)
        images.append(to_model_image(img, spec))
        labels.append(resize_labels(lab, spec))
        shapes.append(img.shape[:2])
    return stems, np.stack(images), np.stack(labels), config, shapes, np.stack(thumbs), native


def make_folds(thumbs: np.ndarray, folds: int, seed: int, similar: float):
    """(fold per image, look-alike group per image, thumbnails)."""
    groups = look_alike_groups(thumbs, similar)
    return group_folds(groups, folds, seed), groups, thumbs


def _plan(stems, fold_of, groups, thumbs, folds: int, seed: int, similar: float) -> dict:
    plan = {
        "folds": folds,
        "seed": seed,
        "similar": similar,
        "images": len(stems),
        "groups": int(groups.max()) + 1,
        "fold_of": {s: int(f) for s, f in zip(stems, fold_of)},
        "group_of": {s: int(g) for s, g in zip(stems, groups)},
        "fold_sizes": [int((fold_of == k).sum()) for k in range(folds)],
        "largest_cross_fold_correlation": [
            round(largest_cross_correlation(thumbs, fold_of == k), 4) for k in range(folds)
        ],
    }
    return plan


def _check_same(old: dict, new: dict, path: Path) -> None:
    for key in ("folds", "seed", "similar", "fold_of"):
        if old.get(key) != new.get(key):
            raise CrossValidationError(
                f"{str(path)!r} belongs to another cross-validation ({key} differs): give a new --out, or remove it"
            )


def _recipe(options, spec) -> dict:
    d = {"options": asdict(options), "preprocess": spec.to_dict()}
    return json.loads(json.dumps(d))


def cross_validate(
    data,
    out,
    spec,
    options,
    folds: int = 5,
    seed: int = 0,
    similar: float = 0.8,
    dataset_config=None,
    spacing: str | tuple[float, ...] = "native",
    limits=None,
    only=None,
    calib_n: int = 200,
    verbose: int = 2,
    log=print,
    revalidate: bool = False,
    requantize: bool = False,
    transpose_as_depth_to_space: bool = False,
) -> dict:
    """Run (or resume) the cross-validation; returns the summary (also written to OUT/summary.json).

    spacing: "native" (thickness in each image's own pixels), "model" (model pixels) or a
    (row, col) mm pair per model pixel. only: the fold numbers to run now (None: all); the
    summary covers the folds done so far. limits: the int8 gate's convert.validate.GateLimits.
    revalidate: score the folds done again (their models and bundles as they are), e.g. after
    a change of the validation itself; nothing is trained. requantize: quantize the folds done
    again from their trained models and score them, each new bundle and validation written
    beside the fold's and swapped in just before its result.json is replaced; nothing is trained.
    (A stop between those renames can leave the new validation beside the old bundle and result,
    until the fold is requantized again.)
    transpose_as_depth_to_space: quantize_to_bundle's export option, recorded in each result.
    """
    from convert.domain import record_domain
    from convert.quantize import load_keras_model, quantize_to_bundle
    from convert.report import write_report
    from convert.train import train
    from convert.validate import GateLimits, compare, gate
    from edge.model.bundle import load_bundle, update_manifest

    limits = limits or GateLimits()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stems, images, labels, config, shapes, thumbs, native = read_set(data, spec, dataset_config)
    classes = len(config.classes) if not config.legacy else int(labels.max()) + 1
    if classes != options.classes:
        raise CrossValidationError(f"the data set has {classes} classes but the recipe {options.classes}")
    fold_of, groups, thumbs = make_folds(thumbs, folds, seed, similar)
    plan = _plan(stems, fold_of, groups, thumbs, folds, seed, similar)
    plan_path = out / "folds.json"
    recipe = _recipe(options, spec)
    if plan_path.is_file():
        _check_same(json.loads(plan_path.read_text()), plan, plan_path)
        old_recipe = json.loads((out / "recipe.json").read_text()) if (out / "recipe.json").is_file() else None
        if old_recipe is not None and old_recipe != recipe:
            raise CrossValidationError(f"{str(out)!r} holds a cross-validation of another recipe: give a new --out")
    plan_path.write_text(json.dumps(plan, indent=1) + "\n")
    (out / "recipe.json").write_text(json.dumps(recipe, indent=1) + "\n")
    class_names = list(config.classes) if not config.legacy else None
    log(
        f"{len(stems)} images in {plan['groups']} look-alike groups (thumbnail correlation >= {similar}) -> "
        f"{folds} folds of {', '.join(map(str, plan['fold_sizes']))} images; largest held-out/training correlation "
        f"{max(plan['largest_cross_fold_correlation']):.3f}"
    )
    again = revalidate or requantize  # folds done are scored again, not skipped
    for k in range(folds) if only is None else only:
        if not 0 <= k < folds:
            raise CrossValidationError(f"fold {k} is not one of 0-{folds - 1}")
        fold = out / f"fold_{k}"
        if (fold / "result.json").is_file() and not again:
            log(f"fold {k}: done before, kept ({fold / 'result.json'})")
            continue
        if again and not (fold / "result.json").is_file():
            log(f"fold {k}: not done, not {'requantized' if requantize else 'revalidated'}")
            continue
        test = fold_of == k
        rest = np.flatnonzero(~test)
        inner_val = rest[split_groups(groups[rest], VALIDATION_SHARE, seed + k)]
        inner_train = np.setdiff1d(rest, inner_val)
        log(f"fold {k}: training on {inner_train.size} images, validation {inner_val.size}, held out {int(test.sum())}")
        if again:
            before = json.loads((fold / "result.json").read_text())
            model = load_keras_model(fold / "model" / "model.keras")
            train_s, quantize_s, resumed = (
                before["seconds"]["train"],
                before["seconds"]["quantize_and_domain"],
                before["resumed"],
            )
        else:
            resumed = (fold / "model" / "history.csv").is_file()
            t0 = time.monotonic()
            best = train(
                fold / "model",
                spec,
                replace(options, seed=options.seed + k),
                (images[inner_train], labels[inner_train]),
                (images[inner_val], labels[inner_val]),
                verbose=verbose,
                resume=resumed,
            )
            train_s = time.monotonic() - t0
            model = load_keras_model(best)
        # --requantize writes the new bundle and its validation beside the fold's own, swapped in
        # once scored: a run stopped meanwhile leaves the fold as its result.json describes it
        staged = again and requantize
        bundle_dir, validation_dir = (fold / (name + STAGED if staged else name) for name in ("bundle", "validation"))
        if staged:  # what a stopped --requantize left: a folder set aside, or new ones not swapped in
            for name in ("bundle", "validation"):
                _restore_aside(fold / name)
                shutil.rmtree(fold / (name + STAGED), ignore_errors=True)
        if again and not requantize:
            bundle = load_bundle(fold / "bundle")
        else:
            t1 = time.monotonic()
            calib = images[rest][:calib_n]
            bundle = quantize_to_bundle(
                model,
                calib,
                spec,
                bundle_dir,
                classes=class_names,
                reference=calib,
                extra={
                    "name": f"cv fold {k}",
                    "training": {
                        "cross_validation": {"fold": k, "folds": folds, "data": str(data)},
                        "train_images": [stems[i] for i in inner_train],
                        "validation_images": [stems[i] for i in inner_val],
                    },
                },
                transpose_as_depth_to_space=transpose_as_depth_to_space,
            )
            bundle = record_domain(
                bundle,
                images[inner_train],
                images[inner_val],
                f"training images of cv fold {k} of {data}",
                f"validation images of cv fold {k}",
            )
            quantize_s = time.monotonic() - t1
        t2 = time.monotonic()
        sel = np.flatnonzero(test)
        spacings, unit = _spacings(spacing, [shapes[i] for i in sel], spec)
        report = compare(
            bundle,
            model,
            images[sel],
            labels[sel],
            spacings,
            unit=unit,
            native_labels=[native[i] for i in sel] if classes == 2 else None,
        )
        failures = gate(report, limits)
        summary = write_report(report, images[sel], labels[sel], validation_dir, failures)
        bundle = update_manifest(
            bundle,
            validation={
                "set": f"cv fold {k} held out: {int(test.sum())} images of {data}",
                "limits": vars(limits),
                **summary,
            },
        )
        validate_s = time.monotonic() - t2
        train_info = json.loads((fold / "model" / "train.json").read_text())
        result = {
            "fold": k,
            "held_out": [stems[i] for i in sel],
            "figures": fold_figures(summary, bundle.tlf_class),
            "selection": train_info.get("selection"),
            "gate": summary["gate"],
            "unit": summary["unit"],
            "seconds": {
                "train": round(train_s, 1),
                "quantize_and_domain": round(quantize_s, 1),
                "validate": round(validate_s, 1),
            },
            "resumed": resumed,
            "cpu": cpu_name(),
            "bundle_sha256": bundle.sha256,
            "export": {
                "transpose_as_depth_to_space": _transpose_rewritten(bundle),
                "transpose_conv_blockwise": int(bundle.manifest.get("export", {}).get("transpose_conv_blockwise", 0)),
            },
        }
        fold_plot(fold / "model" / "history.csv", report, result, fold / "fold.png")
        if staged:  # the new folders in place, then at once the result that describes them
            _swap_in(validation_dir, fold / "validation")
            _swap_in(bundle_dir, fold / "bundle")
        part = fold / "result.json.part"
        part.write_text(json.dumps(result, indent=1) + "\n")
        part.replace(fold / "result.json")
        f, q = result["figures"]["float"], result["figures"]["int8"]
        log(
            f"fold {k}: band Dice float {f['band_dice']:.3f} int8 {q['band_dice']:.3f}; mean IoU {f['mean_iou']:.3f} / "
            f"{q['mean_iou']:.3f}; thickness MAE {_fmt(f['thickness_mae'])} / {_fmt(q['thickness_mae'])} "
            f"{result['unit']}; trained in {train_s / 60:.1f} min"
        )
    return summarise(out)


STAGED = ".requantized"  # suffix of the folders a --requantize writes before they replace the fold's


ASIDE = ".replaced"  # suffix of a fold's folder set aside while its replacement moves in


def _swap_in(new: Path, old: Path) -> Path:
    """Folder `new` in place of folder `old` (set aside first, then removed); `old`'s path."""
    aside = old.with_name(old.name + ASIDE)
    shutil.rmtree(aside, ignore_errors=True)
    if old.exists():
        old.rename(aside)
    new.rename(old)
    shutil.rmtree(aside, ignore_errors=True)
    return old


def _restore_aside(folder: Path) -> None:
    """A fold's folder back in place when a stopped swap left it set aside and nothing in its place."""
    aside = folder.with_name(folder.name + ASIDE)
    if aside.is_dir() and not folder.exists():
        aside.rename(folder)


def _transpose_rewritten(bundle) -> bool:
    """Whether the bundle's model was exported with --transpose-as-depth-to-space, as its manifest records it."""
    return bool(bundle.manifest.get("export", {}).get("transpose_as_depth_to_space", False))


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _spacings(spacing, shapes, spec):
    if spacing == "native":
        return [(h / spec.height, w / spec.width) for h, w in shapes], "px"
    if spacing == "model":
        return [None] * len(shapes), "px"
    return [tuple(spacing)] * len(shapes), "mm"


def fold_figures(summary: dict, band: int) -> dict:
    """Band Dice, mean IoU and band thickness MAE of float and int8 from a validation summary."""
    out: dict = {}
    for side, key in (("float", "float_vs_truth"), ("int8", "int8_vs_truth")):
        th = summary["thickness"][key]
        out[side] = {
            "band_dice": summary[side]["dice"][band],
            "mean_iou": summary[side]["mean_iou"],
            "thickness_mae": th.get("mae"),
            "thickness_bias": th.get("bias"),
            "bands_measured": th.get("n", 0),
        }
    bands = summary.get("bands") or {}
    out["bands_true"] = bands.get("true")
    out["int8_vs_float_pixel_agreement"] = summary["int8_vs_float_pixel_agreement"]
    return out


def summarise(out) -> dict:
    """Mean and standard deviation over the folds done in OUT; written to OUT/summary.json and
    OUT/summary.md."""
    out = Path(out)
    plan = json.loads((out / "folds.json").read_text())
    results = [
        json.loads((out / f"fold_{k}" / "result.json").read_text())
        for k in range(plan["folds"])
        if (out / f"fold_{k}" / "result.json").is_file()
    ]
    stats: dict = {}
    for side in ("float", "int8"):
        stats[side] = {}
        for name in FIGURES:
            values = [r["figures"][side][name] for r in results if r["figures"][side][name] is not None]
            stats[side][name] = _mean_sd(values)
    drops = [abs(r["figures"]["float"]["band_dice"] - r["figures"]["int8"]["band_dice"]) for r in results]
    # a resumed fold timed only its last part: its time says nothing of a whole training
    train_min = [r["seconds"]["train"] / 60 for r in results if not r.get("resumed")]
    summary = {
        "folds_done": [r["fold"] for r in results],
        "folds": plan["folds"],
        "images": plan["images"],
        "groups": plan["groups"],
        "fold_sizes": plan["fold_sizes"],
        "unit": results[0]["unit"] if results else None,
        **stats,
        "int8_band_dice_drop": _mean_sd(drops),
        "max_int8_band_dice_drop": max(drops) if drops else None,
        "train_minutes": _mean_sd(train_min),
        "max_train_minutes": max(train_min) if train_min else None,
        "cpu": cpu_name(),
        # the folds' export options (folds of older runs recorded none: the default)
        "transpose_as_depth_to_space": sorted(
            {r.get("export", {}).get("transpose_as_depth_to_space", False) for r in results}
        ),
        "per_fold": results,
        "recipe": json.loads((out / "recipe.json").read_text()) if (out / "recipe.json").is_file() else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary) + "\n")
    return summary


def _mean_sd(values) -> dict:
    v = np.asarray(values, float)
    if v.size == 0:
        return {"mean": None, "sd": None, "n": 0}
    return {
        "mean": round(float(v.mean()), 4),
        "sd": round(float(v.std(ddof=1)) if v.size > 1 else 0.0, 4),
        "n": int(v.size),
    }


def _ms(d: dict, digits: int = 3) -> str:
    if d["mean"] is None:
        return "-"
    return f"{d['mean']:.{digits}f} ± {d['sd']:.{digits}f}"


def summary_markdown(s: dict) -> str:
    """The summary table (mean ± sd over the folds done) and one row per fold."""
    unit = s.get("unit") or "px"
    n = len(s["folds_done"])
    lines = [
        f"| figure (mean ± sd over {n} fold{'s' if n != 1 else ''}) | float | int8 |",
        "| --- | --- | --- |",
        f"| band Dice | {_ms(s['float']['band_dice'])} | {_ms(s['int8']['band_dice'])} |",
        f"| mean IoU | {_ms(s['float']['mean_iou'])} | {_ms(s['int8']['mean_iou'])} |",
        f"| band thickness MAE vs mask ({unit}) | {_ms(s['float']['thickness_mae'], 2)} | "
        f"{_ms(s['int8']['thickness_mae'], 2)} |",
        f"| band Dice gap between float and int8 (absolute) | | {_ms(s['int8_band_dice_drop'], 4)} (largest "
        f"{s['max_int8_band_dice_drop']:.4f}) |"
        if s["max_int8_band_dice_drop"] is not None
        else "",
        f"| training time per fold (min) | {_ms(s['train_minutes'], 1)} (longest {s['max_train_minutes']:.1f}"
        f"{_resumed_note(s)}) | |"
        if s["max_train_minutes"] is not None
        else "",
        "",
        f"| fold | held out | band Dice float / int8 | mean IoU float / int8 | thickness MAE float / int8 ({unit}) "
        "| bands measured float / int8 (of true) | best epoch (of run) | training (min) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in s["per_fold"]:
        f, q = r["figures"]["float"], r["figures"]["int8"]
        sel = r.get("selection") or {}
        lines.append(
            f"| {r['fold']} | {len(r['held_out'])} | {f['band_dice']:.3f} / {q['band_dice']:.3f} | "
            f"{f['mean_iou']:.3f} / {q['mean_iou']:.3f} | {_fmt(f['thickness_mae'])} / {_fmt(q['thickness_mae'])} "
            f"| {f['bands_measured']} / {q['bands_measured']} (of {r['figures'].get('bands_true')}) | "
            f"{sel.get('epoch')} ({sel.get('epochs_run')}) | {r['seconds']['train'] / 60:.1f}"
            f"{' (resumed: its last part only)' if r.get('resumed') else ''} |"
        )
    lines.append("")
    rewritten = s.get("transpose_as_depth_to_space", [])
    if True in rewritten:
        lines.append(
            "Export: --transpose-as-depth-to-space"
            if rewritten == [True]
            else "Export: MIXED, some folds with --transpose-as-depth-to-space and some without (see each result.json)"
        )
        lines.append("")
    lines.append(f"CPU: {s['cpu']}")
    return "\n".join(x for x in lines if x is not None)


def _resumed_note(s: dict) -> str:
    n = sum(1 for r in s["per_fold"] if r.get("resumed"))
    return f"; over the {s['train_minutes']['n']} folds trained in one go, not the {n} resumed" if n else ""


def fold_plot(history_csv: Path, report: dict, result: dict, png: Path) -> None:
    """One fold at a glance: the validation figures per epoch (the selected epoch marked), and
    the int8 band thickness against the mask's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convert.train import read_history

    rows = read_history(history_csv) if history_csv.is_file() else []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    if rows:
        epochs = [r["epoch"] + 1 for r in rows]
        for key, name in (("val_band_dice", "validation band Dice"), ("val_mean_iou", "validation mean IoU")):
            if key in rows[0]:
                axes[0].plot(epochs, [r[key] for r in rows], label=name)
        sel = result.get("selection") or {}
        if sel.get("epoch"):
            axes[0].axvline(sel["epoch"], color="k", linestyle=":", linewidth=0.8, label=f"selected ({sel['figure']})")
        axes[0].set_xlabel("epoch")
        axes[0].set_ylim(0, 1)
        axes[0].legend(loc="lower right")
    fr = report["frames"]
    q, t = np.asarray(fr["thickness_int8"], float), np.asarray(fr["thickness_truth"], float)
    ok = np.isfinite(q) & np.isfinite(t)
    axes[1].scatter(t[ok], q[ok], s=12)
    if ok.any():
        lo, hi = float(min(t[ok].min(), q[ok].min())), float(max(t[ok].max(), q[ok].max()))
        axes[1].plot([lo, hi], [lo, hi], "k--", linewidth=0.8)
    unit = result["unit"]
    axes[1].set_xlabel(f"band thickness on the mask ({unit})")
    axes[1].set_ylabel(f"int8 band thickness ({unit})")
    f = result["figures"]["int8"]
    axes[1].set_title(
        f"int8: band Dice {f['band_dice']:.3f}, MAE {_fmt(f['thickness_mae'])} {unit} (n={f['bands_measured']})",
        fontsize=10,
    )
    fig.suptitle(f"fold {result['fold']}: {len(result['held_out'])} held-out images", fontsize=11)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


TARGET_KEYS = {
    "band_dice": ("int8 band Dice (mean over folds)", lambda s: s["int8"]["band_dice"]["mean"]),
    "float_band_dice": ("float band Dice (mean over folds)", lambda s: s["float"]["band_dice"]["mean"]),
    "thickness_mae": ("int8 band thickness MAE (mean over folds)", lambda s: s["int8"]["thickness_mae"]["mean"]),
    "int8_dice_drop": ("band Dice gap between float and int8 (largest fold)", lambda s: s["max_int8_band_dice_drop"]),
    "fold_minutes": ("training time of a fold, min (longest)", lambda s: s["max_train_minutes"]),
}


def parse_targets(text: str | None) -> list[tuple[str, str, float]]:
    """'band_dice>=0.8,thickness_mae<=1.5' -> [(key, op, value), ...]."""
    out = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        for op in (">=", "<="):
            if op in part:
                key, _, value = part.partition(op)
                key = key.strip()
                if key not in TARGET_KEYS:
                    raise ConvertError(f"unknown target {key!r}; targets are {', '.join(TARGET_KEYS)}")
                try:
                    out.append((key, op, float(value)))
                except ValueError:
                    raise ConvertError(f"target {part!r}: {value!r} is not a number") from None
                break
        else:
            raise ConvertError(f"target {part!r} is not NAME>=VALUE or NAME<=VALUE")
    return out


def target_lines(summary: dict, targets) -> list[str]:
    """A Markdown row per target: the figure, the target, met or missed and by how much."""
    rows = ["| target | measured | verdict |", "| --- | --- | --- |"]
    for key, op, value in targets:
        name, get = TARGET_KEYS[key]
        got = get(summary)
        if got is None:
            rows.append(f"| {name} {op} {value:g} | - | not measured |")
            continue
        met = got >= value if op == ">=" else got <= value
        rows.append(f"| {name} {op} {value:g} | {got:.4g} | {'met' if met else f'missed by {abs(got - value):.4g}'} |")
    return rows


def docs_page(summary: dict, out: Path, page: Path, title: str, command: str, targets=()) -> Path:
    """A Markdown page of the cross-validation (its command, CPU, table, targets, a figure per
    fold copied beside it, the recipe), written by the run that measured it."""
    page = Path(page)
    figures = page.parent / page.stem
    figures.mkdir(parents=True, exist_ok=True)
    fold_images = []
    for r in summary["per_fold"]:
        src = Path(out) / f"fold_{r['fold']}" / "fold.png"
        if src.is_file():
            dst = figures / f"fold_{r['fold']}.png"
            shutil.copy(src, dst)
            fold_images.append(f"![fold {r['fold']}]({figures.name}/{dst.name})")
    recipe = summary.get("recipe") or {}
    options = recipe.get("options", {})
    aug = options.get("augment")
    lines = [
        f"# {title}",
        "",
        "Generated by the command below, which measured every figure on this page; do not edit by hand.",
        "",
        "```sh",
        command,
        "```",
        "",
        f"{summary['images']} labelled images in {summary['groups']} look-alike groups, {summary['folds']} folds of "
        f"{', '.join(map(str, summary['fold_sizes']))} images (whole groups per fold). Each fold: trained on the "
        "other folds (a fifth of their groups kept for validation: best epoch, early stopping, confidence "
        "margins), quantized to int8 calibrated on them, scored on the held-out fold. Thickness per band, in "
        f"{summary['unit']}.",
        "",
        summary_markdown(summary),
        "",
    ]
    if targets:
        lines += ["## Targets", "", *target_lines(summary, targets), ""]
    lines += [
        "## Recipe",
        "",
        f"- U-Net base {options.get('base_filters')} filters, depth {options.get('depth')}, input "
        f"{recipe.get('preprocess', {}).get('height')}x{recipe.get('preprocess', {}).get('width')}, batch "
        f"{options.get('batch_size')}, Adam {options.get('learning_rate')}"
        + (f" decaying to {options['final_learning_rate']}" if options.get("final_learning_rate") else "")
        + f", up to {options.get('epochs')} epochs, patience {options.get('patience')}",
        f"- loss {options.get('loss')}"
        + (f" (Dice weight {options.get('dice_weight')})" if options.get("loss") == "dice_ce" else "")
        + (f" (gamma {options.get('focal_gamma')})" if options.get("loss") == "focal" else "")
        + f", class weights {options.get('class_weights') or 'none'}, best epoch by "
        + (options.get("select") or ("band Dice" if options.get("classes") == 2 else "mean IoU") + " (the default)"),
        "- augmentation (convert/augment.py): " + (", ".join(f"{k} {v}" for k, v in aug.items()) if aug else "none"),
        "",
    ]
    if (figures / "augment_sheet.png").is_file():  # `tlf-convert augment-sheet` beside the page
        lines += [
            "Training samples as the augmentation draws them (each row: an image, then augmented copies with "
            "their label outlines):",
            "",
            f"![augmented samples]({figures.name}/augment_sheet.png)",
            "",
        ]
    lines += [
        "## Per fold",
        "",
        "Left: the validation figures per epoch, the epoch kept marked; right: the int8 model's band "
        "thickness against the mask's, one point per measured band of the held-out images.",
        "",
        *fold_images,
        "",
    ]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines))
    return page


def command_line(argv) -> str:
    return "tlf-convert " + " ".join(_quote(a) for a in argv)


def _quote(a: str) -> str:
    import shlex

    return shlex.quote(a)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: tlf-convert cv")
