"""Every tool runs in the install it belongs to: the `tlf-convert` commands that need no TensorFlow
work where it cannot be imported (the device's runtime-only install), and the ones that need it
say so in one line and exit 2.

Each command runs in a subprocess whose import system refuses tensorflow, keras, tf_keras and
matplotlib (the [convert] extra), as in a venv made by `pip install tlf-edge`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.model.bundle import DEMO_BUNDLE, load_bundle

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

WITHOUT_CONVERT_EXTRA = """
import importlib.abc, sys
BLOCKED = {"tensorflow", "keras", "tf_keras", "matplotlib"}

class NoConvertExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoConvertExtra())
from convert.cli import main
code = main(sys.argv[1:])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not leaked, leaked
sys.exit(code)
"""


def run_without_tensorflow(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_CONVERT_EXTRA, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600, env=ENV)


def test_the_blocker_really_blocks_tensorflow(tmp_path):
    """The harness itself: a command that imports TensorFlow fails in it."""
    r = subprocess.run([sys.executable, "-c", WITHOUT_CONVERT_EXTRA.replace("from convert.cli import main",
                                                                            "import tensorflow")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120, env=ENV)
    assert r.returncode != 0 and "No module named 'tensorflow'" in r.stderr


def test_phantom_data_set_without_tensorflow(tmp_path):
    r = run_without_tensorflow(["phantom", "--out", str(tmp_path / "data"), "--n", "3", "--size", "64x64"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "data" / "images").iterdir())) == 3
    assert len(list((tmp_path / "data" / "masks").iterdir())) == 3
    assert json.loads((tmp_path / "data" / "dataset.json").read_text())["classes"]


def test_contact_sheet_without_tensorflow(tmp_path):
    out = tmp_path / "sheet.png"
    r = run_without_tensorflow(["contact-sheet", "--out", str(out), "--presets", "default", "--tile", "64"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 1000


def test_thickness_response_without_tensorflow(tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, dst)
    r = run_without_tensorflow(["thickness-response", str(dst), "--n", "16"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "thickness response: measured rows" in r.stdout
    assert "of 16 phantom scanner screens" in load_bundle(dst).thickness_response.fitted_on


def test_augment_sheet_without_tensorflow(tmp_path):
    out = tmp_path / "sheet.png"
    r = run_without_tensorflow(["augment-sheet", "--data", str(REPO / "tests" / "data" / "dltrack_apo"),
                                "--dataset-config", str(REPO / "examples" / "dltrack_apo" / "dataset.toml"),
                                "--out", str(out), "--images", "2", "--per-image", "3", "--tile", "96",
                                "--augment-off", "blur,speckle"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 images, 3 augmented copies" in r.stdout and "speckle" not in r.stdout.split("parts on:")[1]
    import cv2

    assert cv2.imread(str(out)).shape == (2 * 96 + 3, 4 * 96, 3)


def test_domain_statistics_without_tensorflow(tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, dst)
    r = run_without_tensorflow(["domain", str(dst), "--train", "phantom", "--heldout", "phantom", "--n", "8",
                                "--heldout-n", "4"], tmp_path)
    assert r.returncode == 0, r.stderr
    d = load_bundle(dst).domain
    assert len(d.reference) == 8 and d.margin_limits is not None and "phantom seeds" in d.margins_on


@pytest.mark.parametrize("args", [
    ["train", "--out", "m", "--epochs", "1"],
    ["cv", "--data", "d", "--out", "o"],
    ["quantize", "model.keras", "--out", "b"],
    ["validate", "bundle", "--float", "model.keras"],
    ["demo-bundle", "--out", "b", "--work", "w"],
    ["peak-model", "--out", "peak.tflite"],
])
def test_a_command_that_needs_tensorflow_says_which_extra_in_one_line(args, tmp_path):
    r = run_without_tensorflow(args, tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"tlf-convert: error: 'tlf-convert {args[0]}' needs the [convert] extra: "
                               "pip install 'tlf-edge[convert]'")
    assert not list(tmp_path.iterdir())  # nothing written
