"""Float versus int8 agreement on a labelled set, computed with the device's own kernels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.frame import Frame
from edge.measure.bands import band_thickness, band_zones
from edge.measure.metrics import scores
from edge.measure.thickness import ThicknessOptions, measure_thickness
from edge.model.bundle import Bundle
from edge.model.preprocess import to_float
from edge.model.segmenter import Segmenter, scores_in_logit_units
from edge.runtime.chain import ChainOptions, FrameChain, band_results


def compare(
    bundle: Bundle,
    float_model,
    images: np.ndarray,
    labels: np.ndarray,
    spacings,
    threads: int = 2,
    groups=None,
    unit: str | None = None,
    native_labels=None,
) -> dict:
    """Scores of the float model and of the bundle's int8 model against the labels, and thickness errors.
    The int8 model runs through the device's per-frame chain (edge.runtime.chain, from the model
    image on); the float model's scores are measured with the same measurement.

    images: uint8 (N,H,W,C) model images; labels: (N,H,W); spacings: per-image (row, col) mm per
    model pixel, or None for pixel units. groups: an optional name per image (e.g. the scanner
    preset); the int8 scores and thickness errors are then also given per group. unit: the name
    of the thickness unit when spacings are not mm (e.g. "px" for native image pixels).

    A two-class model (background and band) is measured per band: every band of the true mask
    that spans the measurement window is one thickness sample (see edge.measure.bands), so the
    thickness figures count bands, not images; a model of three or more classes gives one
    sample per image. native_labels: each image's mask at its own size (two-class models): the
    true thickness of each band is then measured on it, where the expert drew it, instead of on
    the mask resampled to the model grid (nearest neighbour moves each edge by up to half a
    model pixel, several native pixels on a small grid); its bands are matched to the grid's
    by depth (`native_band_thickness`).
    """
    seg = Segmenter(bundle, threads)
    classes = seg.classes
    # The int8 side through the device's own per-frame chain, each image on its own; the bundle's
    # thickness response only where the spacing is mm (it is a function of mm per model row).
    chain = FrameChain(seg, ChainOptions(independent=True, thickness_response=unit in (None, "mm")))
    depth: list[int]  # each band's depth rank in its image (two-class models)
    f_pred, q_pred, f_th, q_th, t_th, owner, depth = [], [], [], [], [], [], []
    q_drawn = []  # int8 thickness without the bundle's thickness response (when it has one)
    for i, (img, lab, sp) in enumerate(zip(images, labels, spacings)):
        # Measure on scores in logit units, as the runtime does: softmax and sigmoid probabilities
        # become log-probabilities (their differences are the logit differences).
        logits_f = scores_in_logit_units(
            np.asarray(float_model(to_float(img, bundle.spec)[None], training=False))[0], seg.output_kind
        )
        result = chain.from_model_image(Frame(img, 0.0, i, sp), img)
        q = result.segmentation
        f_pred.append(np.argmax(logits_f, -1))
        q_pred.append(q.labels)
        logits_q = q.logits
        tlf = bundle.tlf_class
        # The device applies the bundle's thickness response (a function of mm per model row) only
        # in mm; float is measured alike, so int8-float stays a comparison of the models.
        cal = seg.response if unit in (None, "mm") and sp is not None else None
        if classes == 2:
            zones = band_zones(lab, tlf)
            f_th += band_thickness(f_pred[-1], zones, logits_f, sp, band=tlf, response=cal, image=img)
            q_th += band_thickness(
                q_pred[-1], zones, logits_q, sp, logit_scale=seg.logit_scale, band=tlf, response=cal, image=img
            )
            if native_labels is not None:
                t_th += native_band_thickness(native_labels[i], lab, zones, sp, tlf)
            else:
                t_th += band_thickness(lab, zones, None, sp, band=tlf)
            owner += [i] * len(zones)
            depth += range(1, len(zones) + 1)
            continue
        f_th.append(
            measure_thickness(f_pred[-1].astype(np.uint8), logits_f, sp, tlf=tlf, response=cal, image=img).value
        )
        q_th.append(result.results[0].value)
        if cal is not None:  # the same band as drawn, before the response
            q_drawn.append(band_results(q, ThicknessOptions(), tlf, classes, with_response=False)[0].value)
        t_th.append(measure_thickness(lab, None, sp, tlf=tlf, classes=classes).value)
        owner.append(i)
    f_pred, q_pred = np.stack(f_pred), np.stack(q_pred)
    f_th, q_th, t_th = (np.asarray(v, np.float64) for v in (f_th, q_th, t_th))
    owner = np.asarray(owner, int)
    per_frame_iou = [scores(lab, q, classes)["mean_iou"] for lab, q in zip(labels, q_pred)]
    frames = {
        "int8_mean_iou": per_frame_iou,
        "thickness_float": f_th.tolist(),
        "thickness_int8": q_th.tolist(),
        "thickness_truth": t_th.tolist(),
        "int8_pred": q_pred,
    }
    by_group = {}
    if groups is not None:
        names = np.asarray(groups)
        for name in sorted(set(groups)):
            sel = names == name
            sc = scores(labels[sel], q_pred[sel], classes)
            by_group[str(name)] = {
                "images": int(sel.sum()),
                "int8_mean_iou": round(sc["mean_iou"], 4),
                "int8_dice": [round(d, 4) for d in sc["dice"]],
                "int8_vs_truth": _errors(q_th[sel[owner]], t_th[sel[owner]]),
            }
    return {
        "images": int(len(images)),
        **({"groups": by_group} if by_group else {}),
        "float": scores(labels, f_pred, classes),
        "int8": scores(labels, q_pred, classes),
        "int8_vs_float_pixel_agreement": float((f_pred == q_pred).mean()),
        "thickness": {
            "float_vs_truth": _errors(f_th, t_th),
            "int8_vs_truth": _errors(q_th, t_th),
            "int8_vs_float": _errors(q_th, f_th),
            **(
                {"int8_vs_truth_without_thickness_calibration": _errors(np.asarray(q_drawn, np.float64), t_th)}
                if q_drawn
                else {}
            ),
        },
        **({"bands": _by_depth(depth, f_th, q_th, t_th)} if classes == 2 else {}),
        "unit": unit or ("mm" if spacings and spacings[0] is not None else "px"),
        **(
            {"truth_thickness_on": "native masks" if native_labels is not None else "masks on the model grid"}
            if classes == 2
            else {}
        ),
        "frames": frames,
    }


MATCH_ROWS = 2.0  # model rows: a native band this close (centre to centre) to a grid band is the same band


def native_band_thickness(
    native: np.ndarray, grid: np.ndarray, zones: list[np.ndarray], spacing, band: int = 1
) -> list[float]:
    """The thickness of each grid zone's band measured on the native-size mask (NaN where no
    native band lies within MATCH_ROWS of it, or the measurement rejects it).

    spacing: (row, col) units per model pixel, or None (model pixels); the native mask's own
    pixels are that times the model grid over the native size.
    """
    gh, gw = grid.shape
    nh, nw = native.shape
    fy, fx = gh / nh, gw / nw
    native_zones = band_zones(native, band)
    sp = None if spacing is None else (spacing[0] * fy, spacing[1] * fx)
    if spacing is None:
        sp = (fy, fx)  # model pixels: a native row is fy model rows
    values = band_thickness(native, native_zones, None, sp, band=band)

    def centre(z, lab, scale):
        rows = np.nonzero(z & (lab == band))[0]
        return rows.mean() * scale if rows.size else np.nan

    native_centres = [centre(z, native, fy) for z in native_zones]
    out = []
    for z in zones:
        c = centre(z, grid, 1.0)
        d = [abs(c - n) for n in native_centres]
        j = int(np.argmin(d)) if d else -1
        out.append(values[j] if j >= 0 and d[j] <= MATCH_ROWS else float("nan"))
    return out


def _by_depth(depth: list[int], f_th: np.ndarray, q_th: np.ndarray, t_th: np.ndarray) -> dict:
    """Band counts and thickness errors by depth rank (1 = the most superficial band of an image)."""
    depth = np.asarray(depth, int)
    out: dict = {
        "true": int(t_th.size),
        "truth_measured": int((~np.isnan(t_th)).sum()),
        "float_measured": int((~np.isnan(f_th)).sum()),
        "int8_measured": int((~np.isnan(q_th)).sum()),
        "by_depth": {},
    }
    for d in sorted(set(depth.tolist())):
        sel = depth == d
        out["by_depth"][str(d)] = {
            "true": int(sel.sum()),
            "float_vs_truth": _errors(f_th[sel], t_th[sel]),
            "int8_vs_truth": _errors(q_th[sel], t_th[sel]),
            "int8_vs_float": _errors(q_th[sel], f_th[sel]),
        }
    return out


def _errors(measured: np.ndarray, reference: np.ndarray) -> dict:
    ok = ~(np.isnan(measured) | np.isnan(reference))
    d = measured[ok] - reference[ok]
    if d.size == 0:
        return {"n": 0}
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    bias = float(d.mean())
    return {
        "n": int(d.size),
        "bias": round(bias, 4),
        "mae": round(float(np.abs(d).mean()), 4),
        "loa": [round(bias - 1.96 * sd, 4), round(bias + 1.96 * sd, 4)],
    }


@dataclass(frozen=True)
class GateLimits:
    max_miou_drop: float = 0.01  # int8 mean IoU may be at most this much below float
    max_thickness_bias: float = 0.05  # |mean int8 - float thickness|, in the thickness unit (mm, else px)


def gate(report: dict, limits: GateLimits = GateLimits()) -> list[str]:
    """The reasons the int8 model fails the gate (empty when it passes)."""
    failures = []
    drop = report["float"]["mean_iou"] - report["int8"]["mean_iou"]
    if drop > limits.max_miou_drop:
        failures.append(f"int8 mean IoU is {drop:.4f} below float (limit {limits.max_miou_drop})")
    bias = report["thickness"]["int8_vs_float"].get("bias")
    if bias is None:
        failures.append("no frame where both float and int8 measured a thickness")
    elif abs(bias) > limits.max_thickness_bias:
        unit = f" {report['unit']}" if report.get("unit") else ""
        failures.append(
            f"int8 thickness bias against float is {bias:+.4f}{unit} (limit {limits.max_thickness_bias}{unit})"
        )
    return failures
