import numpy as np

from edge.sim import phantom


def test_same_seed_same_scan_and_different_seed_differs():
    a, b, c = phantom.scan(11), phantom.scan(11), phantom.scan(12)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)


def test_scan_has_three_classes_in_order_and_truth_in_range():
    for seed in range(20):
        s = phantom.scan(seed, shape=(300, 280))
        assert s.image.dtype == np.uint8 and s.image.shape == (300, 280)
        assert set(np.unique(s.labels)) == {0, 1, 2}
        # every column: class values never decrease going down
        assert (np.diff(s.labels.astype(int), axis=0) >= 0).all()
        assert 0.6 * 0.85 <= s.thickness_mm.min() and s.thickness_mm.max() <= 2.5 * 1.15


def test_label_band_agrees_with_analytic_truth_within_one_pixel():
    for seed in range(10):
        s = phantom.scan(seed)
        counted = (s.labels == phantom.TLF).sum(axis=0)
        analytic = s.bottom_px - s.top_px
        assert np.abs(counted - analytic).max() <= 1.0
        # perpendicular truth is the vertical extent times the cosine of the local tilt
        vertical_mm = analytic * s.spacing_mm[0]
        assert (s.thickness_mm <= vertical_mm + 1e-3).all()
        assert (s.thickness_mm >= vertical_mm * np.cos(np.radians(20))).all()


def test_tlf_is_brighter_than_fat_and_muscle():
    s = phantom.scan(5, machine="default")
    tlf = s.image[s.labels == 1].mean()
    above = s.image[s.labels == 0].mean()
    below = s.image[s.labels == 2].mean()
    assert tlf > above + 40 and tlf > below + 40


def test_clip_moves_slowly_with_truth_per_frame():
    frames = list(phantom.clip(4, frames=60, fps=30.0, shape=(200, 200)))
    assert len(frames) == 60
    tops = np.array([f.top_px.mean() for f in frames])
    thick = np.array([np.median(f.thickness_mm) for f in frames])
    assert np.abs(np.diff(tops)).max() < 1.0  # under a pixel per frame: slow motion
    assert thick.max() - thick.min() > 0.01  # but it does move
    assert not np.array_equal(frames[0].image, frames[1].image)
    assert np.array_equal(list(phantom.clip(4, frames=2, shape=(64, 64)))[1].image, list(phantom.clip(4, frames=2, shape=(64, 64)))[1].image)
