"""OAuth2 tokens: grants, rotation, revocation, disabling, forgery and the rate limit."""

from __future__ import annotations

import base64
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import jwt
import orjson
import pytest

from medfusion.config import get_settings, override_settings
from medfusion.services.security import signing_key
from medfusion.store.repository import SqlRepository

from .conftest import PASSWORD, Secured, sqlite_store

pytestmark = pytest.mark.auth


@pytest.fixture
def sql_repo(tmp_path: Path) -> Iterator[SqlRepository]:
    """Token handling does not depend on the backend: SQLite only, for speed."""
    yield from sqlite_store(tmp_path)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _login(secured: Secured, name: str, password: str = PASSWORD, scope: str = "") -> object:
    return secured.client.post(
        "/auth/token",
        data={"grant_type": "password", "username": name, "password": password, "scope": scope},
    )


def test_password_grant_issues_a_short_lived_bearer_token(secured: Secured) -> None:
    response = _login(secured, "clinician", scope="user/Observation.rs user/Patient.read")
    assert response.status_code == 200  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) >= {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == get_settings().access_token_seconds <= 3600
    assert body["scope"] == "user/Observation.rs user/Patient.rs"  # v1 .read accepted
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert secured.client.get("/fhir/Observation/obs-A", headers=auth).status_code == 200
    # Scopes are checked: Encounter was not granted.
    assert secured.client.get("/fhir/Encounter/enc-A", headers=auth).status_code == 403


def test_wrong_password_and_unknown_user_look_the_same(secured: Secured) -> None:
    wrong = _login(secured, "clinician", password="not the password")
    unknown = _login(secured, "nobody-here")
    assert wrong.status_code == unknown.status_code == 401  # type: ignore[attr-defined]
    assert wrong.json() == unknown.json()  # type: ignore[attr-defined]


def test_role_caps_what_a_token_may_be_granted(secured: Secured) -> None:
    # A patient asking for user/*.cruds gets nothing of it; patient/ scopes only.
    asked = _login(secured, "patient-a", scope="user/*.cruds patient/Observation.rs")
    assert asked.json()["scope"] == "patient/Observation.rs"  # type: ignore[attr-defined]
    assert asked.json()["patient"] == "A"  # type: ignore[attr-defined]
    refused = _login(secured, "patient-a", scope="user/*.cruds")
    assert refused.status_code == 403  # type: ignore[attr-defined]


def test_client_credentials_grant(secured: Secured) -> None:
    basic = base64.b64encode(f"etl:{secured.client_secret}".encode()).decode()
    response = secured.client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Patient.rs system/Observation.cruds"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "system/Patient.rs system/Observation.rs"
    auth = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert secured.client.get("/fhir/Patient/A", headers=auth).status_code == 200
    assert (
        secured.client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=auth).status_code
        == 403
    )
    bad = secured.client.post(
        "/auth/token", data={"grant_type": "client_credentials", "client_id": "etl", "client_secret": "nope"}
    )
    assert bad.status_code == 401


def test_refresh_tokens_rotate_and_reuse_ends_the_family(secured: Secured) -> None:
    first = _login(secured, "clinician").json()  # type: ignore[attr-defined]
    second = secured.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200
    rotated = second.json()["refresh_token"]
    assert rotated != first["refresh_token"]
    # The spent token again: refused, and the rotated one dies with it (theft response).
    replay = secured.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    after = secured.client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": rotated})
    assert after.status_code == 401


def test_revoked_token_stops_working(secured: Secured) -> None:
    token = secured.mint("clinician")
    auth = {"Authorization": f"Bearer {token}"}
    assert secured.client.get("/fhir/Patient/A", headers=auth).status_code == 200
    assert secured.client.post("/auth/revoke", data={"token": token}).status_code == 200
    assert secured.client.get("/fhir/Patient/A", headers=auth).status_code == 401


