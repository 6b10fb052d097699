"""Compile the *shape* of a :class:`SearchQuery` to SQL with every literal bound.

Every criterion becomes a semi-join on one ``idx_*`` table filtered by
``(res_type, param)``, so the lookup indexes serve it. The most selective positive
criterion (by a static ranking: ids, references and codes first, open date ranges
last) drives the query as ``rid IN (subquery)``; the others are correlated ``EXISTS``
probes on the few candidate rows. SQLite without statistics cannot make that choice
itself, and PostgreSQL plans both forms as semi-joins anyway.

The row-level predicates mirror :mod:`medfusion.fhir.search._memory` clause by clause.
Every literal is a bind parameter paired with a getter reading it from a query, so that
:mod:`medfusion.store.search_sql` can reuse the SQL for any query of the same
:func:`query_shape` (building it costs several times more than running it).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import sqlalchemy as sa

from medfusion.fhir.search import (
    Criterion,
    DateMatch,
    QuantityMatch,
    ReferenceMatch,
    SearchQuery,
    SortKey,
    StringMatch,
    TokenMatch,
)
from medfusion.store.tables import INDEX_TABLES, resource

__all__ = ["Getter", "SearchCompiler", "query_shape"]

Getter = Callable[[SearchQuery], Any]
_ValueOf = Callable[[SearchQuery], Any]
_TABLE_OF = {"uri": "token", "number": "quantity"}
_Cond = sa.ColumnElement[bool]


def _table(ptype: str) -> sa.Table:
    return INDEX_TABLES[_TABLE_OF.get(ptype, ptype)]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _value_shape(value: object) -> Hashable:
    # Everything the compiler branches on, and nothing it binds.
    if isinstance(value, StringMatch):
        return ("s", value.mode, bool(value.text))
    if isinstance(value, TokenMatch):
        code = None if value.code is None else bool(value.code)
        return ("t", value.any_system, value.system is None, code)
    if isinstance(value, DateMatch):
        return ("d", value.prefix)
    if isinstance(value, QuantityMatch):
        return ("q", value.prefix, value.any_system, value.system is None, value.code is None)
    if isinstance(value, ReferenceMatch):
        return ("r", value.target_type is None)
    return ("?", type(value).__name__)


def query_shape(query: SearchQuery) -> Hashable:
    """A key equal for two queries exactly when :class:`SearchCompiler` emits the same SQL.

    Parameters
    ----------
    query
        The parsed search.

    Returns
    -------
    Hashable
        Resource type, each criterion's name, type, modifiers and value shapes, and the
        sort keys; literal values (codes, dates, ids, page bounds) are left out.
    """
    return (
        query.resource_type,
        tuple(
            (c.name, c.type, c.negate, c.missing, tuple(_value_shape(v) for v in c.values))
            for c in query.criteria
        ),
        query.sort,
    )


def _value_at(i: int, j: int) -> _ValueOf:
    return lambda q: q.criteria[i].values[j]


def _attr(value_of: _ValueOf, name: str) -> Getter:
    return lambda q: getattr(value_of(q), name)


class SearchCompiler:
    """Builds the WHERE and ORDER BY clauses of one query shape for one dialect.

    Parameters
    ----------
    query
        A query of the shape to compile; only its shape decides the SQL.
    dialect
        The dialect name (``sqlite`` or ``postgresql``).

    Attributes
    ----------
    getters
        Bind parameter name to the function reading its value from a query of this shape
        (a condition that was built and then dropped leaves an unused entry).
    """

    def __init__(self, query: SearchQuery, dialect: str) -> None:
        self.query = query
        self.dialect = dialect
        self.getters: dict[str, Getter] = {}

    def bind(self, getter: Getter, column: sa.ColumnElement[Any]) -> sa.BindParameter[Any]:
        """A new bind parameter typed like ``column``, filled from a query by ``getter``.

        Parameters
        ----------
        getter
            Reads the value from a query of this shape.
        column
            The column compared with it; its type converts the value for the driver.

        Returns
        -------
        sa.BindParameter
            The placeholder, named ``p0``, ``p1``, ... in creation order.
        """
        name = f"p{len(self.getters)}"
        self.getters[name] = getter
        return sa.bindparam(name, type_=column.type)

    # -- row predicates ------------------------------------------------------------
    def _string(self, a: sa.FromClause, match: StringMatch, v: _ValueOf) -> _Cond:
        if match.mode == "exact":
            return a.c.exact == self.bind(_attr(v, "text"), a.c.exact)
        if match.mode == "equal":  # a blind index (see medfusion.store.protection)
            return a.c.value == self.bind(_attr(v, "text"), a.c.value)
        if match.mode == "contains":
            contains = self.bind(lambda q: f"%{_like_escape(v(q).text)}%", a.c.value)
            return a.c.value.like(contains, escape="\\")
        prefix = self.bind(lambda q: f"{_like_escape(v(q).text)}%", a.c.value)
        condition: _Cond = a.c.value.like(prefix, escape="\\")
        if self.dialect == "sqlite" and match.text:
            # SQLite's LIKE is case-insensitive and so never uses the index; a range
            # on the binary-ordered column does (the LIKE keeps the answer exact).
            low = self.bind(_attr(v, "text"), a.c.value)
            high = self.bind(lambda q: v(q).text + "\U0010ffff", a.c.value)
            condition = sa.and_(a.c.value >= low, a.c.value < high, condition)
        return condition

    def _coded(self, a: sa.FromClause, match: TokenMatch | QuantityMatch, v: _ValueOf) -> list[_Cond]:
        """The ``code`` and ``system`` conditions tokens and quantities share."""
        parts: list[_Cond] = []
        if match.code is not None:
            parts.append(a.c.code == self.bind(_attr(v, "code"), a.c.code))
        if not match.any_system:
            # ``== None`` compiles to IS NULL; a bound NULL would never match.
            if match.system is None:
                parts.append(a.c.system.is_(None))
            else:
                parts.append(a.c.system == self.bind(_attr(v, "system"), a.c.system))
        return parts

    def _token(self, a: sa.FromClause, match: TokenMatch, v: _ValueOf) -> _Cond:
        return sa.and_(sa.true(), *self._coded(a, match, v))

    def _date(self, a: sa.FromClause, match: DateMatch, v: _ValueOf) -> _Cond:
        low, high = a.c.low, a.c.high
        prefix = match.prefix

        def bound(side: str) -> sa.BindParameter[Any]:
            return self.bind(_attr(v, side), low)

        def within() -> _Cond:  # fresh placeholders per use: each is filled by name
            return sa.and_(low >= bound("low"), high <= bound("high"))

        if prefix == "eq":
            return within()
        if prefix == "ne":
            return sa.not_(within())
        if prefix == "gt":
            return high > bound("high")
        if prefix == "lt":
            return low < bound("low")
        if prefix == "ge":
            return sa.or_(high > bound("high"), within())
        if prefix == "le":
            return sa.or_(low < bound("low"), within())
        if prefix == "sa":
            return low > bound("high")
        if prefix == "eb":
            return high < bound("low")
        return sa.and_(low <= bound("high"), high >= bound("low"))  # ap

    def _quantity(self, a: sa.FromClause, match: QuantityMatch, v: _ValueOf) -> _Cond:
        value = a.c.value
        parts = self._coded(a, match, v)

        def bound(name: str) -> sa.BindParameter[Any]:
            return self.bind(_attr(v, name), value)

        prefix = match.prefix
        if prefix == "eq":
            parts.append(sa.and_(value >= bound("low"), value < bound("high")))
        elif prefix == "ap":
            parts.append(sa.and_(value >= bound("low"), value <= bound("high")))
        elif prefix == "ne":
            parts.append(sa.not_(sa.and_(value >= bound("low"), value < bound("high"))))
        elif prefix in ("gt", "sa"):
            parts.append(value > bound("number"))
        elif prefix in ("lt", "eb"):
            parts.append(value < bound("number"))
        elif prefix == "ge":
            parts.append(value >= bound("number"))
        else:
            parts.append(value <= bound("number"))
        return sa.and_(*parts)

    def _reference(self, a: sa.FromClause, match: ReferenceMatch, v: _ValueOf) -> _Cond:
        condition = a.c.target_id == self.bind(_attr(v, "target_id"), a.c.target_id)
        if match.target_type is not None:
            target_type = self.bind(_attr(v, "target_type"), a.c.target_type)
            condition = sa.and_(condition, a.c.target_type == target_type)
        return condition

    def _values(self, a: sa.FromClause, i: int, criterion: Criterion) -> _Cond:
        parts: list[_Cond] = []
        for j, value in enumerate(criterion.values):
            v = _value_at(i, j)
            if isinstance(value, StringMatch):
                parts.append(self._string(a, value, v))
            elif isinstance(value, TokenMatch):
                parts.append(self._token(a, value, v))
            elif isinstance(value, DateMatch):
                parts.append(self._date(a, value, v))
            elif isinstance(value, QuantityMatch):
                parts.append(self._quantity(a, value, v))
            elif isinstance(value, ReferenceMatch):
                parts.append(self._reference(a, value, v))
        return sa.or_(*parts)

    # -- criteria ------------------------------------------------------------------
    def _index_rows(self, i: int, with_values: bool) -> tuple[sa.FromClause, list[_Cond]]:
        criterion = self.query.criteria[i]
        a = _table(criterion.type).alias()
        conditions: list[_Cond] = [
            a.c.res_type == self.bind(lambda q: q.resource_type, a.c.res_type),
            a.c.param == self.bind(lambda q: q.criteria[i].name, a.c.param),
        ]
        if with_values:
            conditions.append(self._values(a, i, criterion))
        return a, conditions

    def _exists(self, i: int, rid: sa.ColumnElement[Any], with_values: bool = True) -> _Cond:
        a, conditions = self._index_rows(i, with_values)
        if not (with_values and self._seekable(self.query.criteria[i])):
            # Without ``res_type`` the lookup index is unusable, so the probe goes
            # through ``ix_*_rid``: a handful of rows per resource instead of a scan
            # of every row of the parameter (SQLite would otherwise pick the latter).
            conditions = conditions[1:]
        return sa.exists().where(a.c.rid == rid, *conditions)

    @staticmethod
    def _seekable(criterion: Criterion) -> bool:
        """True when every value pins the lookup index down to ``rid`` by equality."""
        return all(
            (isinstance(v, TokenMatch) and v.code is not None and not v.any_system)
            or (isinstance(v, ReferenceMatch) and v.target_type is not None)
            for v in criterion.values
        )

    def _driver(self, i: int, probes: list[int], patient: int | None = None) -> _Cond:
        # The other criteria probe the driver's index rows, not ``resource``: candidates
        # are filtered on the covering lookup indexes, and only the survivors' resource
        # rows (bodies included) are read, about 2.5x faster for a patient+code+date search.
        a, conditions = self._index_rows(i, self.query.criteria[i].missing is None)
        if patient is not None:
            # A token driver narrowed to the patient compartment (``idx_token.patient``):
            # one range of the lookup index instead of a probe per resource of the patient.
            target = _attr(_value_at(patient, 0), "target_id")
            conditions.append(a.c.patient == self.bind(target, a.c.patient))
        conditions.extend(self._probe(k, a.c.rid) for k in probes)
        return resource.c.rid.in_(sa.select(a.c.rid).where(*conditions))

    def _probe(self, i: int, rid: sa.ColumnElement[Any]) -> _Cond:
        """The ``EXISTS`` (or ``NOT EXISTS``) test of criterion ``i`` for the row ``rid``."""
        criterion = self.query.criteria[i]
        if criterion.missing is not None:
            present = self._exists(i, rid, with_values=False)
            return sa.not_(present) if criterion.missing else present
        if criterion.negate:
            return sa.not_(self._exists(i, rid))
        return self._exists(i, rid)

    def _patient_scope(self) -> tuple[int | None, int | None]:
        """``(patient criterion, token criterion)`` when a search is ``patient=X`` plus a code.

        Both must be plain (no ``:not``, no ``:missing``) and single-valued, the patient
        a Patient (or untyped) reference and the token an exact ``system|code``.
        """
        patient = token = None
        for i, c in enumerate(self.query.criteria):
            if c.negate or c.missing is not None or len(c.values) != 1:
                continue
            value = c.values[0]
            if c.name == "patient" and isinstance(value, ReferenceMatch):
                if value.target_type in (None, "Patient") and patient is None:
                    patient = i
            elif c.type == "token" and token is None and self._seekable(c):
                token = i
        return (patient, token) if patient is not None and token is not None else (None, None)

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

    def _special(self, i: int) -> _Cond:
        criterion = self.query.criteria[i]
        if criterion.missing is not None:
            return sa.false() if criterion.missing else sa.true()
        if criterion.name == "_id":
            # One placeholder per id: the count of ids is part of the shape.
            ids = [
                self.bind(_attr(_value_at(i, j), "code"), resource.c.res_id)
                for j, v in enumerate(criterion.values)
                if isinstance(v, TokenMatch) and v.code
            ]
            return resource.c.res_id.in_(ids)
        parts: list[_Cond] = []
        column = resource.c.last_updated
        for j, value in enumerate(criterion.values):
            assert isinstance(value, DateMatch)

            def bound(side: str, v: _ValueOf = _value_at(i, j)) -> sa.BindParameter[Any]:
                return self.bind(_attr(v, side), column)

            prefix = value.prefix
            if prefix in ("eq", "ap"):
                parts.append(sa.and_(column >= bound("start"), column < bound("end")))
            elif prefix == "ne":
                parts.append(sa.not_(sa.and_(column >= bound("start"), column < bound("end"))))
            elif prefix in ("gt", "sa"):
                parts.append(column >= bound("end"))
            elif prefix in ("lt", "eb"):
                parts.append(column < bound("start"))
            elif prefix == "ge":
                parts.append(column >= bound("start"))
            else:
                parts.append(column < bound("end"))
        return sa.or_(*parts)

    def where(self) -> list[_Cond]:
        """All conditions on ``resource`` for the query's criteria.

        Returns
        -------
        list[sa.ColumnElement[bool]]
            The conditions, to be AND-ed.
        """
        conditions: list[_Cond] = [resource.c.current, sa.not_(resource.c.deleted)]
        criteria = list(self.query.criteria)
        has_id = any(c.name == "_id" and c.missing is None for c in criteria)
        ranked = [(r, i) for i, c in enumerate(criteria) if (r := self._rank(c)) is not None]
        driver = None if has_id or not ranked else min(ranked)[1]
        patient, token = self._patient_scope()
        if driver is not None and token is not None:
            driver = token
        if driver is None:
            res_type = self.bind(lambda q: q.resource_type, resource.c.res_type)
            conditions.insert(0, resource.c.res_type == res_type)
        special = {i for i, c in enumerate(criteria) if c.name in ("_id", "_lastUpdated")}
        probes = [i for i in range(len(criteria)) if i not in special and i != driver]
        conditions.extend(self._special(i) for i in sorted(special))
        if driver is not None:
            conditions.append(self._driver(driver, probes, patient if driver == token else None))
        else:
            conditions.extend(self._probe(i, resource.c.rid) for i in probes)
        return conditions

    # -- ordering ------------------------------------------------------------------
    def _binary(self, expression: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # Code-point order on PostgreSQL too, so both stores and Python agree.
        return sa.collate(expression, "C") if self.dialect == "postgresql" else expression

    def _sort_expression(self, k: int, key: SortKey) -> sa.ColumnElement[Any]:
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
        param = self.bind(lambda q: q.sort[k].name, a.c.param)
        return sa.select(aggregate).where(a.c.rid == resource.c.rid, a.c.param == param).scalar_subquery()

    def order_by(self) -> list[sa.ColumnElement[Any]]:
        """Sort keys (missing values last), then resource id as the unique tie-break.

        Returns
        -------
        list[sa.ColumnElement[Any]]
            The ORDER BY expressions.
        """
        order: list[sa.ColumnElement[Any]] = []
        for k, key in enumerate(self.query.sort):
            expression = self._sort_expression(k, key)
            order.append((expression.desc() if key.descending else expression.asc()).nulls_last())
        order.append(self._binary(resource.c.res_id).asc())
        return order
