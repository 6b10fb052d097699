"""SQL access to users, backend clients, refresh tokens, revocations and the audit trail.

Hashing, token and chain logic live in :mod:`medfusion.services.security` and
:mod:`medfusion.services.audit`; this module only reads and writes rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from medfusion.errors import ConflictError, NotFoundError
from medfusion.fhir.repository import StoredResource
from medfusion.store.engine import WRITE, DriverReaders
from medfusion.store.tables import audit_log, auth_client, auth_refresh, auth_revoked, auth_user

__all__ = [
    "AuditRow",
    "ClientRow",
    "SecurityStore",
    "UserRow",
    "before_write_commit",
]

# Set by the API for the length of one request: called inside every write transaction of
# the SQL repository just before it commits, so the request's AuditEvent commits (or rolls
# back) together with the data it describes.
before_write_commit: ContextVar[Callable[[sa.Connection, list[StoredResource]], None] | None] = ContextVar(
    "before_write_commit", default=None
)


@dataclass(frozen=True, slots=True)
class UserRow:
    """A stored user (the password only as its argon2 hash)."""

    name: str
    role: str
    patient_id: str | None
    password_hash: str
    disabled: bool
    created: datetime


@dataclass(frozen=True, slots=True)
class ClientRow:
    """A stored backend client (the secret only as its argon2 hash)."""

    name: str
    secret_hash: str
    scope: str
    disabled: bool
    created: datetime


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One row of the audit trail."""

    seq: int
    event_id: str
    recorded: datetime
    action: str
    outcome: str
    agent: str
    entity: str
    body: bytes
    prev_hash: str
    hash: str


