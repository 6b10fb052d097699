"""What authentication and audit cost on read by id: the same server with security off and on.

Both runs serve the same SQLite store with one uvicorn worker and are loaded with wrk on
loopback. With security on, every request carries a bearer token (JWT check plus one
query for the user's state and revocation) and leaves an AuditEvent (buffered, written
in batches). Prints a Markdown table; ``--seconds`` sets each wrk run's length.

    python -m benchmarks.bench_security --observations 20000 --seconds 10
"""

from __future__ import annotations

import argparse
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
    print(f"\naudit rows written while security was on: {audited:,}")


if __name__ == "__main__":
    main()
