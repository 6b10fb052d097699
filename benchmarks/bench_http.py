"""HTTP latency and throughput on loopback with wrk: read by id, a typical search, and the
ceiling (a bare endpoint in the same server returning the same bytes as the read)."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from medfusion.services.database import open_repository
from medfusion.services.importer import import_paths

LOINC = [
    "8867-4",
    "8480-6",
    "8462-4",
    "39156-5",
    "29463-7",
    "4548-4",
    "2339-0",
    "2093-3",
    "2160-0",
    "33914-3",
]


@dataclass
class LoadResult:
    endpoint: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float


def write_observations(path: Path, observations: int, patients: int, seed: int = 3) -> None:
    """NDJSON of ``patients`` Patients and ``observations`` Observations spread over them."""
    rng = random.Random(seed)
    with path.open("wb") as out:
        for i in range(patients):
            out.write(
                orjson.dumps(
                    {
                        "resourceType": "Patient",
                        "id": f"p{i}",
                        "gender": rng.choice(["male", "female"]),
                        "birthDate": f"{rng.randint(1930, 2005)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                    }
                )
            )
            out.write(b"\n")
        for j in range(observations):
            code = LOINC[rng.randrange(len(LOINC))]
            day = f"{rng.randint(2015, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            out.write(
                orjson.dumps(
                    {
                        "resourceType": "Observation",
                        "id": f"o{j}",
                        "status": "final",
                        "category": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                        "code": "vital-signs",
                                    }
                                ]
                            }
                        ],
                        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                        "subject": {"reference": f"Patient/p{j % patients}"},
                        "effectiveDateTime": f"{day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
                        "valueQuantity": {
                            "value": round(rng.uniform(40, 180), 1),
                            "unit": "/min",
                            "system": "http://unitsofmeasure.org",
                            "code": "/min",
                        },
                    }
                )
            )
            out.write(b"\n")


def _wrk(
    url_base: str, paths: list[str], concurrency: int, seconds: int, script_dir: Path
) -> tuple[float, float, float]:
    script = script_dir / f"paths{abs(hash(tuple(paths[:3])))}.lua"
    listing = ",\n".join(f'"{p}"' for p in paths)
    script.write_text(
        f"local paths = {{\n{listing}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n"
    )
    threads = 1 if concurrency == 1 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url_base,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise SystemExit(f"wrk saw error responses:\n{out}")
    return rps, percentile("50"), percentile("99")


def run(
    url: str,
    observations: int,
    patients: int,
    seconds: int,
    port: int = 8765,
    workers: int = 1,
) -> tuple[list[LoadResult], dict[str, float]]:
    """Load the store (unless it already holds the Observations), then measure each endpoint."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the HTTP benchmark: apt-get install wrk")
    facts: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="medfusion-http-") as tmp:
        work = Path(tmp)
        data = work / "load.ndjson"
        repo = open_repository(url)
        if repo.counts().get("Observation", 0) < observations:
            write_observations(data, observations, patients)
            report = import_paths(repo, paths=[data])
            facts["loaded_resources"] = report.resources
            facts["load_rate"] = report.rate
        facts["observations_stored"] = repo.counts().get("Observation", 0)
        sample = repo.read("Observation", "o1").body
        repo.close()
        bare = work / "bare.json"
        bare.write_bytes(sample)
        facts["body_bytes"] = len(sample)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks._server",
                "--db",
                url,
                "--port",
                str(port),
                "--bare",
                str(bare),
                "--workers",
                str(workers),
            ],
            # The foundation's read path; the cost of authentication and audit is measured
            # by bench_security.py.
            env={**os.environ, "MEDFUSION_AUTH_ENABLED": "false", "MEDFUSION_AUDIT_ENABLED": "false"},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            rng = random.Random(5)
            reads = [f"/fhir/Observation/o{rng.randrange(observations)}" for _ in range(2000)]
            searches = [
                f"/fhir/Observation?patient=p{rng.randrange(patients)}&code=http://loinc.org|8867-4&date=ge2022-01-01"
                for _ in range(2000)
            ]
            hits = httpx.get(base + searches[0]).json()
            facts["search_matches_example"] = hits.get("total", -1)
            endpoints = {"bare (ceiling)": ["/_bare"], "read by id": reads, "search": searches}
            results = []
            for concurrency in (1, 16, 64):
                for name, paths in endpoints.items():
                    rps, p50, p99 = _wrk(base, paths, concurrency, seconds, work)
                    results.append(LoadResult(name, concurrency, rps, p50, p99))
                    print(
                        f"  {name:15} c={concurrency:<3} {rps:8.0f} rps  "
                        f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)
    return results, facts
