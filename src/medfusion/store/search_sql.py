"""Search on the SQL store: run a :class:`SearchQuery` with SQL cached per query shape.

:mod:`medfusion.store._search_compile` turns a query into SQLAlchemy Core with every
literal bound. Building and compiling that statement costs several times more than
running it (column proxies, coercions, cache keys), so the compiled text is kept per
:func:`~medfusion.store._search_compile.query_shape` and dialect; a later query of the
same shape only reads its values and hands the SQL to the driver.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from medfusion.fhir.repository import StoredResource
from medfusion.fhir.search import SearchQuery, SearchResult
from medfusion.store._search_compile import Getter, SearchCompiler, query_shape
from medfusion.store.protection import Protection
from medfusion.store.rows import resource_columns, stored_body, to_stored
from medfusion.store.tables import idx_reference, resource

__all__ = ["execute_search", "execute_search_driver"]

_Cond = sa.ColumnElement[bool]
_Convert = Callable[[Any], Any]
_CACHE_SIZE = 512
_PLAIN = Protection(None)


@dataclass(frozen=True, slots=True)
class _Statement:
    """Compiled SQL and its bind names, in placeholder order when positional."""

    sql: str
    names: tuple[str, ...]
    positional: bool

    def params(self, values: dict[str, Any]) -> Any:
        if self.positional:
            return tuple([values[name] for name in self.names])
        return {name: values[name] for name in self.names}


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything needed to run one query shape on one dialect."""

    count: _Statement
    page: _Statement
    binds: tuple[tuple[str, Getter, _Convert | None], ...]
    updated: _Convert | None  # what the driver returns for ``last_updated`` to datetime

    def values(self, query: SearchQuery) -> dict[str, Any]:
        values = {}
        for name, getter, convert in self.binds:
            value = getter(query)
            values[name] = value if convert is None else convert(value)
        return values


def _compile(statement: sa.Select[Any], dialect: Dialect) -> tuple[_Statement, Any]:
    compiled = statement.compile(dialect=dialect)
    sql = str(compiled)
    # Expanding or literal-execute parameters would need SQLAlchemy at run time.
    if "POSTCOMPILE" in sql:
        raise NotImplementedError(f"search SQL needs post-compilation on {dialect.name}")
    names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
    return _Statement(sql, names, compiled.positional), compiled


def _build(query: SearchQuery, dialect: Dialect) -> _Plan:
    compiler = SearchCompiler(query, dialect.name)
    where = compiler.where()
    count = sa.select(sa.func.count()).select_from(resource).where(*where)
    page = (
        sa.select(resource.c.rid, *resource_columns(dialect.name))
        .where(*where)
        .order_by(*compiler.order_by())
        .limit(sa.bindparam("limit_", type_=sa.Integer))
        .offset(sa.bindparam("offset_", type_=sa.Integer))
    )
    count_statement, _ = _compile(count, dialect)
    page_statement, compiled = _compile(page, dialect)
    getters: dict[str, Getter] = {
        **compiler.getters,
        "limit_": lambda q: q.count,
        "offset_": lambda q: q.offset,
    }
    # The types' bind processors do what SQLAlchemy would (SQLite: datetimes to text).
    binds = tuple(
        (name, getter, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        for name, getter in getters.items()
        if name in compiled.binds  # a dropped condition leaves its getter unused
    )
    updated = resource.c.last_updated.type.dialect_impl(dialect).result_processor(dialect, None)
    return _Plan(count_statement, page_statement, binds, updated)


class _PlanCache:
    """A thread-safe LRU of plans for one dialect."""

    def __init__(self) -> None:
        self._plans: OrderedDict[Hashable, _Plan] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, query: SearchQuery, dialect: Dialect) -> _Plan:
        key = query_shape(query)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan
        plan = _build(query, dialect)  # outside the lock: a rare duplicate build is harmless
        with self._lock:
            self._plans[key] = plan
            if len(self._plans) > _CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan


