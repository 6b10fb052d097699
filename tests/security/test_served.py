"""A real ``medfusion serve`` process with security on: login, read, stop, verify the audit."""

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
from typer.testing import CliRunner

from medfusion.cli.main import app as cli
from medfusion.config import get_settings
from medfusion.services.database import open_repository

pytestmark = pytest.mark.auth


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_served_api_with_security_on(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'served.db'}"
    repo = open_repository(db)
    with repo.begin() as tx:
        tx.write("Patient", "s1", {"resourceType": "Patient", "id": "s1"}, expected_version=None)
    repo.close()
    added = CliRunner().invoke(
        cli, ["user", "add", "nurse", "--role", "clinician", "--password-stdin", "--db", db],
        input="served test password\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    settings = get_settings()
    env = {
        **os.environ,
        "MEDFUSION_SECRET_KEY_FILE": str(settings.secret_key_file),
        "MEDFUSION_AUDIT_CHECKPOINT_FILE": str(settings.audit_checkpoint_file),
    }
    env.pop("MEDFUSION_AUTH_ENABLED", None)
    env.pop("MEDFUSION_AUDIT_ENABLED", None)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "medfusion.cli.main", "serve", "--port", str(port), "--db", db],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{base}/fhir/Patient/s1").status_code == 401
        login = httpx.post(
            f"{base}/auth/token",
            data={"grant_type": "password", "username": "nurse", "password": "served test password"},
        )
        assert login.status_code == 200
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for _ in range(5):
            assert httpx.get(f"{base}/fhir/Patient/s1", headers=auth).json()["id"] == "s1"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # a clean stop flushes the buffered audit rows
        output = server.communicate(timeout=30)[0].decode()
    assert "s1" not in output  # no patient data (ids of records, here) in the server's output
    verified = CliRunner().invoke(cli, ["audit", "verify", "--db", db])
    assert verified.exit_code == 0, verified.output
    rows = int(verified.output.split("intact:")[1].split("rows")[0].replace(",", ""))
    assert rows >= 7  # the 401, the login and the five reads
