"""Image-folder source: order, globs, single files, bit depths, damaged files, real TIFFs."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from edge.errors import SourceError
from edge.sources import open_source
from edge.sources.folder import FolderSource, to_uint8_image

from conftest import APO_FEW

APO = APO_FEW / "images"


@pytest.fixture
def folder(tmp_path):
    for i in (1, 2, 10):
        cv2.imwrite(str(tmp_path / f"img_{i}.png"), np.full((20, 30, 3), i, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_frames_come_in_natural_order(folder):
    src = open_source(str(folder)).open()
    assert isinstance(src, FolderSource)
    frames = list(src)
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 10]  # img_2 before img_10
    assert [f.seq for f in frames] == [0, 1, 2] and src.corrupt == 0


def test_glob_and_single_file(folder):
    assert len(list(open_source(str(folder / "img_1*.png")).open())) == 2
    only = list(open_source(str(folder / "img_2.png")).open())
    assert len(only) == 1 and only[0].image.shape == (20, 30, 3)


def test_a_corrupt_image_is_skipped_and_counted(folder):
    data = (folder / "img_2.png").read_bytes()
    (folder / "img_2.png").write_bytes(data[: len(data) // 3])  # truncated
    (folder / "img_5.png").write_bytes(b"\x89PNG garbage")
    src = FolderSource(folder).open()
    frames = list(src)
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 10]
    assert src.corrupt == 2


def test_sixteen_bit_and_gray_images_become_uint8(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((8, 8), 40000, np.uint16))
    frame = FolderSource(tmp_path / "a.png").open().read()
    assert frame.image.dtype == np.uint8 and frame.image.shape == (8, 8) and frame.image[0, 0] == 40000 >> 8
    assert to_uint8_image(np.zeros((4, 4, 4), np.uint8)).shape == (4, 4, 3)
    assert to_uint8_image(np.ones((4, 4), np.float32))[0, 0] == 255
    assert to_uint8_image(np.zeros((4, 4, 2), np.uint8)) is None


def test_empty_folder_is_one_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no images .* in '.*'"):
        FolderSource(tmp_path).open()


def test_missing_path_is_one_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no such file, folder or device '.*nowhere'"):
        open_source(str(tmp_path / "nowhere"))
    with pytest.raises(SourceError, match="no such image file or folder"):
        FolderSource(tmp_path / "nowhere" / "a.png").open()


def test_real_tiff_screenshots():
    src = open_source(str(APO / "img_0000*.tif")).open()
    frames = list(src)
    assert len(frames) == len(src.files) >= 3 and src.corrupt == 0
    assert all(f.image.dtype == np.uint8 and f.image.ndim == 3 for f in frames)
    assert frames[0].image.shape == (652, 800, 3)
