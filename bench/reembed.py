"""Re-embedding throughput: a single-process loop against Ray Data with N model actors, side by
side in one run, on the same images (the dev faces enrolled with their classic views).

The gallery is built once (dlib, classic views) and cached; each measured run starts from a copy
with every vector removed, so both runs embed exactly the same images with the same model (dlib)
and the same code (core/batch/reembed.py: ``--no-ray`` is the loop). Reported: wall time of the
whole job (model loads and Ray start-up included) and images per second.

    python -m bench.reembed --people 60 --workers 2
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sqlite3
import time
from pathlib import Path

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
                service.enroll(name, (FACES / name / "1.jpg").read_bytes(), face="largest", augment=True)
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
    for label, use_ray in (("loop (1 process)", False), (f"Ray Data, {args.workers} actors", True)):
        settings = fresh_copy(args.cache, args.cache / "run")
        started = time.perf_counter()
        report = reembed(
            settings, "dlib", workers=args.workers, batch_size=args.batch_size, use_ray=use_ray, show_progress=False
        )
        wall = time.perf_counter() - started
        assert report.total == images, (report.total, images)
        rows.append((label, wall, images / wall, report.embedded, report.skipped))
        log.info("%s: %.1f s, %.2f images/s", label, wall, images / wall)
    print(f"machine: {describe_machine()}; {images} images ({args.people} people + classic views)")
    print("| run | wall s | images/s | embedded | no face | ratio |")
    print("|---|---|---|---|---|---|")
    base = rows[0][2]
    for label, wall, rate, embedded, skipped in rows:
        print(f"| {label} | {wall:.1f} | {rate:.2f} | {embedded} | {skipped} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
