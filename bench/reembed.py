"""Re-embedding throughput: a single-process loop against Ray Data with N model actors, side by
side in one run, on the same images (the dev faces enrolled with their classic views).

The gallery is built once (dlib, classic views) and cached; each measured run starts from a copy
with every vector removed, so both runs embed exactly the same images with the same model (dlib)
and the same code (core/batch/reembed.py: ``--no-ray`` is the loop). Reported: wall time of the
whole job (model loads and Ray start-up included) and images per second, and where the CPU went:
every process's CPU time, sampled every half second and grouped (the model actors, Ray's own
processes, the driver, the rest of the machine), so the ratio can be explained, not guessed.

    python -m bench.reembed --people 60 --workers 2
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import psutil

from bench.machine import describe_machine
from core.batch.reembed import reembed
from core.errors import ManyAnglesError
from core.service import ManyAnglesService
from core.settings import Settings

log = logging.getLogger("bench.reembed")
FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


def build_gallery(folder: Path, people: int) -> int:
    """Enroll the first photo of ``people`` identities with classic views (cached)."""
    marker = folder / f"built-{people}"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        service = ManyAnglesService.from_settings(Settings(data_dir=folder / "data"))
        names = [p.name for p in sorted(FACES.iterdir()) if (p / "1.jpg").is_file()][:people]
        for i, name in enumerate(names):
            try:
                service.enroll(
                    name, (FACES / name / "1.jpg").read_bytes(), face="largest", augment=True, force=True
                )  # force: a lookalike among 132 people must not stop the set-up
            except ManyAnglesError as exc:  # a photo the detector misses is left out of the benchmark
                log.warning("%s: %s", name, exc)
            if i % 10 == 0:
                log.info("enrolled %d/%d", i + 1, len(names))
        marker.touch()
    with sqlite3.connect(folder / "data" / "gallery.db") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])


def fresh_copy(source: Path, dest: Path) -> Settings:
    """The gallery with no vectors and no model: every image is work."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source / "data", dest)
    with sqlite3.connect(dest / "gallery.db") as conn:
        conn.execute("DELETE FROM embeddings")
        conn.execute("DELETE FROM models")
    return Settings(data_dir=dest)


def group_of(process: psutil.Process, driver: int) -> str | None:
    """None: the command line cannot be read (an exiting process): keep what it was."""
    if process.pid == driver:
        return "driver"
    try:
        command = " ".join(process.cmdline())
    except (psutil.Error, OSError):
        return None
    if "ReembedWorker" in command or "MapWorker" in command:
        return "model actors"
    if command.startswith("ray::IDLE"):
        return "ray (raylet, GCS, workers, dashboard)"
    if "ray" in command:
        return "ray (raylet, GCS, workers, dashboard)"
    return "other"


class CpuAccount:
    """CPU seconds per process group while a run lasts (last sample of each process counts)."""

    def __init__(self) -> None:
        self.driver = os.getpid()
        self.seen: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._start: dict[int, float] = {}

    def __enter__(self) -> CpuAccount:
        for process in psutil.process_iter():
            try:
                times = process.cpu_times()
                self._start[process.pid] = times.user + times.system
            except psutil.Error:
                pass
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.5)

    def sample(self) -> None:
        for process in psutil.process_iter():
            try:
                times = process.cpu_times()
                # again each time: an idle Ray worker becomes an actor; an exiting one keeps its group
                group = group_of(process, self.driver) or self.seen.get(process.pid, ("other", 0.0))[0]
                used = times.user + times.system - self._start.get(process.pid, 0.0)
                self.seen[process.pid] = (group, used)
            except psutil.Error:
                pass

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def by_group(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for group, used in self.seen.values():
            out[group] = out.get(group, 0.0) + used
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/manyangles-bench-reembed"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    images = build_gallery(args.cache, args.people)
    rows = []
    cpu_rows: list[tuple[str, float, dict[str, float]]] = []
    for label, use_ray in (("loop (1 process)", False), (f"Ray Data, {args.workers} actors", True)):
        settings = fresh_copy(args.cache, args.cache / "run")
        started = time.perf_counter()
        with CpuAccount() as cpu:
            report = reembed(
                settings, "dlib", workers=args.workers, batch_size=args.batch_size, use_ray=use_ray, show_progress=False
            )
        wall = time.perf_counter() - started
        assert report.total == images, (report.total, images)
        rows.append((label, wall, images / wall, report.embedded, report.skipped))
        cpu_rows.append((label, wall, cpu.by_group()))
        log.info("%s: %.1f s, %.2f images/s, CPU s by group %s", label, wall, images / wall, cpu.by_group())
    print(f"machine: {describe_machine()}; {images} images ({args.people} people + classic views)")
    print("| run | wall s | images/s | embedded | no face | ratio |")
    print("|---|---|---|---|---|---|")
    base = rows[0][2]
    for label, wall, rate, embedded, skipped in rows:
        print(f"| {label} | {wall:.1f} | {rate:.2f} | {embedded} | {skipped} | {rate / base:.2f}x |")
    cores = psutil.cpu_count() or 1
    print(f"\nCPU seconds by process group ({cores} cores: at most {cores} x wall)")
    groups = sorted({g for _, _, by in cpu_rows for g in by})
    print("| run | wall s | " + " | ".join(groups) + " | cores busy |")
    print("|---|---|" + "---|" * len(groups) + "---|")
    for label, wall, by in cpu_rows:
        cells = " | ".join(f"{by.get(g, 0.0):.0f}" for g in groups)
        print(f"| {label} | {wall:.1f} | {cells} | {sum(by.values()) / wall:.2f} |")


if __name__ == "__main__":
    main()
