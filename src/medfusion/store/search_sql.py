"""Search on the SQL store: compile a :class:`SearchQuery` to SQLAlchemy Core and run it.

Every criterion becomes a semi-join on one ``idx_*`` table filtered by
``(res_type, param)``, so the lookup indexes serve it. The most selective positive
criterion (by a static ranking: ids, references and codes first, open date ranges
last) drives the query as ``rid IN (subquery)``; the others are correlated ``EXISTS``
probes on the few candidate rows. SQLite without statistics cannot make that choice
itself, and PostgreSQL plans both forms as semi-joins anyway.

The row-level predicates mirror :mod:`medfusion.fhir.search._memory` clause by clause.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from medfusion.fhir.repository import StoredResource
from medfusion.fhir.search import (
    Criterion,
    DateMatch,
    QuantityMatch,
    ReferenceMatch,
    SearchQuery,
    SearchResult,
    SortKey,
    StringMatch,
    TokenMatch,
)
from medfusion.store.rows import resource_columns, to_stored
from medfusion.store.tables import INDEX_TABLES, idx_reference, resource

__all__ = ["execute_search"]

_TABLE_OF = {"uri": "token", "number": "quantity"}
_Cond = sa.ColumnElement[bool]


def _table(ptype: str) -> sa.Table:
    return INDEX_TABLES[_TABLE_OF.get(ptype, ptype)]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Compiler:
    """Builds the WHERE and ORDER BY clauses of one search for one dialect."""

    def __init__(self, query: SearchQuery, dialect: str) -> None:
        self.query = query
        self.dialect = dialect

    # -- row predicates ------------------------------------------------------------
    def _string(self, a: sa.FromClause, match: StringMatch) -> _Cond:
        if match.mode == "exact":
            return a.c.exact == match.text
        pattern = _like_escape(match.text)
        if match.mode == "contains":
            return a.c.value.like(f"%{pattern}%", escape="\\")
        condition: _Cond = a.c.value.like(f"{pattern}%", escape="\\")
        if self.dialect == "sqlite" and match.text:
            # SQLite's LIKE is case-insensitive and so never uses the index; a range
            # on the binary-ordered column does (the LIKE keeps the answer exact).
            condition = sa.and_(
                a.c.value >= match.text, a.c.value < match.text + "\U0010ffff", condition
            )
        return condition

    @staticmethod
    def _token(a: sa.FromClause, match: TokenMatch) -> _Cond:
        parts: list[_Cond] = []
        if match.code is not None:
            parts.append(a.c.code == match.code)
        if not match.any_system:
            parts.append(a.c.system.is_(None) if match.system is None else a.c.system == match.system)
        return sa.and_(sa.true(), *parts)

    @staticmethod
    def _date(a: sa.FromClause, match: DateMatch) -> _Cond:
        low, high = a.c.low, a.c.high
        within = sa.and_(low >= match.low, high <= match.high)
        prefix = match.prefix
        if prefix == "eq":
            return within
        if prefix == "ne":
            return sa.not_(within)
        if prefix == "gt":
            return high > match.high
        if prefix == "lt":
            return low < match.low
        if prefix == "ge":
            return sa.or_(high > match.high, within)
        if prefix == "le":
            return sa.or_(low < match.low, within)
        if prefix == "sa":
            return low > match.high
        if prefix == "eb":
            return high < match.low
        return sa.and_(low <= match.high, high >= match.low)  # ap

    @staticmethod
    def _quantity(a: sa.FromClause, match: QuantityMatch) -> _Cond:
        value = a.c.value
        parts: list[_Cond] = []
        if match.code is not None:
            parts.append(a.c.code == match.code)
        if not match.any_system:
            parts.append(a.c.system == match.system)
        prefix, number = match.prefix, match.number
        if prefix == "eq":
            parts.append(sa.and_(value >= match.low, value < match.high))
        elif prefix == "ap":
            parts.append(sa.and_(value >= match.low, value <= match.high))
        elif prefix == "ne":
            parts.append(sa.not_(sa.and_(value >= match.low, value < match.high)))
        elif prefix in ("gt", "sa"):
            parts.append(value > number)
        elif prefix in ("lt", "eb"):
            parts.append(value < number)
        elif prefix == "ge":
            parts.append(value >= number)
        else:
            parts.append(value <= number)
        return sa.and_(*parts)

    @staticmethod
    def _reference(a: sa.FromClause, match: ReferenceMatch) -> _Cond:
        condition = a.c.target_id == match.target_id
        if match.target_type is not None:
            condition = sa.and_(condition, a.c.target_type == match.target_type)
        return condition

    def _values(self, a: sa.FromClause, criterion: Criterion) -> _Cond:
        parts: list[_Cond] = []
        for value in criterion.values:
            if isinstance(value, StringMatch):
                parts.append(self._string(a, value))
            elif isinstance(value, TokenMatch):
                parts.append(self._token(a, value))
            elif isinstance(value, DateMatch):
                parts.append(self._date(a, value))
            elif isinstance(value, QuantityMatch):
                parts.append(self._quantity(a, value))
            elif isinstance(value, ReferenceMatch):
                parts.append(self._reference(a, value))
        return sa.or_(*parts)

    # -- criteria ------------------------------------------------------------------
    def _index_rows(self, criterion: Criterion, with_values: bool) -> tuple[sa.FromClause, list[_Cond]]:
        a = _table(criterion.type).alias()
        conditions: list[_Cond] = [
            a.c.res_type == self.query.resource_type,
            a.c.param == criterion.name,
        ]
        if with_values:
            conditions.append(self._values(a, criterion))
        return a, conditions

    def _exists(self, criterion: Criterion, with_values: bool = True) -> _Cond:
        a, conditions = self._index_rows(criterion, with_values)
        if not (with_values and self._seekable(criterion)):
            # Without ``res_type`` the lookup index is unusable, so the probe goes
            # through ``ix_*_rid``: a handful of rows per resource instead of a scan
            # of every row of the parameter (SQLite would otherwise pick the latter).
            conditions = conditions[1:]
        return sa.exists().where(a.c.rid == resource.c.rid, *conditions)

    @staticmethod
    def _seekable(criterion: Criterion) -> bool:
        """True when every value pins the lookup index down to ``rid`` by equality."""
        return all(
            (isinstance(v, TokenMatch) and v.code is not None and not v.any_system)
            or (isinstance(v, ReferenceMatch) and v.target_type is not None)
            for v in criterion.values
        )

    def _driver(self, criterion: Criterion) -> _Cond:
        a, conditions = self._index_rows(criterion, criterion.missing is None)
        return resource.c.rid.in_(sa.select(a.c.rid).where(*conditions))

    @staticmethod
    def _rank(criterion: Criterion) -> int | None:
        """Static selectivity guess; None for criteria that cannot drive (negations)."""
        if criterion.name in ("_id", "_lastUpdated") or criterion.negate:
            return None
        if criterion.missing is not None:
            return None if criterion.missing else 9
        first = criterion.values[0]
        if isinstance(first, ReferenceMatch):
            return 0
        if isinstance(first, TokenMatch):
            return 1 if all(isinstance(v, TokenMatch) and v.code for v in criterion.values) else 5
        if isinstance(first, StringMatch):
            return {"exact": 2, "prefix": 3}.get(first.mode, 8)
        if isinstance(first, QuantityMatch):
            return 4
        return 6  # dates: usually open ranges

    def _special(self, criterion: Criterion) -> _Cond:
        if criterion.missing is not None:
            return sa.false() if criterion.missing else sa.true()
        if criterion.name == "_id":
            ids = [v.code for v in criterion.values if isinstance(v, TokenMatch) and v.code]
            return resource.c.res_id.in_(ids)
        parts: list[_Cond] = []
        column = resource.c.last_updated
        for value in criterion.values:
            assert isinstance(value, DateMatch)
            within = sa.and_(column >= value.start, column < value.end)
            prefix = value.prefix
            if prefix in ("eq", "ap"):
                parts.append(within)
            elif prefix == "ne":
                parts.append(sa.not_(within))
            elif prefix in ("gt", "sa"):
                parts.append(column >= value.end)
            elif prefix in ("lt", "eb"):
                parts.append(column < value.start)
            elif prefix == "ge":
                parts.append(column >= value.start)
            else:
                parts.append(column < value.end)
        return sa.or_(*parts)

    def where(self) -> list[_Cond]:
        """All conditions on ``resource`` for the query's criteria."""
        conditions: list[_Cond] = [resource.c.current, sa.not_(resource.c.deleted)]
        criteria = list(self.query.criteria)
        has_id = any(c.name == "_id" and c.missing is None for c in criteria)
        ranked = [(r, i) for i, c in enumerate(criteria) if (r := self._rank(c)) is not None]
        driver = None if has_id or not ranked else min(ranked)[1]
        if driver is None:
            conditions.insert(0, resource.c.res_type == self.query.resource_type)
        for i, criterion in enumerate(criteria):
            if criterion.name in ("_id", "_lastUpdated"):
                conditions.append(self._special(criterion))
            elif i == driver:
                conditions.append(self._driver(criterion))
            elif criterion.missing is not None:
                present = self._exists(criterion, with_values=False)
                conditions.append(sa.not_(present) if criterion.missing else present)
            elif criterion.negate:
                conditions.append(sa.not_(self._exists(criterion)))
            else:
                conditions.append(self._exists(criterion))
        return conditions

    # -- ordering ------------------------------------------------------------------
    def _binary(self, expression: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # Code-point order on PostgreSQL too, so both stores and Python agree.
        return sa.collate(expression, "C") if self.dialect == "postgresql" else expression

    def _sort_expression(self, key: SortKey) -> sa.ColumnElement[Any]:
        if key.name == "_id":
            return self._binary(resource.c.res_id)
        if key.name == "_lastUpdated":
            return resource.c.last_updated
        a = _table(key.type).alias()
        column: sa.ColumnElement[Any]
        if key.type == "date":
            column = a.c.high if key.descending else a.c.low
        elif key.type in ("token", "uri"):
            column = self._binary(a.c.code)
        else:
            column = self._binary(a.c.value) if key.type == "string" else a.c.value
        aggregate = sa.func.max(column) if key.descending else sa.func.min(column)
        return (
            sa.select(aggregate)
            .where(a.c.rid == resource.c.rid, a.c.param == key.name)
            .scalar_subquery()
        )

    def order_by(self) -> list[sa.ColumnElement[Any]]:
        """Sort keys (missing values last), then resource id as the unique tie-break."""
        order: list[sa.ColumnElement[Any]] = []
        for key in self.query.sort:
            expression = self._sort_expression(key)
            order.append((expression.desc() if key.descending else expression.asc()).nulls_last())
        order.append(self._binary(resource.c.res_id).asc())
        return order


def _include(
    conn: sa.Connection, query: SearchQuery, rids: list[int], columns: Sequence[Any]
) -> list[Any]:
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


def execute_search(conn: sa.Connection, query: SearchQuery) -> SearchResult:
    """Run a parsed search on the SQL store.

    Parameters
    ----------
    conn
        An open connection (inside the caller's transaction).
    query
        The parsed search.

    Returns
    -------
    SearchResult
        The page of matches in order, the total across pages (one ``count`` query),
        and the ``_include``/``_revinclude`` resources.
    """
    dialect = conn.dialect.name
    compiler = _Compiler(query, dialect)
    where = compiler.where()
    total = int(conn.execute(sa.select(sa.func.count()).select_from(resource).where(*where)).scalar_one())
    if query.summary_count or query.count == 0 or query.offset >= total:
        return SearchResult(matches=[], total=total, included=[])
    columns = resource_columns(dialect)
    rows = list(
        conn.execute(
            sa.select(resource.c.rid, *columns)
            .where(*where)
            .order_by(*compiler.order_by())
            .limit(query.count)
            .offset(query.offset)
        )
    )
    matches = [to_stored(row) for row in rows]
    included: dict[tuple[str, str], StoredResource] = {}
    if query.include or query.revinclude:
        extra = _include(conn, query, [row.rid for row in rows], columns)
        extra += _revinclude(conn, query, [m.id for m in matches], columns)
        for row in extra:
            stored = to_stored(row)
            included[(stored.resource_type, stored.id)] = stored
        for match in matches:
            included.pop((match.resource_type, match.id), None)
    return SearchResult(
        matches=matches, total=total, included=[included[key] for key in sorted(included)]
    )
