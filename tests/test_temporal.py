import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import ConfigError
from edge.frame import Measurement
from edge.measure.quality import REJECTING, Quality
from edge.measure.temporal import Estimate, TemporalFilter, TemporalOptions

FPS = 30.0


def m(value, i=0, unit="mm", flags=0, t=None):
    """A Measurement for frame i of a 30 fps stream."""
    t = i / FPS if t is None else t
    return Measurement(seq=i, t_capture=t, thickness=value, spread=0.0, unit=unit, flags=int(flags), columns=50, latency_s=0.0)


def feed(f, values, start=0, **kw):
    return [f(m(v, start + i, **kw)) for i, v in enumerate(values)]


def steady(n, level=1.5, noise=0.01, seed=0):
    return level + noise * np.random.default_rng(seed).standard_normal(n)


def test_no_estimate_until_min_samples_then_the_median():
    f = TemporalFilter(TemporalOptions(min_samples=3))
    out = feed(f, [1.4, 1.6])
    assert all(math.isnan(e.value) and math.isnan(e.low) for e in out)
    assert [e.n_used for e in out] == [1, 2]
    e = f(m(1.5, 2))
    assert e.value == pytest.approx(1.5) and e.n_used == 3 and e.low < 1.5 < e.high
    assert isinstance(e, Estimate) and e.unit == "mm" and e.t_capture == pytest.approx(2 / FPS)


def test_an_outlier_spike_is_rejected_and_flagged():
    f = TemporalFilter()
    values = steady(40)
    before = feed(f, values[:20])[-1]
    spike = f(m(3.0, 20))  # one mis-segmented frame
    assert spike.flags & Quality.OUTLIER
    assert 3.0 in f.window and 3.0 not in f.accepted
    assert spike.value == pytest.approx(before.value, abs=0.005)
    after = feed(f, values[21:], start=21)
    assert not any(e.flags & Quality.OUTLIER for e in after)
    assert all(e.value == pytest.approx(1.5, abs=0.01) for e in after)


def test_a_slow_change_is_followed_without_outliers():
    # 1.2 -> 1.8 mm over 3 s with 0.01 mm noise: a gentle trunk extension.
    n = 90
    truth = np.linspace(1.2, 1.8, n)
    f = TemporalFilter()
    out = feed(f, truth + steady(n, level=0.0))
    assert not any(e.flags & Quality.OUTLIER for e in out)
    lag = f.options.window_frames // 2  # a median of a full window lags by half of it
    for i in range(f.options.window_frames, n):
        assert out[i].value == pytest.approx(truth[i - lag], abs=0.03)


def test_a_lasting_step_takes_over_once_it_fills_half_the_window():
    f = TemporalFilter()  # 15 frames
    feed(f, steady(20, 1.5))
    out = feed(f, steady(20, 2.5, seed=1), start=20)  # the probe moved to thicker fascia
    flagged = [bool(e.flags & Quality.OUTLIER) for e in out]
    assert flagged[:7] == [True] * 7 and not any(flagged[8:])
    assert all(e.value == pytest.approx(1.5, abs=0.02) for e in out[:7])
    assert all(e.value == pytest.approx(2.5, abs=0.02) for e in out[8:])
    assert f.accepted and min(f.accepted) > 2.4


def test_scattered_spikes_on_both_sides_never_take_over():
    f = TemporalFilter()
    values = steady(60)
    values[20:60:3] = [3.0, 0.5] * 7  # a third of the frames are wild
    out = feed(f, values)
    assert all(out[i].flags & Quality.OUTLIER for i in range(20, 60, 3))
    assert all(e.value == pytest.approx(1.5, abs=0.02) for e in out[20:])


@pytest.mark.parametrize("flag", [Quality.NO_BAND, Quality.ORDER, Quality.FRAGMENTED, Quality.LOW_CONFIDENCE])
def test_frames_flagged_by_quality_are_not_counted(flag):
    f = TemporalFilter()
    before = feed(f, steady(10))[-1]
    e = f(m(9.9, 10, flags=flag))
    assert e.n_used == before.n_used and e.value == before.value and 9.9 not in f.window
    assert e.flags == flag  # the frame's own flags are passed on, no OUTLIER added


def test_nan_values_are_not_counted():
    f = TemporalFilter()
    before = feed(f, steady(10))[-1]
    e = f(m(float("nan"), 10))
    assert e.n_used == before.n_used and e.value == before.value


