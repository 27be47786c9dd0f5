"""Backup and restore of a PostgreSQL gallery with PostgreSQL's own tools.

``manyangles backup DEST`` runs ``pg_dump --format=custom`` into ``DEST/gallery.pgdump``: one
consistent snapshot of every table, image bytes included (pg_dump reads in one repeatable-read
transaction; enrollments go on meanwhile). ``manyangles restore SRC`` checks the dump with
``pg_restore --list``, refuses a database that already holds a gallery, and restores in one
transaction (all or nothing), then draws a new change epoch (as SQLite's restore does).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from core.errors import InvalidInput, StoreCorrupt, StoreUnavailable
from core.store.changes import new_epoch
from core.store.db import PostgresDatabase, libpq_environment, url_parts
from core.store.gallery import GalleryStore

log = logging.getLogger(__name__)
DUMP_FILE = "gallery.pgdump"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StoreUnavailable(f"{name} is not installed: install PostgreSQL's client tools (postgresql-client)")
    return path


def _run(args: list[str], what: str, url: str = "") -> str:
    """A PostgreSQL tool; the database's URL as libpq's PG* variables, never on a command line
    (which every user of the machine can read)."""
    env = {**os.environ, **libpq_environment(url)} if url else None
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise StoreUnavailable(f"{what} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def dump(store: GalleryStore, dest: Path) -> tuple[int, int, float]:
    """pg_dump of the store's database into ``dest`` (an empty or new folder, made 0700);
    returns (persons, images, seconds): the counts are read just after the dump."""
    assert isinstance(store.db, PostgresDatabase)
    started = time.perf_counter()
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.chmod(0o700)
    target = dest / DUMP_FILE
    target.touch(mode=0o600)
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={target}"], "pg_dump", store.db.url)
    target.chmod(0o600)
    with store.reader() as conn:
        persons = int(conn.execute("SELECT count(*) FROM persons").fetchone()[0])
        images = int(conn.execute("SELECT count(*) FROM images").fetchone()[0])
    return persons, images, time.perf_counter() - started


def verify_dump(src: Path) -> list[str]:
    """Problems that make ``src`` unfit to restore (empty: fit)."""
    dumped = Path(src) / DUMP_FILE
    if not dumped.is_file():
        return [f"{src} holds no {DUMP_FILE}"]
    try:
        listing = _run([_tool("pg_restore"), "--list", str(dumped)], "pg_restore --list")
    except StoreUnavailable as exc:
        return [str(exc)]
    return [] if "TABLE DATA public persons" in listing else [f"{dumped} holds no gallery tables"]


def load(src: Path, url: str) -> tuple[int, int]:
    """Restore ``src``'s dump into the (empty) database at ``url``; returns (persons, images)."""
    problems = verify_dump(src)
    if problems:
        raise StoreCorrupt(f"{src} is not a usable backup: {'; '.join(problems)}")
    database = PostgresDatabase(url, 30.0)
    try:
        with database.connect() as conn:
            if conn.execute("SELECT to_regclass('store_meta')").fetchone()[0] is not None:
                raise InvalidInput(f"{database.describe()} already holds a gallery: restore into an empty database")
    finally:
        database.close()
    _run(
        [
            _tool("pg_restore"),
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={url_parts(url).get('dbname', '')}",  # the rest (password too) from PG* variables
            str(src / DUMP_FILE),
        ],
        "pg_restore",
        url,
    )
    store = GalleryStore(Path("."), url=url)  # migrates an older backup
    try:
        with store.write_lock() as conn:
            new_epoch(conn)  # a console's change token of the live gallery must not match the copy
            images = int(conn.execute("SELECT count(*) FROM images").fetchone()[0])
        return store.count_persons(), images
    finally:
        store.close()
