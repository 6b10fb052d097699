"""The ASGI application factory."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Route

from medfusion import __version__
from medfusion.api.errors import install_error_handlers
from medfusion.api.export import router as export_router
from medfusion.api.fhir import read as fhir_read
from medfusion.api.fhir import router as fhir_router
from medfusion.api.fhir import search_get as fhir_search
from medfusion.api.scheduling import router as scheduling_router
from medfusion.api.security import RateLimiter, SecurityMiddleware
from medfusion.api.security import router as auth_router
from medfusion.config import get_settings
from medfusion.fhir.repository import FhirRepository
from medfusion.services.audit import AuditTrail
from medfusion.services.security import TokenService
from medfusion.store.security import SecurityStore

__all__ = ["create_app"]


def _reminder_thread(repo: FhirRepository, stop: threading.Event) -> threading.Thread | None:
    """Start the reminder loop beside the server (a thread: its work is blocking I/O)."""
    from medfusion.services.notifiers import notifier_from_settings
    from medfusion.services.reminders import run_loop
    from medfusion.store.repository import SqlRepository

    if not isinstance(repo, SqlRepository):
        return None
    thread = threading.Thread(
        target=run_loop,
        args=(repo, notifier_from_settings()),
        kwargs={"stop": stop},
        name="medfusion-reminders",
        daemon=True,
    )
    thread.start()
    return thread


def create_app(
    repo: FhirRepository | None = None, *, bare_payload: Path | None = None, reminders: bool = False
) -> FastAPI:
    """Build the application.

    Parameters
    ----------
    repo
        The store to serve; by default a SQL store on ``settings.database_url``,
        migrated to the newest schema.
    bare_payload
        Benchmarks only: serve this file's bytes at ``GET /_bare``, the ceiling that
        read-by-id is compared against (default: ``settings.bench_bare_file``).
    reminders
        Run the reminder loop (no-shows, waitlist, reminders, outbox) in a background
        thread while the app is up; ``medfusion serve`` turns it on unless
        ``settings.reminders_in_serve`` is off. Needs the SQL store.
    """
    settings = get_settings()
    bare_payload = bare_payload or settings.bench_bare_file
    if repo is None:
        from medfusion.services.database import open_repository

        repo = open_repository(settings.database_url)
    store = repo
    security = _security_store(repo) if settings.auth_enabled or settings.audit_enabled else None
    tokens = TokenService(security) if security is not None and settings.auth_enabled else None
    trail = AuditTrail(security) if security is not None and settings.audit_enabled else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        loop = _reminder_thread(store, stop) if reminders else None
        yield
        stop.set()
        if loop is not None:
            loop.join(timeout=30)
        if trail is not None:
            trail.flush()
        if security is not None:
            security.release()
        close = getattr(store, "close", None)
        if close is not None:
            close()

    app = FastAPI(title="medfusion", version=__version__, docs_url="/docs", redoc_url=None, lifespan=lifespan)
    app.state.repo = repo
    app.state.tokens = tokens
    app.state.trail = trail
    install_error_handlers(app)
    limiter = RateLimiter(settings.auth_rate_limit, settings.auth_rate_window_seconds)
    app.add_middleware(SecurityMiddleware, tokens=tokens, trail=trail, limiter=limiter)

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    # Ahead of the FHIR router: ``/fhir/Appointment/$find`` must not match ``/{type}/{id}``.
    app.include_router(auth_router)
    app.include_router(scheduling_router)
    app.include_router(export_router)
    app.include_router(fhir_router, prefix="/fhir")
    # Read by id and search, the hottest routes, also as plain Starlette routes ahead of all
    # others: matched first and with no FastAPI parameter solving (the FastAPI twins
    # document them in the OpenAPI spec).
    app.router.routes.insert(0, Route("/fhir/{resource_type}", fhir_search, methods=["GET"]))
    app.router.routes.insert(0, Route("/fhir/{resource_type}/{id}", fhir_read, methods=["GET"]))
    if bare_payload is not None:
        payload = bare_payload.read_bytes()

        async def bare(_request: Request) -> Response:
            return Response(payload, media_type="application/fhir+json")

        # The ceiling is the same kind of route, so the two are compared like for like.
        app.router.routes.insert(0, Route("/_bare", bare, methods=["GET"]))
    return app


def _security_store(repo: FhirRepository) -> SecurityStore:
    """Users, tokens and the audit trail live in the record store's own database.

    The in-memory twin has none, so it gets a private in-memory SQLite one (tests only).
    """
    engine = getattr(repo, "engine", None)
    if engine is None:
        from medfusion.store.engine import make_engine
        from medfusion.store.migrate import upgrade

        engine = make_engine("sqlite://")
        upgrade(engine)
    return SecurityStore(engine)
