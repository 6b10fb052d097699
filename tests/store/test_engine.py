"""SQLite is opened with the durability settings the store relies on."""

from __future__ import annotations

from pathlib import Path

from medfusion.store.engine import make_engine


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'store.db'}")
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 2, "busy_timeout": 30000}
    assert (tmp_path / "nested" / "store.db").exists()


def test_sqlite_memory_map_follows_the_setting(tmp_path: Path) -> None:
    """``MEDFUSION_SQLITE_MMAP_MIB`` reaches every connection the store opens (0 turns it off)."""
    from medfusion.config import override_settings
    from medfusion.services.database import open_repository

    for mib in (64, 0):
        with override_settings(sqlite_mmap_mib=mib):
            repo = open_repository(f"sqlite:///{tmp_path / f'store{mib}.db'}")
        try:
            with repo.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == mib * 2**20
        finally:
            repo.engine.dispose()
