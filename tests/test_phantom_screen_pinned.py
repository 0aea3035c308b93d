"""The phantom scanner's default screens are frozen (tests/screen_reference.py wrote them before
the screens learned other styles): the chrome of the default look at three sizes and one whole
screen. The chrome is drawn with integer operations, so it must match to within a few pixels;
the whole screen holds a resized B-mode and is compared within what another CPU's rounding
explains (as tests/test_phantom_pinned.py does for the phantom itself)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.sim import phantom_screen as ps
from screen_reference import CHROME_CASES, FOLDER, SCREEN_CASE, chrome_case, screen_case

MAX_CHROME_PIXELS_OFF = 4  # chrome pixels more than 2 grey levels off
MAX_SHARE_OFF = 1e-3  # whole screen: share of pixels more than 2 grey levels off
MAX_MEAN_ABS = 0.05


def reference(name: str) -> np.ndarray:
    return cv2.imread(str(FOLDER / f"{name}.png"), cv2.IMREAD_COLOR)


def pixels_off(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    assert got.shape == ref.shape, f"shape {got.shape}, reference {ref.shape}"
    return (np.abs(got.astype(np.int16) - ref.astype(np.int16)) > 2).any(axis=2)


@pytest.mark.parametrize("name", sorted(CHROME_CASES))
def test_default_chrome_renders_as_frozen(name):
    off = int(pixels_off(chrome_case(name), reference(name)).sum())
    assert off <= MAX_CHROME_PIXELS_OFF, f"{off} pixels off with OpenCV {cv2.__version__} (the references are 5.0's)"


def test_default_screen_renders_as_frozen():
    got, ref = screen_case(), reference(SCREEN_CASE[0])
    assert float(pixels_off(got, ref).mean()) <= MAX_SHARE_OFF
    assert float(np.abs(got.astype(np.int16) - ref.astype(np.int16)).mean()) <= MAX_MEAN_ABS


def test_the_chrome_comparison_sees_a_tick_one_pixel_lower():
    name = "chrome_1280x720"
    size, depth, seed, lateral = CHROME_CASES[name]
    lay = ps.layout(size, depth, 40.0, seed, lateral)
    img = chrome_case(name)
    r, _ = lay.depth_ticks[3]
    x0, x1 = lay.scale_x + lay.tick_px, lay.scale_x + lay.tick_px + 5
    row = img[r, x0:x1].copy()
    img[r, x0:x1] = img[r - 3, x0:x1]  # the tick's top row erased
    img[r + lay.tick_px, x0:x1] = row  # and drawn a pixel lower
    assert int(pixels_off(img, reference(name)).sum()) > MAX_CHROME_PIXELS_OFF
