"""extension_clip: trunk-extension motion, speckle decorrelation and freeze segments."""

import numpy as np
import pytest

from edge.sim import phantom

SHAPE = (128, 128)


@pytest.fixture(scope="module")
def clip():
    return list(phantom.extension_clip(6, frames=120, shape=SHAPE, freeze=[(40, 12), (90, 5)]))


def corr(a, b) -> float:
    return float(np.corrcoef(a.image.ravel().astype(float), b.image.ravel().astype(float))[0, 1])


def test_freeze_segments_repeat_the_last_live_frame_and_are_flagged(clip):
    flags = np.array([f.frozen for f in clip])
    expected = np.zeros(120, bool)
    expected[40:52] = expected[90:95] = True
    assert np.array_equal(flags, expected)
    for i in np.nonzero(flags)[0]:
        held, live = clip[i], clip[39 if i < 90 else 89]
        assert np.array_equal(held.image, live.image) and np.array_equal(held.labels, live.labels)
        assert np.array_equal(held.thickness_mm, live.thickness_mm) and held.extension == live.extension
        assert held.image is not live.image  # a copy: a consumer may draw on it
    # outside freezes, every frame is new
    for i in range(1, 120):
        if not flags[i]:
            assert not np.array_equal(clip[i].image, clip[i - 1].image)


def test_random_freezes_are_segments_after_a_live_frame():
    frames = list(phantom.extension_clip(2, frames=90, shape=(64, 64), freeze=2, freeze_frames=(5, 10)))
    flags = np.array([f.frozen for f in frames], int)
    starts = np.nonzero(np.diff(flags) == 1)[0] + 1
    assert len(starts) == 2 and not flags[0]
    for s in starts:
        assert np.array_equal(frames[s].image, frames[s - 1].image)
    with pytest.raises(ValueError, match="freeze segment"):
        list(phantom.extension_clip(2, frames=10, shape=(32, 32), freeze=[(0, 3)]))


def test_truth_per_frame_is_exact_and_thickness_changes_smoothly(clip):
    live = [f for f in clip if not f.frozen]
    for f in live[::7]:
        counted = (f.labels == phantom.TLF).sum(axis=0)
        assert np.abs(counted - (f.bottom_px - f.top_px)).max() <= 1.0
    thick = np.array([np.median(f.thickness_mm) for f in clip])
    ext = np.array([f.extension for f in clip])
    assert ((ext >= 0) & (ext <= 1)).all() and ext.max() - ext.min() > 0.4
    assert thick.min() >= 0.5 and thick.max() <= 3.0
    assert thick.max() / thick.min() > 1.05  # it really changes...
    steps = np.abs(np.diff(thick))
    steps[[39, 51, 89, 94]] = 0  # ...smoothly, apart from the jumps a freeze hides
    assert steps.max() < 0.02 * thick.mean()


def test_layers_slide_and_speckle_decorrelates_with_time(clip):
    live = [f for f in clip if not f.frozen]
    tops = np.array([f.top_px for f in live])
    assert np.abs(tops - tops[0]).max() > 1.0  # the band moves
    adjacent = [corr(live[i], live[i + 1]) for i in range(0, 60, 5)]
    assert 0.6 < min(adjacent) and max(adjacent) < 0.999
    assert corr(live[0], live[80]) < np.mean(adjacent) - 0.1


def test_same_seed_same_clip_and_options_deterministic():
    kw = dict(frames=8, shape=(64, 64), machine="rf_10mhz", wide=True, artefacts=1.0, freeze=1, freeze_frames=(2, 3))
    a = list(phantom.extension_clip(3, **kw))
    b = list(phantom.extension_clip(3, **kw))
    assert all(np.array_equal(x.image, y.image) and x.frozen == y.frozen for x, y in zip(a, b))
    assert any(f.artefacts is not None for f in a)


def test_fixed_speckle_without_decorrelation_and_no_motion():
    frames = list(phantom.extension_clip(4, frames=3, shape=(64, 64), slide_mm=0.0, thickness_change=0.0,
                                         decorrelation=0.0))
    assert corr(frames[0], frames[1]) > 0.9
