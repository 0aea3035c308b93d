"""The pictures of one clip: thickness over time, and a thumbnail of its B-mode region.

The plot shows every accepted frame's thickness (dots), the temporal filter's estimate (line)
with its 95 % band (shaded), the frames the filter left out as outliers (orange rings), the
frozen frames (grey) and the frames a quality flag rejected (red ticks along the bottom: they
have no thickness to draw). The thumbnail is the B-mode region the model saw (nothing else of
the screen) with the TLF band's outline in green.
"""

from __future__ import annotations

import io

import cv2
import numpy as np

from edge.measure.quality import Quality

THUMB_SIDE = 240  # the thumbnail's longer side at most, in pixels


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_png(rows: list[dict], summary: dict) -> bytes:
    """PNG bytes of the thickness-over-time plot of a clip's rows."""
    from edge.analyze.clip import accepted

    plt = _pyplot()
    unit = summary.get("unit") or ""
    t = np.array([r["t"] for r in rows], float)

    def series(key, keep):
        return np.array([r[key] if keep(r) and r[key] is not None else np.nan for r in rows], float)

    same_unit = [r["unit"] == unit for r in rows]
    good = np.array([accepted(r) and s for r, s in zip(rows, same_unit)])
    outlier = np.array([bool(r["flags"] & Quality.OUTLIER) for r in rows]) & good
    frozen = np.array([bool(r["flags"] & Quality.FROZEN) for r in rows]) & good
    value = series("thickness", lambda r: True)
    filtered = series("filtered", lambda r: r["unit"] == unit)
    low, high = series("low", lambda r: r["unit"] == unit), series("high", lambda r: r["unit"] == unit)

    fig, ax = plt.subplots(figsize=(7.2, 3.4), dpi=100)
    try:
        ax.fill_between(t, low, high, color="tab:blue", alpha=0.25, linewidth=0, label="95 % band")
        ax.plot(t, filtered, color="tab:blue", linewidth=1.6, label="filtered")
        plain = good & ~outlier & ~frozen
        ax.plot(t[plain], value[plain], ".", color="black", markersize=4, label="frame")
        if frozen.any():
            ax.plot(t[frozen], value[frozen], ".", color="0.6", markersize=4, label="frozen")
        if outlier.any():
            ax.plot(t[outlier], value[outlier], "o", mfc="none", color="tab:orange", markersize=6, label="outlier")
        rejected = ~np.array([accepted(r) for r in rows])
        if rejected.any():
            ax.plot(
                t[rejected],
                np.zeros(int(rejected.sum())),
                "|",
                color="tab:red",
                markersize=12,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                label="rejected (flag)",
            )
        if not good.any():
            ax.text(0.5, 0.5, "no accepted frame", transform=ax.transAxes, ha="center", va="center", color="tab:red")
        ax.set_xlabel("time in clip (s)")
        ax.set_ylabel(f"TLF thickness ({unit})" if unit else "TLF thickness")
        med, iqr = summary.get("thickness_median"), summary.get("thickness_iqr")
        head = f"{summary['clip_id']}: " + (
            f"median {med:.2f} {unit} (IQR {iqr:.2f})" if med is not None else "not measured"
        )
        ax.set_title(f"{head}, {summary.get('accepted', 0)} of {len(rows)} frames accepted", fontsize=10)
        if t.size == 1:
            ax.set_xlim(t[0] - 0.5, t[0] + 0.5)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, ncol=6, frameon=False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def thumbnail_png(seg, tlf_class: int) -> bytes:
    """PNG bytes of the B-mode region of `seg.frame` (what the model saw), shrunk to THUMB_SIDE,
    with the outline of the TLF band."""
    image = seg.frame.image
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[..., :3].copy()
    h, w = out.shape[:2]
    f = min(1.0, THUMB_SIDE / max(h, w))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    out = cv2.resize(out, size, interpolation=cv2.INTER_AREA) if f < 1 else out
    band = cv2.resize((seg.labels == tlf_class).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(band, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (0, 255, 0), 1, cv2.LINE_AA)
    ok, data = cv2.imencode(".png", out)
    return data.tobytes()
