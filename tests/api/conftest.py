"""An in-process API client over each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from medfusion.api import create_app
from medfusion.config import override_settings
from medfusion.fhir.repository import FhirRepository

BASE = "http://testserver/fhir"


@pytest.fixture
def client(repo: FhirRepository) -> Iterator[TestClient]:
    """A TestClient on a fresh store (memory, SQLite, PostgreSQL)."""
    with (
        override_settings(base_url=BASE),
        TestClient(create_app(repo), base_url="http://testserver") as c,
    ):
        yield c
