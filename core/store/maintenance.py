"""The store's start-up check: after a crash, find what a killed process left behind and clean it.

An enrollment writes its files before its rows (core/store/gallery.py), so a process killed in
between leaves image files that no row references, and a kill during a write leaves a ``.tmp-*``
file. Both are found and removed under the store's write lock (no enrollment commits meanwhile);
a temp file younger than ``min_age_s`` may belong to a write in flight and is left alone. The
removal log's rows older than a day are pruned (core/store/removals.py).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass

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


def check_store(store: GalleryStore, min_age_s: float = 60.0) -> CheckReport:
    """integrity_check, then remove orphan image files and stale temp files; log what was done."""
    started = time.perf_counter()
    orphans = temps = 0
    with store.write_lock() as conn:
        integrity = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        if integrity != "ok":
            log.error("gallery.db failed integrity_check: %s; restore a backup", integrity)
            raise StoreCorrupt(f"{store.db_path} failed SQLite's integrity_check: {integrity}")
        referenced = {row[0] for row in conn.execute("SELECT DISTINCT path FROM images")}
        now = time.time()
        for path in store.images_dir.rglob("*"):
            if not path.is_file():
                continue
            name = path.relative_to(store.data_dir).as_posix()  # a content hash: names no one
            if path.name.startswith(".tmp-"):
                if now - path.stat().st_mtime >= min_age_s:
                    path.unlink(missing_ok=True)
                    temps += 1
                    _removed(temps + orphans, "half-written file", name)
            elif name not in referenced:
                path.unlink(missing_ok=True)
                orphans += 1
                _removed(temps + orphans, "orphan image file (no row names it)", name)
        for folder in store.data_dir.glob(EXPORT_PREFIX + "*"):  # an HTTP export cut short by a kill
            if folder.is_dir() and now - folder.stat().st_mtime >= min_age_s:
                shutil.rmtree(folder, ignore_errors=True)
                temps += 1
                _removed(temps + orphans, "unfinished export folder", folder.name)
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
