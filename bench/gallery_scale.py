"""How the console's gallery queries scale: a synthetic store of N persons, the Gallery page's
DuckDB queries over it: on the store in place (sqlite scanner, what local mode did before), and on
the console's snapshots of it, local (sqlite scanner once, then the change log) and remote (the
API's Parquet exports), each kept up to date side by side after the same changes.

The store is built with the real schema (GalleryStore) and filled with plain INSERTs: persons,
image metadata rows (no files) and embeddings with random unit vectors. Half the persons have
10 synthetic views, like a gallery that mixes augmented and plain enrollments.

    python -m bench.gallery_scale --persons 100000
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from bench.machine import describe_machine
from console import analytics
from console.client import Changed
from console.local_tables import LocalTables
from core.errors import ChangesUnavailable
from core.store.changes import changes_since
from core.store.gallery import GalleryStore
from core.store.snapshot import TABLES, export_table

log = logging.getLogger("bench.gallery_scale")
VIEWS = ["left", "right", "up", "down", "smiling", "serious", "left_far", "right_far", "up_far", "down_far"]


def build_store(data_dir: Path, persons: int, dim: int = 128, seed: int = 0) -> None:
    GalleryStore(data_dir)  # the real schema
    rng = np.random.default_rng(seed)
    conn = sqlite3.connect(data_dir / "gallery.db")
    now = "2026-11-26T00:00:00.000+00:00"
    conn.execute("BEGIN")
    image_id = 0
    for start in range(0, persons, 10_000):
        ids = range(start + 1, min(persons, start + 10_000) + 1)
        conn.executemany(
            "INSERT INTO persons(id, name, created_at) VALUES (?, ?, ?)", [(i, f"person {i:07d}", now) for i in ids]
        )
        images, embeddings = [], []
        for pid in ids:
            sources = ["original"] + ([f"augmented_{v}" for v in VIEWS] if pid % 2 else [])
            vectors = rng.standard_normal((len(sources), dim)).astype("<f4")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            for source, vector in zip(sources, vectors):
                image_id += 1
                sha = f"{image_id:064x}"
                images.append(
                    (
                        image_id,
                        pid,
                        sha,
                        f"images/{sha[:2]}/{sha}.png",
                        source,
                        f"{source}.png",
                        "image/png",
                        256,
                        256,
                        50_000,
                        None,
                        now,
                    )
                )
                embeddings.append(
                    (pid, image_id, source, "dlib-resnet-v1-flip", dim, vector.tobytes(), 1.0, 0.0, 0.0, 1.0, 1.0, now)
                )
        conn.executemany(
            "INSERT INTO images(id, person_id, sha256, path, source, display_name, mime, width, height, num_bytes, "
            "generator, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            images,
        )
        conn.executemany(
            "INSERT INTO embeddings(person_id, image_id, source, model, dim, vector, det_score, bbox_x1, bbox_y1, "
            "bbox_x2, bbox_y2, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            embeddings,
        )
    conn.execute("COMMIT")
    conn.close()


def timed(fn: Callable[[], object], repeats: int = 3) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), runs


class SnapshotSource:
    """The remote path without HTTP: the same Parquet bytes GET /v1/export answers."""

    def __init__(self, store: GalleryStore) -> None:
        self.store = store

    def export(
        self, table: str, vectors: bool = False, person_ids: list[int] | None = None, columns: list[str] | None = None
    ) -> bytes:
        return export_table(self.store, table, with_vectors=vectors, person_ids=person_ids, columns=columns)

    def changes(self, since: str | None = None, limit: int = 10_000) -> Changed | None:
        """What GET /v1/export/changes answers."""
        try:
            found = changes_since(self.store, since, limit)
        except ChangesUnavailable:
            return None
        return Changed(found.token, found.stamp, found.person_ids, found.deleted, found.complete)


class WholeTables(SnapshotSource):
    """The snapshot as it was before 2026-11-27: every column of every table."""

    def export(
        self, table: str, vectors: bool = False, person_ids: list[int] | None = None, columns: list[str] | None = None
    ) -> bytes:
        return super().export(table, vectors, person_ids, None if person_ids is None else columns)


def same_tables(snapshot: analytics.Snapshot, fresh: analytics.Snapshot) -> None:
    for table in analytics.SNAPSHOT_COLUMNS:
        query = f"SELECT * FROM g.{table} ORDER BY ALL"
        if analytics.connect(snapshot).execute(query).fetchall() != analytics.connect(fresh).execute(query).fetchall():
            raise SystemExit(f"the snapshot brought up to date differs from a fresh one in {table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the store in this dir")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.keep or Path(tmp)
        if not (data_dir / "gallery.db").exists():
            started = time.perf_counter()
            build_store(data_dir, args.persons)
            log.info("built %d persons in %.1f s", args.persons, time.perf_counter() - started)
        started = time.perf_counter()
        GalleryStore(data_dir)  # a kept store of an older schema is migrated first
        log.info("opened (migrated) in %.1f s", time.perf_counter() - started)
        size = (data_dir / "gallery.db").stat().st_size
        log.info("machine: %s; gallery.db %.0f MB", describe_machine(), size / 1e6)
        db = GalleryStore(data_dir)
        rows: list[tuple[str, float, list[float]]] = []

        def measure(label: str, fn: Callable[[], object], repeats: int = 3) -> None:
            rows.append((label, *timed(fn, repeats)))

        page_ids = list(range(1, 26))
        for sort in analytics.SORTS:  # before: the store queried in place, a full scan each time
            measure(f"local page 1, sort {sort}", partial(analytics.persons_page, data_dir, "", sort, 0))
        measure("local search 'person 00123'", partial(analytics.persons_page, data_dir, "person 00123", "name", 0))
        measure(
            "local last page, sort name", partial(analytics.persons_page, data_dir, "", "name", args.persons // 25 - 1)
        )
        measure("local counts by source, 25 persons", partial(analytics.counts_by_source, data_dir, page_ids))
        measure("local PCA of 5 persons", partial(analytics.projection, data_dir, [1, 2, 3, 4, 5]))
        for table in TABLES:
            megabytes = len(export_table(db, table)) / 1e6
            measure(f"export {table} ({megabytes:.1f} MB Parquet)", partial(export_table, db, table))
        remote, local = analytics.RemoteTables(SnapshotSource(db)), LocalTables(data_dir)
        measure("remote snapshot: export + load 3 tables", partial(analytics.Snapshot.load, remote), 1)
        measure(
            "remote snapshot, whole tables (before)",
            partial(analytics.Snapshot.load, analytics.RemoteTables(WholeTables(db))),
            1,
        )
        measure("local snapshot: read 3 tables (sqlite scanner) + load", partial(analytics.Snapshot.load, local), 1)
        snapshots = {"remote": analytics.Snapshot.load(remote), "local": analytics.Snapshot.load(local)}
        for where, snapshot in snapshots.items():
            if snapshot.revalidated() is not snapshot:
                raise SystemExit(f"an unchanged gallery was read again ({where})")
            measure(f"{where} snapshot re-checked, gallery unchanged", snapshot.revalidated)
        store = GalleryStore(data_dir)
        for label, change in (
            ("one person renamed", lambda i: store.rename_person(1 + i, f"renamed {i} {time.time_ns()}")),
            ("one person with 10 views deleted", lambda i: store.delete_person(args.persons - 1 - 2 * i)),
        ):
            runs: dict[str, list[float]] = {where: [] for where in snapshots}
            for i in range(3):
                change(i)
                for where, snapshot in snapshots.items():  # side by side, the same change
                    started = time.perf_counter()
                    snapshots[where] = snapshot = snapshot.revalidated()
                    runs[where].append(time.perf_counter() - started)
                    if snapshot.updated != 1:
                        raise SystemExit(f"{label}: the {where} delta re-read {snapshot.updated} person(s), not 1")
            for where, times in runs.items():
                rows.append((f"{where} snapshot brought up to date, {label}", statistics.median(times), times))
        same_tables(snapshots["remote"], analytics.Snapshot.load(remote))
        same_tables(snapshots["local"], analytics.Snapshot.load(local))
        for where, snapshot in snapshots.items():
            for sort in analytics.SORTS:
                measure(
                    f"{where} snapshot: page 1, sort {sort}", partial(analytics.persons_page, snapshot, "", sort, 0)
                )
            measure(
                f"{where} snapshot: counts by source, 25 persons",
                partial(analytics.counts_by_source, snapshot, page_ids),
            )
            measure(
                f"{where} snapshot: PCA of 5 persons (their vectors read)",
                partial(analytics.projection, snapshot, [1, 2, 3, 4, 5]),
            )
        lines = [f"{args.persons} persons, gallery.db {size / 1e6:.0f} MB; {describe_machine()}", ""]
        lines += ["| query | median s | runs |", "|---|---|---|"]
        lines += [f"| {label} | {median:.3f} | {', '.join(f'{r:.3f}' for r in runs)} |" for label, median, runs in rows]
        log.info("\n%s", "\n".join(lines))


if __name__ == "__main__":
    main()
