"""A robust filter over recent frames: Hampel outlier rejection, then a median, with a 95 % band.

`TemporalFilter` is called once per measurement, in capture order, and returns an `Estimate`:

1. Frames that carry no new evidence add nothing: a frame flagged by quality (any
   `edge.measure.quality.REJECTING` flag) or with a NaN value. A FROZEN frame (the scanner's freeze
   button) holds the current estimate as it is: it adds nothing and ages nothing, because the
   operator froze the image to read it.
2. The window holds the last `window_frames` values that passed step 1, none older than
   `window_s` seconds (0: no age limit). On a cart slower than min_samples frames per window_s
   the age limit would starve the estimate, so the `min_samples` newest values stay while the
   newest of them is no older than window_s and the oldest no older than SLOW_SPAN * window_s
   (at the defaults: an estimate down to about 0.7 frames/s, 3 frames within 3 s; once the probe
   is lifted it still ends after window_s). The same holds on a fast cart whose frames are mostly
   rejected: the last min_samples accepted values count for up to SLOW_SPAN windows.
3. Hampel test, every frame over the whole window: a value further than k * sigma from the
   window median is an outlier and is left out of the estimate; when it is this frame's value,
   the frame is flagged Quality.OUTLIER. sigma = 1.4826 * MAD (the robust standard deviation),
   floored at `min_sigma` times the median so that a very steady window does not reject the next
   ordinary value. Outliers stay in the window, so they count towards its median and MAD: a
   lone spike is rejected, but when the tissue really changes (the probe moved) the new level
   takes over the median once it fills half the window, and the old values become the outliers.
4. The estimate is the median of the values that passed the test; with fewer than
   `min_samples` of them it is NaN (too little evidence to show a number).
5. The band [low, high] is the 95 % confidence interval of that median, not the spread of the
   window: median +- t * sqrt(pi / 2) * sigma / sqrt(n), with sigma from the MAD of the n values
   used (floored as above). sqrt(pi / 2) is the median's standard error over the mean's under
   normal noise; t is Student's 95 % quantile for 0.37 * (n - 1) degrees of freedom, because a
   MAD is worth about 37 % of the values a standard deviation is. The band assumes independent
   errors from frame to frame; neighbouring frames are correlated, so take it as a lower bound.

Resets: the window restarts when the unit changes (mm <-> px, e.g. the calibration was lost),
when the scale the value was measured with changes (`scale`, e.g. the pixel spacing after the
operator changed depth), and when time goes backwards (a replayed clip started over).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from statistics import median

from edge.errors import ConfigError
from edge.measure.quality import REJECTING, Quality

SLOW_SPAN = 3.0  # on a slow cart the min_samples newest values may span this many window_s
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
MAD_EFFICIENCY = 0.37  # a MAD is worth this fraction of the values a standard deviation is
MEDIAN_SE = math.sqrt(math.pi / 2)  # standard error of the median / standard error of the mean
# Two-sided 95 % quantiles of Student's t for 1-30 degrees of freedom: the band of a few values
# must be wider than the normal 1.96 because their spread is itself uncertain.
# fmt: off
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042)
# fmt: on


def _t95(df: int) -> float:
    return _T95[df - 1] if 1 <= df <= len(_T95) else 1.959964 + 2.4 / max(df, 1)


@dataclass(frozen=True)
class TemporalOptions:
    """The [temporal] section of the config."""

    window_frames: int = 15  # at most this many values in the window
    window_s: float = 1.0  # and none older than this many seconds (0: no age limit)
    k: float = 3.0  # Hampel threshold, in robust standard deviations
    min_samples: int = 3  # values needed for the outlier test, and inliers needed for an estimate
    min_sigma: float = 0.02  # floor of the robust standard deviation, as a fraction of the median

    def __post_init__(self):
        def bad(key, why):
            raise ConfigError(f"[temporal] {key}: {why}, got {getattr(self, key)!r}")

        if self.window_frames < 1:
            bad("window_frames", "must be at least 1")
        if not self.window_s >= 0:
            bad("window_s", "must be 0 (no age limit) or more")
        if not self.k > 0:
            bad("k", "must be more than 0")
        if not 1 <= self.min_samples <= self.window_frames:
            bad("min_samples", f"must be between 1 and window_frames ({self.window_frames})")
        if not self.min_sigma >= 0:
            bad("min_sigma", "must be 0 or more")


@dataclass(frozen=True)
class Estimate:
    """The filtered thickness for one frame.

    value: median of the window's inliers (NaN with fewer than `min_samples`). low, high: its
    95 % confidence interval (NaN with the value). n_used: how many values the median is of.
    flags: the frame's own flags, plus Quality.OUTLIER when this frame's value was rejected.
    unit, t_capture: those of the frame.
    """

    value: float
    low: float
    high: float
    n_used: int
    flags: int
    unit: str
    t_capture: float

    @property
    def uncertainty(self) -> float:
        """Half the width of the band (NaN when there is no estimate)."""
        return (self.high - self.low) / 2


class TemporalFilter:
    """Hampel rejection and a median over recent frames; see the module docstring.

    Call it with each Measurement (anything with `thickness`, `unit`, `flags`, `t_capture`) and
    the scale the value was measured with (any value comparable with ==, e.g. the pixel spacing).
    """

    def __init__(self, options: TemporalOptions = TemporalOptions()):
        self.options = options
        self._window: deque[tuple[float, float]] = deque(maxlen=options.window_frames)  # (t, value)
        self._unit: str | None = None
        self._scale = None
        self._t_last: float | None = None
        self._last: Estimate | None = None

    @property
    def window(self) -> tuple[float, ...]:
        """Every value in the window, outliers included, oldest first."""
        return tuple(v for _, v in self._window)

    @property
    def accepted(self) -> tuple[float, ...]:
        """The values of the window that pass the Hampel test: the estimate is their median."""
        values = list(self.window)
        return tuple(v for v, ok in zip(values, self._inliers(values)) if ok)

    def reset(self) -> None:
        self._window.clear()
        self._last = None

    def __call__(self, measurement, scale=None) -> Estimate:
        value, unit = float(measurement.thickness), measurement.unit
        flags, t = int(measurement.flags), float(measurement.t_capture)
        if unit != self._unit or scale != self._scale or (self._t_last is not None and t < self._t_last):
            self.reset()
            self._unit, self._scale = unit, scale
        self._t_last = t
        if flags & Quality.FROZEN and self._last is not None:
            last = self._last
            return Estimate(last.value, last.low, last.high, last.n_used, flags, unit, t)
        fresh = not (flags & (REJECTING | Quality.FROZEN)) and math.isfinite(value)
        if fresh:
            self._window.append((t, value))
        self._expire(t)
        values = [v for _, v in self._window]
        inliers = self._inliers(values)
        if fresh and not inliers[-1]:
            flags |= Quality.OUTLIER
        self._last = self._estimate([v for v, ok in zip(values, inliers) if ok], flags, unit, t)
        return self._last

    def _expire(self, t: float) -> None:
        limit, w = self.options.window_s, self._window
        if limit <= 0:
            return
        while w and t - w[0][0] > limit:
            slow_cart = len(w) <= self.options.min_samples and t - w[-1][0] <= limit
            if slow_cart and t - w[0][0] <= SLOW_SPAN * limit:
                break
            w.popleft()

    # The window holds a few values (window_frames, 15 by default): the medians are Python's
    # (statistics.median, the same value as np.median to the bit: the middle value, or the mean of
    # the two middle ones), a tenth of numpy's per-call overhead on every frame.
    def _sigma(self, values: list[float], med: float) -> float:
        """Robust standard deviation of `values` about `med`, with its floor."""
        mad = median([abs(v - med) for v in values])
        return max(MAD_TO_SIGMA * mad, self.options.min_sigma * abs(med))

    def _inliers(self, values: list[float]) -> list[bool]:
        """Which values lie within k robust standard deviations of the window median."""
        if len(values) < self.options.min_samples:
            return [True] * len(values)
        med = median(values)
        limit = self.options.k * self._sigma(values, med)
        return [abs(v - med) <= limit for v in values]

    def _estimate(self, used: list[float], flags: int, unit: str, t: float) -> Estimate:
        n = len(used)
        if n < self.options.min_samples:
            nan = float("nan")
            return Estimate(nan, nan, nan, n, flags, unit, t)
        med = median(used)
        half = _t95(max(1, round(MAD_EFFICIENCY * (n - 1)))) * MEDIAN_SE * self._sigma(used, med) / math.sqrt(n)
        return Estimate(med, med - half, med + half, n, flags, unit, t)
