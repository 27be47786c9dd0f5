"""Backup and restore of a whole data dir: the database and the image files, consistent.

On PostgreSQL both are PostgreSQL's own tools (core/store/pg_backup.py). On SQLite:
``backup`` holds the store's write lock while it copies the database (SQLite's online backup API)
and links (or, across file systems, copies) every image file the copy references, so the copy is
one moment of the gallery: enrollments wait for it (reads never do). ``restore`` checks a backup
(integrity_check, every referenced file present with its sha256) before it writes a byte, and
only into an empty data dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import InvalidInput, StoreCorrupt
from core.store import pg_backup
from core.store.changes import new_epoch
from core.store.gallery import GalleryStore

log = logging.getLogger(__name__)
KEY_FILE = "api_key"


@dataclass(frozen=True)
class BackupReport:
    dest: Path
    persons: int
    images: int
    files: int
    seconds: float


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _place(source: Path, target: Path, link: bool = True) -> None:
    """``source`` at ``target``: a hard link where the content never changes (the image files:
    named by their content), else a copy."""
    _private_dir(target.parent)
    try:
        os.link(source, target) if link else shutil.copy2(source, target)  # a link: instant
    except OSError:  # another file system
        shutil.copy2(source, target)
    target.chmod(0o600)


def _empty_or_absent(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInput(f"{what} {path} must be an empty or new folder")


def backup(store: GalleryStore, dest: Path) -> BackupReport:
    started = time.perf_counter()
    dest = Path(dest)
    _empty_or_absent(dest, "the backup folder")
    if store.blobs.in_database:  # PostgreSQL: pg_dump (core/store/pg_backup.py)
        persons, images, seconds = pg_backup.dump(store, dest)
        log.info("backed up %d person(s), %d image(s) with pg_dump to %s in %.1f s", persons, images, dest, seconds)
        return BackupReport(dest, persons, images, 1, seconds)
    _private_dir(dest)
    with store.write_lock() as conn:  # no enrollment or deletion commits meanwhile
        # the copy reads through its own connection (WAL readers run beside the held write lock;
        # a backup from the locking connection itself would wait for that lock forever)
        source = sqlite3.connect(f"file:{store.db_path}?mode=ro", uri=True)
        target = sqlite3.connect(dest / "gallery.db")
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        paths = [r[0] for r in conn.execute("SELECT DISTINCT path FROM images")]
        persons = int(conn.execute("SELECT count(*) FROM persons").fetchone()[0])
        images = int(conn.execute("SELECT count(*) FROM images").fetchone()[0])
        for relative in paths:
            _place(store.data_dir / relative, dest / relative)
    (dest / "gallery.db").chmod(0o600)
    key = store.data_dir / KEY_FILE
    if key.is_file():
        _place(key, dest / KEY_FILE, link=False)
    report = BackupReport(dest, persons, images, len(paths), time.perf_counter() - started)
    log.info("backed up %d person(s), %d image file(s) to %s in %.1f s", persons, len(paths), dest, report.seconds)
    return report


def verify_backup(src: Path) -> list[str]:
    """Problems that make ``src`` unfit to restore (empty: fit)."""
    db = Path(src) / "gallery.db"
    if not db.is_file():
        return [f"{src} holds no gallery.db"]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        integrity = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        if integrity != "ok":
            return [f"integrity_check: {integrity}"]
        rows = conn.execute("SELECT DISTINCT path, sha256 FROM images").fetchall()
    finally:
        conn.close()
    problems = []
    for relative, sha in rows:
        path = Path(src) / relative
        if not path.is_file():
            problems.append(f"missing {relative}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            problems.append(f"{relative} does not match its sha256")
    return problems


def restore(src: Path, data_dir: Path, url: str = "") -> BackupReport:
    """A backup into the empty data dir, or (``url``: PostgreSQL) into that empty database."""
    started = time.perf_counter()
    if url:
        persons, images = pg_backup.load(Path(src), url)
        log.info("restored %d person(s), %d image(s) with pg_restore from %s", persons, images, src)
        return BackupReport(Path(src), persons, images, 1, time.perf_counter() - started)
    problems = verify_backup(src)
    if problems:
        raise StoreCorrupt(f"{src} is not a usable backup: {'; '.join(problems[:5])}")
    _empty_or_absent(data_dir, "the data dir to restore into")
    _private_dir(data_dir)
    try:
        files = 0
        for path in Path(src).rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                # the database is copied: linked, the restored gallery's writes would change the backup
                _place(path, data_dir / path.relative_to(src), link=path.parent != Path(src))
                files += 1
        store = GalleryStore(data_dir)  # migrates an older backup, tightens modes
        try:
            with store.write_lock() as conn:
                new_epoch(conn)  # a console's change token of the live gallery must not match the copy
            persons = store.count_persons()
        finally:
            store.close()
    except BaseException:
        for path in sorted(data_dir.rglob("*"), reverse=True):  # all or nothing
            with contextlib.suppress(OSError):
                path.unlink() if path.is_file() else path.rmdir()
        raise
    report = BackupReport(data_dir, persons, 0, files, time.perf_counter() - started)
    log.info("restored %d person(s), %d file(s) from %s into %s", persons, files, src, data_dir)
    return report
