"""Running the clips: which are done already, who analyses the rest, and where results go.

`AnalysisJob` is all a worker needs (bundle, config, whether names are kept); `Worker` loads the
bundle once (one LiteRT thread) and analyses clips one after another. The local engine runs one
worker in this process, or N worker processes (spawned, each with one interpreter thread and
OpenCV on one thread); the Ray engine (edge.analyze.ray_engine) runs the same Worker in Ray
actors. Each clip's measurements depend on the clip alone, so every engine and worker count
writes the same frames.jsonl.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from edge.analyze.clip import FORMAT, ClipResult, analyse_clip
from edge.analyze.inputs import Clip

SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class AnalysisJob:
    bundle: str  # the bundle folder
    config: object  # edge.runtime.config.Config: [roi], [calibration], [measurement], [temporal], [source] max_pixels
    keep_names: bool = False


@dataclass(frozen=True)
class Task:
    clip: Clip
    clip_id: str
    identity: dict  # model, bundle manifest, config and content hashes, and the key made of them


def config_digest(config) -> str:
    """The sha256 of every config value that can change a measurement."""
    relevant = {
        "format": FORMAT,
        "roi": dataclasses.asdict(config.roi),
        "calibration": dataclasses.asdict(config.calibration),
        "measurement": dataclasses.asdict(config.measurement),
        "temporal": dataclasses.asdict(config.temporal),
        "max_pixels": config.source.max_pixels,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def identity(bundle, config_sha256: str, content_sha256: str) -> dict:
    """The hashes that decide a clip's results, and the key made of them."""
    ids = {
        "model_sha256": bundle.sha256,
        "bundle_manifest_sha256": bundle.manifest.get("manifest_sha256"),
        "config_sha256": config_sha256,
        "content_sha256": content_sha256,
    }
    ids["key"] = hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()
    return ids


def single_threaded() -> None:
    """Keep this process's libraries to one thread each: a worker is one CPU's worth of work."""
    os.environ.update(SINGLE_THREAD_ENV)
    import cv2

    cv2.setNumThreads(1)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # as the command's own process (edge.cli)


class Worker:
    """Analyses clips with one loaded bundle (one LiteRT thread)."""

    def __init__(self, job: AnalysisJob):
        from edge.model.bundle import load_bundle
        from edge.model.segmenter import Segmenter

        self.job = job
        self.segmenter = Segmenter(load_bundle(job.bundle), 1)

    def __call__(self, task: Task) -> ClipResult:
        return analyse_clip(
            task.clip, task.clip_id, task.identity, self.segmenter, self.job.config, self.job.keep_names
        )


_worker: Worker | None = None  # the worker of a local worker process


def _init_process(job: AnalysisJob) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the run stops
    single_threaded()
    global _worker
    _worker = Worker(job)


def _run_in_process(task: Task) -> ClipResult:
    assert _worker is not None  # the pool's initializer made it in this process
    return _worker(task)


def run_local(tasks: list[Task], job: AnalysisJob, workers: int) -> Iterator[ClipResult]:
    """Each task's result as it is done: in this process (one worker) or in `workers` processes."""
    if workers <= 1:
        import cv2

        before = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            worker = Worker(job)
            for task in tasks:
                yield worker(task)
        finally:
            cv2.setNumThreads(before)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)) or 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_process,
        initargs=(job,),
    )
    finished = False
    try:
        futures = [pool.submit(_run_in_process, t) for t in tasks]
        for f in as_completed(futures):
            yield f.result()
        finished = True
    finally:
        if not finished:  # interrupted: the clips being analysed are let go (they run again next time)
            for p in list(getattr(pool, "_processes", {}).values()):
                p.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def run_tasks(
    tasks: list[Task], job: AnalysisJob, engine: str, workers: int | None, address: str | None
) -> Iterable[ClipResult]:
    if engine == "ray":
        from edge.analyze.ray_engine import run_ray

        return run_ray(tasks, job, workers, address)
    assert workers is not None  # None (the cluster's CPUs) is for Ray only: tlf-edge analyze counts the local cores
    return run_local(tasks, job, workers)
