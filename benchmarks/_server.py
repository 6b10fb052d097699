"""Run one uvicorn worker serving the API plus the bare ceiling endpoint."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from medfusion.api import create_app
from medfusion.config import override_settings
from medfusion.services.database import open_repository


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bare", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers > 1:
        # Each worker process builds its app from the environment, like `medfusion serve`.
        os.environ["MEDFUSION_DATABASE_URL"] = args.db
        os.environ["MEDFUSION_BENCH_BARE_FILE"] = str(args.bare)
        uvicorn.run(
            "medfusion.api.asgi:create",
            factory=True,
            host="127.0.0.1",
            port=args.port,
            workers=args.workers,
            log_level="warning",
            access_log=False,
        )
        return
    with override_settings(database_url=args.db):
        app = create_app(open_repository(args.db), bare_payload=args.bare)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
