"""Per-person and per-request operations on a large gallery, now and before, side by side on the
same store: a person's detail, a page of persons, an exact name lookup and deleting a person
(rows, cascades, file checks, WAL checkpoint) with the schema-8 indexes and without them (the
schema-7 set); and the query every identification runs to bring its in-memory gallery up to
date (nothing new to read), as it is and as it was. Then the start-up check's database part,
quick_check and integrity_check.

The store is bench/gallery_scale.py's (real schema, half the persons with 10 views), plus a
generation run and an enrollment run per person, as the service writes them.

    python -m bench.person_ops --persons 170000   # ~1M embeddings
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from bench.gallery_scale import build_store, timed
from bench.machine import describe_machine
from core.store.gallery import GalleryStore
from core.store.maintenance import check_store
from core.store.model_versions import EMBEDDINGS_AFTER_SQL

log = logging.getLogger("bench.person_ops")
NEW_INDEXES = {
    "embeddings_person": "embeddings(person_id, model, source)",
    "generation_runs_person": "generation_runs(person_id)",
    "enrollment_runs_person": "enrollment_runs(person_id)",
    "images_path": "images(path)",
}


# what core/store/model_versions.py asked before: the model index walks every vector of the model
OLD_REFRESH_SQL = EMBEDDINGS_AFTER_SQL.replace("+model", "model")


def refresh(db: Path, sql: str, after_id: int) -> int:
    with sqlite3.connect(db) as conn:
        return len(conn.execute(sql, ("dlib-resnet-v1-flip", after_id)).fetchall())


def add_runs(db: Path, persons: int) -> None:
    now = "2026-11-26T00:00:00.000+00:00"
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO generation_runs(person_id, generator, device, dtype, num_views, num_accepted, total_s, "
            "views_json, created_at) VALUES (?, 'classic', 'cpu', 'float32', 10, 10, 0.5, '[]', ?)",
            ((pid, now) for pid in range(1, persons + 1, 2)),
        )
        conn.executemany(
            "INSERT INTO enrollment_runs(person_id, model, num_views, num_accepted, total_s, timings_json, "
            "created_at) VALUES (?, 'dlib-resnet-v1-flip', 10, 10, 1.0, '{}', ?)",
            ((pid, now) for pid in range(1, persons + 1)),
        )
    conn.close()


def set_indexes(db: Path, present: bool) -> None:
    conn = sqlite3.connect(db)
    for name, target in NEW_INDEXES.items():
        conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}" if present else f"DROP INDEX IF EXISTS {name}")
    conn.commit()
    conn.close()


def victims(start: int, step: int) -> Iterator[int]:
    person = start
    while True:
        yield person
        person += step


def delete_next(store: GalleryStore, ids: Iterator[int]) -> dict[str, int]:
    return store.delete_person(next(ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=170_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the store in this dir")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.keep or Path(tmp)
        db = data_dir / "gallery.db"
        if not db.exists():
            started = time.perf_counter()
            build_store(data_dir, args.persons)
            add_runs(db, args.persons)
            log.info("built %d persons in %.1f s", args.persons, time.perf_counter() - started)
        store = GalleryStore(data_dir)
        with sqlite3.connect(db) as conn:
            embeddings = conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        header = f"{args.persons} persons, {embeddings} embeddings, gallery.db {db.stat().st_size / 1e6:.0f} MB"
        log.info("%s; %s", header, describe_machine())
        middle = args.persons // 2
        # odd ids have 10 views: each delete erases 11 images and 11 embeddings
        first = middle | 1
        doomed = {True: victims(first, 2), False: victims(first + 4 * args.repeats, 2)}
        with sqlite3.connect(db) as conn:
            last_id = conn.execute("SELECT MAX(id) FROM embeddings").fetchone()[0]
        rows: dict[str, dict[bool, tuple[float, list[float]]]] = {}
        for indexed in (True, False):
            set_indexes(db, indexed)
            operations: dict[str, Callable[[], object]] = {
                "person detail (11 images)": lambda: store.person_detail(11),
                "exact name lookup": lambda: store.find_person("person 0000013"),
                "page of 100 persons at the middle, + total": lambda: (
                    store.list_persons(limit=100, offset=middle),
                    store.count_persons(),
                ),
                "page of 100 by prefix 'person 0001'": lambda: store.list_persons(limit=100, prefix="person 0001"),
                "delete a person with 10 views": partial(delete_next, store, doomed[indexed]),
                "identify's gallery refresh, nothing new": partial(
                    refresh, db, EMBEDDINGS_AFTER_SQL if indexed else OLD_REFRESH_SQL, last_id
                ),
            }
            for label, operation in operations.items():
                rows.setdefault(label, {})[indexed] = timed(operation, args.repeats)
                log.info("%s, %s: %.4f s", label, "now" if indexed else "before", rows[label][indexed][0])
        started = time.perf_counter()
        set_indexes(db, True)  # what the 7 -> 8 migration does to this store
        migration_s = time.perf_counter() - started
        lines = [f"{header}; {describe_machine()}; the schema 7 -> 8 migration: {migration_s:.1f} s", ""]
        lines += ["| operation | now (median s) | before (median s) | ratio | runs (now / before) |"]
        lines += ["|---|---|---|---|---|"]
        for label, by in rows.items():
            (new, new_runs), (old, old_runs) = by[True], by[False]
            runs = f"{', '.join(f'{r:.4f}' for r in new_runs)} / {', '.join(f'{r:.3f}' for r in old_runs)}"
            lines.append(f"| {label} | {new:.4f} | {old:.3f} | {old / new:.0f}x | {runs} |")
        for full in (False, True):  # the store has no image files: the database check alone
            started = time.perf_counter()
            check_store(store, full=full)
            lines.append(
                f"start-up check, {'integrity_check' if full else 'quick_check'}: {time.perf_counter() - started:.1f} s"
            )
        log.info("\n%s", "\n".join(lines))


if __name__ == "__main__":
    main()
