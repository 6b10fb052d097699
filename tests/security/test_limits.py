"""Limits and rights that hold on every route: the body cap, the ``_count`` cap, scopes per
interaction, and a patient's scheduling actions counted as the patient's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medfusion.config import override_settings
from medfusion.store.repository import SqlRepository

from .conftest import FHIR, Secured, observation, sqlite_store

pytestmark = pytest.mark.auth

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def sql_repo(tmp_path: Path) -> Iterator[SqlRepository]:
    """SQLite only: these are HTTP-level rules."""
    yield from sqlite_store(tmp_path)


def _chunks(data: bytes) -> Iterator[bytes]:
    # A generator body goes out chunked, with no Content-Length to refuse up front.
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/fhir/Observation/_search", FORM),  # reads its form itself, not through read_body
        ("/auth/token", FORM),
        ("/fhir/Observation", FHIR),
    ],
)
def test_every_body_is_capped_with_413(secured: Secured, path: str, headers: dict[str, str]) -> None:
    big = b"name=" + b"x" * 5000
    with override_settings(max_body_bytes=2000):
        declared = secured.client.post(path, content=big, headers=secured.auth("clinician", **headers))
        assert declared.status_code == 413, declared.text
        assert declared.json()["resourceType"] == "OperationOutcome"
        streamed = secured.client.post(
            path, content=_chunks(big), headers=secured.auth("clinician", **headers)
        )
        assert streamed.status_code == 413, streamed.text
        # Under the cap, the same route answers normally.
        small = secured.client.post(path, content=b"name=x", headers=secured.auth("clinician", **headers))
        assert small.status_code != 413


def test_a_route_that_reads_no_body_still_refuses_a_declared_large_one(secured: Secured) -> None:
    with override_settings(max_body_bytes=2000):
        response = secured.client.post(
            "/api/export/deidentified", content=b"x" * 5000, headers=secured.auth("analyst", **FHIR)
        )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        ("user/Observation.r", {"read", "vread", "history"}),
        ("user/Observation.s", {"search", "type-history"}),
        ("user/Observation.c", {"create"}),
        ("user/Observation.u", {"update", "patch"}),
        ("user/Observation.d", {"delete"}),
        ("user/Observation.read", {"read", "vread", "history", "search", "type-history"}),
        ("user/Observation.write", {"create", "update", "patch", "delete"}),
        ("user/Encounter.cruds", set()),
    ],
)
def test_each_interaction_needs_its_own_permission(secured: Secured, scope: str, allowed: set[str]) -> None:
    token = secured.mint("clinician", scope)
    auth = {"Authorization": f"Bearer {token}"}
    patch = {"Content-Type": "application/json-patch+json"}
    calls = {
        "read": ("GET", "/fhir/Observation/obs-A", {}, None),
        "vread": ("GET", "/fhir/Observation/obs-A/_history/1", {}, None),
        "history": ("GET", "/fhir/Observation/obs-A/_history", {}, None),
        "search": ("GET", "/fhir/Observation?subject=A", {}, None),
        "type-history": ("GET", "/fhir/Observation/_history", {}, None),
        "create": ("POST", "/fhir/Observation", FHIR, observation("A", "new")),
        "update": ("PUT", "/fhir/Observation/obs-A", FHIR, observation("A", "obs-A")),
        "patch": ("PATCH", "/fhir/Observation/obs-A", patch, []),
        "delete": ("DELETE", "/fhir/Observation/obs-B", {}, None),
    }
    for name, (method, path, headers, body) in calls.items():
        response = secured.client.request(method, path, headers={**auth, **headers}, json=body)
        if name in allowed:
            assert response.status_code in (200, 201, 204), (scope, name, response.text)
        else:
            assert response.status_code == 403, (scope, name, response.status_code)


def test_a_patients_cancellation_counts_as_the_patients_own(secured: Secured) -> None:
    appointment = {
        "resourceType": "Appointment",
        "id": "appt-A",
        "status": "proposed",
        "participant": [{"actor": {"reference": "Patient/A"}, "status": "accepted"}],
    }
    made = secured.client.put(
        "/fhir/Appointment/appt-A", json=appointment, headers=secured.auth("clinician", **FHIR)
    )
    assert made.status_code == 201
    cancelled = secured.client.post(
        "/fhir/Appointment/appt-A/$cancel",
        json={"reason": "feeling better"},
        headers=secured.auth("patient-a", **FHIR),
    )
    assert cancelled.status_code == 200, cancelled.text
    # A patient's own cancellation tells the front desk; a staff one would not.
    kinds = [
        n["kind"] for n in secured.client.get("/api/notifications", headers=secured.auth("clinician")).json()
    ]
    assert "staff-cancelled" in kinds


def test_count_is_capped_everywhere(secured: Secured) -> None:
    auth = secured.auth("admin")
    with override_settings(max_page_size=1):
        for path in (
            "/fhir/Encounter?_count=1000",
            "/fhir/Observation/_search?_count=1000",
            "/fhir/_history?_count=1000",
            "/fhir/AuditEvent?_count=1000",
        ):
            method = "POST" if "_search" in path else "GET"
            headers = {**auth, **FORM} if method == "POST" else auth
            bundle = secured.client.request(method, path, headers=headers).json()
            # More than one matches each of these; the page holds the cap.
            assert len(bundle.get("entry", [])) == 1, (path, bundle)
