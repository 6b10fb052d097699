"""``POST /api/export/deidentified``: NDJSON for analysts, k-anonymity in headers, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from medfusion.api import create_app
from medfusion.config import override_settings
from medfusion.fhir.memory import InMemoryRepository
from medfusion.services.bundles import process_bundle
from medfusion.synth import generate_bundle


@pytest.fixture
def deid_client() -> Iterator[tuple[TestClient, list[dict]]]:
    repo = InMemoryRepository()
    bundles = [generate_bundle(i, 9) for i in range(6)]
    for bundle in bundles:
        process_bundle(repo, bundle=bundle)
    with (
        override_settings(deid_key=SecretStr("api-test-key-0123456789")),
        TestClient(create_app(repo), base_url="http://testserver") as client,
    ):
        yield client, bundles


def test_export_streams_deidentified_ndjson(deid_client: tuple[TestClient, list[dict]]) -> None:
    client, bundles = deid_client
    response = client.post("/api/export/deidentified?k=1&_type=Patient,Observation")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    assert response.headers["x-deid-k-achieved"] == "1" and response.headers["x-deid-suppressed"] == "0"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert {r["resourceType"] for r in lines} == {"Patient", "Observation"}
    patients = [
        e["resource"] for b in bundles for e in b["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    for patient in patients:
        for value in (patient["name"][0]["family"], patient["telecom"][0]["value"], patient["birthDate"]):
            assert value not in response.text


def test_k_suppression_reported_in_headers(deid_client: tuple[TestClient, list[dict]]) -> None:
    client, _ = deid_client
    response = client.post("/api/export/deidentified?k=7")
    assert response.status_code == 200
    assert response.headers["x-deid-patients"] == "6" and response.headers["x-deid-suppressed"] == "6"
    assert response.headers["x-deid-k-achieved"] == "0"
    assert '"resourceType":"Patient"' not in response.text


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("k=0", "at least 1"),
        ("k=two", "whole number"),
        ("dateShift=maybe", "dateShift"),
        ("_type=Bogus", "Bogus"),
        ("since=2020", "unknown parameter"),
    ],
)
def test_bad_parameters_give_operation_outcome(
    deid_client: tuple[TestClient, list[dict]], query: str, fragment: str
) -> None:
    client, _ = deid_client
    response = client.post(f"/api/export/deidentified?{query}")
    assert response.status_code in (400, 404)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert fragment in body["issue"][0]["diagnostics"]
