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
