"""Shared fixtures: repositories on every backend, an API client, the data folder.

``repo`` runs a test on the in-memory twin, SQLite and (when
``MEDFUSION_TEST_POSTGRES_URL`` names a server) PostgreSQL. Each PostgreSQL test gets a
fresh database of its own, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from medfusion.config import Settings, get_settings, override_settings
from medfusion.fhir.memory import InMemoryRepository
from medfusion.fhir.repository import FhirRepository
from medfusion.store.crypto import Keyring
from medfusion.store.engine import make_engine
from medfusion.store.migrate import upgrade
from medfusion.store.protection import Protection
from medfusion.store.repository import SqlRepository

POSTGRES_URL = os.environ.get("MEDFUSION_TEST_POSTGRES_URL")
# Encryption at rest is on by default: the keyring of this test run lives in a temporary
# folder (inherited by CLI subprocesses), never in the checkout's .medfusion/.
os.environ.setdefault(
    "MEDFUSION_KEY_FILE", str(Path(tempfile.mkdtemp(prefix="medfusion-test-keys-")) / "keys.json")
)

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ALL_BACKENDS = ["memory", *SQL_BACKENDS]


@pytest.fixture(autouse=True)
def _security_mode(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Anonymous clients for every test except those marked ``auth``.

    Authentication and audit are on by default (``Settings``); tests of other features
    run with both off (the environment too, for servers they start as subprocesses).
    ``@pytest.mark.auth`` tests keep the defaults, with a key file and audit checkpoint
    of their own.
    """
    if request.node.get_closest_marker("auth") is None:
        monkeypatch.setenv("MEDFUSION_AUTH_ENABLED", "false")
        monkeypatch.setenv("MEDFUSION_AUDIT_ENABLED", "false")
        with override_settings(auth_enabled=False, audit_enabled=False):
            yield
        return
    folder = tmp_path_factory.mktemp("security")
    # The defaults of Settings itself: the cached environment may come from an unmarked test.
    defaults = {name: Settings.model_fields[name].default for name in ("auth_enabled", "audit_enabled")}
    with override_settings(
        **defaults,
        secret_key=None,
        secret_key_file=folder / "secret.key",
        audit_checkpoint_file=folder / "audit.checkpoint",
    ):
        yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared public data folder; tests needing it skip when it is absent."""
    path = get_settings().data_dir
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (set MEDFUSION_DATA_DIR)")
    return path


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("MEDFUSION_TEST_POSTGRES_URL is not set; PostgreSQL tests need a server")
    name = f"mf_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _sql_repository(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> SqlRepository:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url, pool_size=4, max_overflow=4)
    upgrade(engine)
    repo = SqlRepository(engine, Protection(Keyring.generate()))
    request.addfinalizer(repo.close)
    return repo


@pytest.fixture(params=ALL_BACKENDS)
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> FhirRepository:
    """A fresh repository on each backend."""
    if request.param == "memory":
        return InMemoryRepository()
    return _sql_repository(request.param, request, tmp_path)


@pytest.fixture(params=SQL_BACKENDS)
def sql_repo(request: pytest.FixtureRequest, tmp_path: Path) -> SqlRepository:
    """A fresh SQL repository on SQLite and PostgreSQL."""
    return _sql_repository(request.param, request, tmp_path)


@pytest.fixture
def settings_base_url() -> Iterator[None]:
    """Pin the public base URL so Bundle links are predictable."""
    with override_settings(base_url="http://testserver/fhir"):
        yield
