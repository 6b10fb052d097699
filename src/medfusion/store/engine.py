"""Engine construction: SQLite tuned for safety, PostgreSQL through psycopg 3."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

__all__ = ["WRITE", "DriverReaders", "make_engine", "write_connection"]

# Execution option that makes SQLite take the write lock at BEGIN, so that a
# read-check-write sequence (If-Match, conditional create) cannot interleave.
WRITE = {"medfusion_write": True}


# One lock per SQLite engine: this process's writers queue on it (a prompt hand-over)
# rather than on SQLite's busy handler, which sleeps up to 100 ms between retries.
_WRITE_LOCKS: weakref.WeakKeyDictionary[sa.Engine, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


@contextmanager
def write_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection inside a write transaction (SQLite: ``BEGIN IMMEDIATE``), committed on exit.

    On SQLite, writers of one process take turns on an in-process lock first; other
    processes still meet the busy timeout.
    """
    if engine.dialect.name != "sqlite":
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            yield conn
        return
    with _LOCKS_GUARD:
        lock = _WRITE_LOCKS.setdefault(engine, threading.RLock())
    with lock, engine.connect().execution_options(**WRITE) as conn, conn.begin():
        yield conn


def _sqlite_pragmas(mmap_bytes: int) -> Callable[[Any, Any], None]:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred only).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB: index inserts stay in memory
        # Pages beyond that cache are read from the OS cache through a map, not a read
        # call each: by-id reads and searches on a store larger than memory get cheaper.
        cursor.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
        cursor.close()

    return apply


def _sqlite_begin(conn: sa.Connection) -> None:
    immediate = conn.get_execution_options().get("medfusion_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, sqlite_mmap_bytes: int = 0, **kwargs: Any) -> sa.Engine:
    """Create an engine for ``url`` with medfusion's connection settings.

    Parameters
    ----------
    url
        SQLAlchemy URL. ``sqlite:///path`` creates the parent folder; ``postgresql://``
        URLs are routed to the psycopg 3 driver.
    sqlite_mmap_bytes
        SQLite only: ``PRAGMA mmap_size`` of every connection (0: no memory map).
    **kwargs
        Passed on to :func:`sqlalchemy.create_engine`.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            if "poolclass" not in kwargs:
                kwargs.setdefault("pool_size", 8)
        else:
            kwargs.setdefault("poolclass", sa.StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = sa.create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_mmap_bytes))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(parsed, **kwargs)


class DriverReaders:
    """Per-thread autocommit DBAPI connections of an engine, for hot single-statement reads.

    They skip SQLAlchemy's per-statement machinery (it costs more than an indexed lookup);
    :meth:`close` closes every one, whichever thread opened it.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()

    def get(self) -> Any:
        """This thread's driver connection (sqlite3 or psycopg; both have ``execute``)."""
        driver = getattr(self._local, "driver", None)
        if driver is None:
            pooled = self.engine.raw_connection()
            driver = pooled.driver_connection
            if self.engine.dialect.name == "postgresql":
                # Autocommit: an idle reader must not sit inside an open transaction.
                driver.autocommit = True  # type: ignore[union-attr]
            self._local.driver = driver
            with self._lock:
                self._opened.append(pooled)
        return driver

    def close(self) -> None:
        """Close every reader (a later :meth:`get` opens a fresh one)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
        self._local = threading.local()
