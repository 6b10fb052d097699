"""What authentication and audit cost on read by id: the same server with security off and on.

Both runs serve the same SQLite store with one uvicorn worker and are loaded with wrk on
loopback. With security on, every request carries a bearer token (JWT check plus one
query for the user's state and revocation) and leaves an AuditEvent (buffered, written
in batches). Prints a Markdown table; ``--seconds`` sets each wrk run's length.

    python -m benchmarks.bench_security --observations 20000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from benchmarks.bench_http import write_observations
from medfusion.config import override_settings
from medfusion.services.database import open_repository, open_security
from medfusion.services.importer import import_paths
from medfusion.services.security import add_user
from medfusion.store.tables import audit_log

PASSWORD = "benchmark password 1"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wrk(
    base: str, paths: list[str], concurrency: int, seconds: int, work: Path, token: str | None
) -> tuple[float, float, float]:
    script = work / f"reads{concurrency}{bool(token)}.lua"
    listing = ",\n".join(f'"{p}"' for p in paths)
    header = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    script.write_text(
        f"{header}local paths = {{\n{listing}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n"
    )
    threads = 1 if concurrency == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise SystemExit(f"wrk saw error responses:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, percentile("50"), percentile("99")


def _serve(url: str, port: int, bare: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._server", "--db", url, "--port", str(port), "--bare", str(bare)],
        env={**os.environ, **env},
    )
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


def in_process(url: str, ids: list[str], token: str | None, rounds: int = 5, n: int = 2000) -> float:
    """Best-of-``rounds`` microseconds per read by id, calling the ASGI app directly.

    No sockets and no load generator: on a shared machine this is steadier than wrk.
    """
    from medfusion.api import create_app

    on = token is not None
    with override_settings(auth_enabled=on, audit_enabled=on):
        repo = open_repository(url)
        app = create_app(repo)
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        sent: list[int] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                sent.append(int(message["status"]))  # type: ignore[call-overload]

        async def loop(count: int) -> None:
            for i in range(count):
                path = ids[i % len(ids)]
                scope = {
                    "type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
                    "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
                    "server": ("127.0.0.1", 80), "scheme": "http", "root_path": "", "http_version": "1.1",
                }  # fmt: skip
                await app(scope, receive, send)  # type: ignore[arg-type]

        asyncio.run(loop(200))
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            asyncio.run(loop(n))
            best = min(best, (time.perf_counter() - start) / n * 1e6)
        if app.state.trail is not None:
            app.state.trail.flush()
        repo.close()
    if set(sent) != {200}:
        raise SystemExit(f"unexpected statuses in-process: {sorted(set(sent))}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--observations", type=int, default=20_000)
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="medfusion-sec-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'bench.db'}"
        data = work / "load.ndjson"
        write_observations(data, args.observations, args.patients)
        repo = open_repository(url)
        import_paths(repo, paths=[data])
        bare = work / "bare.json"
        bare.write_bytes(repo.read("Observation", "o1").body)
        repo.close()
        secrets = {
            "MEDFUSION_SECRET_KEY": "benchmark-secret-key-of-at-least-32-characters",
            "MEDFUSION_AUDIT_CHECKPOINT_FILE": str(work / "audit.checkpoint"),
        }
        with override_settings(secret_key=secrets["MEDFUSION_SECRET_KEY"]):
            store = open_security(url)
            add_user(store, name="bench", role="clinician", password=PASSWORD)
            store.close()
        rng = random.Random(5)
        reads = [f"/fhir/Observation/o{rng.randrange(args.observations)}" for _ in range(2000)]
        rows: list[tuple[str, int, float, float, float]] = []
        for mode in ("off", "on"):
            port = _port()
            flag = "true" if mode == "on" else "false"
            env = {**secrets, "MEDFUSION_AUTH_ENABLED": flag, "MEDFUSION_AUDIT_ENABLED": flag}
            server = _serve(url, port, bare, env)
            base = f"http://127.0.0.1:{port}"
            try:
                token = None
                if mode == "on":
                    login = httpx.post(
                        f"{base}/auth/token",
                        data={"grant_type": "password", "username": "bench", "password": PASSWORD},
                    )
                    token = login.json()["access_token"]
                for concurrency in (1, 16):
                    rps, p50, p99 = _wrk(base, reads, concurrency, args.seconds, work, token)
                    rows.append((mode, concurrency, rps, p50, p99))
                    print(
                        f"  security {mode:3} c={concurrency:<3} {rps:8.0f} rps"
                        f"  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms",
                        flush=True,
                    )
            finally:
                server.send_signal(signal.SIGINT)  # graceful: the lifespan flushes the audit buffer
                server.wait(timeout=30)
        with override_settings(
            secret_key=secrets["MEDFUSION_SECRET_KEY"],
            audit_checkpoint_file=Path(secrets["MEDFUSION_AUDIT_CHECKPOINT_FILE"]),
        ):
            from medfusion.api import create_app

            app = create_app(open_repository(url))
            store = app.state.tokens.store
            user = store.user("bench")
            from medfusion.services.scopes import grant, role_cap

            token_in = app.state.tokens._access(user, grant("", role_cap("clinician")))["access_token"]
            app.state.repo.close()
            micros_off = in_process(url, reads, None)
            micros_on = in_process(url, reads, token_in)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            audited = int(conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one())
        engine.dispose()
    print()
    print("| security | concurrency | rps | p50 ms | p99 ms | rps vs off |")
    print("|---|---|---|---|---|---|")
    base_rps = {c: rps for mode, c, rps, _, _ in rows if mode == "off"}
    for mode, concurrency, rps, p50, p99 in rows:
        ratio = rps / base_rps[concurrency]
        print(f"| {mode} | {concurrency} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {ratio:.2f} |")
    print(f"\naudit rows written while security was on (wrk runs): {audited:,}")
    print(
        f"in-process read by id, best of 5 x 2000: security off {micros_off:.0f} µs, "
        f"on {micros_on:.0f} µs (+{micros_on - micros_off:.0f} µs per request)"
    )


if __name__ == "__main__":
    main()
