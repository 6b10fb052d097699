"""Users, backend clients, keys and tokens.

Passwords and client secrets are stored only as argon2id hashes. Access tokens are
short-lived HS256 JWTs with ``iss``, ``aud``, ``exp`` and a ``jti``; each use also checks
that the user (or client) is still enabled and the token not revoked, so disabling a user
stops their tokens at once. Refresh tokens are opaque, stored by SHA-256, and rotate: each
use returns a new one, and presenting a spent one ends the whole family.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import SecretStr

from medfusion.config import get_settings
from medfusion.errors import ForbiddenError, InvalidRequestError, NotFoundError, UnauthorizedError
from medfusion.fhir.references import is_valid_id
from medfusion.fhir.repository import FhirRepository
from medfusion.services.scopes import ROLES, Scope, format_scopes, grant, parse_scopes, role_cap
from medfusion.store.security import ClientRow, SecurityStore, UserRow

__all__ = [
    "Principal",
    "TokenService",
    "add_client",
    "add_user",
    "audit_key",
    "disable_user",
    "list_users",
    "secret_key",
]

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_MIN_PASSWORD = 10
_ALGORITHMS = ["HS256"]  # fixed: the token's own header never chooses the algorithm
_BAD_TOKEN = "the access token is not valid"  # one message for every kind of bad token
_hasher = PasswordHasher()
# Verified against when the user is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


# -- keys ------------------------------------------------------------------------------
def secret_key() -> bytes:
    """The server secret: ``MEDFUSION_SECRET_KEY``, else the key file (made 0600 at first use)."""
    settings = get_settings()
    configured = settings.secret_key
    # override_settings does not validate, so a plain str may stand in for a SecretStr.
    value = configured.get_secret_value() if isinstance(configured, SecretStr) else configured
    if value:
        return value.encode()
    return _key_file(settings.secret_key_file.resolve())


@lru_cache(maxsize=8)
def _key_file(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker made it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    if path.stat().st_mode & 0o077:
        raise InvalidRequestError(f"the key file {path} is readable by others; chmod 600 it")
    key = path.read_text().strip().encode()
    if len(key) < 32:
        raise InvalidRequestError(f"the key file {path} holds fewer than 32 characters")
    return key


def _derived(purpose: bytes) -> bytes:
    return hmac.new(secret_key(), purpose, hashlib.sha256).digest()


def signing_key() -> bytes:
    """The key that signs access tokens (derived from the server secret)."""
    return _derived(b"medfusion access token v1")


def audit_key() -> bytes:
    """The key of the audit hash chain and checkpoint (derived from the server secret)."""
    return _derived(b"medfusion audit chain v1")


# -- users and clients -----------------------------------------------------------------
def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidRequestError("a name must be 1-64 letters, digits or . _ @ -")


def add_user(
    store: SecurityStore,
    *,
    name: str,
    role: str,
    password: str,
    patient_id: str | None = None,
    repo: FhirRepository | None = None,
) -> UserRow:
    """Create a user; a patient user must name their Patient (which must exist in ``repo``)."""
    _check_name(name)
    if role not in ROLES:
        raise InvalidRequestError(f"unknown role '{role}'; choose one of {', '.join(ROLES)}")
    if role == "patient":
        if not patient_id or not is_valid_id(patient_id):
            raise InvalidRequestError("a patient user needs --patient with the id of their Patient")
        if repo is not None:
            repo.read("Patient", patient_id)  # NotFoundError when there is no such Patient
    elif patient_id:
        raise InvalidRequestError("only a patient user is linked to a Patient")
    if len(password) < _MIN_PASSWORD:
        raise InvalidRequestError(f"the password must have at least {_MIN_PASSWORD} characters")
    store.add_user(
        name=name,
        role=role,
        patient_id=patient_id,
        password_hash=_hasher.hash(password),
        created=datetime.now(UTC),
    )
    found = store.user(name)
    assert found is not None
    return found


def list_users(store: SecurityStore) -> list[UserRow]:
    """Every user, by name."""
    return store.users()


def disable_user(store: SecurityStore, *, name: str) -> None:
    """Disable a user: their current and refresh tokens stop working at once."""
    store.disable_user(name)


def add_client(store: SecurityStore, *, name: str, scope: str) -> str:
    """Register a backend client with ``system/`` scopes; returns its secret (shown once)."""
    _check_name(name)
    scopes = parse_scopes(scope)
    if not scopes or len(scopes) != len(scope.split()) or any(s.context != "system" for s in scopes):
        raise InvalidRequestError("a client takes system/ scopes only, e.g. 'system/*.rs'")
    secret = secrets.token_urlsafe(32)
    store.add_client(
        name=name, secret_hash=_hasher.hash(secret), scope=format_scopes(scopes), created=datetime.now(UTC)
    )
    return secret


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


# -- principals and tokens -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, with what rights.

    Attributes
    ----------
    kind
        ``user`` or ``client``; ``anonymous`` only when authentication is turned off.
    name
        User or client name.
    role
        The user's role; ``system`` for a backend client.
    patient_id
        The linked Patient of a ``patient`` user.
    scopes
        Granted resource scopes.
    jti, expires
        The token's id and expiry (epoch seconds).
    break_glass
        The token was issued through break-glass: flagged in every AuditEvent.
    """

    kind: str
    name: str
    role: str
    patient_id: str | None
    scopes: tuple[Scope, ...]
    jti: str
    expires: float
    break_glass: bool = False

    @property
    def unrestricted(self) -> bool:
        """Authentication is off: every check passes (tests and local experiments only)."""
        return self.kind == "anonymous"

    @property
    def reference(self) -> str:
        """How audit records name this principal."""
        return f"{self.kind}/{self.name}"