class SecurityStore:
    """Rows of the security tables on one engine (migrated to revision 0003 or later).

    Parameters
    ----------
    engine
        The record store's engine: the audit trail lives in the same database so a
        write's AuditEvent commits in the write's own transaction.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._readers = DriverReaders(engine)
        mark = "%s" if self.postgres else "?"
        self._active_sql = {
            table: f"SELECT disabled, EXISTS (SELECT 1 FROM auth_revoked WHERE jti = {mark})"
            f" FROM {table} WHERE name = {mark}"
            for table in ("auth_user", "auth_client")
        }

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        # SQLite: BEGIN IMMEDIATE, so a read-then-write waits for the lock instead of failing.
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            yield conn

    def _reader(self) -> Any:
        return self._readers.get()

    def close(self) -> None:
        """Close the per-thread readers and dispose of the engine's pool."""
        self.release()
        self.engine.dispose()

    def release(self) -> None:
        """Close the per-thread readers only (the engine belongs to the record store)."""
        self._readers.close()

    # -- users and clients -------------------------------------------------------------
    def add_user(
        self, *, name: str, role: str, patient_id: str | None, password_hash: str, created: datetime
    ) -> None:
        """Insert a user; a taken name is a :class:`ConflictError`."""
        row = {
            "name": name,
            "role": role,
            "patient_id": patient_id,
            "password_hash": password_hash,
            "disabled": False,
            "created": created,
        }
        try:
            with self._write() as conn:
                conn.execute(sa.insert(auth_user), [row])
        except sa.exc.IntegrityError:
            raise ConflictError(f"a user named '{name}' already exists") from None

    def user(self, name: str) -> UserRow | None:
        """The user called ``name``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(auth_user).where(auth_user.c.name == name)).first()
        return UserRow(**row._mapping) if row is not None else None

    def users(self) -> list[UserRow]:
        """Every user, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(auth_user).order_by(auth_user.c.name)).all()
        return [UserRow(**row._mapping) for row in rows]

    def disable_user(self, name: str) -> None:
        """Disable a user and end their refresh tokens; access tokens stop at their next use."""
        with self._write() as conn:
            done = conn.execute(
                sa.update(auth_user).where(auth_user.c.name == name).values(disabled=True)
            ).rowcount
            if not done:
                raise NotFoundError(f"no user named '{name}'")
            conn.execute(sa.update(auth_refresh).where(auth_refresh.c.username == name).values(used=True))

    def add_client(self, *, name: str, secret_hash: str, scope: str, created: datetime) -> None:
        """Insert a backend client; a taken name is a :class:`ConflictError`."""
        row = {
            "name": name,
            "secret_hash": secret_hash,
            "scope": scope,
            "disabled": False,
            "created": created,
        }
        try:
            with self._write() as conn:
                conn.execute(sa.insert(auth_client), [row])
        except sa.exc.IntegrityError:
            raise ConflictError(f"a client named '{name}' already exists") from None

    def client(self, name: str) -> ClientRow | None:
        """The client called ``name``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(auth_client).where(auth_client.c.name == name)).first()
        return ClientRow(**row._mapping) if row is not None else None

    def subject_active(self, kind: str, name: str, jti: str) -> bool:
        """Whether a token's subject is still enabled and the token not revoked.

        One round trip: this runs on every authenticated request.
        """
        sql = self._active_sql["auth_user" if kind == "user" else "auth_client"]
        row = self._reader().execute(sql, (jti, name)).fetchone()
        return row is not None and not row[0] and not row[1]

    # -- tokens --------------------------------------------------------------------------
    def revoke(self, jti: str, expires: float) -> None:
        """Record an access token as revoked (idempotent)."""
        with self._write() as conn:
            exists = conn.execute(sa.select(auth_revoked.c.jti).where(auth_revoked.c.jti == jti)).first()
            if exists is None:
                conn.execute(sa.insert(auth_revoked), [{"jti": jti, "expires": expires}])

    def purge_expired(self, now: float) -> None:
        """Drop revocations and refresh tokens past their expiry."""
        with self._write() as conn:
            conn.execute(sa.delete(auth_revoked).where(auth_revoked.c.expires < now))
            conn.execute(sa.delete(auth_refresh).where(auth_refresh.c.expires < now))

    def add_refresh(self, *, token_hash: str, family: str, username: str, scope: str, expires: float) -> None:
        """Store a new refresh token (by hash)."""
        row = {
            "token_hash": token_hash,
            "family": family,
            "username": username,
            "scope": scope,
            "expires": expires,
            "used": False,
        }
        with self._write() as conn:
            conn.execute(sa.insert(auth_refresh), [row])

    def use_refresh(self, token_hash: str, now: float) -> tuple[str, str, str] | None:
        """Spend a refresh token: its (family, username, scope), or None when unusable.

        A token presented a second time is a sign of theft: its whole family is ended.
        """
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            query = sa.select(auth_refresh).where(auth_refresh.c.token_hash == token_hash)
            if self.postgres:
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                return None
            if row.used or row.expires < now:
                conn.execute(
                    sa.update(auth_refresh).where(auth_refresh.c.family == row.family).values(used=True)
                )
                return None
            conn.execute(
                sa.update(auth_refresh).where(auth_refresh.c.token_hash == token_hash).values(used=True)
            )
            return row.family, row.username, row.scope

    def end_refresh(self, token_hash: str) -> bool:
        """End a refresh token's family; False when the token is unknown."""
        with self._write() as conn:
            row = conn.execute(
                sa.select(auth_refresh.c.family).where(auth_refresh.c.token_hash == token_hash)
            ).first()
            if row is None:
                return False
            conn.execute(sa.update(auth_refresh).where(auth_refresh.c.family == row[0]).values(used=True))
        return True

    # -- audit trail ---------------------------------------------------------------------
    def lock_chain(self, conn: sa.Connection) -> tuple[int, str]:
        """Serialise appenders and return the chain's (last seq, last hash).

        SQLite write transactions already hold the database lock (``BEGIN IMMEDIATE``);
        PostgreSQL takes a transaction-scoped advisory lock.
        """
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(72310551)")
        row = conn.execute(
            sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
        return (int(row[0]), str(row[1])) if row is not None else (0, "")

    def append_audit(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert chained audit rows on ``conn`` (inside the caller's transaction).

        Straight to the driver's ``executemany``: the statement machinery cost more than
        the insert, and read audits are written in batches of hundreds.
        """
        if not rows:
            return
        columns = ("seq", "event_id", "recorded", "action", "outcome", "agent", "entity", "body",
                   "prev_hash", "hash")  # fmt: skip
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        sql = f"INSERT INTO audit_log ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
        if conn.dialect.name == "sqlite":
            # SQLAlchemy's SQLite DateTime text form (naive UTC), so reads parse it back.
            values = [
                tuple(
                    row[c].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if c == "recorded" else row[c]
                    for c in columns
                )
                for row in rows
            ]
        else:
            values = [tuple(row[c] for c in columns) for row in rows]
        conn.exec_driver_sql(sql, values)

    def write_transaction(self) -> AbstractContextManager[sa.Connection]:
        """A write transaction of its own (for buffered read audits)."""
        return self._write()

    def audit_rows(self, *, batch: int = 2000) -> Iterator[AuditRow]:
        """Every audit row in ``seq`` order, fetched in batches."""
        last = -1
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(batch)
                ).all()
            if not rows:
                return
            for row in rows:
                yield _audit_row(row._mapping)
            last = int(rows[-1].seq)

    def search_audit(
        self,
        *,
        agent: str | None,
        entity: str | None,
        action: str | None,
        since: datetime | None,
        until: datetime | None,
        count: int,
        offset: int,
    ) -> tuple[list[AuditRow], int]:
        """Audit rows matching the filters, newest first, and the total match count."""
        conditions: list[sa.ColumnElement[bool]] = []
        if agent:
            conditions.append(audit_log.c.agent == agent)
        if entity:
            # Entities are stored space-delimited with a leading and trailing space.
            conditions.append(audit_log.c.entity.contains(f" {entity} ", autoescape=True))
        if action:
            conditions.append(audit_log.c.action == action)
        if since is not None:
            conditions.append(audit_log.c.recorded >= since)
        if until is not None:
            conditions.append(audit_log.c.recorded < until)
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(audit_log).where(*conditions)
            ).scalar_one()
            rows = conn.execute(
                sa.select(audit_log)
                .where(*conditions)
                .order_by(audit_log.c.seq.desc())
                .limit(count)
                .offset(offset)
            ).all()
        return [_audit_row(row._mapping) for row in rows], int(total)

    def audit_event(self, event_id: str) -> AuditRow | None:
        """The audit row of one AuditEvent id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(audit_log).where(audit_log.c.event_id == event_id)).first()
        return _audit_row(row._mapping) if row is not None else None


def _audit_row(mapping: Any) -> AuditRow:
    values = dict(mapping)
    body = values["body"]
    values["body"] = bytes(body) if not isinstance(body, bytes) else body
    return AuditRow(**values)
