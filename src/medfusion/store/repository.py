"""The SQL implementation of :class:`~medfusion.fhir.repository.FhirRepository`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa

from medfusion.errors import ConflictError, GoneError, NotFoundError, PreconditionFailedError
from medfusion.fhir.repository import (
    HistoryPage,
    PreparedWrite,
    StoredResource,
    WriteRequest,
    require_live,
)
from medfusion.fhir.resource import now_utc, same_content
from medfusion.fhir.search import IndexEntries, SearchQuery, SearchResult, extract_index
from medfusion.store.engine import DriverReaders, write_connection
from medfusion.store.protection import Protection
from medfusion.store.rows import (
    parse_updated,
    resource_columns,
    stored_body,
    to_stored,
    token_rows,
)
from medfusion.store.search_sql import execute_search, execute_search_driver
from medfusion.store.security import before_write_commit
from medfusion.store.tables import INDEX_TABLES, resource

__all__ = ["SqlRepository", "SqlTransaction"]

_READ_SQL = (
    "SELECT res_type, res_id, version, last_updated, deleted, body, sealed FROM resource"
    " WHERE res_type = ? AND res_id = ? AND current"
)
_READ_POSTGRES = _READ_SQL.replace("?", "%s").replace(" body,", " body::text,")
_RESOURCE_COLUMNS = (
    "rid", "res_type", "res_id", "version", "last_updated", "deleted", "current", "body", "sealed",
)  # fmt: skip
_BATCH = 500  # keeps IN lists and multi-row VALUES well under driver limits


class _Current(NamedTuple):
    rid: int
    version: int
    deleted: bool
    last_updated: datetime
    body: bytes | None


class SqlTransaction:
    """Operations inside one database transaction (see ``FhirTransaction``)."""

    def __init__(self, conn: sa.Connection, protection: Protection | None = None) -> None:
        self.conn = conn
        self.protection = protection or Protection(None)
        self._dialect = conn.dialect.name
        self._columns = resource_columns(self._dialect)
        self._postgres = self._dialect == "postgresql"
        self._read_sql = _READ_POSTGRES if self._postgres else _READ_SQL
        self._body = "body::text" if self._postgres else "body"  # JSONB as text: no parsing
        # What this transaction wrote, for the request's AuditEvent (``before_write_commit``).
        self.written: list[StoredResource] = []

    # -- reads -----------------------------------------------------------------
    def read_current(self, resource_type: str, id: str) -> StoredResource | None:
        row = self._driver(self._read_sql, (resource_type, id)).fetchone()
        return to_stored(row, self.protection) if row is not None else None

    def read(self, resource_type: str, id: str) -> StoredResource:
        return require_live(self.read_current(resource_type, id), resource_type, id)

    def vread(self, resource_type: str, id: str, version: int) -> StoredResource:
        row = self.conn.execute(
            sa.select(*self._columns).where(
                resource.c.res_type == resource_type,
                resource.c.res_id == id,
                resource.c.version == version,
            )
        ).first()
        if row is None:
            raise NotFoundError(f"{resource_type}/{id} has no version {version}")
        found = to_stored(row, self.protection)
        if found.deleted:
            raise GoneError(f"{resource_type}/{id} version {version} is a deletion")
        return found

    def history(
        self,
        resource_type: str | None,
        id: str | None,
        *,
        since: datetime | None,
        count: int,
        offset: int,
    ) -> HistoryPage:
        conditions: list[sa.ColumnElement[bool]] = []
        if resource_type is not None:
            conditions.append(resource.c.res_type == resource_type)
        if id is not None:
            conditions.append(resource.c.res_id == id)
        if since is not None:
            conditions.append(resource.c.last_updated >= since)
        total = self.conn.execute(
            sa.select(sa.func.count()).select_from(resource).where(*conditions)
        ).scalar_one()
        rows = self.conn.execute(
            sa.select(*self._columns)
            .where(*conditions)
            .order_by(resource.c.last_updated.desc(), resource.c.rid.desc())
            .limit(count)
            .offset(offset)
        )
        return HistoryPage(entries=[to_stored(row, self.protection) for row in rows], total=int(total))

    def search(self, query: SearchQuery) -> SearchResult:
        return execute_search(self.conn, self.protection.query(query), self.protection)

    @contextmanager
    def savepoint(self) -> Iterator[SqlTransaction]:
        mark = len(self.written)
        try:
            with self.conn.begin_nested():
                yield self
        except BaseException:
            del self.written[mark:]
            raise

    # -- writes ----------------------------------------------------------------
    def write(
        self, resource_type: str, id: str, resource: dict[str, Any], *, expected_version: int | None
    ) -> StoredResource:
        return self.write_many([WriteRequest(resource_type, id, resource, expected_version)])[0]

    def write_many(
        self, requests: Sequence[WriteRequest | PreparedWrite], *, skip_unchanged: bool = False
    ) -> list[StoredResource]:
        """Write many versions with a handful of statements (the ingest path).

        With ``skip_unchanged`` a resource whose content equals its current version is
        left alone and its current version returned, so re-imports add no versions.
        """
        results: list[StoredResource | None] = [None] * len(requests)
        for start in range(0, len(requests), _BATCH):
            chunk = requests[start : start + _BATCH]
            self._write_chunk(chunk, results, start, skip_unchanged)
        written = [r for r in results if r is not None]
        self.written.extend(written)
        return written

    def delete(self, resource_type: str, id: str) -> StoredResource | None:
        current = self._current_meta([(resource_type, id)])
        found = current.get((resource_type, id))
        if found is None or found.deleted:
            return None
        version = found.version
        self._retire([found.rid])
        when = now_utc()
        row = {
            "res_type": resource_type,
            "res_id": id,
            "version": version + 1,
            "last_updated": when,
            "deleted": True,
            "current": True,
            "body": None,
            "sealed": None,
        }
        self.conn.execute(sa.insert(resource), [row])
        gone = StoredResource(resource_type, id, version + 1, when, True, b"")
        self.written.append(gone)
        return gone

    # -- internals -------------------------------------------------------------
    def _driver(self, sql: str, params: Sequence[Any]) -> Any:
        """Run ``sql`` (``?`` placeholders) on this transaction's DBAPI connection.

        The statements of the write path are fixed, so SQLAlchemy's compilation and result
        machinery (several times the cost of the SQLite call itself) is skipped.
        """
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if self._postgres:
            sql = sql.replace("?", "%s")
        cursor.execute(sql, params)
        return cursor

    def _current_meta(
        self, keys: Sequence[tuple[str, str]], *, with_body: bool = False
    ) -> dict[tuple[str, str], _Current]:
        """The current rows of ``keys`` (bodies only when asked for)."""
        by_type: dict[str, list[str]] = defaultdict(list)
        for resource_type, id in keys:
            by_type[resource_type].append(id)
        columns = "res_type, res_id, rid, version, deleted, last_updated"
        if with_body:
            columns += f", {self._body}, sealed"
        out: dict[tuple[str, str], _Current] = {}
        for resource_type, ids in by_type.items():
            marks = ", ".join("?" * len(ids))
            cursor = self._driver(
                f"SELECT {columns} FROM resource WHERE res_type = ? AND res_id IN ({marks}) AND current",
                (resource_type, *ids),
            )
            for row in cursor.fetchall():
                body = None
                if with_body:
                    body = stored_body(self.protection, row[0], row[1], row[3], row[6], row[7])
                out[(row[0], row[1])] = _Current(row[2], row[3], bool(row[4]), parse_updated(row[5]), body)
        return out

    def _retire(self, rids: Sequence[int]) -> None:
        """Un-mark current rows and drop their index rows; detects concurrent writers."""
        for start in range(0, len(rids), _BATCH):
            part = list(rids[start : start + _BATCH])
            marks = ", ".join("?" * len(part))
            cursor = self._driver(
                f"UPDATE resource SET current = false WHERE rid IN ({marks}) AND current", part
            )
            if cursor.rowcount != len(part):
                raise PreconditionFailedError("the resource was changed by a concurrent request")
            for table in INDEX_TABLES.values():
                self._driver(f"DELETE FROM {table.name} WHERE rid IN ({marks})", part)

    def _write_chunk(
        self,
        chunk: Sequence[WriteRequest | PreparedWrite],
        results: list[StoredResource | None],
        offset: int,
        skip_unchanged: bool,
    ) -> None:
        keys = [(r.resource_type, r.id) for r in chunk]
        if len(set(keys)) != len(keys):
            raise ConflictError("the same resource is written twice in one transaction")
        current = self._current_meta(keys, with_body=skip_unchanged)
        when = now_utc()
        retire_rids: list[int] = []
        rows: list[dict[str, Any]] = []
        positions: list[int] = []
        for i, request in enumerate(chunk):
            found = current.get((request.resource_type, request.id))
            live_version = 0 if found is None or found.deleted else found.version
            if request.expected_version is not None and request.expected_version != live_version:
                raise PreconditionFailedError(
                    f"{request.resource_type}/{request.id} is at version {live_version}, "
                    f"not {request.expected_version}",
                )
            unchanged = (
                skip_unchanged
                and live_version
                and found is not None
                and found.body is not None
                and same_content(orjson.loads(found.body), request.resource)
            )
            if unchanged and found is not None and found.body is not None:
                results[offset + i] = StoredResource(
                    request.resource_type,
                    request.id,
                    found.version,
                    found.last_updated,
                    False,
                    found.body,
                )
                continue
            version = 1 if found is None else found.version + 1
            if found is not None:
                retire_rids.append(found.rid)
            body = request.stamped(version, when)
            rows.append(
                {
                    "res_type": request.resource_type,
                    "res_id": request.id,
                    "version": version,
                    "last_updated": when,
                    "deleted": False,
                    "current": True,
                    **self._body_columns(request.resource_type, request.id, version, body),
                }
            )
            positions.append(i)
            results[offset + i] = StoredResource(
                request.resource_type, request.id, version, when, False, body
            )
        if retire_rids:
            self._retire(retire_rids)
        if not rows:
            return
        rids = self._insert_resources(rows)
        self.insert_index(
            [
                (rid, chunk[i].resource_type, chunk[i].index_entries())
                for rid, i in zip(rids, positions, strict=True)
            ]
        )

    def _body_columns(self, resource_type: str, id: str, version: int, body: bytes) -> dict[str, Any]:
        """``body`` (plain JSON) or ``sealed`` (ciphertext) for a new version row."""
        if self.protection.enabled:
            return {"body": None, "sealed": self.protection.seal(resource_type, id, version, body)}
        return {"body": body.decode() if self._dialect == "postgresql" else body, "sealed": None}

    def _allocate_rids(self, count: int) -> list[int]:
        """Reserve row ids so rows and their index rows go in with plain ``executemany``."""
        if self._dialect == "postgresql":
            result = self.conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('resource', 'rid')) FROM generate_series(1, %s)",
                (count,),
            )
            return [int(row[0]) for row in result]
        # SQLite: this transaction holds the write lock (BEGIN IMMEDIATE), so MAX is stable.
        start = int(self.conn.exec_driver_sql("SELECT COALESCE(MAX(rid), 0) FROM resource").scalar_one())
        return list(range(start + 1, start + count + 1))

    def _insert_resources(self, rows: list[dict[str, Any]]) -> list[int]:
        rids = self._allocate_rids(len(rows))
        postgres = self._dialect == "postgresql"
        # psycopg adapts aware datetimes; SQLite gets the text SQLAlchemy reads back (the
        # rows of one batch share their instant, so it is formatted once).
        instants = {row["last_updated"] for row in rows}
        texts = {when: when.strftime("%Y-%m-%d %H:%M:%S.%f") for when in instants}
        params = [
            (
                rid,
                row["res_type"],
                row["res_id"],
                row["version"],
                row["last_updated"] if postgres else texts[row["last_updated"]],
                row["deleted"],
                row["current"],
                row["body"],
                row["sealed"],
            )
            for rid, row in zip(rids, rows, strict=True)
        ]
        if postgres:
            self._copy("resource", _RESOURCE_COLUMNS, params)
        else:
            placeholders = ", ".join("?" * len(_RESOURCE_COLUMNS))
            self.conn.exec_driver_sql(
                f"INSERT INTO resource ({', '.join(_RESOURCE_COLUMNS)}) VALUES ({placeholders})", params
            )
        return rids

    def _copy(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """PostgreSQL ``COPY ... FROM STDIN``: several times faster than row inserts."""
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def insert_index(self, items: Sequence[tuple[int, str, dict[str, Any] | IndexEntries]]) -> None:
        """Write the search index rows of ``(rid, type, resource or its extracted rows)``
        (blinded where identifying)."""
        strings: list[tuple[Any, ...]] = []
        tokens: list[tuple[Any, ...]] = []
        dates: list[tuple[Any, ...]] = []
        quantities: list[tuple[Any, ...]] = []
        references: list[tuple[Any, ...]] = []
        for rid, resource_type, body in items:
            extracted = body if isinstance(body, IndexEntries) else extract_index(resource_type, body)
            entries = self.protection.index(resource_type, extracted)
            head = (rid, resource_type)
            strings.extend(head + row for row in entries.strings)
            tokens.extend(head + row for row in token_rows(entries))
            dates.extend(head + row for row in entries.dates)
            quantities.extend(head + row for row in entries.quantities)
            references.extend(head + row for row in entries.references)
        for name, columns, batch in (
            ("idx_string", ("value", "exact"), strings),
            ("idx_token", ("system", "code", "patient"), tokens),
            ("idx_date", ("low", "high"), dates),
            ("idx_quantity", ("value", "system", "code"), quantities),
            ("idx_reference", ("target_type", "target_id"), references),
        ):
            if not batch:
                continue
            names = ("rid", "res_type", "param", *columns)
            if self._dialect == "postgresql":
                self._copy(name, names, batch)
            else:
                sql = f"INSERT INTO {name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
                self.conn.exec_driver_sql(sql, batch)


class SqlRepository:
    """FHIR repository on a SQLAlchemy engine (SQLite or PostgreSQL).

    Parameters
    ----------
    engine
        An engine from :func:`medfusion.store.engine.make_engine`, already migrated.
    """

    def __init__(self, engine: sa.Engine, protection: Protection | None = None) -> None:
        self.engine = engine
        self.protection = protection or Protection(None)
        self._columns = resource_columns(engine.dialect.name)
        self._postgres = engine.dialect.name == "postgresql"
        self._read_sql = _READ_POSTGRES if self._postgres else _READ_SQL
        self._readers = DriverReaders(engine)

    @contextmanager
    def begin(self) -> Iterator[SqlTransaction]:
        """Open a write transaction (SQLite: ``BEGIN IMMEDIATE``)."""
        with write_connection(self.engine) as conn:
            tx = SqlTransaction(conn, self.protection)
            yield tx
            hook = before_write_commit.get()
            if hook is not None:
                hook(conn, tx.written)

    @contextmanager
    def begin_read(self) -> Iterator[SqlTransaction]:
        """Open a read-only transaction that does not take the SQLite write lock."""
        with self.engine.connect() as conn, conn.begin():
            yield SqlTransaction(conn, self.protection)

    def read(self, resource_type: str, id: str) -> StoredResource:
        # The hottest path: one indexed SELECT on a per-thread autocommit DBAPI connection,
        # skipping SQLAlchemy's statement machinery (it costs more than the query itself).
        row = self._reader().execute(self._read_sql, (resource_type, id)).fetchone()
        if row is None:
            raise NotFoundError(f"{resource_type}/{id} is not known")
        if row[4]:
            raise GoneError(f"{resource_type}/{id} has been deleted")
        return to_stored(row, self.protection)

    def search(self, query: SearchQuery) -> SearchResult:
        if query.include or query.revinclude:
            with self.begin_read() as tx:
                return tx.search(query)
        # Like ``read``: the per-thread driver connection, in a read transaction so that
        # the page and the count query (when one runs) see one snapshot.
        query = self.protection.query(query)
        driver = self._reader()
        if self._postgres:
            with driver.transaction():
                return execute_search_driver(driver, self.engine.dialect, query, self.protection)
        driver.execute("BEGIN")
        try:
            return execute_search_driver(driver, self.engine.dialect, query, self.protection)
        finally:
            driver.rollback()

    def _reader(self) -> Any:
        return self._readers.get()

    def close(self) -> None:
        """Close the per-thread read connections and dispose of the engine's pool."""
        self._readers.close()
        self.engine.dispose()

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(resource.c.res_type, sa.func.count())
                .where(resource.c.current, ~resource.c.deleted)
                .group_by(resource.c.res_type)
                .order_by(resource.c.res_type)
            )
            return {row[0]: int(row[1]) for row in rows}

    def iter_current(
        self, resource_types: Sequence[str] | None = None, since: datetime | None = None
    ) -> Iterator[StoredResource]:
        conditions: list[sa.ColumnElement[bool]] = [resource.c.current, ~resource.c.deleted]
        if resource_types:
            conditions.append(resource.c.res_type.in_(list(resource_types)))
        if since is not None:
            conditions.append(resource.c.last_updated >= since)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(
                sa.select(*self._columns).where(*conditions).order_by(resource.c.res_type, resource.c.res_id)
            )
            for row in result:
                yield to_stored(row, self.protection)
