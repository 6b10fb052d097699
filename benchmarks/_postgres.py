"""A throwaway PostgreSQL cluster for benchmarks (the same recipe as ``.ci/run``)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def temporary_postgres() -> Iterator[str | None]:
    """Yield a URL of a fresh cluster, or None when PostgreSQL cannot be started here."""
    configured = os.environ.get("MEDFUSION_BENCH_POSTGRES_URL")
    if configured:
        yield configured
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins or os.geteuid() != 0:
        yield None
        return
    pgbin = bins[-1]
    data = tempfile.mkdtemp(prefix="medfusion-bench-pg.")
    shutil.chown(data, "postgres", "postgres")
    port = _free_port()

    def as_postgres(command: str) -> None:
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", command],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    as_postgres(f"'{pgbin}/initdb' -D '{data}' -A trust -U postgres")
    as_postgres(
        f"'{pgbin}/pg_ctl' -D '{data}' -l '{data}/log' -w -o "
        f"\"-p {port} -k '{data}' -c listen_addresses=127.0.0.1 -c shared_buffers=1GB\" start"
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(f"'{pgbin}/pg_ctl' -D '{data}' -m fast stop")
        shutil.rmtree(data, ignore_errors=True)
