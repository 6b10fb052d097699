"""The benchmark ceiling routes: the same bytes, behind the same middleware or behind none."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from medfusion.api import create_app
from medfusion.fhir.memory import InMemoryRepository


def test_the_ceiling_serves_the_bytes_behind_the_same_middleware(tmp_path: Path) -> None:
    payload = tmp_path / "bare.json"
    payload.write_bytes(b'{"resourceType":"Observation","id":"o1"}')
    with TestClient(create_app(InMemoryRepository(), bare_payload=payload)) as client:
        ceiling = client.get("/_bare")
        raw = client.get("/_bare_raw")
    assert ceiling.content == raw.content == payload.read_bytes()
    assert ceiling.headers["content-type"] == "application/fhir+json"
    # Only the ceiling passed the security middleware, which stamps every response.
    assert "x-request-id" in ceiling.headers
    assert "x-request-id" not in raw.headers


def test_without_a_payload_there_are_no_ceiling_routes() -> None:
    with TestClient(create_app(InMemoryRepository())) as client:
        assert client.get("/_bare").status_code == 404
        assert client.get("/_bare_raw").status_code == 404