def test_uncalibrated_frames_are_counted():
    f = TemporalFilter()
    e = feed(f, [14.0, 15.0, 16.0], unit="px", flags=Quality.UNCALIBRATED)[-1]
    assert e.value == 15.0 and e.unit == "px" and e.flags == Quality.UNCALIBRATED


def test_frozen_frames_hold_the_estimate_without_ageing_it():
    f = TemporalFilter(TemporalOptions(window_s=1.0))
    last = feed(f, steady(10))[-1]
    # Frozen for 5 s, far longer than the window: the operator is reading the value.
    for i in range(10, 160):
        e = f(m(9.9, i, flags=Quality.FROZEN))
        assert (e.value, e.low, e.high, e.n_used) == (last.value, last.low, last.high, last.n_used)
        assert e.flags == Quality.FROZEN
    assert 9.9 not in f.window


def test_frozen_frames_before_any_estimate_give_none():
    e = TemporalFilter()(m(1.5, 0, flags=Quality.FROZEN))
    assert math.isnan(e.value) and e.n_used == 0


def test_old_values_expire_after_window_s():
    f = TemporalFilter(TemporalOptions(window_s=0.5))
    feed(f, steady(10))
    e = f(m(float("nan"), 40, flags=Quality.NO_BAND))  # probe lifted for a second
    assert e.n_used == 0 and math.isnan(e.value)


def test_window_frames_caps_the_window():
    f = TemporalFilter(TemporalOptions(window_frames=7, min_samples=3, window_s=0))
    out = feed(f, steady(50))
    assert max(e.n_used for e in out) == 7 and len(f.window) == 7


def test_a_unit_change_resets_the_window():
    f = TemporalFilter()
    feed(f, steady(10))
    e = f(m(15.0, 10, unit="px", flags=Quality.UNCALIBRATED))  # calibration lost
    assert e.n_used == 1 and math.isnan(e.value) and f.window == (15.0,)
    assert not e.flags & Quality.OUTLIER


def test_a_scale_change_resets_the_window():
    f = TemporalFilter()
    for i, v in enumerate(steady(10)):
        f(m(v, i), scale=(0.1, 0.1))
    assert f(m(1.5, 10), scale=(0.1, 0.1)).n_used == 11
    e = f(m(2.0, 11), scale=(0.125, 0.125))  # operator changed the depth
    assert e.n_used == 1 and f.window == (2.0,)


def test_time_going_backwards_resets_the_window():
    f = TemporalFilter()
    feed(f, steady(10), start=100)
    e = f(m(1.5, 0))
    assert e.n_used == 1


def test_band_is_a_95_percent_interval_of_the_median():
    rng = np.random.default_rng(5)
    hits, trials = 0, 600
    for _ in range(trials):
        f = TemporalFilter(TemporalOptions(min_sigma=0.0))
        e = feed(f, 10.0 + rng.standard_normal(15))[-1]
        hits += e.low <= 10.0 <= e.high
    assert 0.90 <= hits / trials <= 0.99


def test_band_narrows_as_evidence_accumulates():
    f = TemporalFilter(TemporalOptions(window_frames=30, window_s=0))
    out = feed(f, steady(30, noise=0.05))
    assert out[-1].uncertainty < out[4].uncertainty


def test_a_steady_window_keeps_a_band_and_accepts_ordinary_values():
    f = TemporalFilter()
    out = feed(f, [1.5] * 10 + [1.51])
    assert out[-2].uncertainty > 0
    assert not out[-1].flags & Quality.OUTLIER


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"window_frames": 0}, "window_frames"),
        ({"window_s": -1.0}, "window_s"),
        ({"k": 0.0}, "k"),
        ({"min_samples": 0}, "min_samples"),
        ({"min_samples": 20}, "min_samples"),
        ({"min_sigma": -0.1}, "min_sigma"),
    ],
)
def test_bad_options_are_rejected_naming_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=rf"^\[temporal\] {key}: .*got {list(kwargs.values())[0]!r}$"):
        TemporalOptions(**kwargs)


