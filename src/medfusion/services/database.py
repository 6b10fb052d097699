"""Opening the configured store, migrated."""

from __future__ import annotations

import sqlalchemy as sa

from medfusion.config import get_settings
from medfusion.store.crypto import Keyring, load_keyring
from medfusion.store.engine import make_engine
from medfusion.store.migrate import upgrade
from medfusion.store.protection import Protection
from medfusion.store.repository import SqlRepository
from medfusion.store.security import SecurityStore

__all__ = ["open_repository", "open_security", "store_protection", "upgrade_database"]


def store_protection() -> Protection:
    """Encryption at rest as the settings ask: the keyring, or plain storage when off."""
    settings = get_settings()
    if not settings.encrypt_at_rest:
        return Protection(None)
    secret = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    key_file = settings.key_file

    def reload() -> Keyring:
        return load_keyring(secret=secret, key_file=key_file)

    return Protection(reload(), None if secret else reload)


def _engine(url: str) -> sa.Engine:
    return make_engine(url, sqlite_mmap_bytes=get_settings().sqlite_mmap_mib * 2**20)


def upgrade_database(url: str) -> str:
    """Apply migrations to the database at ``url``; returns the revision reached."""
    engine = _engine(url)
    try:
        return upgrade(engine)
    finally:
        engine.dispose()


def open_repository(url: str, *, migrate: bool = True) -> SqlRepository:
    """A :class:`SqlRepository` on ``url``, migrated to the newest schema first."""
    engine = _engine(url)
    if migrate:
        upgrade(engine)
    return SqlRepository(engine, store_protection())


def open_security(url: str) -> SecurityStore:
    """The users, tokens and audit trail of the database at ``url``, migrated first."""
    engine = _engine(url)
    upgrade(engine)
    return SecurityStore(engine)
