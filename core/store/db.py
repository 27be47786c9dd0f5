"""The database under the store: SQLite in the data dir (the default) or PostgreSQL (``store_url``).

The store's modules speak one SQL: ``?`` placeholders, ``INSERT ... ON CONFLICT``, ``RETURNING id``
(SQLite 3.35+ and PostgreSQL both take them). Each backend gives the same four ways in:

- ``connect()``: autocommit; each statement sees the latest commit.
- ``transaction()``: the write lock. SQLite: ``BEGIN IMMEDIATE`` (one writer at a time); PostgreSQL:
  a transaction that first takes one advisory lock, so writers are serialised there too, in the
  order their change numbers were taken (core/store/changes.py relies on it).
- ``snapshot()``: a read transaction, every statement from the same moment.
- ``brief(wait_s)``: a write transaction for rows outside the change log (the search timings) that
  waits at most ``wait_s`` for a lock: an identify never waits on an enrollment. SQLite: the write
  lock; PostgreSQL: no advisory lock at all.

``scrub()`` runs after an erasure: SQLite checkpoints its WAL, PostgreSQL vacuums the gallery's
tables, so the erased rows' old versions are gone from the files as well.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from core.errors import InvalidSetting, StoreUnavailable
from core.store.sqlite_db import SqliteDatabase

log = logging.getLogger(__name__)

CHECK_AFTER_IDLE_S = 2.0  # a pooled PostgreSQL connection idle this long is checked before use
WRITE_LOCK = 0x4D414E59  # the advisory lock every PostgreSQL write transaction takes first ("MANY")
SCRUBBED = ("persons", "images", "embeddings", "image_blobs")  # names, metadata, vectors, image bytes


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int, /) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...


class Snapshots(Protocol):
    """What reads one moment of the gallery (GalleryStore)."""

    def snapshot(self) -> contextlib.AbstractContextManager[Connection]: ...


def as_dicts(cursor: Cursor) -> list[dict[str, Any]]:
    """The cursor's rows as dicts by column name (both drivers' ``description`` holds the names)."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


_PIECES = re.compile(r"'(?:[^']|'')*'|\?|%")


@lru_cache(maxsize=1024)
def postgres_sql(sql: str) -> str:
    """The store's SQL for psycopg: ``?`` outside quotes becomes ``%s``, every ``%`` is doubled."""

    def piece(match: re.Match[str]) -> str:
        text = match.group(0)
        return "%s" if text == "?" else text.replace("%", "%%")

    return _PIECES.sub(piece, sql)


