"""Re-seal stored bodies under the active key, and seal rows written in the clear.

Reads keep working throughout: every batch is its own short write transaction, and
until a row is re-sealed it opens under its old key, which stays in the keyring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
import sqlalchemy as sa

from medfusion.store.protection import IDENTIFYING
from medfusion.store.repository import SqlRepository, SqlTransaction
from medfusion.store.rows import stored_body
from medfusion.store.tables import INDEX_TABLES, resource

__all__ = ["ResealReport", "count_unsealed", "reseal"]

_PEOPLE = {resource_type for resource_type, _ in IDENTIFYING}


@dataclass
class ResealReport:
    """What :func:`reseal` changed."""

    resealed: int = 0
    sealed_plain: int = 0
    reindexed: int = 0


def count_unsealed(repo: SqlRepository) -> int:
    """Rows with a body that is not sealed under the active key (0 once rotation is done)."""
    keyring = repo.protection.keyring
    if keyring is None:
        return 0
    count = 0
    with repo.engine.connect() as conn:
        rows = conn.execution_options(yield_per=2000).execute(
            sa.select(resource.c.body.is_not(None), resource.c.sealed).where(
                sa.or_(resource.c.body.is_not(None), resource.c.sealed.is_not(None))
            )
        )
        for plain, sealed in rows:
            count += bool(plain) or not keyring.sealed_with_active(bytes(sealed))
    return count


def reseal(
    repo: SqlRepository, *, batch: int = 500, progress: Callable[[int, int], None] | None = None
) -> ResealReport:
    """Bring every body under the repository's active key.

    A plain row (written with encryption off) is sealed; when it is the current version
    of a person, its index rows are rebuilt as blind indexes.
    """
    protection = repo.protection
    keyring = protection.keyring
    if keyring is None:
        raise ValueError("reseal needs a keyring")
    report = ResealReport()
    with repo.engine.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(resource)).scalar_one())
    last = 0
    done = 0
    while True:
        with repo.begin() as tx:
            assert isinstance(tx, SqlTransaction)
            rows = tx.conn.execute(
                sa.select(
                    resource.c.rid,
                    resource.c.res_type,
                    resource.c.res_id,
                    resource.c.version,
                    resource.c.current,
                    resource.c.deleted,
                    sa.cast(resource.c.body, sa.Text)
                    if repo.engine.dialect.name == "postgresql"
                    else resource.c.body,
                    resource.c.sealed,
                )
                .where(resource.c.rid > last)
                .order_by(resource.c.rid)
                .limit(batch)
            ).all()
            if not rows:
                break
            for rid, res_type, res_id, version, current, deleted, body, sealed in rows:
                last = rid
                if body is None and (sealed is None or keyring.sealed_with_active(bytes(sealed))):
                    continue
                plain = stored_body(protection, res_type, res_id, version, body, sealed)
                tx.conn.execute(
                    sa.update(resource)
                    .where(resource.c.rid == rid)
                    .values(body=None, sealed=protection.seal(res_type, res_id, version, plain))
                )
                if sealed is not None:
                    report.resealed += 1
                    continue
                report.sealed_plain += 1
                if current and not deleted and res_type in _PEOPLE:
                    _reindex(tx, rid, res_type, plain)
                    report.reindexed += 1
        done += len(rows)
        if progress is not None:
            progress(done, total)
    return report


def _reindex(tx: SqlTransaction, rid: int, resource_type: str, body: bytes) -> None:
    for table in INDEX_TABLES.values():
        tx.conn.execute(sa.delete(table).where(table.c.rid == rid))
    tx.insert_index([(rid, resource_type, orjson.loads(body))])
