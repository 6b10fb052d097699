"""The ASGI entry point for process managers: ``uvicorn medfusion.api.asgi:create --factory``.

Each worker process builds its own app (and database pool) from the settings.
"""

from __future__ import annotations

from fastapi import FastAPI

from medfusion.api.app import create_app
from medfusion.config import get_settings

__all__ = ["create"]


def create() -> FastAPI:
    """Build the application from ``MEDFUSION_*`` settings."""
    return create_app(reminders=get_settings().reminders_in_serve)
