"""Re-embed the whole gallery with another model on Ray Data, then switch to it atomically.

    work list (images without a vector of the model) -> ray.data.from_items
      -> map_batches(ReembedWorker, ActorPoolStrategy(size=workers), batch_size)   [actors hold the model]
      -> iter_batches on the driver -> one SQLite transaction per batch (INSERT OR IGNORE)

Only the driver writes, so a killed job leaves whole batches behind: the next run's work list is
exactly what is missing and nothing is embedded twice (UNIQUE (image_id, model)). Enrollments go on
meanwhile with the active model; their new images are picked up by another round before the switch,
and the switch itself re-checks, under the write lock, that every image has a vector.

Locally (no address) a private Ray instance gets ``workers + 1`` CPUs: the actors never hold every
CPU (Ray Data stalls when they do, ray-project/ray#44687). With ``address`` the job runs on that
cluster (``ray start`` or KubeRay); every node must see the data dir at the same path.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.batch.reembed_worker import ReembedWorker, items_to_rows, rows_to_results
from core.errors import NotCalibrated
from core.faces.active import model_spec, shipped_thresholds
from core.faces.loading import DETECTOR_OF, shipped_for
from core.faces.pipeline import FacePipeline, ModelInfo
from core.search.rules import RULES
from core.search.thresholds import resolve_threshold
from core.settings import Settings
from core.store.gallery import GalleryStore
from core.store.jobs import finish_job, start_job, update_job
from core.store.model_versions import ModelRecord, activate_model, register_model, work_list, write_embedded

log = logging.getLogger(__name__)
MAX_ROUNDS = 3  # enrollments during a round add work; the switch waits for a round with none


@dataclass(frozen=True)
class ReembedReport:
    model: str
    job_id: int
    total: int  # images embedded or recorded as not embeddable by this run
    embedded: int
    skipped: int
    elapsed_s: float
    switched: bool
    active: str | None

    @property
    def images_per_s(self) -> float:
        return self.total / self.elapsed_s if self.elapsed_s > 0 else 0.0


def default_workers(settings: Settings) -> int:
    return settings.reembed_workers or max(1, (os.cpu_count() or 2) - 1)


def target_settings(settings: Settings, embedder: str) -> Settings:
    """The settings that load ``embedder`` ('arcface', 'dlib' or 'insightface') with its own
    detector (core/faces/loading.py: ``DETECTOR_OF``)."""
    return settings.replace(embedder=embedder, detector=DETECTOR_OF[embedder])


def model_thresholds(store: GalleryStore, settings: Settings, info: ModelInfo) -> dict[str, float]:
    """Identification thresholds per matching rule (calibrated, else shipped) and the gate's."""
    out: dict[str, float] = {}
    for rule in RULES:
        try:
            out[rule] = resolve_threshold(store, info, "fpir", settings.target_fpir, rule)
        except NotCalibrated:
            if rule == (settings.match_mode or info.shipped.match_mode):
                raise
    try:
        out["gate"] = resolve_threshold(store, info, "gate_fmr", settings.gate_fmr, explicit=settings.gate_threshold)
    except NotCalibrated:
        pass
    return out


def switch_to(store: GalleryStore, settings: Settings, record: ModelRecord, allow_missing: bool) -> ModelRecord:
    """Switch by hand to a recorded model: its thresholds resolved as the job's switch does."""
    kind = str(record.spec.get("embedder", settings.embedder))
    info = ModelInfo(record.name, record.dim, "", "", 1, shipped_for(kind))
    return activate_model(
        store, record.name, model_thresholds(store, target_settings(settings, kind), info), allow_missing
    )


class Progress:
    """tqdm on the terminal (rate and ETA) and the job row for the status route."""

    def __init__(self, store: GalleryStore, job_id: int, total: int, show: bool, label: str) -> None:
        from tqdm import tqdm

        self.store, self.job_id = store, job_id
        self.done = self.skipped = 0
        self.bar = tqdm(total=total, unit="img", desc=label, disable=not show, file=sys.stderr, dynamic_ncols=True)

    def add(self, embedded: int, skipped: int, seen: int) -> None:
        self.done += embedded
        self.skipped += skipped
        self.bar.update(seen)
        update_job(self.store, self.job_id, self.done, self.skipped)

    def close(self) -> None:
        self.bar.close()


