"""End to end through the CLI: train, predict, evaluate, models list/show; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medfusion.cli.main import app
from medfusion.ml import load_cleveland
from medfusion.services.training import train_model

runner = CliRunner()
SHAPE = {"model_id", "model", "task", "n_train", "n_test", "seconds", "metrics"}
ARGS = {
    "regression": ["linear"],
    "binary": ["logistic"],
    "multiclass": ["logistic"],
    "survival": ["cox", "--time", "time", "--event", "event"],
}
EXPECTED_METRICS = {
    "regression": {"mse", "rmse", "mae", "r2"},
    "binary": {
        "auroc",
        "auprc",
        "accuracy",
        "balanced_accuracy",
        "sensitivity",
        "specificity",
        "f1",
        "brier",
        "calibration_slope",
        "calibration_intercept",
        "ece",
    },
    "multiclass": {"auroc", "accuracy", "recall_0", "recall_1", "recall_2"},
    "survival": {"c_index", "uno_c", "ibs"},
}
PLOTS = {
    "regression": {"residuals", "predicted_vs_observed"},
    "binary": {"roc", "pr", "calibration", "confusion_matrix"},
    "multiclass": {"confusion_matrix"},
    "survival": {"kaplan_meier_by_risk"},
}


def _last_json(stdout: str) -> dict[str, object]:
    payload = json.loads(stdout.strip().splitlines()[-1])
    assert isinstance(payload, dict)
    return payload


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass", "survival"])
def test_train_predict_evaluate_show(
    task: str, tables: dict[str, Path], models_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["train", *ARGS[task], "--data", str(tables[task]), "--json", "--cv", "3"])
    assert result.exit_code == 0, result.output
    payload = _last_json(result.stdout)
    assert set(payload) == SHAPE and payload["task"] == task and payload["model"] == ARGS[task][0]
    assert payload["n_train"] + payload["n_test"] == len(pd.read_csv(tables[task]))  # type: ignore[operator]
    metrics = payload["metrics"]
    assert isinstance(metrics, dict)
    assert EXPECTED_METRICS[task] | {f"cv_{m}" for m in EXPECTED_METRICS[task]} == set(metrics)
    for value in metrics.values():
        assert set(value) == {"value", "ci_low", "ci_high"}
    model_id = str(payload["model_id"])

    folder = models_dir / model_id.replace("@", "/")
    assert {p.stem for p in (folder / "plots").glob("*.png")} == PLOTS[task]
    assert "data:image/png;base64," in (folder / "report.html").read_text()
    card = (folder / "model_card.md").read_text()
    for heading in (
        "Intended use",
        "Data",
        "Predictors",
        "Outcome",
        "Performance",
        "Calibration",
        "Limitations",
    ):
        assert f"## {heading}" in card
    assert (folder / "model_card.html").read_text().startswith("<!doctype html>")

    out = tmp_path / "preds.csv"
    result = runner.invoke(app, ["predict", model_id, "--data", str(tables[task]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(out)
    assert len(predictions) == len(pd.read_csv(tables[task]))
    assert ("risk" if task == "survival" else "prediction") in predictions.columns

    result = runner.invoke(app, ["evaluate", model_id, "--data", str(tables[task]), "--json"])
    assert result.exit_code == 0, result.output
    evaluated = _last_json(result.stdout)
    assert set(evaluated) == SHAPE and set(evaluated["metrics"]) == EXPECTED_METRICS[task]  # type: ignore[arg-type]

    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and model_id.split("@")[0][:8] in result.output
    result = runner.invoke(app, ["models", "show", model_id])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert shown["model_id"] == model_id and len(shown["data"]["fingerprint"]) == 64
    assert {"scikit-learn", "lifelines", "numpy"} <= set(shown["libraries"])
    if task == "survival":
        assert set(shown["hazard_ratios"]["x1"]) == {"hazard_ratio", "ci_low", "ci_high", "p"}
        assert "x1" in shown["ph_test"]


def test_explicit_test_set_and_human_output(tables: dict[str, Path], models_dir: Path) -> None:
    result = runner.invoke(
        app,
        ["train", "linear", "--data", str(tables["regression"]), "--test-data", str(tables["regression"])],
    )
    assert result.exit_code == 0, result.output
    assert "r2" in result.stdout and "saved" in result.stdout


def test_two_seeded_runs_give_identical_metrics_and_new_versions(
    tables: dict[str, Path], models_dir: Path
) -> None:
    runs = [train_model(model="logistic", data=tables["binary"], seed=5, n_bootstrap=50) for _ in range(2)]
    assert runs[0].as_json()["metrics"] == runs[1].as_json()["metrics"]
    assert [r.model_id.split("@")[1] for r in runs] == ["v1", "v2"]
    result = runner.invoke(app, ["models", "show", runs[0].model_id.split("@")[0]])
    assert json.loads(result.stdout[: result.stdout.rindex("}") + 1])["version"] == 2


def _bad_tables(tmp_path: Path) -> dict[str, tuple[Path, list[str], str]]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    good = "x,target\n" + "".join(f"{i},{i % 2}\n" for i in range(20))
    return {
        "missing target": (
            write("m.csv", good.replace("target", "outcome")),
            ["logistic"],
            "target column 'target'",
        ),
        "non-numeric target": (
            write("n.csv", good.replace("\n3,1\n", "\n3,high\n")),
            ["linear"],
            "non-numeric",
        ),
        "non-numeric feature": (
            write("f.csv", good.replace("\n3,1\n", "\n3x,1\n")),
            ["logistic"],
            "feature column 'x'",
        ),
        "non-numeric time": (
            write("t.csv", "x,time,event\n1,2,1\n2,soon,0\n3,4,1\n"),
            ["cox", "--time", "time", "--event", "event"],
            "time column 'time'",
        ),
        "single class": (
            write("s.csv", "x,target\n" + "".join(f"{i},1\n" for i in range(20))),
            ["logistic"],
            "single class",
        ),
        "empty file": (write("e.csv", ""), ["linear"], "is empty"),
        "header only": (write("h.csv", "x,target\n"), ["linear"], "is empty"),
        "missing file": (tmp_path / "absent.csv", ["linear"], "does not exist"),
    }


def test_each_bad_input_gets_its_error_and_writes_nothing(tmp_path: Path, models_dir: Path) -> None:
    for problem, (path, args, message) in _bad_tables(tmp_path).items():
        result = runner.invoke(app, ["train", *args, "--data", str(path), "--json"])
        assert result.exit_code == 1, problem
        assert message in result.output, (problem, result.output)
        assert "Traceback" not in result.output
        assert not models_dir.exists() or not any(models_dir.rglob("*")), problem


def test_unknown_model_and_missing_feature_at_predict(
    tables: dict[str, Path], models_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["predict", "nothing@v1", "--data", str(tables["binary"]), "--out", "x.csv"])
    assert result.exit_code == 1 and "no model 'nothing'" in result.output
    model_id = train_model(model="logistic", data=tables["binary"], n_bootstrap=20).model_id
    lacking = tmp_path / "lacking.csv"
    pd.read_csv(tables["binary"]).drop(columns="x2").to_csv(lacking, index=False)
    result = runner.invoke(
        app, ["predict", model_id, "--data", str(lacking), "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 1 and "x2" in result.output
    assert not (tmp_path / "p.csv").exists()


def test_cleveland_from_shared_data(data_dir: Path, tmp_path: Path, models_dir: Path) -> None:
    source = data_dir / "tabular" / "processed.cleveland.data"
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    frame = load_cleveland(source)
    path = tmp_path / "cleveland.parquet"
    frame.to_parquet(path)
    result = runner.invoke(app, ["train", "logistic", "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = _last_json(result.stdout)
    assert payload["n_test"] == 61
    assert payload["metrics"]["auroc"]["value"] > 0.8  # type: ignore[index]


def test_params_choose_ridge_and_l1(tables: dict[str, Path], models_dir: Path) -> None:
    result = runner.invoke(
        app, ["train", "linear", "--data", str(tables["regression"]), "--param", "alpha=10"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "train",
            "logistic",
            "--data",
            str(tables["binary"]),
            "--param",
            "penalty=l1",
            "--param",
            "C=0.5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["models", "show", str(_last_json(result.stdout)["model_id"])]).stdout
    params = json.loads(shown[: shown.rindex("}") + 1])["params"]
    assert params["penalty"] == "l1" and params["C"] == 0.5
    for bad, message in (
        ("penalty=l3", "penalty must be one of"),
        ("depth=3", "bad parameter"),
        ("oops", "KEY=VALUE"),
    ):
        result = runner.invoke(app, ["train", "logistic", "--data", str(tables["binary"]), "--param", bad])
        assert result.exit_code == 1 and message in result.output, (bad, result.output)


def test_gbsg2_cox_from_shared_data(data_dir: Path, tmp_path: Path, models_dir: Path) -> None:
    from scipy.io import arff

    source = data_dir / "tabular" / "GBSG2.arff"
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    frame = pd.DataFrame(arff.loadarff(source)[0])
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].str.decode("utf-8")
    path = tmp_path / "gbsg2.csv"
    frame.to_csv(path, index=False)
    args = ["train", "cox", "--data", str(path), "--time", "time", "--event", "cens", "--test-size", "0.25"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = _last_json(result.stdout)
    assert payload["n_test"] == 172
    assert 0.6 < payload["metrics"]["c_index"]["value"] < 0.8  # type: ignore[index]
