"""Opening the configured store, migrated."""

from __future__ import annotations

from medfusion.store.engine import make_engine
from medfusion.store.migrate import upgrade
from medfusion.store.repository import SqlRepository
from medfusion.store.security import SecurityStore

__all__ = ["open_repository", "open_security", "upgrade_database"]


def upgrade_database(url: str) -> str:
    """Apply migrations to the database at ``url``; returns the revision reached."""
    engine = make_engine(url)
    try:
        return upgrade(engine)
    finally:
        engine.dispose()


def open_repository(url: str, *, migrate: bool = True) -> SqlRepository:
    """A :class:`SqlRepository` on ``url``, migrated to the newest schema first."""
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return SqlRepository(engine)


def open_security(url: str) -> SecurityStore:
    """The users, tokens and audit trail of the database at ``url``, migrated first."""
    engine = make_engine(url)
    upgrade(engine)
    return SecurityStore(engine)
