"""`tlf-edge analyze --engine ray` against a local Ray started here (ray.init(num_cpus=2)): the
same clips give exactly the local run's measurements, failures and table."""

from __future__ import annotations

import csv
import json
import os

import pytest

from analyze_inputs import cart_recording, copy_dicoms, damaged_dicom, frames_of, screen_videos, summaries_of
from edge.cli import main

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network at test time
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_actors_give_exactly_what_the_local_run_gives(tmp_path, local_ray, capsys):
    pytest.importorskip("pydicom")
    data = tmp_path / "data"
    copy_dicoms(data / "dicom", names={"OBXXXX1A_2frame.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "US1_J2KR.dcm"})
    damaged_dicom(data / "broken")
    screen_videos(data / "videos", seeds=(11,), frames=4)
    cart_recording(data / "cart", seed=3, frames=4, overlay=False)
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main(["analyze", str(data), "--out", str(local), "--workers", "1", "--quiet"]) == 1  # the damaged DICOM
    assert main(["analyze", str(data), "--out", str(on_ray), "--engine", "ray", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("failed: DICOM") == 2 and err.strip().splitlines()[-1].startswith("tlf-edge: error: 1 of 6 clips failed")
    assert len(frames_of(on_ray)) == 5 and frames_of(on_ray) == frames_of(local)
    assert summaries_of(on_ray) == summaries_of(local)
    assert (on_ray / "clips.csv").read_text() == (local / "clips.csv").read_text()
    run = json.loads((on_ray / "analysis.json").read_text())
    assert run["engine"] == "ray" and run["failed"] == 1
    kinds = sorted(r["kind"] for r in csv.DictReader((on_ray / "clips.csv").open()) if r["status"] == "done")
    assert kinds == ["dicom", "dicom", "dicom", "recording", "video"]
    # Resumed on Ray: everything done is skipped, the damaged clip tried again.
    assert main(["analyze", str(data), "--out", str(on_ray), "--engine", "ray", "--quiet"]) == 1
    assert "5 of 6 clips already analysed with this bundle and config: skipped" in capsys.readouterr().err
