"""The ``rnn`` model: readers, estimator contract, determinism, bad input, IG, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks
from typer.testing import CliRunner

from medfusion.cli.main import app
from medfusion.errors import DataError, InvalidRequestError
from medfusion.ml import (
    RNNModel,
    integrated_gradients,
    read_long_csv,
    read_physionet,
    read_sequences,
    read_ucr,
    sequence_deletion_test,
    summary_features,
)

runner = CliRunner()
SMALL = {"max_epochs": 4, "hidden_size": 8, "conv_width": 8, "n_seeds": 1}

# The checks fit a 3-epoch network on blobs; alone it does not reach the 0.83 training
# accuracy check_classifiers_train asks for (fully trained accuracy is tested below), but
# the default ROCKET member of small regular sets does.
_EXPECTED = {"check_classifiers_train": "a 3-epoch network on the check's blobs is under-trained"}


@parametrize_with_checks(
    [
        RNNModel(max_epochs=3, hidden_size=8, conv_width=8, n_seeds=1, n_kernels=500, random_state=0),
        RNNModel(max_epochs=3, hidden_size=8, conv_width=8, n_seeds=1, kernels="off", random_state=0),
    ],
    expected_failed_checks=lambda est: _EXPECTED if est.kernels == "off" else {},
)
def test_sklearn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def regular_series(n: int = 80, length: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 has a bump in the first half, class 0 in the second, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(0, 0.3, (n, length))
    for i, label in enumerate(y):
        start = rng.integers(2, length // 2 - 4) + (0 if label else length // 2)
        X[i, start : start + 3] += 2.0
    return X.astype(np.float32), y


def irregular_series(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three variables on a 12-step grid, 70 % missing; class = high late values of variable 0."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, 12, 3))
    y = rng.integers(0, 2, n)
    X[y == 1, 6:, 0] += 2.5
    X[rng.random(X.shape) < 0.7] = np.nan
    X[:, 11, 0] = np.where(y == 1, 2.5, 0.0) + rng.normal(0, 0.5, n)  # always seen at the end
    return X.astype(np.float32), y


def write_stays(folder: Path, n: int = 40, seed: int = 0) -> Path:
    """A PhysioNet-2012-style folder of ``n`` stays and an outcomes file; returns the outcomes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for k in range(n):
        stay = 140000 + k
        death = int(k % 3 == 0)
        lines = ["Time,Parameter,Value", f"00:00,RecordID,{stay}", "00:00,Age,70", "00:00,Height,-1"]
        for hour in range(0, 24, 2):
            lines.append(f"{hour:02d}:{rng.integers(0, 60):02d},HR,{rng.normal(80 + 25 * death, 5):.1f}")
            if hour % 6 == 0:
                lines.append(f"{hour:02d}:30,Lactate,{rng.normal(1.5 + 2 * death, 0.3):.2f}")
        (folder / f"{stay}.txt").write_text("\n".join(lines) + "\n")
        outcomes.append((stay, death))
    labels = folder.parent / f"{folder.name}-outcomes.txt"
    pd.DataFrame(outcomes, columns=["RecordID", "In-hospital_death"]).to_csv(labels, index=False)
    return labels


# -- readers ---------------------------------------------------------------------------


