"""`tlf-edge analyze --engine ray`: the same clips and the same Worker, on Ray actors.

Each actor takes one CPU and loads the bundle once; an ActorPool hands it clip after clip. The
bundle travels with the job (its manifest and model file, a few MB, put in Ray's object store
once and written to each actor's temporary folder, where load_bundle verifies it against its
hashes again), so worker nodes need tlf-edge installed but no copy of the bundle. The clips are
read by the actors at the paths the driver was given: every node must see the data at the same
path (a shared mount). Results come back to the driver, which alone writes the output folder.

With Ray already initialised in this process (a test's `ray.init(num_cpus=2)`) that instance is
used; otherwise `ray.init(address)`: None starts a local Ray, "auto" joins the cluster this
machine is part of, "ray://HEAD:10001" connects through the Ray Client.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge.analyze.run import AnalysisJob, ClipResult, Task, Worker, single_threaded
from edge.model.bundle import MANIFEST_FILE, load_bundle


def bundle_files(path: str) -> dict[str, bytes]:
    """The files a bundle is made of (manifest and model), by name."""
    bundle = load_bundle(path)
    return {
        MANIFEST_FILE: (bundle.path / MANIFEST_FILE).read_bytes(),
        bundle.manifest["model_file"]: bundle.model_path.read_bytes(),
    }


class RayClipWorker:
    """A Ray actor's state: the bundle written to a temporary folder and loaded once."""

    def __init__(self, files: dict[str, bytes], job: AnalysisJob):
        single_threaded()
        self._dir = tempfile.TemporaryDirectory(prefix="tlf-edge-bundle-")
        for name, data in files.items():
            (Path(self._dir.name) / name).write_bytes(data)
        self.worker = Worker(replace(job, bundle=self._dir.name))

    def analyse(self, task: Task) -> ClipResult:
        return self.worker(task)


def run_ray(tasks: list[Task], job: AnalysisJob, workers: int | None, address: str | None) -> Iterator[ClipResult]:
    """Each task's result as an actor finishes it; `workers` actors (default: the cluster's CPUs)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report to Ray's servers: nothing leaves the cluster
    import ray
    from ray.util import ActorPool

    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"include_dashboard": False} if address is None else {}
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **options)
    actors = []
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(workers or cpus, len(tasks)))
        files = ray.put(bundle_files(job.bundle))
        actor = ray.remote(num_cpus=1)(RayClipWorker)
        actors = [actor.remote(files, job) for _ in range(n)]
        pool = ActorPool(actors)
        yield from pool.map_unordered(lambda a, task: a.analyse.remote(task), tasks)
    finally:
        for a in actors:  # Ray types ray.remote(cls) as the class or its actor class; .remote() made actors
            ray.kill(a)  # type: ignore[arg-type]
        if started:
            ray.shutdown()
