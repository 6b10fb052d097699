"""A secured API (authentication and audit on, as by default) with a user of every role.

Two patients, A and B, each with an Observation and an Encounter; a restricted
Observation of A; users ``admin``, ``clinician``, ``analyst``, ``patient-a`` and
``patient-b``; a backend client ``etl`` with ``system/*.rs``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from medfusion.api import create_app
from medfusion.config import override_settings
from medfusion.services.scopes import grant, role_cap
from medfusion.services.security import TokenService, add_client
from medfusion.store.engine import make_engine
from medfusion.store.migrate import upgrade
from medfusion.store.repository import SqlRepository
from medfusion.store.security import SecurityStore

BASE = "http://testserver/fhir"
FHIR = {"Content-Type": "application/fhir+json"}
PASSWORD = "a long test password"
RESTRICTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
ROLES = ("admin", "clinician", "analyst", "patient")


def sqlite_store(tmp_path: Path) -> Iterator[SqlRepository]:
    """A migrated SQLite store, closed afterwards: for modules whose rules do not depend
    on the backend (their own ``sql_repo`` fixture yields from it)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    repo = SqlRepository(engine)
    yield repo
    repo.close()


@lru_cache(maxsize=1)
def _password_hash() -> str:
    # One argon2 hash per session: every test user shares it (hashing costs ~50 ms).
    return PasswordHasher().hash(PASSWORD)


def observation(patient: str, id: str, *, restricted: bool = False) -> dict[str, object]:
    resource: dict[str, object] = {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": 72, "unit": "/min"},
    }
    if restricted:
        resource["meta"] = {"security": [RESTRICTED]}
    return resource


@dataclass
class Secured:
    """The secured app's client, its stores and a token per role."""

    client: TestClient
    repo: SqlRepository
    security: SecurityStore
    tokens: TokenService
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    client_secret: str = ""

    def auth(self, who: str, **extra: str) -> dict[str, str]:
        """Headers with ``who``'s bearer token (plus ``extra``)."""
        return {**self.headers[who], **extra}

    def mint(self, name: str, scope: str = "") -> str:
        """An access token for a stored user, as the token endpoint would issue it."""
        user = self.security.user(name)
        assert user is not None
        return str(self.tokens._access(user, grant(scope, role_cap(user.role)))["access_token"])

    def flush(self) -> None:
        """Write buffered audit records now."""
        self.client.app.state.trail.flush()  # type: ignore[attr-defined]


def _seed(repo: SqlRepository) -> None:
    with repo.begin() as tx:
        for pid, name in (("A", "Alpha"), ("B", "Bravo")):
            tx.write("Patient", pid, {"resourceType": "Patient", "id": pid, "name": [{"family": name}]},
                     expected_version=None)  # fmt: skip
            tx.write("Observation", f"obs-{pid}", observation(pid, f"obs-{pid}"), expected_version=None)
            tx.write(
                "Encounter",
                f"enc-{pid}",
                {"resourceType": "Encounter", "id": f"enc-{pid}", "status": "finished",
                 "class": {"code": "AMB"}, "subject": {"reference": f"Patient/{pid}"}},
                expected_version=None,
            )  # fmt: skip
        tx.write(
            "Observation",
            "obs-secret",
            observation("A", "obs-secret", restricted=True),
            expected_version=None,
        )
        tx.write("Practitioner", "doc", {"resourceType": "Practitioner", "id": "doc"}, expected_version=None)


@pytest.fixture
def secured(sql_repo: SqlRepository) -> Iterator[Secured]:
    """The secured app on SQLite and PostgreSQL, seeded, with a token per role."""
    _seed(sql_repo)
    store = SecurityStore(sql_repo.engine)
    now = datetime.now(UTC)
    for name, role, pid in (
        ("admin", "admin", None),
        ("clinician", "clinician", None),
        ("analyst", "analyst", None),
        ("patient-a", "patient", "A"),
        ("patient-b", "patient", "B"),
    ):
        store.add_user(name=name, role=role, patient_id=pid, password_hash=_password_hash(), created=now)
    secret = add_client(store, name="etl", scope="system/*.rs")
    with (
        override_settings(base_url=BASE),
        TestClient(create_app(sql_repo), base_url="http://testserver") as client,
    ):
        app_tokens = client.app.state.tokens  # type: ignore[attr-defined]
        secured = Secured(client, sql_repo, store, app_tokens, client_secret=secret)
        for name in ("admin", "clinician", "analyst", "patient-a", "patient-b"):
            secured.headers[name] = {"Authorization": f"Bearer {secured.mint(name)}"}
        etl = app_tokens.client_credentials(client_id="etl", client_secret=secret, scope="")
        secured.headers["etl"] = {"Authorization": f"Bearer {etl['access_token']}"}
        yield secured
