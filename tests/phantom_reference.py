"""The frozen phantom: the cases `tests/test_phantom_pinned.py` holds the renderer to, and the
command that wrote their reference arrays (`tests/data/phantom_reference.npz`).

The reference was written once, with numpy's AVX-512 code paths switched off so that it is the
very phantom the demo model was trained and measured on (its arrays hash to `DIGESTS`, taken when
the phantom was frozen). Images and label maps are PNG files, the analytic truth is JSON (floats
written with repr, so they read back exactly):

    NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" python tests/phantom_reference.py

Do not write it again to make a failing test pass: a failure means a default of the phantom
changed. Undo that change instead.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.sim import phantom

REFERENCE = Path(__file__).resolve().parent / "data" / "phantom_reference"
FIELDS = ("image", "labels", "thickness_mm", "top_px", "bottom_px", "spacing_mm")
PICTURES = ("image", "labels")  # uint8, stored as PNG; the other fields are float64, in truth.json

CASES = {
    "scan": lambda: [phantom.scan(s) for s in (0, 1, 7)],
    "scan_presets": lambda: [phantom.scan(3, machine=p) for p in ("default", "bright", "soft", "lowfreq", "noisy")],
    "scan_field": lambda: [phantom.scan(5, shape=(300, 280), field_mm=(45.0, 35.0))],
    "render": lambda: [
        phantom.render(phantom.Anatomy()),
        phantom.render(phantom.Anatomy(), phantom.PRESETS["soft"], (128, 160), seed=9),
    ],
    "clip": lambda: list(phantom.clip(4, frames=4)),
    "clip_args": lambda: list(
        phantom.clip(2, frames=3, fps=15.0, shape=(96, 128), machine="noisy", anatomy=phantom.Anatomy(tlf_mm=2.0))
    ),
}

# sha256 (first 16 hex digits) of each case's arrays in FIELDS order, scan after scan, as taken
# with numpy 2.4.6 / OpenCV 5.0.0 on a CPU without AVX-512 when the phantom was frozen.
DIGESTS = {
    "scan": "6d70f319abb801d3",
    "scan_presets": "0970ed5213817d19",
    "scan_field": "1138345f7d49f609",
    "render": "cdce47deecc6724a",
    "clip": "b31270bb4a8f3b2c",
    "clip_args": "e8d05b51522d310f",
}


def arrays(scan) -> dict[str, np.ndarray]:
    """A scan's fields as arrays, in the dtypes the phantom makes them."""
    return {f: np.asarray(getattr(scan, f)) for f in FIELDS}


def digest(scans: list[dict[str, np.ndarray]]) -> str:
    h = hashlib.sha256()
    for s in scans:
        for f in FIELDS:
            h.update(np.ascontiguousarray(s[f]).tobytes())
    return h.hexdigest()[:16]


def load_reference(folder: Path = REFERENCE) -> dict[str, list[dict[str, np.ndarray]]]:
    """{case: [scan arrays, ...]} as stored."""
    truth = json.loads((folder / "truth.json").read_text())
    out: dict[str, list[dict[str, np.ndarray]]] = {}
    for case, scans in truth.items():
        out[case] = []
        for i, fields in enumerate(scans):
            scan = {f: np.asarray(v, np.float64) for f, v in fields.items()}
            for f in PICTURES:
                scan[f] = cv2.imread(str(folder / f"{case}_{i}_{f}.png"), cv2.IMREAD_UNCHANGED)
            out[case].append(scan)
    return out


def write_reference(folder: Path = REFERENCE) -> None:
    truth = {}
    folder.mkdir(parents=True, exist_ok=True)
    for case, make in CASES.items():
        scans = [arrays(s) for s in make()]
        got = digest(scans)
        if got != DIGESTS[case]:
            sys.exit(f"case {case!r} renders to {got}, not the frozen {DIGESTS[case]}: "
                     "run with numpy's AVX-512 paths off (see this module's docstring), or undo the change")
        truth[case] = []
        for i, s in enumerate(scans):
            for f in PICTURES:
                assert s[f].dtype == np.uint8
                cv2.imwrite(str(folder / f"{case}_{i}_{f}.png"), s[f], [cv2.IMWRITE_PNG_COMPRESSION, 9])
            truth[case].append({f: s[f].astype(np.float64).tolist() for f in FIELDS if f not in PICTURES})
    (folder / "truth.json").write_text(json.dumps(truth))
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} ({size // 1024} KB)")


if __name__ == "__main__":
    write_reference()
