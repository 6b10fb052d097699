"""`medfusion serve` as a user runs it: a real process on loopback, one or more workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_migrates_and_serves(tmp_path: Path, workers: int) -> None:
    port = _free_port()
    url = f"sqlite:///{tmp_path / 'served.db'}"
    command = [sys.executable, "-m", "medfusion.cli.main", "serve", "--port", str(port), "--db", url,
               "--workers", str(workers)]  # fmt: skip
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        headers = {"Content-Type": "application/fhir+json"}
        created = httpx.put(
            f"{base}/fhir/Patient/s1", json={"resourceType": "Patient", "id": "s1"}, headers=headers
        )
        assert created.status_code == 201
        for _ in range(10):  # requests spread over the workers all see the same store
            assert httpx.get(f"{base}/fhir/Patient/s1").json()["id"] == "s1"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=20)[0].decode()
    assert f"{base}/fhir" in output
