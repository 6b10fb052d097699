"""A bounded schemathesis run over every operation of the app's own OpenAPI spec.

Schemathesis reads ``/openapi.json`` and generates requests for each operation, both ones
the spec allows (positive) and ones it does not (negative). Each is sent three times:
without a token (every protected route answers 401 with an OperationOutcome and no record
content), with an admin token (no 5xx), and with patient A's token (no 5xx, nothing of
patient B). Bounded: a few examples per operation, no deadline, no example database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from medfusion.config import override_settings
from medfusion.store.repository import SqlRepository

from .conftest import FHIR, Secured, sqlite_store

pytestmark = pytest.mark.auth

# Open without a token: the CapabilityStatement and the token endpoints (they check
# credentials themselves).
OPEN = {("GET", "/fhir/metadata"), ("POST", "/auth/token"), ("POST", "/auth/revoke")}
# Record content of the seeded store: names, and ids of the records themselves.
RECORD_TEXT = ("Alpha", "Bravo", "obs-A", "obs-B", "enc-A", "enc-B", "obs-secret")
PATIENT_B = ("Bravo", "obs-B", "enc-B")
EXAMPLES_PER_OPERATION = 6


@pytest.fixture(autouse=True)
def _no_auth_rate_limit() -> Iterator[None]:
    # The fuzz sends hundreds of /auth requests from one address; the limit has its own test.
    with override_settings(auth_rate_limit=1_000_000):
        yield


@pytest.fixture
def sql_repo(tmp_path: Path) -> Iterator[SqlRepository]:
    """SQLite only: the fuzz is about the HTTP surface, not the backend."""
    yield from sqlite_store(tmp_path)


def _send(secured: Secured, request: dict[str, Any], auth: dict[str, str]) -> Any:
    headers = {k: v for k, v in request["headers"].items() if k.lower() != "authorization"}
    kwargs: dict[str, Any] = {"params": request.get("params") or None, "headers": {**headers, **auth}}
    if "json" in request:
        kwargs["json"] = request["json"]
    elif "data" in request:
        kwargs["data" if isinstance(request["data"], dict) else "content"] = request["data"]
    return secured.client.request(request["method"], request["url"], **kwargs)


def _check(secured: Secured, operation: Any, case: schemathesis.Case) -> None:
    request = case.as_transport_kwargs(base_url="http://testserver")
    route = (operation.method.upper(), operation.path)
    where = (request["method"], request["url"], request.get("params"))

    anonymous = _send(secured, request, {})
    assert anonymous.status_code < 500, (*where, anonymous.text)
    if route not in OPEN:
        assert anonymous.status_code == 401, (*where, anonymous.status_code)
        assert anonymous.json()["resourceType"] == "OperationOutcome"
    for text in RECORD_TEXT:
        assert text not in anonymous.text, (*where, text)

    admin = _send(secured, request, secured.auth("admin"))
    assert admin.status_code < 500, (*where, admin.text)

    patient = _send(secured, request, secured.auth("patient-a"))
    assert patient.status_code < 500, (*where, patient.text)
    for text in PATIENT_B:
        assert text not in patient.text, (*where, text)


def _fuzz(secured: Secured, operation: Any) -> None:
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: schemathesis.Case) -> None:
        _check(secured, operation, case)

    run()


def test_schemathesis_every_operation(secured: Secured) -> None:
    spec = secured.client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30  # the whole surface, not a broken spec
    for operation in operations:
        _fuzz(secured, operation)


@pytest.mark.parametrize(
    ("who", "body"),
    [
        # Found by the fuzz: a Bundle entry whose request is not an object gave a 500.
        ("clinician", {"resourceType": "Bundle", "type": "batch", "entry": [{"request": 5}]}),
        ("clinician", {"resourceType": "Bundle", "type": "batch",
                       "entry": [{"request": {"method": 5, "url": []}}]}),
        ("clinician", {"resourceType": "Bundle", "type": "transaction", "entry": 5}),
        ("patient-a", {"resourceType": "Bundle", "type": "batch", "entry": [{"request": "GET"}]}),
        ("patient-a", {"resourceType": "Bundle", "type": "batch",
                       "entry": [{"request": {"method": "POST", "url": "Appointment"},
                                  "resource": {"resourceType": "Appointment", "participant": 5,
                                               "meta": [1]}}]}),
    ],
)  # fmt: skip
def test_malformed_bundles_are_refused_not_crashed_on(secured: Secured, who: str, body: object) -> None:
    response = secured.client.post("/fhir", json=body, headers=secured.auth(who, **FHIR))
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["resourceType"] in ("OperationOutcome", "Bundle")


def test_malformed_patient_writes_are_refused_not_crashed_on(secured: Secured) -> None:
    for body in (
        {"resourceType": "Appointment", "status": "proposed", "participant": 5},
        {"resourceType": "Appointment", "status": "proposed", "meta": [1], "participant": []},
        {"resourceType": "Appointment", "status": "proposed", "participant": [5, {"actor": 5}]},
    ):
        response = secured.client.post(
            "/fhir/Appointment", json=body, headers=secured.auth("patient-a", **FHIR)
        )
        assert response.status_code == 403, response.text
