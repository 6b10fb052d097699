"""Security is on by default: the real Settings and the default app refuse anonymous calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from medfusion.api import create_app
from medfusion.config import Settings
from medfusion.store.repository import SqlRepository

pytestmark = pytest.mark.auth


def test_default_settings_turn_authentication_and_audit_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MEDFUSION_AUTH_ENABLED", "MEDFUSION_AUDIT_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.auth_enabled is True
    assert settings.audit_enabled is True


def test_default_app_answers_401_without_a_token(sql_repo: SqlRepository) -> None:
    with TestClient(create_app(sql_repo)) as client:
        refused = client.get("/fhir/Patient")
        assert refused.status_code == 401
        assert refused.json()["resourceType"] == "OperationOutcome"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/fhir/Patient/x").status_code == 401  # the fast read route too
        # Open: the CapabilityStatement and the health check.
        assert client.get("/fhir/metadata").status_code == 200
        assert client.get("/health").status_code == 200


def test_key_file_is_created_private(sql_repo: SqlRepository, tmp_path: Path) -> None:
    from medfusion.config import get_settings
    from medfusion.services.security import secret_key

    secret_key()
    path = get_settings().secret_key_file
    assert path.exists()
    assert path.stat().st_mode & 0o777 == 0o600
