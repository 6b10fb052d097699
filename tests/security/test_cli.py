"""``medfusion user``, ``client`` and ``demo`` as an operator runs them, then a real login."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from medfusion.api import create_app
from medfusion.cli.main import app as cli
from medfusion.services.database import open_repository

pytestmark = pytest.mark.auth


def _run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.output


def test_user_lifecycle_and_login(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'users.db'}"
    repo = open_repository(db)
    with repo.begin() as tx:
        tx.write("Patient", "p1", {"resourceType": "Patient", "id": "p1"}, expected_version=None)
    code, output = _run("user", "add", "carol", "--role", "clinician", "--password-stdin", "--db", db,
                        input="a fine long password\n")  # fmt: skip
    assert code == 0, output
    code, output = _run("user", "add", "pat", "--role", "patient", "--patient", "p1", "--password-stdin",
                        "--db", db, input="another long password\n")  # fmt: skip
    assert code == 0, output
    # Bad input: one line, non-zero exit, nothing written.
    for args, text in [
        (("user", "add", "x", "--role", "root", "--password-stdin"), "unknown role"),
        (("user", "add", "y", "--role", "patient", "--patient", "nope", "--password-stdin"), "not known"),
        (("user", "add", "z", "--role", "analyst", "--password-stdin"), "at least"),
        (("user", "add", "carol", "--role", "analyst", "--password-stdin"), "already exists"),
        (("user", "add", "w", "--role", "analyst"), "--password-stdin"),
    ]:
        code, output = _run(
            *args, "--db", db, input="long enough password\n" if "z" not in args else "short\n"
        )
        assert code == 1 and text in output, (args, output)
    code, output = _run("user", "list", "--db", db)
    assert "carol" in output and "pat" in output and "p1" in output and "argon2" not in output
    assert "│ y " not in output and "│ z " not in output  # the refused users were not added

    with TestClient(create_app(repo)) as client:
        login = client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "carol", "password": "a fine long password"},
        )
        assert login.status_code == 200
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert client.get("/fhir/Patient/p1", headers=auth).status_code == 200
        code, output = _run("user", "disable", "carol", "--db", db)
        assert code == 0
        assert client.get("/fhir/Patient/p1", headers=auth).status_code == 401
    assert "disabled" in _run("user", "list", "--db", db)[1]
    repo.close()


def test_client_add_prints_secret_once_and_takes_system_scopes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'clients.db'}"
    code, output = _run("client", "add", "etl", "--scope", "system/*.rs", "--db", db)
    assert code == 0
    secret = output.strip().splitlines()[-1]
    repo = open_repository(db)
    with TestClient(create_app(repo)) as client:
        token = client.post(
            "/auth/token",
            data={"grant_type": "client_credentials", "client_id": "etl", "client_secret": secret},
        )
        assert token.status_code == 200 and token.json()["scope"] == "system/*.rs"
    repo.close()
    code, output = _run("client", "add", "bad", "--scope", "user/*.cruds", "--db", db)
    assert code == 1 and "system/" in output


def test_demo_admin_gets_one_time_credentials(tmp_path: Path) -> None:
    from medfusion.services.demo import demo_admin

    db = f"sqlite:///{tmp_path / 'demo.db'}"
    name, password = demo_admin(db)
    again = demo_admin(f"sqlite:///{tmp_path / 'other.db'}")
    assert password != again[1] and len(password) >= 20
    repo = open_repository(db)
    with TestClient(create_app(repo)) as client:
        login = client.post(
            "/auth/token", data={"grant_type": "password", "username": name, "password": password}
        )
        assert login.status_code == 200
    repo.close()
