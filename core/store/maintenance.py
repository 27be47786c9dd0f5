"""The store's start-up check: after a crash, find what a killed process left behind and clean it.
(On PostgreSQL the image bytes are rows of the same transactions: see ``_check_database``.)

An enrollment writes its files before its rows (core/store/gallery.py), so a process killed in
between leaves image files that no row references, and a kill during a write leaves a ``.tmp-*``
file. Both are found by a walk outside any lock; an orphan is removed only if, under the store's
write lock (no enrollment commits meanwhile), still no row names it. A temp file younger than
``min_age_s`` may belong to a write in flight and is left alone. The
removal log's rows older than a day are pruned (core/store/removals.py).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import StoreCorrupt
from core.store.gallery import GalleryStore
from core.store.removals import prune_removals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckReport:
    integrity: str  # "ok", or SQLite's first complaint
    orphan_files: int  # image files no row referenced: removed
    temp_files: int  # half-written files: removed
    seconds: float


EXPORT_PREFIX = "manyangles-export-"  # temp folders of GET /v1/export/gallery, in the data dir
LOG_EACH = 20  # removals logged one by one; past that, only the totals


def _removed(count: int, what: str, name: str) -> None:
    if count <= LOG_EACH:
        log.warning("start-up check: removed %s %s", what, name)


def check_store(store: GalleryStore, min_age_s: float = 60.0, full: bool = False) -> CheckReport:
    """quick_check (``full``: integrity_check), then remove orphan image files and stale temp
    files; log what was done.

    Only the removals hold the write lock: the check reads in its own transaction and the file
    walk happens outside any, so a replica starting next to a large gallery does not stall the
    others' enrollments; each orphan found by the walk is checked again under the lock."""
    started = time.perf_counter()
    if store.blobs.in_database:
        return _check_database(store, started, min_age_s)
    try:
        with store.reader() as conn:
            integrity = str(conn.execute("PRAGMA integrity_check" if full else "PRAGMA quick_check").fetchone()[0])
    except sqlite3.DatabaseError as exc:  # damage the check itself trips over ("malformed")
        integrity = str(exc)
    if integrity != "ok":
        log.error("gallery.db failed %s: %s; restore a backup", "integrity_check" if full else "quick_check", integrity)
        raise StoreCorrupt(f"{store.db_path} failed SQLite's integrity check: {integrity}")
    with store.reader() as conn:
        referenced = {row[0] for row in conn.execute("SELECT DISTINCT path FROM images")}
    now = time.time()
    unreferenced, stale = [], []
    for path in store.images_dir.rglob("*"):
        if not path.is_file():
            continue
        if path.name.startswith(".tmp-"):
            if now - path.stat().st_mtime >= min_age_s:
                stale.append(path)
        elif path.relative_to(store.data_dir).as_posix() not in referenced:
            unreferenced.append(path)
    orphans, temps = remove_orphans(store, unreferenced), 0
    for path in stale:
        path.unlink(missing_ok=True)
        temps += 1
        _removed(temps + orphans, "half-written file", path.relative_to(store.data_dir).as_posix())
    temps += _remove_unfinished_exports(store, now, min_age_s, orphans + temps)
    prune_removals(store)
    report = CheckReport(integrity, orphans, temps, time.perf_counter() - started)
    if orphans or temps:
        log.warning(
            "start-up check of %s: removed %d orphan image file(s) and %d half-written temp file(s)",
            store.data_dir,
            orphans,
            temps,
        )
    else:
        log.info("start-up check of %s: integrity ok, nothing to clean (%.2f s)", store.data_dir, report.seconds)
    return report


def _remove_unfinished_exports(store: GalleryStore, now: float, min_age_s: float, removed_before: int) -> int:
    """The temp folders of HTTP exports cut short by a kill (they hold image bytes)."""
    removed = 0
    for folder in store.data_dir.glob(EXPORT_PREFIX + "*"):
        if folder.is_dir() and now - folder.stat().st_mtime >= min_age_s:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
            _removed(removed_before + removed, "unfinished export folder", folder.name)
    return removed


_ORPHAN_BLOBS = "FROM image_blobs b WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.path = b.path)"


def _check_database(store: GalleryStore, started: float, min_age_s: float) -> CheckReport:
    """PostgreSQL: the server keeps its own files whole (its WAL replays a crash; ``--full`` has
    nothing more to run here: PostgreSQL's amcheck is the server operator's); image bytes are rows
    written and removed with their image rows, so an orphan is a bug: removed, and said. Looked
    for without the write lock, removed under it only when found."""
    with store.reader() as conn:
        found = conn.execute(f"SELECT 1 {_ORPHAN_BLOBS} LIMIT 1").fetchone() is not None
    orphans = 0
    if found:
        with store.write_lock() as conn:
            orphans = int(conn.execute(f"DELETE {_ORPHAN_BLOBS}").rowcount)
    temps = _remove_unfinished_exports(store, time.time(), min_age_s, orphans)
    prune_removals(store)
    if orphans or temps:
        log.warning(
            "start-up check of %s: removed %d image blob(s) no image row named, %d unfinished export folder(s)",
            store.where,
            orphans,
            temps,
        )
    else:
        log.info("start-up check of %s: nothing to clean", store.where)
    return CheckReport("ok", orphans, temps, time.perf_counter() - started)


def remove_orphans(store: GalleryStore, candidates: list[Path]) -> int:
    """Unlink the candidates no row names (GalleryStore.remove_unreferenced checks each under the
    write lock: an enrollment may have committed a row for one since the walk)."""
    removed = store.remove_unreferenced(candidates)
    for count, path in enumerate(removed, 1):
        _removed(count, "orphan image file (no row names it)", path.relative_to(store.data_dir).as_posix())
    return len(removed)