def test_read_ucr_file(tmp_path: Path) -> None:
    path = tmp_path / "toy_TRAIN.tsv"
    path.write_text("-1\t0.1\t0.2\t0.3\n1\t1.0\t2.0\t3.0\n-1\t0.5\t0.4\tNaN\n")
    data = read_ucr(path)
    assert data.X.shape == (3, 3, 1) and data.task == "binary" and data.regular
    assert data.y is not None and data.y.tolist() == [-1, 1, -1]
    assert np.isnan(data.X[2, 2, 0])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("1\t0.1\tabc\n0\t0.2\t0.3\n", "non-numeric value on line 1"),
        ("1\n0\n", "needs a label column"),
        ("1\t0.1\n1\t0.2\n", "single class"),
    ],
)
def test_read_ucr_bad_input(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_ucr(path)


def test_read_physionet_folder(tmp_path: Path) -> None:
    labels = write_stays(tmp_path / "stays", n=6)
    data = read_physionet(tmp_path / "stays", labels=labels)
    assert data.variables == ("Age", "HR", "Lactate")  # RecordID dropped, Height -1 = not recorded
    assert data.X.shape == (6, 23, 3) and data.resolution == 1.0
    assert data.ids[0] == "140000" and data.y is not None and data.y.tolist()[:3] == [1, 0, 0]
    assert data.counts is not None and data.counts[:, :, 1].sum() == 6 * 12
    # New data read onto the training grid keeps its shape.
    again = read_physionet(tmp_path / "stays", variables=("HR", "Temp"), n_steps=30)
    assert again.X.shape == (6, 30, 2) and np.isnan(again.X[:, :, 1]).all()


def test_read_physionet_bad_input(tmp_path: Path) -> None:
    labels = write_stays(tmp_path / "stays", n=4)
    with pytest.raises(DataError, match="needs --labels"):
        read_sequences(tmp_path / "stays")
    with pytest.raises(DataError, match="--target column 'death'"):
        read_physionet(tmp_path / "stays", labels=labels, target="death")
    short = tmp_path / "short.csv"
    pd.read_csv(labels).iloc[:2].to_csv(short, index=False)
    with pytest.raises(DataError, match=r"2 series have no row in short\.csv"):
        read_physionet(tmp_path / "stays", labels=short)
    (tmp_path / "stays" / "999.txt").write_text("Time,Parameter,Value\n00:10,HR,fast\n")
    with pytest.raises(DataError, match=r"999.txt line 2 has a non-numeric"):
        read_physionet(tmp_path / "stays", labels=labels)
    (tmp_path / "stays" / "999.txt").write_text("when,what\n")
    with pytest.raises(DataError, match="header Time,Parameter,Value"):
        read_physionet(tmp_path / "stays", labels=labels)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.txt stay files"):
        read_physionet(tmp_path / "empty")


def test_read_long_csv(tmp_path: Path) -> None:
    path, labels = tmp_path / "long.csv", tmp_path / "labels.csv"
    path.write_text("id,time,variable,value\na,0.5,HR,80\na,01:30,HR,90\nb,0,HR,70\nb,2,Temp,37\n")
    labels.write_text("id,target\na,1\nb,0\n")
    data = read_long_csv(path, labels=labels)
    assert data.X.shape == (2, 3, 2) and data.ids == ("a", "b")
    assert data.X[0, 0, 0] == 80 and data.X[0, 1, 0] == 90 and data.X[1, 2, 1] == 37
    path.write_text("id,when,variable,value\na,1,HR,80\n")
    with pytest.raises(DataError, match="lacks columns: time"):
        read_long_csv(path, labels=labels)
    path.write_text("id,time,variable,value\na,1,HR,high\n")
    with pytest.raises(DataError, match="non-numeric value on line 2"):
        read_long_csv(path, labels=labels)


def test_summary_features() -> None:
    X = np.array([[[1.0], [np.nan], [3.0], [np.nan]]], dtype=np.float32)
    features = summary_features(X).ravel()
    # first, last, min, max, mean, count, std, slope, last_time
    assert features[:6].tolist() == [1.0, 3.0, 1.0, 3.0, 2.0, 2.0]
    assert features[7] == pytest.approx(1.0) and features[8] == 2.0


# -- estimator ---------------------------------------------------------------------------


def test_regular_series_learnt_and_deterministic() -> None:
    X, y = regular_series()
    # The network alone (the ROCKET member is tested in tests/ml/test_rocket.py).
    kwargs: dict[str, object] = {"max_epochs": 25, "hidden_size": 16, "conv_width": 16}
    kwargs |= {"early_stopping": True, "n_seeds": 1, "kernels": "off"}
    first = RNNModel(**kwargs, random_state=3).fit(X[:60], y[:60])
    second = RNNModel(**kwargs, random_state=3).fit(X[:60], y[:60])
    np.testing.assert_array_equal(first.predict_proba(X[60:]), second.predict_proba(X[60:]))
    assert first.members_ == ("rnn",) and not first.irregular_
    assert (first.predict(X[60:]) == y[60:]).mean() >= 0.8
    history = first.histories_[0]
    assert history.score_name == "-loss" and 1 <= history.best_epoch <= len(history.epochs)
    assert history.epochs[0].val_score == -history.epochs[0].val_loss


def test_small_regular_sets_get_a_seed_ensemble_on_a_fixed_schedule() -> None:
    X, y = regular_series(n=40)
    model = RNNModel(max_epochs=6, hidden_size=8, conv_width=8, kernels="off", random_state=0).fit(X, y)
    assert model.training_ == {
        "hidden_size": 8,
        "n_seeds": 5,
        "max_epochs": 6,
        "batch_size": 32,
        "early_stopping": False,
        "schedule": "cosine",
    }
    assert len(model.networks_) == 5 and all(len(h.epochs) == 6 for h in model.histories_)
    assert all(e.val_loss is None and e.val_score is None for h in model.histories_ for e in h.epochs)
    # The members differ (one seed each) and the prediction is their average.
    single = [net(*model._tensors(X[:5, :, None])).softmax(-1).detach().numpy() for net in model.networks_]
    assert not np.allclose(single[0], single[1])
    np.testing.assert_allclose(model.predict_proba(X[:5]), np.mean(single, axis=0), atol=1e-6)
    stopped = RNNModel(max_epochs=6, hidden_size=8, conv_width=8, early_stopping=True, n_seeds=1).fit(X, y)
    assert stopped.training_["early_stopping"] and stopped.training_["schedule"] == "constant"
    assert len(stopped.networks_) == 1 and stopped.histories_[0].epochs[0].val_loss is not None


def test_native_threads_are_limited_and_restored() -> None:
    from threadpoolctl import threadpool_info

    from medfusion.ml._sequence import _native_threads

    before = [p["num_threads"] for p in threadpool_info()]
    with _native_threads(1):
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert [p["num_threads"] for p in threadpool_info()] == before


def test_irregular_series_use_decay_and_choose_members() -> None:
    X, y = irregular_series()
    model = RNNModel(max_epochs=15, hidden_size=16, random_state=0).fit(X, y)
    assert model.irregular_ and model.networks_[0].decay
    assert model.training_["early_stopping"] and model.training_["n_seeds"] == 1
    assert set(model.validation_scores_) == {
        "rnn",
        "rnn+logistic",
        "rnn+boosting",
        "rnn+logistic+boosting",
    }
    assert model.members_[0] == "rnn"
    assert model.validation_scores_["+".join(model.members_)] == max(model.validation_scores_.values())
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(axis=1), 1)