def reembed(
    settings: Settings,
    embedder: str,
    *,
    address: str | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    switch: bool = True,
    allow_missing: bool = False,
    show_progress: bool = True,
    use_ray: bool = True,
    job_id: int | None = None,
) -> ReembedReport:
    """Embed every image without a vector of the ``embedder`` model; switch to it when complete."""
    started = time.perf_counter()
    store = GalleryStore.from_settings(settings)
    target = target_settings(settings, embedder)
    info = _probe(store, target, job_id)
    record = register_model(store, info.name, info.dim, model_spec(target), shipped_thresholds(info))
    workers = workers or default_workers(settings)
    batch_size = batch_size or settings.reembed_batch
    items = work_list(store, info.name)
    job_id = start_job(store, "reembed", info.name, len(items), job_id)
    progress = Progress(store, job_id, len(items), show_progress, f"reembed {info.name}")
    log.info("re-embedding %d image(s) with %s (%d worker(s))", len(items), info.name, workers)

    def batches(todo: list[Any]) -> Iterator[list[Any]]:
        if use_ray:
            return _ray_batches(target, todo, address, workers, batch_size)
        return _loop_batches(target, todo, batch_size)

    try:
        _embed_rounds(store, info.name, items, batches, progress)
        if switch and record.status != "active":
            record = activate_model(store, info.name, model_thresholds(store, target, info), allow_missing)
    except BaseException as exc:
        progress.close()
        finish_job(store, job_id, False, f"{type(exc).__name__}: {exc}")
        raise
    progress.close()
    message = f"{progress.done} embedded, {progress.skipped} without a usable face" + (
        "; switched" if record.status == "active" else ""
    )
    finish_job(store, job_id, True, message)
    return ReembedReport(
        model=info.name,
        job_id=job_id,
        total=progress.done + progress.skipped,
        embedded=progress.done,
        skipped=progress.skipped,
        elapsed_s=time.perf_counter() - started,
        switched=record.status == "active",
        active=_active_name(store),
    )


def _probe(store: GalleryStore, target: Settings, job_id: int | None) -> ModelInfo:
    """The model, loaded here first: a missing model fails fast, before Ray (and the API's job,
    ``job_id``, says why: its status route must)."""
    try:
        probe = FacePipeline(target, workers=1)
    except BaseException as exc:
        if job_id is not None:
            finish_job(store, job_id, False, f"{type(exc).__name__}: {exc}")
        raise
    info = probe.info
    probe.close()
    return info


def _embed_rounds(
    store: GalleryStore,
    model: str,
    items: list[Any],
    batches: Callable[[list[Any]], Iterator[list[Any]]],
    progress: Progress,
) -> None:
    """Embeds ``items`` batch by batch, one transaction per batch; images enrolled meanwhile are
    the next round's work, for at most MAX_ROUNDS rounds."""
    for _ in range(MAX_ROUNDS):
        if not items:
            break
        for results in batches(items):
            written, skipped = write_embedded(store, model, results)
            progress.add(written, skipped, len(results))
        items = work_list(store, model)  # enrolled meanwhile
        if items:
            progress.bar.total += len(items)


def _active_name(store: GalleryStore) -> str | None:
    from core.store.model_versions import active_model

    active = active_model(store)
    return active.name if active else None


def _loop_batches(target: Settings, items: list[Any], batch_size: int) -> Iterator[list[Any]]:
    """The same work in this process, one batch after another (no Ray): the baseline."""
    worker = ReembedWorker(target)
    rows = items_to_rows(items)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        columns = {key: np.array([r[key] for r in chunk], dtype=object) for key in ("image_id", "path", "source")}
        columns["bbox"] = np.array([r["bbox"] for r in chunk], dtype=np.float64)
        yield rows_to_results(worker(columns))


ACTORS_START_S = 300  # a cluster that cannot start the asked actors in this time fails the job


def _ray_batches(
    target: Settings, items: list[Any], address: str | None, workers: int, batch_size: int
) -> Iterator[list[Any]]:
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    repo = str(Path(__file__).resolve().parents[2])
    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {
            "logging_level": logging.WARNING,
            "log_to_driver": False,
            "include_dashboard": False,
        }
        if address:
            # the cluster's nodes get this code as a module (they need only the requirements)
            options["runtime_env"] = {"py_modules": [str(Path(repo) / "core")], "excludes": ["__pycache__"]}
            ray.init(address=address, **options)
        else:
            options["runtime_env"] = {"env_vars": {"PYTHONPATH": repo}}
            ray.init(address="local", num_cpus=workers + 1, **options)
    try:
        context = DataContext.get_current()
        context.enable_progress_bars = False  # ours is on the terminal
        # every model actor up before the first batch: all of them share the work, and none is still
        # starting (then cancelled, which Ray Data reports as a failed job) when a small job ends
        context.wait_for_min_actors_s = ACTORS_START_S
        # an ONNX model on a GPU node when the cluster has one per actor (dlib runs on CPUs)
        gpus = 1 if target.embedder != "dlib" and ray.cluster_resources().get("GPU", 0) >= workers else 0
        # one block per model call and at most 2 queued per actor: the last actor to finish is at
        # most a batch or two behind the others (8 large blocks left one actor idle for ~30 s)
        blocks = max(workers * 4, -(-len(items) // batch_size))
        dataset = ray.data.from_items(items_to_rows(items), override_num_blocks=blocks).map_batches(
            ReembedWorker,
            fn_constructor_kwargs={"settings": target},
            compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
            batch_size=batch_size,
            batch_format="numpy",
            num_cpus=1,
            num_gpus=gpus,
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            yield rows_to_results(batch)
    finally:
        if started_here:
            ray.shutdown()
