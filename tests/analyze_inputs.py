"""Real inputs for the `tlf-edge analyze` tests: phantom screen videos written by OpenCV, the
cart's own recordings made by `tlf-edge run`, copies of the real DICOM files, damaged clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import DICOM_DIR

SCREEN = (1280, 720)  # the depth readout is legible at this size (the scale is read, in mm)


def screen_videos(folder: Path, seeds=(11, 12), frames: int = 6) -> list[dict]:
    """MJPEG AVIs of phantom scanner screens; the truth of each (roi, spacing per frame)."""
    import edge.sim.phantom_screen as ps

    folder.mkdir(parents=True, exist_ok=True)
    return [{"path": folder / f"screen{s}.avi", "truth": ps.write_clip(folder / f"screen{s}.avi", s, frames=frames, size=SCREEN)}
            for s in seeds]


def cart_recording(data: Path, seed: int, frames: int = 6, overlay: bool = False) -> Path:
    """Run `tlf-edge run` on a phantom screen with [recording] enabled; its data folder (runs/, recordings/)."""
    from edge.cli import main

    data.mkdir(parents=True, exist_ok=True)
    cfg = data.parent / f"{data.name}.toml"
    cfg.write_text(f"version = 1\n[source]\nurl = 'phantom://screen?seed={seed}&frames={frames}&size={SCREEN[0]}x{SCREEN[1]}'\n"
                   f"[display]\nurl = 'none'\n[model]\nnum_threads = 1\n[storage]\ndata_dir = '{data}'\n"
                   f"[recording]\nenabled = true\nmin_free_mb = 1\noverlay = {str(overlay).lower()}\n")
    assert main(["run", "--config", str(cfg), "--quiet"]) == 0
    return data


def cart_log(data: Path) -> list[dict]:
    """The frames.jsonl records of the one run in a cart's data folder."""
    (run,) = (data / "runs").iterdir()
    return [json.loads(line) for line in (run / "frames.jsonl").read_text().splitlines()]


def damaged_dicom(folder: Path) -> Path:
    """A real DICOM cut off in its pixel data (a transfer that broke off)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = (DICOM_DIR / "OBXXXX1A_rle.dcm").read_bytes()
    path = folder / "cut.dcm"
    path.write_bytes(data[: len(data) // 3])
    return path


def copy_dicoms(folder: Path, names=None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in sorted(DICOM_DIR.glob("*.dcm")):
        if names is None or p.name in names:
            shutil.copy(p, folder / p.name)
            out.append(folder / p.name)
    return out


def frames_of(out: Path) -> dict[str, list[dict]]:
    """Every clip's frames.jsonl records in an analysis folder, by clip id."""
    return {d.name: [json.loads(line) for line in (d / "frames.jsonl").read_text().splitlines()]
            for d in sorted((out / "clips").iterdir()) if (d / "frames.jsonl").exists()}


def summaries_of(out: Path) -> dict[str, dict]:
    return {d.name: json.loads((d / "summary.json").read_text()) for d in sorted((out / "clips").iterdir())
            if (d / "summary.json").exists()}