frames = st.lists(
    st.tuples(
        st.floats(0.3, 5.0, allow_nan=False),
        st.sampled_from([0, 0, 0, int(Quality.NO_BAND), int(Quality.FROZEN), int(Quality.UNCALIBRATED)]),
        st.floats(0.0, 0.2),  # time step
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(frames, st.integers(3, 20), st.floats(0.0, 2.0))
def test_output_lies_within_the_accepted_inputs(seq, window_frames, window_s):
    opts = TemporalOptions(window_frames=window_frames, window_s=window_s)
    f = TemporalFilter(opts)
    t = 0.0
    offered = set()  # every value that passed the quality gate
    for i, (value, flags, dt) in enumerate(seq):
        t += dt
        e = f(m(value, i, flags=flags, t=t))
        if not flags & (REJECTING | Quality.FROZEN):
            offered.add(value)
            assert bool(e.flags & Quality.OUTLIER) == (value not in f.accepted)
        assert e.flags & ~Quality.OUTLIER == flags
        assert set(f.accepted) <= set(f.window) <= offered
        assert len(f.window) <= window_frames
        if flags & Quality.FROZEN:
            continue  # holds the previous estimate
        assert e.n_used == len(f.accepted)
        if e.n_used >= opts.min_samples:
            assert min(f.accepted) <= e.value <= max(f.accepted)
            assert e.value == pytest.approx(float(np.median(f.accepted)))
            assert e.low <= e.value <= e.high
        else:
            assert math.isnan(e.value)


@pytest.mark.parametrize("fps, shown", [(1.8, True), (1.2, True), (0.7, True), (0.6, False), (0.5, False)])
def test_a_slow_cart_still_gets_an_estimate_from_its_newest_frames(fps, shown):
    """Under 2 frames/s a 1 s window never holds min_samples (3) values; the newest three are kept as
    long as they span at most SLOW_SPAN windows (3 s), so a cart down to about 0.67 frames/s (three
    frames within 3 s) shows a value and a slower one does not."""
    f = TemporalFilter(TemporalOptions(window_s=1.0, min_samples=3))
    out = [f(m(v, i, t=i / fps)) for i, v in enumerate(steady(12))]
    assert [math.isfinite(e.value) for e in out[2:]] == [shown] * 10
    if shown:
        assert all(e.n_used == 3 for e in out[2:]) and len(f.window) == 3


def test_on_a_slow_cart_the_estimate_still_ends_window_s_after_the_probe_is_lifted():
    f = TemporalFilter(TemporalOptions(window_s=1.0, min_samples=3))
    for i, v in enumerate(steady(6)):
        f(m(v, i, t=i / 2.0))  # 2 frames/s: estimates from the three newest values
    assert math.isfinite(f(m(float("nan"), 6, flags=Quality.NO_BAND, t=3.0)).value)  # 0.5 s after the last
    e = f(m(float("nan"), 7, flags=Quality.NO_BAND, t=3.6))  # 1.1 s after the last value
    assert math.isnan(e.value) and e.n_used == 0


def _numpy_estimate(window, options):
    """The filter's estimate of a full window as numpy computes it (np.median throughout), and
    whether its newest value is an inlier: what the filter computed before its medians were
    Python's."""
    from edge.measure.temporal import MAD_EFFICIENCY, MAD_TO_SIGMA, MEDIAN_SE, _t95

    values = np.array(window, np.float64)

    def sigma(v, med):
        return max(MAD_TO_SIGMA * float(np.median(np.abs(v - med))), options.min_sigma * abs(med))

    med = float(np.median(values))
    inliers = np.abs(values - med) <= options.k * sigma(values, med)
    used = values[inliers]
    n = used.size
    if n < options.min_samples:
        return math.nan, math.nan, bool(inliers[-1])
    m = float(np.median(used))
    half = _t95(max(1, round(MAD_EFFICIENCY * (n - 1)))) * MEDIAN_SE * sigma(used, m) / math.sqrt(n)
    return m, half, bool(inliers[-1])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.1, 5.0, allow_nan=False), min_size=3, max_size=15),
    st.sampled_from([0.0, 0.02, 0.1]),
    st.integers(0, 3),
)
def test_the_estimate_is_numpys_median_to_the_bit(values, min_sigma, repeats):
    # repeated values make ties and even-sized halves, where a median takes the mean of two
    values = values + values[: repeats * 2]
    values = values[:15]
    options = TemporalOptions(window_frames=15, window_s=0.0, min_sigma=min_sigma)
    f = TemporalFilter(options)
    out = feed(f, values)[-1]
    value, half, inlier = _numpy_estimate(values, options)
    if math.isnan(value):
        assert math.isnan(out.value)
    else:
        assert out.value == value and out.high - out.value == pytest.approx(half, rel=1e-12)
        assert (out.low, out.high) == (value - half, value + half)
    assert bool(out.flags & Quality.OUTLIER) == (not inlier)
