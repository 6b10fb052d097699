"""Authentication, the authorization safety net and auditing of every request.

:class:`SecurityMiddleware` wraps the whole application (the fast Starlette read route
included): it resolves the bearer token to a :class:`Principal` (401 otherwise), arranges
for a write's AuditEvent to commit inside the write's transaction, records every other
request (reads, denials, failures) through the buffered audit trail, and answers 403
for any protected route that returned success without having been authorized (deny by
default, so a new route cannot leak data by forgetting its check).

The ``/auth`` routes issue, refresh and revoke tokens; they are rate limited per client
address.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from medfusion.api.errors import outcome_response
from medfusion.errors import (
    ForbiddenError,
    InvalidRequestError,
    MedfusionError,
    TooManyRequestsError,
    UnauthorizedError,
    UnsupportedError,
)
from medfusion.fhir.repository import StoredResource
from medfusion.services import authz
from medfusion.services.audit import AuditEntry, AuditTrail
from medfusion.services.parsing import parse_query
from medfusion.services.security import ANONYMOUS, Principal, TokenService
from medfusion.store.security import before_write_commit

__all__ = [
    "RateLimiter",
    "SecurityMiddleware",
    "allow",
    "audit_of",
    "principal_of",
    "router",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KEY = "medfusion.audit"
# Routes that touch no patient data: open to all, not audited.
OPEN_PATHS = frozenset(
    {"/health", "/fhir/metadata", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/_bare"}
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RateLimiter:
    """A fixed-window request counter per client address."""

    def __init__(self, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, tuple[float, int]] = {}

    def hit(self, address: str, now: float | None = None) -> int:
        """Count a request; returns 0 when allowed, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        start, count = self._seen.get(address, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count >= self.limit:
            return max(1, math.ceil(start + self.window - now))
        if len(self._seen) > 10_000:  # bounded memory under address churn
            self._seen = {a: v for a, v in self._seen.items() if now - v[0] < self.window}
        self._seen[address] = (start, count + 1)
        return 0


def _error_response(error: MedfusionError, headers: dict[str, str] | None = None) -> Response:
    response = outcome_response(error)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class SecurityMiddleware:
    """Pure ASGI middleware: authenticate, audit, and deny unauthorized success.

    Parameters
    ----------
    app
        The application it wraps.
    tokens
        Token checking; None when authentication is off (every caller is anonymous).
    trail
        The audit trail; None when auditing is off.
    limiter
        The ``/auth/*`` rate limiter.
    """

    def __init__(
        self, app: ASGIApp, *, tokens: TokenService | None, trail: AuditTrail | None, limiter: RateLimiter
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.trail = trail
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        client = scope.get("client")
        entry = AuditEntry(
            request_id=given if _REQUEST_ID.match(given) else uuid.uuid4().hex,
            address=client[0] if client else "",
            method=scope["method"],
        )
        scope[KEY] = entry
        is_auth = scope["path"].startswith("/auth/")
        denial: Response | None = None
        if is_auth:
            wait = self.limiter.hit(entry.address)
            if wait:
                denial = _error_response(
                    TooManyRequestsError("too many requests; try again later", retry_after=wait),
                    {"Retry-After": str(wait)},
                )
        elif self.tokens is None:
            entry.principal = ANONYMOUS
        else:
            try:
                entry.principal = self.tokens.principal(_bearer(headers.get(b"authorization", b"")))
            except UnauthorizedError as error:
                denial = _error_response(error, {"WWW-Authenticate": 'Bearer realm="medfusion"'})
        if denial is not None:
            entry.status = denial.status_code
            if self.trail is not None:
                self.trail.buffer(entry)
            await denial(scope, receive, _with_request_id(send, entry.request_id))
            return
        await self._serve(scope, receive, send, entry, enforce=self.tokens is not None and not is_auth)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, entry: AuditEntry, *, enforce: bool
    ) -> None:
        committed: list[tuple[int, str]] = []
        trail = self.trail

        def hook(conn: sa.Connection, written: list[StoredResource]) -> None:
            assert trail is not None
            committed.append(trail.record_in(conn, entry, written))

        token = before_write_commit.set(hook if trail is not None else None)
        replaced = False

        async def guarded(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start":
                entry.status = int(message["status"])
                if enforce and not scope.get("medfusion.authorized") and entry.status < 400:
                    # Deny by default: a route that never authorized must not return data.
                    replaced = True
                    entry.status = 403
                    denial = _error_response(ForbiddenError("this route is not open to the caller"))
                    await denial(scope, _no_body, _with_request_id(send, entry.request_id))
                    return
                message.setdefault("headers", []).append((b"x-request-id", entry.request_id.encode()))
            if not replaced:
                await send(message)

        try:
            await self.app(scope, receive, guarded)
        except BaseException:
            entry.status = 500
            raise
        finally:
            before_write_commit.reset(token)
            if trail is not None:
                if committed and entry.status < 400:
                    trail.checkpoint(*committed[-1])
                else:
                    trail.buffer(entry)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _with_request_id(send: Send, request_id: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
        await send(message)

    return wrapped


def _bearer(value: bytes) -> str:
    scheme, _, token = value.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("the access token is not valid")
    return token.strip()


# -- helpers for routes ------------------------------------------------------------------
def audit_of(request: Request) -> AuditEntry:
    """The request's audit entry (a bare one when the middleware is not installed)."""
    entry = request.scope.get(KEY)
    if entry is None:
        entry = request.scope[KEY] = AuditEntry("", "", request.method, principal=ANONYMOUS)
    assert isinstance(entry, AuditEntry)
    return entry


def principal_of(request: Request) -> Principal:
    """Who is calling (anonymous and unrestricted when authentication is off)."""
    return audit_of(request).principal or ANONYMOUS


def allow(
    request: Request,
    interaction: str,
    resource_type: str,
    id: str | None = None,
    *,
    aggregate: bool = False,
) -> Principal:
    """Authorize ``interaction`` on the type for the caller and note it for the audit trail."""
    entry = audit_of(request)
    entry.interaction = interaction
    entry.add(f"{resource_type}/{id}" if id else resource_type)
    principal = entry.principal or ANONYMOUS
    authz.authorize(principal, interaction, resource_type, aggregate=aggregate)
    request.scope["medfusion.authorized"] = True
    return principal


def note_bundle_entities(request: Request, body: bytes) -> None:
    """Name the resources a returned Bundle holds in the audit record (references only)."""
    entry = audit_of(request)
    for match in _FULL_URL.finditer(body):
        entry.add(match.group(1).decode())


_FULL_URL = re.compile(rb'"fullUrl":"[^"]*?/([A-Z][A-Za-z]{1,63}/[A-Za-z0-9.\-]{1,64})"')


# -- the /auth routes --------------------------------------------------------------------
router = APIRouter(prefix="/auth", tags=["auth"])


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise UnsupportedError("send the form as application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > 16_384:
        raise InvalidRequestError("the form is too large")
    return dict(parse_query(body.decode("utf-8", errors="replace")))


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise UnauthorizedError("the client id or secret is wrong") from None
    return user, secret


def _tokens(request: Request) -> TokenService:
    tokens: TokenService | None = request.app.state.tokens
    if tokens is None:
        raise UnsupportedError("authentication is turned off on this server")
    return tokens


def _token_response(payload: dict[str, Any]) -> Response:
    return Response(
        orjson.dumps(payload),
        media_type="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


@router.post("/token")
async def token(request: Request) -> Response:
    """OAuth2 token endpoint: ``password``, ``client_credentials`` and ``refresh_token`` grants."""
    request.scope["medfusion.authorized"] = True
    entry = audit_of(request)
    entry.interaction = "login"
    tokens = _tokens(request)
    form = await _form(request)
    grant = form.get("grant_type", "")
    scope = form.get("scope", "")
    if grant == "password":
        entry.principal = Principal("user", form.get("username", "")[:64], "", None, (), "", 0)
        payload = tokens.password_grant(
            username=form.get("username", ""), password=form.get("password", ""), scope=scope
        )
    elif grant == "client_credentials":
        basic = _basic(request)
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        entry.principal = Principal("client", client_id[:64], "system", None, (), "", 0)
        payload = tokens.client_credentials(client_id=client_id, client_secret=secret, scope=scope)
    elif grant == "refresh_token":
        payload = tokens.refresh(refresh_token=form.get("refresh_token", ""), scope=scope)
    else:
        raise InvalidRequestError("grant_type must be password, client_credentials or refresh_token")
    return _token_response(payload)


@router.post("/revoke")
async def revoke(request: Request) -> Response:
    """RFC 7009 revocation: ends an access token or a refresh token's family (always 200)."""
    request.scope["medfusion.authorized"] = True
    audit_of(request).interaction = "logout"
    form = await _form(request)
    _tokens(request).revoke(form.get("token", ""))
    return Response(status_code=200)


@router.post("/break-glass")
async def break_glass(request: Request) -> Response:
    """A clinician's time-limited token that opens restricted records; the reason is audited."""
    request.scope["medfusion.authorized"] = True
    entry = audit_of(request)
    entry.interaction = "break-glass"
    tokens = _tokens(request)
    entry.principal = tokens.principal(_bearer(request.headers.get("authorization", "").encode("latin-1")))
    if entry.principal.role != "clinician":
        raise ForbiddenError("only a clinician may break the glass")
    form = await _form(request)
    reason = form.get("reason", "").strip()[:500]
    payload = tokens.break_glass(entry.principal, reason=reason)
    entry.note = f"break-glass: {reason}"
    return _token_response(payload)
