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
from medfusion.store.engine import make_engine
from medfusion.store.migrate import upgrade
from medfusion.store.repository import SqlRepository

from .conftest import Secured

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
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    repo = SqlRepository(engine)
    yield repo
    repo.close()


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
