"""Slots in start order: the plan behind ``$find`` when no single schedule narrows it.

The generic search sorts through a correlated subquery and filters ``status`` with a
token lookup that visits every free Slot, so "the first 20 free slots of any practitioner
tomorrow" reads all of them. Here the ``idx_date`` lookup index (``res_type, param, low,
high, rid``) is read as a range in its own order, so a page costs the rows it returns;
the caller filters status and the rest on the bodies and asks for the next page if needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from medfusion.fhir.repository import StoredResource
from medfusion.store.repository import SqlTransaction
from medfusion.store.rows import resource_columns, to_stored
from medfusion.store.tables import idx_date, resource

__all__ = ["current_many", "slots_by_start"]


def _by_start(dialect: str) -> sa.Select[Any]:
    return (
        sa.select(*resource_columns(dialect))
        .select_from(idx_date.join(resource, resource.c.rid == idx_date.c.rid))
        .where(
            idx_date.c.res_type == "Slot",
            idx_date.c.param == "start",
            idx_date.c.low >= sa.bindparam("low"),
            idx_date.c.low < sa.bindparam("high"),
        )
        # The index's own order: no sort step, and the LIMIT stops the scan.
        .order_by(idx_date.c.low, idx_date.c.high, idx_date.c.rid)
        .limit(sa.bindparam("limit_", type_=sa.Integer))
        .offset(sa.bindparam("offset_", type_=sa.Integer))
    )


# Built once per dialect; SQLAlchemy's compiled cache then skips recompiling it.
_STATEMENTS = {name: _by_start(name) for name in ("sqlite", "postgresql")}


def slots_by_start(
    tx: SqlTransaction, *, start: datetime, end: datetime, limit: int, offset: int
) -> list[StoredResource]:
    """Current Slots whose ``start`` lies in ``[start, end)``, by start (then index order).

    Parameters
    ----------
    tx
        An open SQL transaction.
    start, end
        Timezone-aware bounds of the slot start.
    limit, offset
        The page.
    """
    statement = _STATEMENTS[tx.conn.dialect.name]
    values = {"low": start.timestamp(), "high": end.timestamp(), "limit_": limit, "offset_": offset}
    return [to_stored(row, tx.protection) for row in tx.conn.execute(statement, values)]


def current_many(tx: SqlTransaction, resource_type: str, ids: Sequence[str]) -> list[StoredResource]:
    """The live current versions of ``ids`` (missing and deleted ones left out), in one query."""
    if not ids:
        return []
    statement = sa.select(*resource_columns(tx.conn.dialect.name)).where(
        resource.c.res_type == resource_type,
        resource.c.res_id.in_(list(ids)),
        resource.c.current,
        sa.not_(resource.c.deleted),
    )
    return [to_stored(row, tx.protection) for row in tx.conn.execute(statement)]
