"""The SQLite backend of core/store/db.py: the gallery in one file of the data dir, its
connections kept open between operations."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class _SqliteConnection(sqlite3.Connection):
    """A connection of the pool below: its busy timeout, the process that opened it, whether an
    operation holds it, its cursors (and weak references, which sqlite3.Connection itself does
    not take)."""

    wait_s = -1.0
    in_use = False
    pid = -1

    def _kept_cursor(self) -> sqlite3.Cursor:
        cursor = self.cursor()
        self.__dict__.setdefault("cursors", weakref.WeakSet()).add(cursor)
        return cursor

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:  # as sqlite3's, its cursor kept
        return self._kept_cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return self._kept_cursor().executemany(sql, parameters)

    def close_cursors(self) -> None:
        """A cursor read only in part keeps its statement's read transaction open (and with it an
        old view of the gallery) though ``in_transaction`` is False: none outlives an operation."""
        for cursor in list(self.__dict__.get("cursors", ())):
            cursor.close()


class _ThreadConnections(threading.local):
    """The idle connections of one thread, of one process and one generation of the pool."""

    pid = -1
    generation = -1
    idle: list[_SqliteConnection]


IDLE_PER_THREAD = 2  # a nested read inside a transaction takes a second connection


class SqliteDatabase:
    """SQLite with its connections kept open between operations, per thread: opening one (the
    PRAGMAs, the schema read on its first statement, the close) took longer than an identify's
    reads themselves. A connection goes back to its thread's idle list outside any transaction;
    one whose operation raised is closed, not reused.

    SQLite's locks are POSIX locks, held per process: closing any other handle on the database's
    files in this process (Python's ``open``, another SQLite library such as DuckDB's) drops them,
    and another process may then take the file for its own (SQLite's "How To Corrupt", 2.2). With
    connections kept open this is no longer a window of one operation: nothing in a process that
    holds a store reads its files by other means, or it calls ``close()`` after doing so (the
    tests that read the files' bytes do)."""

    kind = "sqlite"
    integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._threads = _ThreadConnections()
        self._open_now: weakref.WeakSet[_SqliteConnection] = weakref.WeakSet()  # for close()
        self._generation = 0
        self._lock = threading.Lock()
        self._inherited: list[_SqliteConnection] = []

    def describe(self) -> str:
        return str(self.path)

    def _open(self, wait_s: float) -> _SqliteConnection:
        # check_same_thread off: close() may close another thread's idle connection; a connection
        # is still used by one thread at a time (its thread's list, or the operation holding it)
        conn = sqlite3.connect(
            self.path, timeout=wait_s, isolation_level=None, factory=_SqliteConnection, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            # erased rows are overwritten with zeros, not left readable in free pages
            conn.execute("PRAGMA secure_delete = ON")
        except BaseException:
            conn.close()
            raise
        conn.wait_s, conn.in_use, conn.pid = wait_s, True, os.getpid()
        with self._lock:
            self._open_now.add(conn)
        return conn

    def _idle(self) -> list[_SqliteConnection]:
        threads = self._threads
        if threads.pid != os.getpid():  # a forked child: its parent's connections are neither used
            self._inherited.extend(getattr(threads, "idle", []))  # nor closed (SQLite's rule)
            threads.pid, threads.generation, threads.idle = os.getpid(), self._generation, []
        elif threads.generation != self._generation:  # close() closed them
            threads.generation, threads.idle = self._generation, []
        return threads.idle

    @contextlib.contextmanager
    def _held(self, wait_s: float) -> Iterator[_SqliteConnection]:
        with self._lock:  # close() never closes a connection between these lines and the release
            idle = self._idle()
            conn = idle.pop() if idle else None
            if conn is not None:
                conn.in_use = True
        if conn is None:
            conn = self._open(wait_s)
        try:
            if conn.wait_s != wait_s:
                conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
                conn.wait_s = wait_s
            yield conn
            conn.close_cursors()
            if conn.in_transaction:  # a BEGIN its user left open: not carried into the next operation
                conn.execute("ROLLBACK")
        except BaseException:
            with self._lock:
                conn.in_use = False
            conn.close()  # whatever state it is in, it is not handed out again
            raise
        with self._lock:
            conn.in_use = False
            idle = self._idle()
            kept = len(idle) < IDLE_PER_THREAD
            if kept:
                idle.append(conn)
        if not kept:
            conn.close()

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        with self._held(self.busy_timeout_s) as conn:
            yield conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._held(self.busy_timeout_s) as conn:
            yield from _sqlite_transaction(conn)

    @contextlib.contextmanager
    def brief(self, wait_s: float) -> Iterator[sqlite3.Connection]:
        with self._held(wait_s) as conn:
            yield from _sqlite_transaction(conn)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            conn.execute("BEGIN")  # a read transaction: one moment for every statement
            yield conn
        finally:
            conn.close()

    def scrub(self) -> None:
        with self.connect() as conn:  # the WAL still holds the erased pages' old content until then
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Close every idle connection (one in use goes back to its thread when its operation
        ends); the database stays usable: the next operation opens a new connection."""
        with self._lock:
            self._generation += 1
            for conn in list(self._open_now):
                if not conn.in_use and conn.pid == os.getpid():  # a forked child leaves its parent's alone
                    conn.close()


def _sqlite_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back itself (disk full, I/O error): the error stands
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
