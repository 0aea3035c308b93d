"""Validation reports: JSON, Markdown, a Bland-Altman plot and an overlay gallery of the worst frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

COLOURS = np.array(
    [[0, 0, 0], [0, 220, 255], [200, 80, 0], [0, 160, 0], [160, 0, 160], [0, 0, 200], [120, 120, 0], [255, 255, 255]],
    np.uint8,
)


def summary_of(report: dict) -> dict:
    """The report without its per-frame arrays (what goes into JSON and the manifest)."""
    return {k: v for k, v in report.items() if k != "frames"}


def write_report(report: dict, images: np.ndarray, labels: np.ndarray, out_dir: Path, failures: list[str]) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {**summary_of(report), "gate": {"passed": not failures, "failures": failures}}
    (out_dir / "validation.json").write_text(json.dumps(summary, indent=2) + "\n")
    bland_altman_png(report, out_dir / "bland_altman.png")
    worst_gallery(report, images, labels, out_dir / "worst_frames.jpg")
    (out_dir / "validation.md").write_text(markdown(summary))
    return summary


def markdown(s: dict) -> str:
    unit = s.get("unit", "mm")
    f, q = s["float"], s["int8"]
    rows = [
        "| metric | float | int8 |",
        "| --- | --- | --- |",
        f"| pixel accuracy | {f['pixel_accuracy']:.4f} | {q['pixel_accuracy']:.4f} |",
        f"| mean IoU | {f['mean_iou']:.4f} | {q['mean_iou']:.4f} |",
        f"| mean Dice | {f['mean_dice']:.4f} | {q['mean_dice']:.4f} |",
    ]
    for i, (fi, qi) in enumerate(zip(f["iou"], q["iou"])):
        rows.append(f"| IoU class {i} | {fi:.4f} | {qi:.4f} |")
    for i, (fi, qi) in enumerate(zip(f["dice"], q["dice"])):
        rows.append(f"| Dice class {i} | {fi:.4f} | {qi:.4f} |")
    th = ["", f"| thickness ({unit}) | n | bias | MAE | 95% limits of agreement |", "| --- | --- | --- | --- | --- |"]
    for name, e in s["thickness"].items():
        if e.get("n"):
            th.append(
                f"| {name.replace('_', ' ')} | {e['n']} | {e['bias']:+.4f} | {e['mae']:.4f} | {e['loa'][0]:+.4f} to {e['loa'][1]:+.4f} |"
            )
    if s.get("groups"):
        th += [
            "",
            f"| int8 by group | images | mean IoU | Dice per class | thickness n | bias ({unit}) | MAE ({unit}) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, g in s["groups"].items():
            e = g["int8_vs_truth"]
            err = f"{e['bias']:+.4f} | {e['mae']:.4f}" if e.get("n") else "- | -"
            th.append(
                f"| {name} | {g['images']} | {g['int8_mean_iou']:.4f} | {' / '.join(f'{d:.3f}' for d in g['int8_dice'])} "
                f"| {e.get('n', 0)} | {err} |"
            )
    gate = s["gate"]
    verdict = "PASSED" if gate["passed"] else "FAILED: " + "; ".join(gate["failures"])
    return "\n".join(
        [
            f"# Validation: float versus int8 on {s['images']} images",
            "",
            *rows,
            *th,
            "",
            f"int8 versus float pixel agreement: {s['int8_vs_float_pixel_agreement']:.4f}",
            "",
            f"Gate: {verdict}",
            "",
            "![Bland-Altman](bland_altman.png)",
            "",
            "![Worst frames](worst_frames.jpg)",
            "",
        ]
    )


def bland_altman_png(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fr = report["frames"]
    unit = report.get("unit", "mm")
    pairs = [
        ("int8 vs float", fr["thickness_int8"], fr["thickness_float"]),
        ("int8 vs truth", fr["thickness_int8"], fr["thickness_truth"]),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (title, a, b) in zip(axes, pairs):
        a, b = np.asarray(a, float), np.asarray(b, float)
        ok = ~(np.isnan(a) | np.isnan(b))
        mean, diff = (a[ok] + b[ok]) / 2, a[ok] - b[ok]
        ax.scatter(mean, diff, s=10)
        if diff.size > 1:
            bias, sd = diff.mean(), diff.std(ddof=1)
            for y, style in ((bias, "-"), (bias - 1.96 * sd, "--"), (bias + 1.96 * sd, "--")):
                ax.axhline(y, color="k", linestyle=style, linewidth=0.8)
        ax.set_title(f"Bland-Altman: {title}")
        ax.set_xlabel(f"mean thickness ({unit})")
        ax.set_ylabel(f"difference ({unit})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def overlay(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The image in grey with each class boundary drawn in its colour."""
    base = (
        cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
        if image.ndim == 2 or image.shape[-1] == 1
        else image.copy()
    )
    for c in range(1, int(labels.max()) + 1):
        contours, _ = cv2.findContours((labels == c).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(base, contours, -1, tuple(int(v) for v in COLOURS[c % len(COLOURS)]), 1)
    return base


def worst_gallery(report: dict, images: np.ndarray, labels: np.ndarray, path: Path, n: int = 8) -> None:
    """Truth (left) and int8 prediction (right) overlays for the n frames with the lowest int8 mean IoU."""
    iou = np.asarray(report["frames"]["int8_mean_iou"])
    pred = report["frames"]["int8_pred"]
    tiles = []
    for i in np.argsort(iou)[:n]:
        pair = np.hstack([overlay(images[i], labels[i]), overlay(images[i], pred[i])])
        cv2.putText(pair, f"#{i} mIoU {iou[i]:.3f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        tiles.append(pair)
    cv2.imwrite(str(path), np.vstack(tiles), [cv2.IMWRITE_JPEG_QUALITY, 85])  # speckle makes PNGs large
