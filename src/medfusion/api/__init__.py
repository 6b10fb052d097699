"""The HTTP adapter: FastAPI routes that parse, call one service, and render."""

from medfusion.api.app import create_app

__all__ = ["create_app"]
