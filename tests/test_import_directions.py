"""The packages depend one way, along the data flow.

Below: frame sources, screen handling, measurement, the model and the sinks (with the shared
edge.errors, edge.frame and edge.host) never import the runtime, the command line, the ops tools or
the phantom simulator, not even inside a function. The runtime and the command line load no
simulator module until a phantom source is asked for. Read from the source with `ast`, so every
import counts, lazy ones too (but not one under `if TYPE_CHECKING:`, which only the type checker
reads).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "convert", "firmware_bridge")
BELOW = ("edge.sources", "edge.screen", "edge.measure", "edge.model", "edge.sinks")
SHARED = ("edge.errors", "edge.frame", "edge.host", "edge.logs", "edge.numbers")
ABOVE = ("edge.runtime", "edge.cli", "edge.ops", "edge.sim")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module an import statement in `path` names (for `from a import b`: a, and a.b in case
    b is a module), relative imports resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):  # names the type checker alone reads are no dependency at run time
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def within(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def modules(root: Path = ROOT):
    for package in PACKAGES:
        yield from sorted((root / package).rglob("*.py"))


def violations(rules, root: Path = ROOT) -> list[str]:
    """`rules`: (importers, forbidden) pairs; each import of a forbidden module by an importer."""
    bad = []
    for path in modules(root):
        name = module_name(path, root)
        for importers, forbidden in rules:
            if within(name, importers):
                bad += [f"{path.relative_to(root)} imports {m}" for m in sorted(imported_modules(path, root))
                        if within(m, forbidden)]
    return bad


def test_the_tree_is_read():
    names = {module_name(p) for p in modules()}
    for package in BELOW + ("edge.runtime", "edge.ops", "edge.sim", "edge.data"):
        assert any(within(n, (package,)) for n in names), f"no module of {package} found"
    assert {"edge.runtime.pipeline", "edge.sim.source", "edge.screen.spacing"} <= names
    assert "edge.sim.phantom" in imported_modules(ROOT / "edge/sim/source.py")


def test_nothing_below_imports_the_runtime_the_tools_or_the_simulator():
    assert violations([(BELOW + SHARED + ("edge.data",), ABOVE)]) == []


def test_the_shared_modules_import_no_package_of_the_product():
    assert violations([(SHARED, ("edge.sources", "edge.screen", "edge.measure", "edge.model", "edge.sinks",
                                 "edge.data", "edge.analyze", "convert", "firmware_bridge"))]) == []


def test_the_device_side_never_imports_convert_and_the_bridge_never_imports_edge():
    assert violations([(("edge",), ("convert",)), (("firmware_bridge",), ("edge", "convert"))]) == []


def test_a_bad_import_is_caught(tmp_path):
    """The check itself, on a small tree: lazy, relative and plain imports upwards are reported;
    an import of a sibling below is not."""
    for name, text in {
        "edge/__init__.py": "",
        "edge/measure/__init__.py": "",
        "edge/measure/bad.py": "def f():\n    from ..runtime import config\n    import edge.sim.phantom\n",
        "edge/measure/good.py": "from edge.errors import ConfigError\nfrom . import bad\n",
        "edge/screen/__init__.py": "from edge import cli\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations([(BELOW, ABOVE)], tmp_path) == [
        "edge/measure/bad.py imports edge.runtime", "edge/measure/bad.py imports edge.runtime.config",
        "edge/measure/bad.py imports edge.sim.phantom", "edge/screen/__init__.py imports edge.cli"]


def loaded_after(code: str) -> list[str]:
    """The edge.sim modules in sys.modules after running `code` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m == 'edge.sim' or m.startswith('edge.sim.'))))"
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["edge.runtime.pipeline", "edge.runtime.chain", "edge.runtime.config", "edge.runtime.factory", "edge.cli",
                                    "edge.ops.bench", "edge.ops.doctor", "edge.sinks.display", "edge.screen.prepare"])
def test_importing_the_runtime_loads_no_simulator(module):
    assert loaded_after(f"import {module}") == []


def test_the_default_config_and_a_file_source_load_no_simulator(tmp_path):
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((32, 32), np.uint8))
    code = ("from edge.runtime.config import load_config\nfrom edge.runtime.factory import open_source\n"
            f"load_config(None)\nopen_source({str(tmp_path)!r}).open().read()")
    assert loaded_after(code) == []


def test_a_phantom_source_loads_the_simulator():
    code = "from edge.runtime.factory import open_source\nopen_source('phantom://clip?frames=2&size=64x64')"
    assert "edge.sim.source" in loaded_after(code)


def test_every_folder_of_code_is_a_package_the_wheel_ships():
    """pyproject's packages.find ships folders with an __init__.py only; a subpackage without one
    would be missing from an installed cart."""
    folders = {p.parent for p in modules()}
    assert [str(f.relative_to(ROOT)) for f in sorted(folders) if not (f / "__init__.py").is_file()] == []


def test_an_import_only_the_type_checker_reads_is_no_dependency(tmp_path):
    pkg = tmp_path / "edge"
    pkg.mkdir()
    (pkg / "frame.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from edge.runtime import x\n"
                                  "def f():\n    from edge.sim import y\n")
    found = imported_modules(pkg / "frame.py", tmp_path)
    assert "edge.sim" in found and "edge.runtime" not in found
