"""Every route of the app's own OpenAPI spec, without a token and with each role.

Without a token every route that touches patient data answers 401. With a token, each
role gets what the policy says (403 where it is denied, anything but 401/403 where it is
allowed: 200, 201, 204, or 400/404/409/422 from the request itself), and every request
leaves an audit record. A route added later that is not listed below is still checked
for 401 without a token and for an audit record.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from medfusion.store.tables import audit_log

from .conftest import FHIR, Secured, observation

pytestmark = pytest.mark.auth

# Routes that authenticate the caller themselves (token issuing) or hold no patient data.
SELF_AUTHENTICATED = {("post", "/auth/token"), ("post", "/auth/revoke")}
OPEN = {("get", "/fhir/metadata")}
APPOINTMENT = {
    "resourceType": "Appointment",
    "status": "booked",
    "slot": [{"reference": "Slot/none"}],
    "participant": [{"actor": {"reference": "Patient/A"}, "status": "accepted"}],
}
# Denied routes per role (everything else must pass the authorization check).
WRITES = {
    ("put", "/fhir/{resource_type}/{id}"),
    ("patch", "/fhir/{resource_type}/{id}"),
    ("delete", "/fhir/{resource_type}/{id}"),
    ("post", "/fhir/{resource_type}"),
    ("put", "/fhir/{resource_type}"),
    ("put", "/api/schedules/{id}/availability"),
}
APPOINTMENT_WRITES = {
    ("post", "/fhir/Appointment/$hold"),
    ("post", "/fhir/Appointment/$book"),
    ("post", "/fhir/Appointment/{id}/$cancel"),
    ("post", "/fhir/Appointment/{id}/$reschedule"),
    ("post", "/fhir/Appointment"),
}
GLASS = {("post", "/auth/break-glass")}  # clinicians only
DEID_EXPORT = ("post", "/api/export/deidentified")  # analysts' one way to records
STAFF_WRITES = {
    ("post", "/fhir/Appointment/{id}/$check-in"),
    ("post", "/fhir/Appointment/{id}/$fulfill"),
    ("post", "/api/scheduling/no-shows"),
    ("delete", "/api/waitlist/{id}"),
}
STAFF_READS = {
    ("get", "/api/scheduling/stats"),
    ("get", "/api/waitlist"),
    ("get", "/api/waitlist/{id}"),
    ("get", "/api/notifications"),
}
DENIED: dict[str, set[tuple[str, str]] | None] = {
    "admin": GLASS,
    "clinician": set(),
    "analyst": None,  # every route but the de-identified export: aggregates are tested on their own
    "patient-a": WRITES | GLASS | STAFF_WRITES | STAFF_READS | {("get", "/fhir/_history"), DEID_EXPORT},
    "etl": WRITES | APPOINTMENT_WRITES | GLASS | STAFF_WRITES | {("post", "/api/waitlist")},
}


def _request(path: str, method: str) -> tuple[str, dict[str, Any]]:
    """A concrete request for a route of the spec (its target in patient A's compartment)."""
    url = (
        path.replace("{resource_type}", "Observation")
        .replace("Patient/{id}", "Patient/A")
        .replace("Appointment/{id}", "Appointment/appt-none")
        .replace("schedules/{id}", "schedules/none")
        .replace("{id}", "obs-A")
        .replace("{version}", "1")
    )
    kwargs: dict[str, Any] = {"headers": dict(FHIR)}
    if method == "patch":
        kwargs = {"headers": {"Content-Type": "application/json-patch+json"}, "content": b"[]"}
    elif path in ("/fhir", "/fhir/"):
        kwargs["json"] = {"resourceType": "Bundle", "type": "batch",
                          "entry": [{"request": {"method": "GET", "url": "Observation/obs-A"}}]}  # fmt: skip
    elif path.startswith("/fhir/Appointment"):
        kwargs["json"] = APPOINTMENT if "$find" not in path else {"resourceType": "Parameters"}
        if "$cancel" in path or "$reschedule" in path:
            kwargs["json"] = {"resourceType": "Parameters"}
    elif path.startswith("/api/schedules"):
        kwargs["json"] = {"rules": []}
    elif path.endswith("/_search"):
        kwargs = {"headers": {"Content-Type": "application/x-www-form-urlencoded"}, "content": b""}
    elif method == "put" and path == "/fhir/{resource_type}":
        url += "?_id=obs-A"
        kwargs["json"] = observation("A", "obs-A")
    elif method in ("put", "post"):
        kwargs["json"] = observation("A", "obs-A")
    return url, kwargs


def _routes(secured: Secured) -> list[tuple[str, str]]:
    spec = secured.client.get("/openapi.json").json()
    routes = [(method, path) for path, ops in spec["paths"].items() for method in ops]
    # Destructive calls last, so the reads before them see the seeded data.
    return sorted(routes, key=lambda r: r[0] == "delete")


def _audit_rows(secured: Secured) -> int:
    secured.flush()
    with secured.repo.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one())


def test_every_route_needs_a_token(secured: Secured) -> None:
    routes = _routes(secured)
    assert len(routes) >= 20
    for method, path in routes:
        if (method, path) in SELF_AUTHENTICATED | OPEN:
            continue
        url, kwargs = _request(path, method)
        before = _audit_rows(secured)
        response = secured.client.request(method.upper(), url, **kwargs)
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.json()["resourceType"] == "OperationOutcome"
        assert "Alpha" not in response.text
        assert _audit_rows(secured) == before + 1, (method, path)


@pytest.mark.parametrize("role", list(DENIED))
def test_route_by_role(secured: Secured, role: str) -> None:
    denied = DENIED[role]
    for method, path in _routes(secured):
        if (method, path) in SELF_AUTHENTICATED | OPEN:
            continue
        url, kwargs = _request(path, method)
        kwargs["headers"] = {**kwargs["headers"], **secured.auth(role)}
        before = _audit_rows(secured)
        response = secured.client.request(method.upper(), url, **kwargs)
        assert response.status_code < 500, (role, method, path, response.text)
        if (denied is None and (method, path) != DEID_EXPORT) or (
            denied is not None and (method, path) in denied
        ):
            assert response.status_code == 403, (role, method, path, response.status_code, response.text)
        else:
            assert response.status_code not in (401, 403), (
                role,
                method,
                path,
                response.status_code,
                response.text,
            )
        assert _audit_rows(secured) >= before + 1, (role, method, path)
