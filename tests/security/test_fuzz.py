"""A bounded property-based fuzz of every route in the app's OpenAPI spec (hypothesis).

Without a token, every protected route answers 401 and no record content leaks; with an
admin token, nothing answers 5xx. Bounded: a fixed number of examples, no deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfusion.store.repository import SqlRepository

from .conftest import Secured, sqlite_store

pytestmark = pytest.mark.auth

OPEN = {("get", "/fhir/metadata"), ("post", "/auth/token"), ("post", "/auth/revoke")}
SEGMENT = st.text(alphabet="abcAZ09-._$%~:", min_size=1, max_size=12)
TYPES = st.sampled_from(["Patient", "Observation", "Encounter", "AuditEvent", "Bogus", "patient", "Slot"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
BODY = st.one_of(
    JSON,
    st.fixed_dictionaries({"resourceType": TYPES}, optional={"id": SEGMENT, "subject": JSON, "entry": JSON}),
)
QUERY = st.lists(
    st.tuples(st.sampled_from(["_count", "_id", "subject", "_include", "date", "name", "_summary", "x"]),
              st.text(max_size=10)),
    max_size=3,
)  # fmt: skip


@pytest.fixture
def sql_repo(tmp_path: Path) -> Iterator[SqlRepository]:
    """SQLite only: the fuzz is about the HTTP surface."""
    yield from sqlite_store(tmp_path)


def _routes(secured: Secured) -> list[tuple[str, str]]:
    spec = secured.client.get("/openapi.json").json()
    return sorted((method, path) for path, ops in spec["paths"].items() for method in ops)


def _fill(path: str, data: st.DataObject) -> str:
    out = path
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        name = out[start + 1 : end]
        value = data.draw(TYPES if name == "resource_type" else SEGMENT)
        out = out[:start] + value + out[end + 1 :]
    return out


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_routes(secured: Secured, data: st.DataObject) -> None:
    routes = [r for r in _routes(secured) if r not in OPEN]
    method, path = data.draw(st.sampled_from(routes))
    url = _fill(path, data)
    params = data.draw(QUERY)
    body: Any = data.draw(BODY)
    content_type = data.draw(st.sampled_from(["application/fhir+json", "application/json-patch+json",
                                              "application/x-www-form-urlencoded"]))  # fmt: skip
    import orjson

    kwargs: dict[str, Any] = {"params": params, "content": orjson.dumps(body),
                              "headers": {"Content-Type": content_type}}  # fmt: skip
    anonymous = secured.client.request(method.upper(), url, **kwargs)
    # ``/auth/*`` is rate limited per address, and many examples hit it: 429 is a refusal too.
    refused = (401, 429) if path.startswith("/auth/") else (401,)
    assert anonymous.status_code in refused, (method, url, anonymous.status_code)
    assert "Alpha" not in anonymous.text and "Bravo" not in anonymous.text
    kwargs["headers"] = {**kwargs["headers"], **secured.auth("admin")}
    admin = secured.client.request(method.upper(), url, **kwargs)
    assert admin.status_code < 500, (method, url, params, body, admin.text)
    patient = secured.client.request(method.upper(), url, **{**kwargs, "headers": {
        **kwargs["headers"], **secured.auth("patient-a")}})  # fmt: skip
    assert patient.status_code < 500, (method, url, params, body, patient.text)
    assert "Bravo" not in patient.text
