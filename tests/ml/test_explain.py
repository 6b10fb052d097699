"""Explanations: local accuracy, agreement with closed forms, faithfulness, JSON and CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor
from typer.testing import CliRunner

from medfusion.cli.main import app
from medfusion.ml import (
    CoxModel,
    LinearModel,
    LogisticModel,
    background_reference,
    deletion_test,
    explain_linear,
    odds_ratios,
    reference_values,
    shapley_values,
)
from medfusion.services.explaining import explain_model
from medfusion.services.training import train_model
from tests.ml.conftest import binary_frame, regression_frame, survival_frame

runner = CliRunner()
JSON_KEYS = {"model_id", "method", "base_value", "output", "rows", "global_importance"}


def _fit(kind: str) -> tuple[Any, pd.DataFrame, Callable[[pd.DataFrame], np.ndarray]]:
    """A fitted model, its feature table and its explained output as a function."""
    if kind == "linear":
        frame = regression_frame()
        X = frame.drop(columns="target")
        model: Any = LinearModel().fit(X, frame["target"])
        return model, X, model.predict
    if kind == "logistic":
        frame = binary_frame()
        X = frame.drop(columns="target")
        model = LogisticModel(random_state=0).fit(X, frame["target"])
        return model, X, model.pipeline_.decision_function
    frame = survival_frame()
    X = frame.drop(columns=["time", "event"])
    model = CoxModel().fit(X, frame[["time", "event"]].to_numpy())
    return model, X, lambda d: np.log(model.predict(d))


@pytest.mark.parametrize(
    ("kind", "output"), [("linear", "value"), ("logistic", "log_odds"), ("cox", "log_partial_hazard")]
)
def test_linear_contributions_are_locally_accurate(kind: str, output: str) -> None:
    model, X, predict = _fit(kind)
    explanation = explain_linear(model, X)
    assert explanation.output == output
    assert explanation.features == tuple(X.columns)  # one-hot columns summed back to "site" etc.
    np.testing.assert_allclose(explanation.predictions, predict(X), atol=1e-9)
    assert explanation.max_local_error() < 1e-6
    assert explanation.contributions.shape == (len(X), X.shape[1])
    if kind == "cox":
        assert abs(explanation.base_value) < 1e-9  # lifelines centres on the training mean


def test_base_value_is_the_prediction_at_the_training_mean() -> None:
    frame = regression_frame()
    X = frame.drop(columns=["target", "site"])
    model = LinearModel().fit(X, frame["target"])
    explanation = explain_linear(model, X)
    at_mean = model.predict(pd.DataFrame([reference_values(model)]))
    assert explanation.base_value == pytest.approx(float(at_mean[0]), abs=1e-9)


def test_multiclass_logistic_explains_the_requested_class() -> None:
    frame = binary_frame(classes=3)
    X = frame.drop(columns="target")
    model = LogisticModel(random_state=0).fit(X, frame["target"])
    explanation = explain_linear(model, X, target_class=1)
    np.testing.assert_allclose(explanation.predictions, model.pipeline_.decision_function(X)[:, 1])
    assert explanation.max_local_error() < 1e-6
    with pytest.raises(ValueError, match="target_class"):
        explain_linear(model, X, target_class=7)


def test_odds_ratios_have_wald_intervals() -> None:
    model, _, _ = _fit("logistic")
    table = odds_ratios(model)
    assert list(table.columns) == ["odds_ratio", "ci_low", "ci_high"]
    assert ((table["ci_low"] < table["odds_ratio"]) & (table["odds_ratio"] < table["ci_high"])).all()
    assert table.loc["x1", "ci_low"] > 1 and table.loc["x2", "ci_high"] < 1  # the true directions


def test_exact_shapley_matches_the_linear_closed_form() -> None:
    model, X, predict = _fit("linear")
    # With the whole training table as background its mean is the training mean, so the
    # interventional Shapley values of a linear model are exactly coef x centred value.
    shap = shapley_values(predict, X.iloc[:8], X, max_background=len(X))
    closed = explain_linear(model, X.iloc[:8])
    assert shap.method == "shapley-exact"
    np.testing.assert_allclose(shap.contributions, closed.contributions, atol=1e-8)
    assert shap.base_value == pytest.approx(closed.base_value, abs=1e-8)


def _nonlinear(n: int = 300, width: int = 4) -> tuple[GradientBoostingRegressor, pd.DataFrame]:
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(n, width)), columns=[f"v{i}" for i in range(width)])
    y = np.sin(2 * X["v0"]) + X["v1"] * X["v2"] + 0.5 * X["v1"] ** 2 + rng.normal(0, 0.1, n)
    return GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0).fit(X, y), X


@pytest.mark.parametrize(("width", "max_exact", "method"), [(4, 10, "exact"), (12, 10, "permutation")])
def test_shapley_on_a_nonlinear_model_is_locally_accurate(width: int, max_exact: int, method: str) -> None:
    model, X = _nonlinear(width=width)
    explanation = shapley_values(model.predict, X.iloc[:5], X, max_exact=max_exact, seed=3)
    assert method in explanation.method
    gap = np.abs(explanation.predictions - explanation.base_value)
    error = np.abs(explanation.base_value + explanation.contributions.sum(axis=1) - explanation.predictions)
    assert (error <= 0.01 * np.maximum(gap, 1e-9)).all()
    # The irrelevant features get (almost) nothing.
    importance = explanation.global_importance()
    assert importance["v0"] > 5 * importance["v3"]


def test_sampled_shapley_is_seeded() -> None:
    model, X = _nonlinear(width=12)
    first = shapley_values(model.predict, X.iloc[:2], X, seed=5)
    again = shapley_values(model.predict, X.iloc[:2], X, seed=5)
    np.testing.assert_array_equal(first.contributions, again.contributions)


@pytest.mark.parametrize("kind", ["linear", "logistic", "cox"])
def test_deletion_margin_is_positive_for_linear_kinds(kind: str) -> None:
    model, X, predict = _fit(kind)
    explanation = explain_linear(model, X)
    result = deletion_test(predict, X, explanation.contributions, reference_values(model), k=1)
    assert result.margin > 0 and result.top_change > result.random_change


def test_deletion_margin_is_positive_for_the_shapley_explainer() -> None:
    model, X = _nonlinear(width=6)
    rows = X.iloc[:20]
    explanation = shapley_values(model.predict, rows, X, seed=0)
    result = deletion_test(model.predict, rows, explanation.contributions, background_reference(X), k=2)
    assert result.margin > 0


def test_explanation_json_is_stable_and_keyed_by_feature(models_dir: Path, tables: dict[str, Path]) -> None:
    trained = train_model(model="linear", data=tables["regression"], n_bootstrap=20)
    first = explain_model(model_id=trained.model_id, data=tables["regression"], rows=3).as_json()
    second = explain_model(model_id=trained.model_id, data=tables["regression"], rows=3).as_json()
    assert json.dumps(first) == json.dumps(second)
    assert set(first) == JSON_KEYS
    assert [row["row"] for row in first["rows"]] == [0, 1, 2]
    for row in first["rows"]:
        assert list(row["contributions"]) == ["age", "dose", "site"]
        total = first["base_value"] + sum(row["contributions"].values())
        assert total == pytest.approx(row["prediction"], abs=1e-6)
    assert list(first["global_importance"]) == ["age", "dose", "site"]


def _last_json(stdout: str) -> dict[str, Any]:
    payload = json.loads(stdout.strip().splitlines()[-1])
    assert isinstance(payload, dict)
    return payload


@pytest.mark.parametrize(
    ("task", "args", "output"),
    [
        ("binary", ["logistic"], "log_odds"),
        ("survival", ["cox", "--time", "time", "--event", "event"], "log_partial_hazard"),
    ],
)
def test_cli_explain_json_and_charts(
    task: str, args: list[str], output: str, tables: dict[str, Path], models_dir: Path, tmp_path: Path
) -> None:
    trained = runner.invoke(app, ["train", *args, "--data", str(tables[task]), "--json"])
    assert trained.exit_code == 0, trained.output
    model_id = _last_json(trained.stdout)["model_id"]
    out = tmp_path / "charts"
    command = ["explain", model_id, "--data", str(tables[task]), "--rows", "4", "--out", str(out), "--json"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    payload = _last_json(result.stdout)
    assert set(payload) == JSON_KEYS and payload["output"] == output and len(payload["rows"]) == 4
    assert {p.name for p in out.glob("*.png")} == {"global_importance.png"} | {
        f"row_{i}.png" for i in range(4)
    }
    again = runner.invoke(app, command)
    assert again.stdout.strip().splitlines()[-1] == result.stdout.strip().splitlines()[-1]
    table = runner.invoke(app, ["explain", model_id, "--data", str(tables[task]), "--rows", "2"])
    assert table.exit_code == 0 and "ratios with CIs" in table.stdout


def test_cli_explain_shapley_on_calibrated_probabilities(tables: dict[str, Path], models_dir: Path) -> None:
    trained = train_model(model="logistic", data=tables["binary"], n_bootstrap=20)
    command = ["explain", trained.model_id, "--data", str(tables["binary"]), "--rows", "3"]
    result = runner.invoke(app, [*command, "--method", "shapley", "--json"])
    assert result.exit_code == 0, result.output
    payload = _last_json(result.stdout)
    assert payload["output"] == "probability" and payload["method"] == "shapley-exact"
    for row in payload["rows"]:
        total = payload["base_value"] + sum(row["contributions"].values())
        assert total == pytest.approx(row["prediction"], abs=0.01 * abs(row["prediction"]))


def test_cli_explain_bad_input(tables: dict[str, Path], models_dir: Path, tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["explain", "nope@v1", "--data", str(tables["binary"])])
    assert unknown.exit_code == 1 and "error:" in unknown.output
    trained = train_model(model="logistic", data=tables["binary"], n_bootstrap=20)
    lacking = tmp_path / "lacking.csv"
    pd.read_csv(tables["binary"]).drop(columns="x2").to_csv(lacking, index=False)
    missing = runner.invoke(app, ["explain", trained.model_id, "--data", str(lacking)])
    assert missing.exit_code == 1 and "x2" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    bad_method = runner.invoke(
        app, ["explain", trained.model_id, "--data", str(tables["binary"]), "--method", "magic"]
    )
    assert bad_method.exit_code == 1 and "--method" in bad_method.output
    no_rows = runner.invoke(
        app, ["explain", trained.model_id, "--data", str(tables["binary"]), "--rows", "0"]
    )
    assert no_rows.exit_code == 1 and "--rows" in no_rows.output


def test_cli_predict_explain_adds_contribution_columns(
    tables: dict[str, Path], models_dir: Path, tmp_path: Path
) -> None:
    trained = train_model(model="linear", data=tables["regression"], n_bootstrap=20)
    out = tmp_path / "pred.csv"
    result = runner.invoke(
        app,
        ["predict", trained.model_id, "--data", str(tables["regression"]), "--out", str(out), "--explain"],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    parts = ["contribution_age", "contribution_dose", "contribution_site"]
    assert set(parts) <= set(table.columns)
    np.testing.assert_allclose(table["explained_value"], table["prediction"], atol=1e-9)
    np.testing.assert_allclose(table["base_value"] + table[parts].sum(axis=1), table["prediction"], atol=1e-6)


def test_training_report_carries_the_explanation(tables: dict[str, Path], models_dir: Path) -> None:
    trained = train_model(model="cox", data=tables["survival"], time="time", event="event", n_bootstrap=20)
    assert trained.record is not None
    summary = trained.record.metadata["explanation"]
    assert summary["output"] == "log_partial_hazard" and len(summary["rows"]) == 3
    assert list(summary["global_importance"]) == ["x1", "x2", "stage"]
    report = (trained.record.path / "report.html").read_text()
    assert "<h2>Explanations</h2>" in report and "mean |contribution|" in report


def test_cox_explanation_maps_logged_columns_back() -> None:
    frame = survival_frame()
    frame["nodes"] = np.round(np.random.default_rng(2).lognormal(1.0, 1.0, len(frame)))
    X = frame.drop(columns=["time", "event"])
    model = CoxModel().fit(X, frame[["time", "event"]].to_numpy())
    assert model.log_columns_ == ["nodes"]
    explanation = explain_linear(model, X)
    assert explanation.features == tuple(X.columns)
    np.testing.assert_allclose(explanation.predictions, np.log(model.predict(X)), atol=1e-9)
    assert explanation.max_local_error() < 1e-6
    # The deletion test's reference for a logged column is in the column's own units.
    expected = np.expm1(np.log1p(X["nodes"]).mean())
    assert reference_values(model)["nodes"] == pytest.approx(expected)
