"""Numbers as the product's records hold them."""

from __future__ import annotations

import math


def rounded(v, digits: int = 4) -> float | None:
    """`v` as a plain float rounded to `digits`, for a JSON record; None for None, NaN or infinity
    (JSON has no such numbers)."""
    if v is None:
        return None
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def significant(v: float, figures: int = 3) -> float:
    """`v` to `figures` significant figures: a ratio of 0.0164 keeps its 4 rather than rounding to
    0.016, as a fixed number of decimals would."""
    return float(f"{float(v):.{figures}g}")