class PostgresConnection:
    """A psycopg connection (autocommit) that takes the store's SQL."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        if not parameters:  # no placeholders: sent as written (several statements allowed)
            return self.raw.execute(sql)
        return self.raw.execute(postgres_sql(sql), tuple(parameters))

    def executemany(self, sql: str, parameters: Any, /) -> Cursor:
        cursor = self.raw.cursor()
        cursor.executemany(postgres_sql(sql), [tuple(p) for p in parameters])
        return cursor


class PostgresDatabase:
    kind = "postgresql"

    def __init__(self, url: str, busy_timeout_s: float, pool_size: int = 16) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        try:  # before libpq sees it: its errors repeat a URL they cannot parse, password included
            url_parts(url)
        except ValueError as exc:
            raise InvalidSetting(f"store_url: {exc}") from None
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self._last_used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.integrity_errors: tuple[type[Exception], ...] = (psycopg.IntegrityError,)
        self._error: type[Exception] = psycopg.Error
        self._unavailable: tuple[type[Exception], ...] = (psycopg.OperationalError,)
        try:  # one plain connection first: its error says why (refused, no such database, password)
            psycopg.connect(url, connect_timeout=max(2, int(min(busy_timeout_s, 10)))).close()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL at {self.describe()} cannot be reached: {exc}".strip()) from None
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            check=self._check,  # a connection the server dropped is replaced, not used
            timeout=busy_timeout_s,
            open=True,
        )

    def describe(self) -> str:
        """The URL without its password (for messages and logs)."""
        return safe_url(self.url)

    def _check(self, raw: Any) -> None:
        """Ask the server (a round trip) whether a connection idle for CHECK_AFTER_IDLE_S is still
        alive, before it is handed out; one used since is not asked (an identify takes a
        connection two or three times). A server restarted within that time fails the next operation on
        a connection it dropped with StoreUnavailable (a 503: retry), and the pool replaces it."""
        from psycopg_pool import ConnectionPool

        with self._lock:
            used = self._last_used.get(raw)
        if used is None or time.monotonic() - used > CHECK_AFTER_IDLE_S:
            ConnectionPool.check_connection(raw)

    def _configure(self, raw: Any) -> None:
        from psycopg.types.numeric import FloatLoader

        raw.adapters.register_loader("numeric", FloatLoader)  # SUM and AVG answer numbers, as SQLite's do
        raw.execute(f"SET lock_timeout = {int(self.busy_timeout_s * 1000)}")

    @contextlib.contextmanager
    def _pooled(self) -> Iterator[Any]:
        """A pooled connection; the server gone, the pool exhausted or the write lock not free in
        time is StoreUnavailable (HTTP 503: retry), not an internal error."""
        try:
            with self.pool.connection() as raw:
                try:
                    yield raw
                finally:
                    with self._lock:
                        self._last_used[raw] = time.monotonic()
        except self._unavailable as exc:
            raise StoreUnavailable(f"the gallery's database ({self.describe()}) did not answer: {exc}") from None

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._pooled() as raw:
            yield PostgresConnection(raw)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._pooled() as raw:
            yield from _postgres_transaction(raw)

    @contextlib.contextmanager
    def brief(self, wait_s: float) -> Iterator[Connection]:
        """Without the write lock: the timing rows are outside the change log, whose order is
        all the lock keeps (an identify never waits on an enrollment's transaction here). In
        pipeline mode: statements whose results are not read go to the server together, so a
        write that reads nothing back is one round trip, BEGIN to COMMIT."""
        with self._pooled() as raw:
            yield from _postgres_brief(raw, wait_s)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Connection]:
        with self._pooled() as raw:
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield PostgresConnection(raw)
            finally:
                with contextlib.suppress(Exception):
                    raw.execute("ROLLBACK")

    def scrub(self) -> None:
        """Vacuum the tables that held a person's name, vectors and image bytes (outside any
        transaction: autocommit). Best effort: the erasure committed already; a vacuum that waits
        on another (autovacuum's) is left to it."""
        try:
            with self._pooled() as raw:
                raw.execute("SET lock_timeout = 2000")
                try:
                    raw.execute(f"VACUUM {', '.join(SCRUBBED)}")
                finally:
                    raw.execute(f"SET lock_timeout = {int(self.busy_timeout_s * 1000)}")
        except (StoreUnavailable, self._error) as exc:
            log.warning("vacuum after an erasure did not run (autovacuum will): %s", exc)

    def close(self) -> None:
        self.pool.close()


def _postgres_transaction(raw: Any) -> Iterator[Connection]:
    """The write lock: READ COMMITTED whatever the server's default (each statement sees what
    committed before it, the advisory lock's wait included), the lock taken first; one round
    trip (the statements are constants)."""
    try:
        raw.execute(f"BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        yield PostgresConnection(raw)
    except BaseException:
        with contextlib.suppress(Exception):  # a broken connection: the server rolled it back already
            raw.execute("ROLLBACK")
        raise
    raw.execute("COMMIT")


def _postgres_brief(raw: Any, wait_s: float) -> Iterator[Connection]:
    """``brief``'s transaction: no advisory lock, row locks waited for at most ``wait_s``, and a
    commit that does not wait for the WAL's flush (a crash may lose the last moment's timing
    rows; SQLite's commits in WAL mode do not sync either); ``SET LOCAL``: this transaction's
    only. In psycopg's pipeline mode (one statement per ``execute``: no ``;`` lists)."""
    try:
        with raw.pipeline():
            raw.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            raw.execute(f"SET LOCAL lock_timeout = {int(wait_s * 1000)}")
            raw.execute("SET LOCAL synchronous_commit = off")
            yield PostgresConnection(raw)
            raw.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):  # after BEGIN the server keeps a failed transaction open
            raw.execute("ROLLBACK")
        raise


def stream(conn: Connection, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
    """A cursor whose rows come as they are fetched (PostgreSQL: a server-side cursor, inside the
    caller's transaction; SQLite's cursors always step): memory stays flat at a million rows."""
    if isinstance(conn, PostgresConnection):
        cursor = conn.raw.cursor(name="manyangles_stream")
        if parameters:
            cursor.execute(postgres_sql(sql), tuple(parameters))
        else:
            cursor.execute(sql)
        return cursor
    return conn.execute(sql, parameters)


Database = SqliteDatabase | PostgresDatabase

# libpq's connection parameters as the environment variables its tools (pg_dump) read
_LIBPQ_ENV = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
    "password": "PGPASSWORD", "passfile": "PGPASSFILE", "sslmode": "PGSSLMODE", "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY", "sslrootcert": "PGSSLROOTCERT", "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME", "options": "PGOPTIONS",
}  # fmt: skip


def url_parts(url: str) -> dict[str, str]:
    """The URL's connection parameters (libpq's own parser); ValueError, without the URL, when it
    does not parse."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except psycopg.Error:
        raise ValueError("not a PostgreSQL URL libpq can read (postgresql://user[:password]@host:port/db)") from None


def safe_url(url: str) -> str:
    """``postgresql://user@host:port/db``: the URL without its password or other parameters."""
    try:
        parts = url_parts(url)
    except ValueError:
        return "postgresql://(a URL that does not parse)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


def libpq_environment(url: str) -> dict[str, str]:
    """The URL as PG* variables: PostgreSQL's tools connect without the password on a command line."""
    return {_LIBPQ_ENV[k]: v for k, v in url_parts(url).items() if k in _LIBPQ_ENV}


def open_database(url: str, data_dir: Path, busy_timeout_s: float) -> Database:
    """The database ``url`` names: empty, SQLite in ``data_dir``; ``postgresql://...``, that server."""
    if not url:
        return SqliteDatabase(data_dir / "gallery.db", busy_timeout_s)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, busy_timeout_s)
    raise ValueError(f"store_url {url!r}: empty (SQLite in the data dir) or postgresql://user@host:port/db")