def test_multiclass() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(["a", "b", "c"], 20)
    X = rng.normal(0, 0.3, (60, 16)) + np.select([y == "a", y == "b"], [1.0, -1.0], 0.0)[:, None]
    model = RNNModel(random_state=0, max_epochs=20, hidden_size=8, conv_width=8).fit(X, y)
    assert model.classes_.tolist() == ["a", "b", "c"]
    assert model.predict_proba(X).shape == (60, 3)
    assert (model.predict(X) == y).mean() > 0.8


def test_bad_inputs() -> None:
    X, y = regular_series(n=20)
    with pytest.raises(ValueError, match="needs at least two classes"):
        RNNModel(**SMALL).fit(X, np.zeros(20))
    with pytest.raises(ValueError, match="cell must be one of gru, lstm"):
        RNNModel(cell="transformer").fit(X, y)
    model = RNNModel(**SMALL, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="expecting 24 features"):
        model.predict(X[:, :10])
    with pytest.raises(ValueError, match=r"fitted on \(24, 1\)"):
        model.predict(X[:, :10, None])
    with pytest.raises(ValueError, match="infinity"):
        model.predict(np.full((2, 24, 1), np.inf))
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(InvalidRequestError, match="no CUDA GPU"):
            RNNModel(device="cuda", **SMALL).fit(X, y)


# -- integrated gradients ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["regular", "irregular"])
def test_integrated_gradients_completeness_and_deletion(kind: str) -> None:
    X, y = regular_series() if kind == "regular" else irregular_series()
    X = X.reshape(len(X), X.shape[1], -1)
    model = RNNModel(max_epochs=30, hidden_size=16, conv_width=16, random_state=0, summaries="off").fit(X, y)
    explanation = integrated_gradients(model, X[:20], steps=128)
    assert explanation.attributions.shape == (20, *X.shape[1:])
    # Completeness: the cells add up to output minus baseline output.
    assert explanation.completeness_error().max() < 0.01
    if kind == "irregular":  # only observed cells carry attribution
        assert np.all(explanation.attributions[np.isnan(X[:20])] == 0)
    deletion = sequence_deletion_test(model, X[:20], explanation, k=3)
    assert deletion.margin > 0, deletion


# -- end to end through the CLI ---------------------------------------------------------


