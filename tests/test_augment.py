"""Augmentation for B-mode training (convert.augment): labels follow every geometric change by
nearest neighbour, intensity changes leave them alone, every part can be switched off, the draw
is seeded per image and epoch; on real DL_Track images from tests/data."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from convert.errors import ConvertError  # noqa: E402

from convert.augment import NONE, PARTS, AugmentOptions, augment, augment_batch, sample_rng
from edge.data.dataset import iter_dataset, read_dataset_config
from edge.model.preprocess import PreprocessSpec, resize_labels, to_model_image

REPO = Path(__file__).resolve().parents[1]
DLTRACK = REPO / "tests" / "data" / "dltrack_apo"
CONFIG = REPO / "examples" / "dltrack_apo" / "dataset.toml"
SPEC = PreprocessSpec(128, 128)


def only(part: str, **kw) -> AugmentOptions:
    """Every part off but `part`, applied to every image."""
    base = AugmentOptions(probability=1.0, **kw)
    return base.without([p for p in PARTS if p != part])


@pytest.fixture(scope="module")
def real():
    """The five DL_Track screenshots of tests/data on a 128 px grid, with their aponeurosis masks."""
    config = read_dataset_config(CONFIG)
    pairs = [(to_model_image(img, SPEC), resize_labels(lab, SPEC)) for _, img, lab in iter_dataset(DLTRACK, config)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def band_image(h=96, w=128, rows=(30, 42)) -> tuple[np.ndarray, np.ndarray]:
    """A band of class 1 whose pixels are bright (200) on a dark (60) background: image and labels agree."""
    labels = np.zeros((h, w), np.uint8)
    labels[rows[0]:rows[1]] = 1
    image = np.where(labels == 1, 200, 60).astype(np.uint8)[..., None]
    return image, labels


def test_geometric_parts_move_image_and_labels_together():
    image, labels = band_image()
    geometric = AugmentOptions(probability=1.0).without(["gain", "contrast", "gamma", "speckle", "blur", "attenuation"])
    for i in range(12):
        img, lab, applied = augment(image, labels, geometric, sample_rng(0, 0, i))
        assert set(applied) <= {"flip", "rotate", "scale", "translate"} and len(applied) == 4
        assert set(np.unique(lab)) <= {0, 1}  # nearest neighbour: no class invented
        bright = img[..., 0] > 130
        assert (bright == (lab == 1)).mean() > 0.98  # the label map is where the band went


def test_flip_is_a_horizontal_mirror_only():
    image, labels = band_image()
    labels[:, :10] = 0  # something to tell left from right
    image[:, :10] = 60
    img, lab, applied = augment(image, labels, only("flip"), sample_rng(0, 0, 0))
    assert applied == {"flip": 1.0}
    assert np.array_equal(lab, labels[:, ::-1]) and np.array_equal(img, image[:, ::-1])  # depth never flips


def test_rotation_stays_within_its_limit():
    image, labels = band_image(128, 128, (60, 68))
    for i in range(20):
        _, lab, applied = augment(image, labels, only("rotate"), sample_rng(3, 0, i))
        assert abs(applied["rotate"]) <= 10.0
        cols = np.flatnonzero((lab == 1).any(axis=0)[20:108]) + 20
        centre = [np.flatnonzero(lab[:, c] == 1).mean() for c in cols]
        slope = np.polyfit(cols, centre, 1)[0]
        assert abs(math.degrees(math.atan(slope)) - (-applied["rotate"])) < 1.0  # OpenCV's angle is counter-clockwise


def test_intensity_parts_leave_labels_alone_and_blank_pixels_blank(real):
    images, labels = real
    intensity = AugmentOptions(probability=1.0).without(["flip", "rotate", "scale", "translate"])
    img0 = images[0].copy()
    img0[:, :12] = 0  # blanked, as edge.screen.roi.crop leaves the outside of the scanner's outline
    for i in range(6):
        img, lab, applied = augment(img0, labels[0], intensity, sample_rng(1, i, 0))
        assert {"gain", "contrast", "gamma", "speckle", "blur", "attenuation"} == set(applied)
        assert np.array_equal(lab, labels[0])
        assert (img[:, :12] == 0).all() and img.dtype == np.uint8 and img.shape == img0.shape
        assert np.abs(img.astype(int) - img0.astype(int))[:, 12:].mean() > 1.0  # it did change the picture


def test_each_part_can_be_switched_off_and_all_off_is_the_identity(real):
    images, labels = real
    for part in PARTS:
        o = AugmentOptions(probability=1.0).without([part])
        assert part not in o.active
        for i in range(4):
            assert part not in augment(images[i], labels[i], o, sample_rng(0, 0, i))[2]
    none = replace(NONE, probability=1.0)
    img, lab, applied = augment(images[0], labels[0], none, sample_rng(0, 0, 0))
    assert applied == {} and np.array_equal(img, images[0]) and np.array_equal(lab, labels[0])
    with pytest.raises(ConvertError, match="unknown augmentation part.*'mirror'"):
        AugmentOptions().without(["mirror"])
    with pytest.raises(ConvertError, match="rotate must be at most 45"):
        AugmentOptions(rotate=90)


def test_the_draw_is_seeded_per_image_and_epoch(real):
    images, labels = real
    a = augment_batch(images, labels, AugmentOptions(), seed=5, epoch=2, indices=[3, 1])
    b = augment_batch(images, labels, AugmentOptions(), seed=5, epoch=2, indices=[1, 3])
    assert np.array_equal(a[0][0], b[0][1]) and np.array_equal(a[1][1], b[1][0])  # order of drawing does not matter
    c = augment_batch(images, labels, AugmentOptions(), seed=5, epoch=3, indices=[3, 1])
    assert not np.array_equal(a[0], c[0])  # another epoch, another draw


def test_real_bands_survive_augmentation(real):
    """On the real masks the band area changes only as much as the scale does, and the bands
    stay bands (each column's band pixels keep about their thickness)."""
    images, labels = real
    for i in range(len(images)):
        for epoch in range(3):
            img, lab, applied = augment(images[i], labels[i], AugmentOptions(), sample_rng(0, epoch, i))
            zoom = applied.get("scale", 1.0)
            ratio = (lab == 1).sum() / max((labels[i] == 1).sum(), 1)
            assert 0.6 * zoom**2 < ratio < 1.25 * zoom**2  # borders may cut or mirror a little band in
            assert cv2.connectedComponents((lab == 1).astype(np.uint8))[0] - 1 <= 2 + cv2.connectedComponents(
                (labels[i] == 1).astype(np.uint8))[0]
