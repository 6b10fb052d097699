"""``medfusion quality check --data`` over image files and folders and series files and folders."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medfusion.cli.main import app

runner = CliRunner()


def _run(data: Path, out: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(
        app, ["quality", "check", "--data", str(data), "--out", str(out), "--json", *extra]
    )
    lines = result.stdout.strip().splitlines()
    document = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return result.exit_code, document, result.output


def _npz(path: Path, *, leak: bool) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("val", 8), ("test", 10)):
        arrays[f"{split}_images"] = rng.integers(30, 220, size=(n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8)[:, None]
    if leak:
        arrays["test_images"][4] = arrays["train_images"][17]
        arrays["val_images"][2] = 0  # a blank image: a warning
    np.savez(path, **arrays)
    return path


def test_config_overrides_apply_to_image_checks(tmp_path: Path) -> None:
    data = _npz(tmp_path / "bad.npz", leak=True)
    config = tmp_path / "q.toml"
    config.write_text(
        "[checks.split_leakage]\nseverity = 'warning'\n[checks.image_constant]\nenabled = false\n"
    )
    code, document, output = _run(data, tmp_path / "o", "--config", str(config))
    assert code == 0, output
    assert [(f["check"], f["severity"]) for f in document["findings"]] == [("split_leakage", "warning")]
    assert "image_constant" not in {c["name"] for c in document["checks"]}


def test_npz_image_set_good_and_leaking(tmp_path: Path) -> None:
    code, document, output = _run(_npz(tmp_path / "good.npz", leak=False), tmp_path / "g")
    assert code == 0, output
    assert document["findings"] == [] and {c["name"] for c in document["checks"]} >= {
        "image_format", "image_constant", "label_balance", "split_leakage"
    }  # fmt: skip
    code, document, output = _run(_npz(tmp_path / "bad.npz", leak=True), tmp_path / "b")
    assert code == 1, output
    assert set(document) == {"checks", "findings"}
    findings = {(f["check"], f["row"]): f for f in document["findings"]}
    assert set(findings) == {("split_leakage", "test/4"), ("image_constant", "val/2")}
    assert findings[("split_leakage", "test/4")]["value"] == "train/17"
    assert findings[("image_constant", "val/2")]["column"] == "pixels"
    for finding in document["findings"]:
        assert set(finding) == {"check", "severity", "row", "column", "value"}
    saved = json.loads((tmp_path / "b" / "quality.json").read_text())
    assert saved["kind"] == "images" and saved["summary"]["labels"]["train"] == {"0": 15, "1": 15}
    page = (tmp_path / "b" / "quality.html").read_text()
    assert "Class balance" in page and "data:image/png;base64," in page and "<script" not in page
    assert "test/4" in page


def _png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_png_folder_with_splits_and_class_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "images"
    for split in ("train", "test"):
        for label in ("benign", "malignant"):
            for k in range(6):
                _png(root / split / label / f"{k}.png", rng.integers(20, 230, size=(32, 32), dtype=np.uint8))
    _png(root / "train" / "benign" / "white.png", np.full((32, 32), 255, np.uint8))
    _png(root / "test" / "malignant" / "rgb.png", rng.integers(20, 230, size=(32, 32, 3), dtype=np.uint8))
    (root / "train" / "benign" / "empty.png").write_bytes(b"")
    (root / "train" / "malignant" / "broken.png").write_bytes(b"not a png")
    _png(root / "train" / "loose.png", rng.integers(20, 230, size=(32, 32), dtype=np.uint8))
    (root / "README.txt").write_text("a note beside the images, not a stay file")
    code, document, output = _run(root, tmp_path / "o")
    assert code == 1, output
    found = {(f["check"], f["row"]) for f in document["findings"]}
    assert found == {
        ("image_constant", "train/benign/white.png"),
        ("image_format", "test/malignant/rgb.png"),
        ("image_missing", "train/benign/empty.png"),
        ("image_format", "train/malignant/broken.png"),
        ("label_missing", "train/loose.png"),
    }


def test_npy_stack_has_integer_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    stack = rng.random((10, 28, 28)).astype(np.float32)
    stack[3] = 0.0
    np.save(tmp_path / "stack.npy", stack)
    code, document, output = _run(tmp_path / "stack.npy", tmp_path / "o")
    assert code == 0, output  # a blank image is a warning
    assert [(f["check"], f["row"]) for f in document["findings"]] == [("image_constant", 3)]


def _stay_text(record: int, ph: float = 7.38, extra: str = "") -> str:
    lines = ["Time,Parameter,Value", f"00:00,RecordID,{record}", "00:00,Age,64", "00:00,Height,-1"]
    for hour in range(0, 48, 2):
        lines.append(f"{hour:02d}:10,HR,{80 + hour % 7}")
        lines.append(f"{hour:02d}:40,Temp,37.{hour % 9}")
        if hour == 4:
            lines.append(f"05:30,pH,{ph}")
    return "\n".join(lines) + "\n" + extra


def test_stay_folder_and_archive(tmp_path: Path) -> None:
    folder = tmp_path / "stays"
    folder.mkdir()
    for record in range(132000, 132012):
        (folder / f"{record}.txt").write_text(_stay_text(record))
    (folder / "132005.txt").write_text(_stay_text(132005, ph=734))
    (folder / "132007.txt").write_text("Time;Parameter;Value\n")
    code, document, output = _run(folder, tmp_path / "o")
    assert code == 1, output
    found = {(f["check"], f["row"], f["column"]) for f in document["findings"]}
    assert {(check, column) for check, _, column in found} == {
        ("series_range", "pH"), ("series_format", None), ("series_sentinel", "Height")
    }  # fmt: skip
    assert ("series_range", "132005", "pH") in found and ("series_format", "132007", None) in found
    sentinels = {f["row"] for f in document["findings"] if f["check"] == "series_sentinel"}
    assert len(sentinels) == 11 and all(
        f["value"] == -1 for f in document["findings"] if f["check"] == "series_sentinel"
    )
    archive = tmp_path / "stays.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="set-x")
    code, again, output = _run(archive, tmp_path / "a")
    assert code == 1 and again == document, output
    code, one, output = _run(folder / "132005.txt", tmp_path / "one")
    assert code == 1, output
    assert {(f["check"], f["row"], f["column"]) for f in one["findings"]} == {
        ("series_range", "132005", "pH"), ("series_sentinel", "132005", "Height")
    }  # fmt: skip


def test_ucr_pair_reads_its_sibling_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = {}
    for split in ("TRAIN", "TEST"):
        values = rng.normal(size=(12, 40))
        labels = np.where(np.arange(12) % 2, 1, -1)
        rows[split] = (labels, values)
    rows["TEST"][1][5] = rows["TRAIN"][1][2]
    rows["TRAIN"][1][7, 10:35] = 0.25  # a flat line
    for split, (labels, values) in rows.items():
        text = "\n".join(
            "\t".join([str(label), *(repr(float(v)) for v in row)])
            for label, row in zip(labels, values, strict=True)
        )
        (tmp_path / f"TOY_{split}.tsv").write_text(text + "\n")
    code, document, output = _run(tmp_path / "TOY_TRAIN.tsv", tmp_path / "o")
    assert code == 1, output
    found = {(f["check"], f["row"]) for f in document["findings"]}
    assert found == {("split_leakage", "test/5"), ("series_constant", "train/7")}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.xyz", b"abc", "unsupported input notes.xyz"),
        ("empty.npz", b"", "is empty"),
        ("broken.npz", b"not a zip", "not a readable .npz"),
    ],
)
def test_unsupported_or_unreadable_input_is_one_line(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = runner.invoke(app, ["quality", "check", "--data", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_dicom_folder_and_file_through_the_command(tmp_path: Path) -> None:
    from tests.services.dicom_cases import texture, write_dicom

    folder = tmp_path / "series"
    folder.mkdir()
    for seed in range(3):
        write_dicom(folder / f"ct{seed}.dcm", texture(seed=seed), modality="CT", slope=1.0, intercept=-1024.0)
    write_dicom(folder / "plan.dcm", None, modality="RTPLAN")
    (folder / "broken.dcm").write_bytes(b"DICM")
    code, document, output = _run(folder, tmp_path / "o")
    assert code == 1, output
    assert {(f["check"], f["row"]) for f in document["findings"]} == {
        ("dicom_pixel_data", "plan.dcm"),
        ("dicom_pixel_data", "broken.dcm"),
    }
    checks = {c["name"]: c for c in document["checks"]}
    assert checks["dicom_hounsfield"] == {
        "name": "dicom_hounsfield", "category": "plausibility", "severity": "error", "failed": 0, "checked": 3
    }  # fmt: skip
    written = json.loads((tmp_path / "o" / "quality.json").read_text())
    assert written["kind"] == "images" and written["summary"]["dicom"]["files"] == 5
    assert "dicom_pixel_data" in (tmp_path / "o" / "quality.html").read_text()
    code, document, output = _run(folder / "ct0.dcm", tmp_path / "one")
    assert code == 0 and document["findings"] == [], output


def test_a_folder_of_nothing_checkable_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("x")
    result = runner.invoke(app, ["quality", "check", "--data", str(tmp_path / "docs")])
    assert result.exit_code == 1 and "holds no .txt stay files" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_real_breastmnist(data_dir: Path, tmp_path: Path) -> None:
    code, document, output = _run(data_dir / "medmnist" / "breastmnist.npz", tmp_path / "o")
    assert code == 1, output  # one image is in both train and test
    assert [(f["check"], f["row"]) for f in document["findings"]] == [("split_leakage", "test/76")]


def test_real_ecg200_is_clean(data_dir: Path, tmp_path: Path) -> None:
    code, document, output = _run(data_dir / "ucr" / "ECG200_TEST.tsv", tmp_path / "o")
    assert code == 0 and document["findings"] == [], output
    assert {c["name"]: c["checked"] for c in document["checks"]}["split_leakage"] == 200


@pytest.mark.slow
def test_real_physionet_dev_half(data_dir: Path, tmp_path: Path) -> None:
    code, document, output = _run(data_dir / "physionet2012" / "set-a-dev.tar.gz", tmp_path / "o")
    assert code == 1, output
    failed = {c["name"]: c["failed"] for c in document["checks"]}
    assert failed["series_format"] == 0 and failed["series_timestamps"] == 0
    assert failed["series_duplicate_times"] == 1746
    ranges = {
        (f["row"], f["column"], f["value"]) for f in document["findings"] if f["check"] == "series_range"
    }
    assert ("140525", "pH", 734.0) in ranges and ("136499", "K", 22.9) in ranges
    heights = [f for f in document["findings"] if f["check"] == "series_sentinel" and f["column"] == "Height"]
    assert len(heights) == 981