ANONYMOUS = Principal("anonymous", "anonymous", "admin", None, (), "", float("inf"))


class TokenService:
    """Issues and checks tokens against one :class:`SecurityStore`."""

    def __init__(self, store: SecurityStore) -> None:
        self.store = store
        # Tokens already verified (signature, iss, aud) -> their principal; expiry, the
        # subject's state and revocation are still checked on every use.
        self._verified: dict[str, Principal] = {}

    # -- issuing ---------------------------------------------------------------------
    def password_grant(self, *, username: str, password: str, scope: str) -> dict[str, Any]:
        """The OAuth2 password grant: a token response, or 401 for bad credentials."""
        user = self.store.user(username) if _NAME.match(username) else None
        ok = _verify(user.password_hash if user else _DUMMY_HASH, password)
        if user is None or not ok or user.disabled:
            raise UnauthorizedError("the user name or password is wrong")
        scopes = grant(scope, role_cap(user.role))
        if not scopes:
            raise ForbiddenError("none of the requested scopes can be granted to this user")
        response = self._access(user, scopes)
        response["refresh_token"] = self._new_refresh(user.name, scopes, family=uuid.uuid4().hex)
        return response

    def client_credentials(self, *, client_id: str, client_secret: str, scope: str) -> dict[str, Any]:
        """The OAuth2 client-credentials grant for backend services."""
        client = self.store.client(client_id) if _NAME.match(client_id) else None
        ok = _verify(client.secret_hash if client else _DUMMY_HASH, client_secret)
        if client is None or not ok or client.disabled:
            raise UnauthorizedError("the client id or secret is wrong")
        scopes = grant(scope, parse_scopes(client.scope))
        if not scopes:
            raise ForbiddenError("none of the requested scopes can be granted to this client")
        return self._client_access(client, scopes)

    def refresh(self, *, refresh_token: str, scope: str) -> dict[str, Any]:
        """Spend a refresh token for a new access token and a new refresh token."""
        spent = self.store.use_refresh(_digest(refresh_token), time.time())
        if spent is None:
            raise UnauthorizedError("the refresh token is not valid")
        family, username, granted = spent
        user = self.store.user(username)
        if user is None or user.disabled:
            raise UnauthorizedError("the refresh token is not valid")
        # Never wider than before, nor than the role allows now.
        scopes = grant(scope or granted, grant(granted, role_cap(user.role)))
        if not scopes:
            raise ForbiddenError("none of the requested scopes can be granted")
        response = self._access(user, scopes)
        response["refresh_token"] = self._new_refresh(user.name, scopes, family=family)
        return response

    def break_glass(self, principal: Principal, *, reason: str) -> dict[str, Any]:
        """A short-lived token that opens restricted records, for a clinician who states why."""
        if principal.kind != "user" or principal.role != "clinician":
            raise ForbiddenError("only a clinician may break the glass")
        if len(reason.strip()) < 10:
            raise InvalidRequestError("break-glass needs a stated reason of at least 10 characters")
        user = self.store.user(principal.name)
        if user is None or user.disabled:
            raise UnauthorizedError(_BAD_TOKEN)
        scopes = [Scope("user", "*", "rs")]
        lifetime = get_settings().break_glass_seconds
        return self._access(user, scopes, lifetime=lifetime, break_glass=True)

    def revoke(self, token: str) -> None:
        """End an access token (by ``jti``) or a refresh token's family; unknown tokens are ignored."""
        if self.store.end_refresh(_digest(token)):
            return
        try:
            claims = self._decode(token)
        except UnauthorizedError:
            return  # RFC 7009: an invalid token needs no revoking
        self.store.revoke(str(claims["jti"]), float(claims["exp"]))

    def _access(
        self, user: UserRow, scopes: list[Scope], *, lifetime: int | None = None, break_glass: bool = False
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {"role": user.role}
        if user.patient_id:
            extra["patient"] = user.patient_id
        if break_glass:
            extra["btg"] = True
        return self._sign("user", user.name, scopes, extra, lifetime)

    def _client_access(self, client: ClientRow, scopes: list[Scope]) -> dict[str, Any]:
        return self._sign("client", client.name, scopes, {"role": "system"}, None)

    def _sign(
        self, kind: str, name: str, scopes: list[Scope], extra: dict[str, Any], lifetime: int | None
    ) -> dict[str, Any]:
        settings = get_settings()
        now = int(time.time())
        lifetime = lifetime or settings.access_token_seconds
        scope = format_scopes(scopes)
        claims = {
            "iss": settings.token_issuer,
            "aud": settings.token_audience,
            "sub": name,
            "knd": kind,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "scope": scope,
            **extra,
        }
        token = jwt.encode(claims, signing_key(), algorithm="HS256")
        response: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": lifetime,
            "scope": scope,
        }
        if "patient" in extra:
            response["patient"] = extra["patient"]  # SMART launch context
        return response

    def _new_refresh(self, username: str, scopes: list[Scope], *, family: str) -> str:
        token = secrets.token_urlsafe(32)
        self.store.add_refresh(
            token_hash=_digest(token),
            family=family,
            username=username,
            scope=format_scopes(scopes),
            expires=time.time() + get_settings().refresh_token_seconds,
        )
        return token

    # -- checking --------------------------------------------------------------------
    def _decode(self, token: str) -> dict[str, Any]:
        settings = get_settings()
        if len(token) > 4096:
            raise UnauthorizedError(_BAD_TOKEN)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                signing_key(),
                algorithms=_ALGORITHMS,
                audience=settings.token_audience,
                issuer=settings.token_issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError:
            raise UnauthorizedError(_BAD_TOKEN) from None
        if claims.get("knd") not in ("user", "client") or not isinstance(claims.get("scope"), str):
            raise UnauthorizedError(_BAD_TOKEN)
        return claims

    def principal(self, token: str) -> Principal:
        """The principal a bearer token stands for; 401 for any bad, revoked or disabled one."""
        principal = self._verified.get(token)
        if principal is None:
            principal = self._principal(self._decode(token))
            if len(self._verified) >= 4096:
                self._verified.clear()
            self._verified[token] = principal
        if principal.expires <= time.time() or not self.store.subject_active(
            principal.kind, principal.name, principal.jti
        ):
            raise UnauthorizedError(_BAD_TOKEN)
        return principal

    @staticmethod
    def _principal(claims: dict[str, Any]) -> Principal:
        kind, name, jti = claims["knd"], str(claims["sub"]), str(claims["jti"])
        patient = claims.get("patient")
        return Principal(
            kind=kind,
            name=name,
            role=str(claims.get("role", "")),
            patient_id=str(patient) if patient else None,
            scopes=tuple(parse_scopes(claims["scope"])),
            jti=jti,
            expires=float(claims["exp"]),
            break_glass=bool(claims.get("btg", False)),
        )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def require_user(store: SecurityStore, name: str) -> UserRow:
    """The user called ``name``; :class:`NotFoundError` when there is none."""
    found = store.user(name)
    if found is None:
        raise NotFoundError(f"no user named '{name}'")
    return found
