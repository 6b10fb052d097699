"""Writing a cohort to disk: files, summary, determinism across runs and worker counts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from medfusion.errors import InvalidRequestError
from medfusion.synth import generate_bundle, write_bundles


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_writes_one_file_per_patient_named_by_patient_id(tmp_path: Path) -> None:
    seen: list[int] = []
    summary = write_bundles(tmp_path / "out", 12, 42, progress=seen.append)
    files = sorted((tmp_path / "out").iterdir())
    assert summary.files == len(files) == 12
    assert seen[-1] == 12
    assert summary.resources["Patient"] == 12
    assert summary.total_resources == sum(summary.resources.values())
    assert summary.seconds >= 0
    counted = 0
    for path in files:
        bundle = orjson.loads(path.read_bytes())
        patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        assert path.name == f"{patient['id']}.json"
        counted += len(bundle["entry"])
    assert counted == summary.total_resources
    # The file is exactly the serialised generate_bundle output.
    assert orjson.dumps(generate_bundle(0, 42)) in {p.read_bytes() for p in files}


def test_same_seed_writes_identical_bytes_different_seed_does_not(tmp_path: Path) -> None:
    write_bundles(tmp_path / "a", 10, 7)
    write_bundles(tmp_path / "b", 10, 7)
    write_bundles(tmp_path / "c", 10, 8)
    assert _contents(tmp_path / "a") == _contents(tmp_path / "b")
    assert set(_contents(tmp_path / "a")).isdisjoint(_contents(tmp_path / "c"))


def test_worker_processes_write_the_same_bytes(tmp_path: Path) -> None:
    one = write_bundles(tmp_path / "one", 210, 3, workers=1)
    two = write_bundles(tmp_path / "two", 210, 3, workers=2)
    assert one.resources == two.resources
    assert _contents(tmp_path / "one") == _contents(tmp_path / "two")


@pytest.mark.parametrize(("patients", "seed"), [(0, 1), (-5, 1), (1, -1)])
def test_bad_arguments_write_nothing(tmp_path: Path, patients: int, seed: int) -> None:
    with pytest.raises(InvalidRequestError):
        write_bundles(tmp_path / "out", patients, seed)
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    target.write_text("{}")
    with pytest.raises(InvalidRequestError, match="not a folder"):
        write_bundles(target, 1, 1)
