"""The cnn model end to end through the CLI: train, predict, evaluate, explain; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medfusion.cli.main import app
from tests.ml.test_cnn import blobs

runner = CliRunner()
SMALL = ["--param", "width=8", "--param", "max_epochs=4", "--param", "n_members=2", "--device", "cpu"]


def _last_json(stdout: str) -> dict[str, object]:
    payload = json.loads(stdout.strip().splitlines()[-1])
    assert isinstance(payload, dict)
    return payload


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    """A MedMNIST-shaped file of generated images: 80 train, 30 val, 40 test."""
    X, y = blobs(150, seed=3)
    path = tmp_path / "blobs.npz"
    np.savez(
        path,
        train_images=X[:80],
        train_labels=y[:80, None],
        val_images=X[80:110],
        val_labels=y[80:110, None],
        test_images=X[110:],
        test_labels=y[110:, None],
    )
    return path


def test_train_predict_evaluate_explain(npz: Path, models_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "cnn", "--data", str(npz), "--seed", "1", "--json", *SMALL])
    assert result.exit_code == 0, result.output
    summary = _last_json(result.stdout)
    assert summary["model"] == "cnn" and summary["task"] == "binary"
    assert (summary["n_train"], summary["n_test"]) == (80, 40)
    metrics = summary["metrics"]
    assert isinstance(metrics, dict) and {"auroc", "accuracy", "brier", "ece"} <= set(metrics)
    model_id = str(summary["model_id"])
    folder = models_dir / model_id.split("@")[0] / "v1"
    assert {p.name for p in (folder / "plots").iterdir()} >= {"roc.png", "training_curves.png"}
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["data"]["kind"] == "images" and meta["data"]["image_shape"] == [1, 28, 28]
    assert meta["data"]["n_val"] == 30 and "official test split" in meta["data"]["split"]
    assert len(meta["training"]) == 2 and meta["libraries"]["torch"]
    card = (folder / "model_card.md").read_text()
    assert "28x28 grayscale" in card and "ResNetSmall" in card and "kept epoch" in card
    assert "Training curves" not in card and "training_curves" in (folder / "report.html").read_text()

    out = tmp_path / "preds.csv"
    result = runner.invoke(app, ["predict", model_id, "--data", str(npz), "--out", str(out)])
    assert result.exit_code == 0, result.output
    preds = pd.read_csv(out)
    assert list(preds.columns) == ["row", "prediction", "prob_0", "prob_1"] and len(preds) == 40

    result = runner.invoke(app, ["evaluate", model_id, "--data", str(npz), "--json"])
    assert result.exit_code == 0, result.output
    evaluated = _last_json(result.stdout)
    # Same model on the same test split: the same point estimates (the CIs use another seed).
    assert {k: v["value"] for k, v in evaluated["metrics"].items()} == {  # type: ignore[union-attr]
        k: v["value"] for k, v in metrics.items()
    }

    result = runner.invoke(
        app,
        ["explain", model_id, "--data", str(npz), "--rows", "3", "--out", str(tmp_path / "maps"), "--json"],
    )
    assert result.exit_code == 0, result.output
    explained = _last_json(result.stdout)
    assert explained["method"] == "grad_cam+occlusion" and explained["output"] == "probability"
    rows = explained["rows"]
    assert isinstance(rows, list) and [r["row"] for r in rows] == [1, 2, 3]
    for row in rows:
        png = Path(row["attribution_file"])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 0 <= row["prediction"] <= 1 and row["class"] in (0, 1)


def test_two_seeded_trainings_give_identical_metrics(npz: Path, models_dir: Path) -> None:
    runs = [
        runner.invoke(app, ["train", "cnn", "--data", str(npz), "--seed", "7", "--json", *SMALL])
        for _ in range(2)
    ]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    first, second = (_last_json(r.stdout) for r in runs)
    assert first["metrics"] == second["metrics"]
    assert first["model_id"] != second["model_id"]  # two versions


def test_bad_image_input_gets_its_error_and_writes_nothing(
    npz: Path, models_dir: Path, tmp_path: Path
) -> None:
    X, y = blobs(20)
    cases = {
        "empty": (b"", "is empty"),
        "flat": ({"train_images": X.reshape(20, -1), "train_labels": y}, "expected images"),
        "small": ({"train_images": X[:, :20, :20], "train_labels": y}, "at least 28x28"),
        "count": ({"train_images": X, "train_labels": y[:5]}, "20 train_images but 5"),
        "one_class": ({"train_images": X, "train_labels": np.zeros(20)}, "single class"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            np.savez(path, **content)
        result = runner.invoke(app, ["train", "cnn", "--data", str(path), *SMALL])
        assert result.exit_code == 1 and message in result.output, (name, result.output)
    result = runner.invoke(app, ["train", "cnn", "--data", str(npz), "--cv", "3", *SMALL])
    assert result.exit_code == 1 and "--cv is not offered" in result.output
    result = runner.invoke(app, ["train", "cnn", "--data", str(npz), "--param", "width=0"])
    assert result.exit_code == 1 and "width must be a positive integer" in result.output
    result = runner.invoke(app, ["train", "logistic", "--data", str(npz), "--device", "cpu"])
    assert result.exit_code == 1 and "--device applies to the torch models" in result.output
    assert not models_dir.exists() or not any(p for p in models_dir.iterdir() if not p.name.startswith("."))


def test_saved_model_refuses_other_image_shapes(
    npz: Path, models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["train", "cnn", "--data", str(npz), "--json", *SMALL])
    assert result.exit_code == 0, result.output
    model_id = str(_last_json(result.stdout)["model_id"])
    X, y = blobs(6, side=32)
    other = tmp_path / "other.npz"
    np.savez(other, images=X, labels=y)
    result = runner.invoke(app, ["predict", model_id, "--data", str(other), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 1 and "trained on 28x28" in result.output
    assert not (tmp_path / "p.csv").exists()
    result = runner.invoke(app, ["explain", model_id, "--data", str(other)])
    assert result.exit_code == 1 and "trained on 28x28" in result.output
    result = runner.invoke(app, ["explain", model_id, "--data", str(npz), "--method", "shapley"])
    assert result.exit_code == 1 and "--method auto" in result.output
    monkeypatch.chdir(tmp_path)  # without --out the maps go to explain-NAME-vN in the working folder
    result = runner.invoke(app, ["explain", model_id, "--data", str(npz), "--rows", "2"])
    assert result.exit_code == 0, result.output
    name, version = model_id.split("@v") if "@v" in model_id else (model_id, "1")
    assert sorted(p.name for p in (tmp_path / f"explain-{name}-v{version}").iterdir()) == [
        "image_1.png",
        "image_2.png",
    ]
    result = runner.invoke(app, ["predict", model_id, "--data", str(npz), "--out", "x.csv", "--explain"])
    assert result.exit_code == 1 and "medfusion explain" in result.output


def test_small_breastmnist_end_to_end(data_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    source = np.load(data_dir / "medmnist/breastmnist.npz")
    rng = np.random.default_rng(0)
    parts = {}
    for split, n in (("train", 160), ("val", 40), ("test", 60)):
        rows = rng.choice(len(source[f"{split}_labels"]), n, replace=False)
        parts[f"{split}_images"], parts[f"{split}_labels"] = (
            source[f"{split}_images"][rows],
            source[f"{split}_labels"][rows],
        )
    path = tmp_path / "breast_small.npz"
    np.savez(path, **parts)
    # Sized to take well under a minute on an idle 2-core CPU; speed itself is measured by
    # benchmarks/bench_cnn.py, not asserted here.
    result = runner.invoke(
        app,
        ["train", "cnn", "--data", str(path), "--json", "--param", "max_epochs=8", "--param", "n_members=1"],
    )
    assert result.exit_code == 0, result.output
    summary = _last_json(result.stdout)
    auroc = summary["metrics"]["auroc"]  # type: ignore[index]
    assert auroc["value"] > 0.55, auroc  # better than chance from 160 images and 8 epochs
