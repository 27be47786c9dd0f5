"""The SQLite backend keeps its connections open between operations (core/store/sqlite_db.py):
what each operation sees, and what happens to a connection after a failure, is as with a
connection of its own."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from core.store.sqlite_db import IDLE_PER_THREAD, SqliteDatabase


@pytest.fixture
def db(tmp_path: Path) -> SqliteDatabase:
    path = tmp_path / "pool.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    setup.close()
    return SqliteDatabase(path, busy_timeout_s=5.0)


def test_one_thread_reuses_its_connection(db: SqliteDatabase):
    with db.connect() as first:
        pass
    with db.transaction() as second:
        second.execute("INSERT INTO t (v) VALUES ('a')")
    assert first is second
    with db.connect() as conn:
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)


def test_a_nested_operation_takes_another_connection(db: SqliteDatabase):
    with db.transaction() as outer:
        outer.execute("INSERT INTO t (v) VALUES ('a')")
        with db.connect() as inner:
            assert inner is not outer
            assert inner.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)  # not committed yet
    with db.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)


def test_at_most_a_few_idle_connections_per_thread(db: SqliteDatabase):
    depth = IDLE_PER_THREAD + 2
    held = []

    def nest(level: int) -> None:
        with db.connect() as conn:
            held.append(conn)
            if level < depth:
                nest(level + 1)

    nest(1)
    assert len({id(c) for c in held}) == depth
    assert len(db._idle()) == IDLE_PER_THREAD
    closed = [c for c in held if c not in db._idle()]
    for conn in closed:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")


def test_each_sees_the_latest_commit_across_threads(db: SqliteDatabase):
    """No pooled connection keeps a read transaction open: a commit on one thread is seen by the
    next statement on another, whose connection was opened (and used) before it."""
    with db.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)

    def writer() -> None:
        with db.transaction() as conn:
            conn.execute("INSERT INTO t (v) VALUES ('from another thread')")

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join()
    with db.connect() as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("from another thread",)]


def test_threads_do_not_share_connections(db: SqliteDatabase):
    with db.connect() as here:
        pass
    seen: list[sqlite3.Connection] = []

    def use() -> None:
        with db.connect() as conn:
            seen.append(conn)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert seen and seen[0] is not here


def test_a_failed_operation_rolls_back_and_its_connection_is_not_reused(db: SqliteDatabase):
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO t (v) VALUES ('never')")
        raise RuntimeError("the caller's own failure")
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        conn.execute("SELECT 1")
    with db.connect() as fresh:
        assert fresh is not conn
        assert fresh.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)


def test_a_transaction_left_open_is_rolled_back(db: SqliteDatabase):
    with db.connect() as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (v) VALUES ('left open')")
    with db.connect() as again:
        assert again is conn and not again.in_transaction
        assert again.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
    with db.transaction() as writer:  # the write lock is free
        writer.execute("INSERT INTO t (v) VALUES ('b')")


def test_brief_waits_only_its_own_time(db: SqliteDatabase):
    with db.brief(0.25) as conn:
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (250,)
    with db.connect() as same:
        assert same is conn and same.execute("PRAGMA busy_timeout").fetchone() == (5000,)
    blocker = sqlite3.connect(db.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"), db.brief(0.1):
            pass
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_close_closes_idle_connections_and_the_database_stays_usable(db: SqliteDatabase):
    with db.connect() as in_use:
        with db.connect() as idle:  # a nested one: idle once its operation ended
            pass
        db.close()  # while `in_use` is held
        assert in_use.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
    assert in_use is not idle
    with pytest.raises(sqlite3.ProgrammingError):
        idle.execute("SELECT 1")
    with db.connect() as after:
        assert after is in_use  # went back to its thread when its operation ended
    db.close()
    with pytest.raises(sqlite3.ProgrammingError):
        after.execute("SELECT 1")
    with db.transaction() as conn:
        conn.execute("INSERT INTO t (v) VALUES ('c')")
    with db.connect() as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("c",)]


def test_a_cursor_read_in_part_keeps_no_old_view(db: SqliteDatabase):
    """A cursor left unread holds its statement's read transaction (in_transaction is still False):
    its operation's end closes it, so the connection's next user sees the latest commit."""
    with db.transaction() as conn:
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(str(k),) for k in range(5)])
    with db.connect() as conn:
        partly = conn.execute("SELECT v FROM t ORDER BY id")
        assert partly.fetchone() == ("0",)
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("INSERT INTO t (v) VALUES ('6th')")
    other.close()
    with db.connect() as again:
        assert again is conn
        assert again.execute("SELECT COUNT(*) FROM t").fetchone() == (6,)
    with pytest.raises(sqlite3.ProgrammingError):
        partly.fetchone()  # closed with its operation
    db.scrub()  # a checkpoint (TRUNCATE) no reader blocks: the erasure's scrub
    assert (db.path.with_name(db.path.name + "-wal")).stat().st_size == 0