def test_disabled_user_tokens_stop_at_once(secured: Secured) -> None:
    from medfusion.services.security import disable_user

    login = _login(secured, "clinician").json()  # type: ignore[attr-defined]
    auth = {"Authorization": f"Bearer {login['access_token']}"}
    assert secured.client.get("/fhir/Patient/A", headers=auth).status_code == 200
    disable_user(secured.security, name="clinician")
    assert secured.client.get("/fhir/Patient/A", headers=auth).status_code == 401
    refresh = secured.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}
    )
    assert refresh.status_code == 401
    assert _login(secured, "clinician").status_code == 401  # type: ignore[attr-defined]


def _claims(**changes: object) -> dict[str, object]:
    settings = get_settings()
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.token_issuer, "aud": settings.token_audience, "sub": "admin", "knd": "user",
        "iat": now, "exp": now + 300, "jti": "j1", "scope": "user/*.cruds", "role": "admin",
    }  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _hs512(claims: dict[str, object], key: bytes) -> str:
    # The real key under another algorithm: refused, the accepted list is fixed to HS256.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(claims, key, algorithm="HS512")


def _unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    "kind",
    ["valid", "expired", "wrong-signature", "alg-none", "wrong-audience", "wrong-issuer", "malformed",
     "no-expiry", "hs512", "empty", "basic-scheme"],
)  # fmt: skip
def test_every_bad_token_gets_the_same_401(secured: Secured, kind: str) -> None:
    key = signing_key()
    tokens = {
        "valid": lambda: jwt.encode(_claims(), key, algorithm="HS256"),
        "expired": lambda: jwt.encode(_claims(exp=int(time.time()) - 5), key, algorithm="HS256"),
        "wrong-signature": lambda: jwt.encode(_claims(), b"x" * 32, algorithm="HS256"),
        "alg-none": lambda: _unsigned(_claims()),
        "wrong-audience": lambda: jwt.encode(_claims(aud="another-api"), key, algorithm="HS256"),
        "wrong-issuer": lambda: jwt.encode(_claims(iss="evil"), key, algorithm="HS256"),
        "malformed": lambda: "not.a.token",
        "no-expiry": lambda: jwt.encode(_claims(exp=None), key, algorithm="HS256"),
        "hs512": lambda: _hs512(_claims(), key),
        "empty": lambda: "",
        "basic-scheme": lambda: "",
    }
    scheme = "Basic" if kind == "basic-scheme" else "Bearer"
    response = secured.client.get("/fhir/Patient/A", headers={"Authorization": f"{scheme} {tokens[kind]()}"})
    if kind == "valid":
        assert response.status_code == 200
        return
    assert response.status_code == 401
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    # Nothing that tells an attacker which check failed.
    assert body["issue"][0]["diagnostics"] == "the access token is not valid"
    assert "Alpha" not in response.text


def test_auth_routes_are_rate_limited_per_address(secured: Secured) -> None:
    with override_settings(auth_rate_limit=3, auth_rate_window_seconds=60):
        from fastapi.testclient import TestClient

        from medfusion.api import create_app

        with TestClient(create_app(secured.repo)) as client:
            codes = [
                client.post("/auth/token", data={"grant_type": "password", "username": "x", "password": "y"})
                for _ in range(4)
            ]
    assert [c.status_code for c in codes[:3]] == [401, 401, 401]
    assert codes[3].status_code == 429
    assert 1 <= int(codes[3].headers["retry-after"]) <= 60
    assert codes[3].json()["resourceType"] == "OperationOutcome"


def test_revoking_a_refresh_token_ends_its_family(secured: Secured) -> None:
    first = _login(secured, "clinician").json()  # type: ignore[attr-defined]
    rotated = secured.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    ).json()
    assert secured.client.post("/auth/revoke", data={"token": rotated["refresh_token"]}).status_code == 200
    again = secured.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}
    )
    assert again.status_code == 401
    # Unknown and malformed tokens are accepted silently (RFC 7009) and change nothing.
    assert secured.client.post("/auth/revoke", data={"token": "not-a-token"}).status_code == 200