def test_cli_ucr_end_to_end(tmp_path: Path, models_dir: Path, data_dir: Path) -> None:
    """Down-sampled ECG200: train (official test split found), predict, evaluate, explain."""
    source = data_dir / "ucr"
    for part, rows in (("TRAIN", 40), ("TEST", 30)):
        lines = (source / f"ECG200_{part}.tsv").read_text().splitlines()[:rows]
        (tmp_path / f"ECG_{part}.tsv").write_text("\n".join(lines) + "\n")
    train = tmp_path / "ECG_TRAIN.tsv"
    args = ["train", "rnn", "--data", str(train), "--json", "--device", "cpu", "--param", "max_epochs=5"]
    result = runner.invoke(app, [*args, "--param", "hidden_size=16"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["model"] == "rnn" and summary["task"] == "binary"
    assert (summary["n_train"], summary["n_test"]) == (40, 30)
    assert 0 <= summary["metrics"]["accuracy"]["value"] <= 1
    model_id = summary["model_id"]
    folder = next(models_dir.glob("rnn-*/v1"))
    assert (folder / "plots" / "training_curves.png").is_file()
    assert "training curves" in (folder / "report.html").read_text()
    assert "GRU-D" not in (folder / "model_card.md").read_text()  # a regular series: no masks
    out = tmp_path / "preds.csv"
    result = runner.invoke(
        app, ["predict", model_id, "--data", str(tmp_path / "ECG_TEST.tsv"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    preds = pd.read_csv(out)
    assert len(preds) == 30 and {"prediction", "prob_-1", "prob_1"} <= set(preds.columns)
    result = runner.invoke(app, ["evaluate", model_id, "--data", str(tmp_path / "ECG_TEST.tsv"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["metrics"]["accuracy"][
        "value"
    ] == pytest.approx(summary["metrics"]["accuracy"]["value"])
    explain_out = tmp_path / "explain"
    args = [
        "explain",
        model_id,
        "--data",
        str(tmp_path / "ECG_TEST.tsv"),
        "--rows",
        "2",
        "--out",
        str(explain_out),
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert payload["output"] == "probability" and len(payload["rows"]) == 2
    attribution = np.load(payload["rows"][0]["attribution_file"])
    assert attribution.shape == (96, 1)
    row = payload["rows"][0]
    assert attribution.sum() == pytest.approx(row["prediction"] - row["baseline_prediction"], abs=0.02)
    assert Path(row["heatmap_file"]).read_bytes()[:4] == b"\x89PNG"


def test_cli_physionet_folder_end_to_end(tmp_path: Path, models_dir: Path) -> None:
    labels = write_stays(tmp_path / "stays", n=50)
    args = ["train", "rnn", "--data", str(tmp_path / "stays"), "--labels", str(labels)]
    args += ["--id-col", "RecordID", "--target", "In-hospital_death", "--json", "--cv", "2"]
    result = runner.invoke(app, [*args, "--param", "max_epochs=5", "--param", "hidden_size=8"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["n_train"] == 40 and summary["n_test"] == 10
    assert "cv_auroc" in summary["metrics"] and "auroc" in summary["metrics"]
    record = json.loads(next(models_dir.glob("rnn-*/v1/metadata.json")).read_text())
    assert record["sequence"]["variables"] == ["Age", "HR", "Lactate"]
    assert "GRU-D" in next(models_dir.glob("rnn-*/v1/model_card.md")).read_text()
    result = runner.invoke(
        app, ["explain", summary["model_id"], "--data", str(tmp_path / "stays"), "--rows", "3",
              "--out", str(tmp_path / "ig"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert [r["id"] for r in payload["rows"]] == ["140000", "140001", "140002"]
    assert np.load(payload["rows"][0]["attribution_file"]).shape == (23, 3)
    assert set(payload["global_importance"]) == {"Age", "HR", "Lactate"}


def test_cli_rnn_bad_input(tmp_path: Path, models_dir: Path) -> None:
    write_stays(tmp_path / "stays", n=6)
    result = runner.invoke(app, ["train", "rnn", "--data", str(tmp_path / "stays")])
    assert result.exit_code != 0 and "needs --labels" in result.output
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    result = runner.invoke(app, ["train", "rnn", "--data", str(empty)])
    assert result.exit_code != 0 and "is empty" in result.output
    assert not models_dir.exists() or not any(models_dir.iterdir())


def test_stay_observations_keep_missing_descriptors_for_quality_checks() -> None:
    from medfusion.ml import stay_observations

    text = "Time,Parameter,Value\n00:00,RecordID,7\n00:00,Height,-1\n00:30,HR,80\n"
    assert stay_observations("7.txt", text) == [("7", 0.5, "HR", 80.0)]
    kept = stay_observations("7.txt", text, keep_missing=True)
    assert kept == [("7", 0.0, "Height", -1.0), ("7", 0.5, "HR", 80.0)]


def test_read_ucr_table_reports_text_cells_without_raising(tmp_path: Path) -> None:
    from medfusion.ml import read_ucr_table

    path = tmp_path / "x.tsv"
    path.write_text("1\t0.5\tabc\n\t0.1\t0.2\n")
    table = read_ucr_table(path)
    assert table.labels.tolist() == ["1", None]
    assert table.bad.tolist() == [[False, True], [False, False]]
    assert np.isnan(table.values[0, 1]) and table.values[1, 1] == pytest.approx(0.2)
