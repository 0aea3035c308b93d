"""The default scanner screens of `edge.sim.phantom_screen`, frozen: the chrome (everything but the
B-mode and the clock) of the default look at each screen size, and one whole default screen.
`tests/test_phantom_screen_pinned.py` holds the renderer to them; new screen styles must stay
behind options that are off by default.

Written once, before the screens learned other styles:

    python tests/screen_reference.py

Do not write it again to make a failing test pass: undo the change to the default screen.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from edge.sim import phantom_screen as ps

FOLDER = Path(__file__).resolve().parent / "data" / "screen_reference"
# (size, depth mm, seed, lateral scale): the chrome of each is stored.
CHROME_CASES = {
    "chrome_1280x720": ((1280, 720), 40.0, 0, True),
    "chrome_1920x1080": ((1920, 1080), 50.0, 3, True),
    "chrome_640x480": ((640, 480), 35.0, 7, False),
}
SCREEN_CASE = ("screen_1024x768", 5, (1024, 768), 45.0)  # name, seed, size, depth: a whole screen


def chrome_case(name: str):
    size, depth, seed, lateral = CHROME_CASES[name]
    return ps.chrome(ps.layout(size, depth, 40.0, seed, lateral), seed)


def screen_case():
    _, seed, size, depth = SCREEN_CASE
    return ps.screen(seed, size, depth_mm=depth, machine="default").image


def write_reference(folder: Path = FOLDER) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in CHROME_CASES:
        cv2.imwrite(str(folder / f"{name}.png"), chrome_case(name), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    cv2.imwrite(str(folder / f"{SCREEN_CASE[0]}.png"), screen_case(), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} ({size // 1024} KB)")


if __name__ == "__main__":
    write_reference()