# Keyed by the dialect object itself: the SQL depends on its settings, not just its name.
_caches: weakref.WeakKeyDictionary[Dialect, _PlanCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _plan_for(query: SearchQuery, dialect: Dialect) -> _Plan:
    cache = _caches.get(dialect)
    if cache is None:
        with _caches_lock:
            cache = _caches.setdefault(dialect, _PlanCache())
    return cache.get(query, dialect)


def _fetch(conn: sa.Connection, statement: _Statement, values: dict[str, Any]) -> list[Any]:
    return list(conn.exec_driver_sql(statement.sql, statement.params(values)))


def _stored(row: Any, updated_of: _Convert | None, protection: Protection) -> StoredResource:
    # Row layout of the page query: rid, then :func:`resource_columns`.
    updated = row[4] if updated_of is None else updated_of(row[4])
    if updated.tzinfo is None:  # SQLite drops the zone; everything is stored in UTC
        updated = updated.replace(tzinfo=UTC)
    return StoredResource(
        resource_type=row[1],
        id=row[2],
        version=row[3],
        last_updated=updated,
        deleted=bool(row[5]),
        body=stored_body(protection, row[1], row[2], row[3], row[6], row[7]),
    )


def _include(conn: sa.Connection, query: SearchQuery, rids: list[int], columns: Sequence[Any]) -> list[Any]:
    wanted: set[tuple[str, str]] = set()
    for directive in query.include:
        if directive.source_type != query.resource_type:
            continue
        conditions: list[_Cond] = [idx_reference.c.rid.in_(rids), idx_reference.c.target_type.is_not(None)]
        if directive.param != "*":
            conditions.append(idx_reference.c.param == directive.param)
        if directive.target_type is not None:
            conditions.append(idx_reference.c.target_type == directive.target_type)
        rows = conn.execute(
            sa.select(idx_reference.c.target_type, idx_reference.c.target_id).where(*conditions).distinct()
        )
        wanted.update((row[0], row[1]) for row in rows)
    by_type: dict[str, list[str]] = {}
    for target_type, target_id in sorted(wanted):
        by_type.setdefault(target_type, []).append(target_id)
    found: list[Any] = []
    for target_type, ids in by_type.items():
        found.extend(
            conn.execute(
                sa.select(*columns).where(
                    resource.c.res_type == target_type,
                    resource.c.res_id.in_(ids),
                    resource.c.current,
                    sa.not_(resource.c.deleted),
                )
            )
        )
    return found


def _revinclude(conn: sa.Connection, query: SearchQuery, ids: list[str], columns: Sequence[Any]) -> list[Any]:
    if not query.revinclude:
        return []
    sources: list[_Cond] = []
    for directive in query.revinclude:
        parts: list[_Cond] = []
        if directive.source_type != "*":
            parts.append(idx_reference.c.res_type == directive.source_type)
        if directive.param != "*":
            parts.append(idx_reference.c.param == directive.param)
        sources.append(sa.and_(sa.true(), *parts))
    referencing = sa.select(idx_reference.c.rid).where(
        idx_reference.c.target_type == query.resource_type,
        idx_reference.c.target_id.in_(ids),
        sa.or_(*sources),
    )
    return list(
        conn.execute(
            sa.select(*columns).where(
                resource.c.rid.in_(referencing), resource.c.current, sa.not_(resource.c.deleted)
            )
        )
    )


_Run = Callable[[_Statement, dict[str, Any]], list[Any]]


def _page(
    plan: _Plan, query: SearchQuery, run: _Run, protection: Protection
) -> tuple[SearchResult, list[Any]]:
    """The page of matches and the total, with the driver rows of the page."""
    values = plan.values(query)
    if query.summary_count or query.count == 0:
        total = int(run(plan.count, values)[0][0])
        return SearchResult(matches=[], total=total, included=[]), []
    rows = run(plan.page, values)
    # A short, non-empty page (or an empty first one) already tells the total; only a
    # full page, or an empty one past the start, needs the count query.
    if rows and len(rows) < query.count:
        total = query.offset + len(rows)
    elif not rows and query.offset == 0:
        total = 0
    else:
        total = int(run(plan.count, values)[0][0])
    matches = [_stored(row, plan.updated, protection) for row in rows]
    return SearchResult(matches=matches, total=total, included=[]), rows


def execute_search_driver(
    driver: Any, dialect: Dialect, query: SearchQuery, protection: Protection = _PLAIN
) -> SearchResult:
    """Run a search without ``_include``/``_revinclude`` on a bare DBAPI connection.

    The hot path of ``GET [type]?...``: the cached SQL goes straight to the driver
    (sqlite3 or psycopg), skipping SQLAlchemy's per-statement work, which costs more
    than a typical indexed search itself. The caller holds the snapshot (transaction).
    """
    if query.include or query.revinclude:
        raise ValueError("_include and _revinclude need execute_search")

    def run(statement: _Statement, values: dict[str, Any]) -> list[Any]:
        rows: list[Any] = driver.execute(statement.sql, statement.params(values)).fetchall()
        return rows

    return _page(_plan_for(query, dialect), query, run, protection)[0]


def execute_search(conn: sa.Connection, query: SearchQuery, protection: Protection = _PLAIN) -> SearchResult:
    """Run a parsed search on the SQL store.

    Parameters
    ----------
    conn
        An open connection (inside the caller's transaction).
    query
        The parsed search (values already blinded by ``protection.query``).
    protection
        Opens sealed bodies (default: plain rows only).

    Returns
    -------
    SearchResult
        The page of matches in order, the total across pages (a ``count`` query
        unless the page itself shows it), and the ``_include``/``_revinclude``
        resources.
    """
    plan = _plan_for(query, conn.dialect)
    result, rows = _page(plan, query, lambda st, values: _fetch(conn, st, values), protection)
    matches = result.matches
    if not rows:
        return result
    included: dict[tuple[str, str], StoredResource] = {}
    if query.include or query.revinclude:
        columns = resource_columns(conn.dialect.name)
        extra = _include(conn, query, [row[0] for row in rows], columns)
        extra += _revinclude(conn, query, [m.id for m in matches], columns)
        for row in extra:
            stored = to_stored(row, protection)
            included[(stored.resource_type, stored.id)] = stored
        for match in matches:
            included.pop((match.resource_type, match.id), None)
    return SearchResult(
        matches=matches, total=result.total, included=[included[key] for key in sorted(included)]
    )
