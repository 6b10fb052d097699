"""``medfusion train | predict | evaluate | explain | models``: the tabular ML engine's commands.

Each command parses its options, calls one function of
:mod:`medfusion.services.training` (or :mod:`medfusion.services.explaining`) and
renders the result. ``--json`` prints one JSON
object as the last line of stdout; the progress bar goes to stderr.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from medfusion.errors import InvalidRequestError

if TYPE_CHECKING:  # the ML stack (pandas, scikit-learn) loads only when a command runs
    from medfusion.ml import Estimate

__all__ = ["evaluate", "explain", "models_app", "models_list", "models_show", "predict", "train"]

console = Console()
models_app = typer.Typer(help="Read the model registry.", no_args_is_help=True)


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "n/a"


def _metrics_table(title: str, metrics: dict[str, Estimate]) -> Table:
    table = Table(title=title)
    for column in ("metric", "value", "95% CI"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, estimate in metrics.items():
        table.add_row(name, _fmt(estimate.value), f"{_fmt(estimate.ci_low)} to {_fmt(estimate.ci_high)}")
    return table


def _parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are read as JSON (numbers, null, true) or else kept as text."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise InvalidRequestError(f"--param must be KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def train(
    model: str = typer.Argument(..., help="Model kind: linear, logistic, cox, cnn or rnn."),
    data: Path = typer.Option(
        ...,
        "--data",
        help="Training table (CSV or Parquet); cnn: MedMNIST-style .npz; rnn: UCR .tsv, stay "
        "folder / .tar.gz, or long CSV.",
    ),
    target: str = typer.Option("target", "--target", help="Outcome column (linear, logistic)."),
    time: str | None = typer.Option(None, "--time", help="Survival time column (cox)."),
    event: str | None = typer.Option(None, "--event", help="Event column, 1 = event, 0 = censored (cox)."),
    test_data: Path | None = typer.Option(None, "--test-data", help="Explicit test table."),
    test_size: float = typer.Option(0.2, "--test-size", help="Hold-out share when no --test-data."),
    seed: int = typer.Option(42, "--seed", help="Seed of the split, model, CV and bootstrap."),
    cv: int | None = typer.Option(
        None, "--cv", help="Also run K-fold cross-validation on the training rows."
    ),
    param: list[str] = typer.Option(
        None,
        "--param",
        help="Estimator parameter KEY=VALUE (repeatable): alpha=1.0 (ridge), penalty=l1, C=0.5.",
    ),
    device: str | None = typer.Option(
        None, "--device", help="Torch models: auto (CUDA when present, the default), cpu or cuda."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary as the last line."),
    quality: str = typer.Option(
        "warn", "--quality", help="Data-quality gate: off, warn (report) or strict (refuse on errors)."
    ),
    quality_config: Path | None = typer.Option(
        None, "--quality-config", help="TOML or JSON file overriding the quality catalogue."
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="rnn: outcome CSV for a stay folder / archive or a long CSV."
    ),
    id_col: str | None = typer.Option(None, "--id-col", help="rnn: id column of --labels."),
    test_labels: Path | None = typer.Option(
        None, "--test-labels", help="rnn: outcome CSV of --test-data (default: --labels)."
    ),
) -> None:
    """Train a model, evaluate it with bootstrap CIs, and save it to the registry."""
    from medfusion.cli._progress import progress_bar
    from medfusion.services.training import train_model

    params = _parse_params(param or [])
    if device is not None and model not in ("cnn", "rnn"):
        raise InvalidRequestError(f"--device applies to the torch models (cnn, rnn), not {model!r}")
    with progress_bar() as bar:
        task = bar.add_task(f"training {model}", total=None)
        result = train_model(
            model=model,
            data=data,
            target=target,
            time=time,
            event=event,
            test_data=test_data,
            test_size=test_size,
            seed=seed,
            cv=cv,
            params=params,
            progress=lambda step, done, total: bar.update(
                task, description=step, completed=done, total=total
            ),
            quality=quality,
            quality_config=quality_config,
            labels=labels,
            id_col=id_col,
            test_labels=test_labels,
            device=device or "auto",
        )
    for finding in result.quality_findings:
        # stderr, so that --json keeps its last stdout line to itself.
        typer.echo(
            f"quality {finding['severity']}: {finding['check']} on {finding['column'] or 'the table'}: "
            f"{finding['count']} ({finding['message']})",
            err=True,
        )
    if as_json:
        typer.echo(json.dumps(result.as_json()))
        return
    console.print(
        _metrics_table(f"{result.model_id}: {result.task}, {result.n_test} test rows", result.metrics)
    )
    assert result.record is not None
    console.print(f"saved [bold]{result.model_id}[/bold] in {result.seconds:.1f} s: {result.record.path}")
    console.print(f"report {result.record.path / 'report.html'}, card {result.record.path / 'model_card.md'}")


def predict(
    model_id: str = typer.Argument(..., help="Model id (NAME or NAME@vN)."),
    data: Path = typer.Option(
        ..., "--data", help="Table of rows to predict (CSV or Parquet), or a .npz of images."
    ),
    out: Path = typer.Option(..., "--out", help="CSV file to write predictions to."),
    explain: bool = typer.Option(
        False, "--explain", help="Add base_value and contribution_<feature> columns."
    ),
) -> None:
    """Predict with a saved model."""
    from medfusion.services.training import predict_with_model

    result = predict_with_model(model_id=model_id, data=data, out=out, explain=explain)
    console.print(f"{result.rows:,} predictions of {result.model_id} written to {result.out}")


def evaluate(
    model_id: str = typer.Argument(..., help="Model id (NAME or NAME@vN)."),
    data: Path = typer.Option(
        ..., "--data", help="Table with the outcome column(s), or a .npz of labelled images."
    ),
    seed: int = typer.Option(42, "--seed", help="Bootstrap seed."),
    labels: Path | None = typer.Option(None, "--labels", help="rnn: outcome CSV for folder data."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary as the last line."),
) -> None:
    """Evaluate a saved model on new data, with bootstrap CIs."""
    from medfusion.services.training import evaluate_model

    result = evaluate_model(model_id=model_id, data=data, seed=seed, labels=labels)
    if as_json:
        typer.echo(json.dumps(result.as_json()))
        return
    console.print(_metrics_table(f"{result.model_id} on {data.name} ({result.n_test} rows)", result.metrics))


def explain(
    model_id: str = typer.Argument(..., help="Model id (NAME or NAME@vN)."),
    data: Path = typer.Option(
        ..., "--data", help="Table of rows to explain (CSV or Parquet), or a .npz of images."
    ),
    rows: int | None = typer.Option(None, "--rows", help="Explain only the first N rows."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for PNG bar charts (tabular) or heat maps (cnn, rnn; default explain-NAME-vN).",
    ),
    method: str = typer.Option(
        "auto", "--method", help="auto/linear (exact coef x centred value) or shapley (model-agnostic)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Explain a saved model's predictions per feature, with global importance."""
    from medfusion.services.explaining import explain_model

    result = explain_model(
        model_id=model_id,
        data=data,
        rows=rows,
        out=out,
        method=method,  # type: ignore[arg-type]  # checked by the service
    )
    if as_json:
        typer.echo(json.dumps(result.as_json()))
        return
    if result.attributions is not None:  # images and sequences: attribution files per row
        payload = result.attributions
        ranked = sorted(payload["global_importance"].items(), key=lambda item: -item[1])
        if ranked:
            table = Table(title=f"{result.model_id}: mean |attribution| per variable")
            table.add_column("variable")
            table.add_column("importance", justify="right")
            for name, value in ranked[:20]:
                table.add_row(name, _fmt(value))
            console.print(table)
        rows_table = Table(title=f"{result.model_id}: {payload['method']}")
        for column in ("row", "class", "probability", "attribution file"):
            rows_table.add_column(column)
        for row in payload["rows"]:
            rows_table.add_row(
                str(row.get("id", row["row"])),
                str(row["class"]),
                _fmt(row["prediction"]),
                row.get("heatmap_file", row["attribution_file"]),
            )
        console.print(rows_table)
        return
    explanation = result.explanation
    assert explanation is not None
    table = Table(title=f"{result.model_id}: global importance ({explanation.output})")
    table.add_column("feature")
    table.add_column("mean |contribution|", justify="right")
    for name, value in sorted(explanation.global_importance().items(), key=lambda item: -item[1]):
        table.add_row(name, _fmt(value))
    console.print(table)
    if result.ratios is not None:
        ratios = Table(title="ratios with CIs (numeric features per SD)")
        for column in ("feature", *result.ratios.columns):
            ratios.add_column(str(column), justify="left" if column == "feature" else "right")
        for feature, values in result.ratios.iterrows():
            ratios.add_row(str(feature), *(_fmt(float(v)) for v in values))
        console.print(ratios)
    console.print(
        f"{len(explanation.predictions)} rows explained by {explanation.method}; "
        f"base value {explanation.base_value:.4g}"
        + (f"; {len(result.plots)} charts in {out}" if result.plots else "")
    )


def models_list() -> None:
    """List saved models."""
    from medfusion.services.training import list_models

    table = Table(title="models")
    for column in ("id", "model", "task", "created", "n_train", "headline"):
        table.add_column(column)
    for record in list_models():
        meta = record.metadata
        metric = next(iter(meta.get("metrics", {}).items()), None)
        headline = (
            f"{metric[0]} {metric[1]['value']:.3f}" if metric and metric[1]["value"] is not None else ""
        )
        table.add_row(
            record.model_id,
            meta["model"],
            meta["task"],
            meta["created"],
            str(meta["data"]["n_train"]),
            headline,
        )
    console.print(table)


def models_show(model_id: str = typer.Argument(..., help="Model id (NAME or NAME@vN).")) -> None:
    """Show a saved model's metadata (parameters, data fingerprint, metrics, libraries)."""
    from medfusion.services.training import show_model

    record = show_model(model_id=model_id)
    typer.echo(json.dumps(record.metadata, indent=2))
    console.print(f"folder {record.path}")
