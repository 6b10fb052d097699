"""Use cases of the ML engine: train, predict, evaluate, and read the model registry.

Everything that can be wrong with the input (missing column, non-numeric value, one
class, empty file, a model that cannot be fitted) is checked and raised as a
:class:`~medfusion.errors.DataError` before anything is written to the registry; the
registry write itself is atomic.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfusion.config import get_settings
from medfusion.errors import DataError, InvalidRequestError
from medfusion.ml import (
    Estimate,
    Evaluation,
    ModelRecord,
    Registry,
    TabularData,
    cross_validate,
    evaluate,
    file_sha256,
    library_versions,
    make_estimator,
    metrics_json,
    model_details,
    model_features,
    outcome_summary,
    plot_evaluation,
    prepare,
    read_table,
    report_files,
    run_header,
)
from medfusion.quality import CATALOGUE_VERSION
from medfusion.services._files import write_atomic
from medfusion.services._steps import Steps
from medfusion.services.quality import quality_gate

__all__ = [
    "EvaluateResult",
    "PredictResult",
    "TrainResult",
    "evaluate_model",
    "list_models",
    "predict_with_model",
    "show_model",
    "train_model",
]

Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class EvaluateResult:
    """Metrics of a model on a data set, in the ``--json`` shape."""

    model_id: str
    model: str
    task: str
    n_train: int
    n_test: int
    seconds: float
    metrics: dict[str, Estimate]
    evaluation: Evaluation | None = None

    def as_json(self) -> dict[str, Any]:
        """The machine-readable summary printed by ``--json``."""
        return {
            "model_id": self.model_id,
            "model": self.model,
            "task": self.task,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "seconds": round(self.seconds, 3),
            "metrics": metrics_json(self.metrics),
        }


@dataclass(slots=True)
class TrainResult(EvaluateResult):
    """A trained and saved model: its record and metrics (test and, with ``cv``, ``cv_*``)."""

    record: ModelRecord | None = None
    plots: list[str] = field(default_factory=list)
    quality_findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PredictResult:
    """Where predictions were written and how many rows."""

    model_id: str
    out: Path
    rows: int


def _registry(registry_dir: Path | None) -> Registry:
    return Registry(registry_dir or get_settings().models_dir)


def _split(data: TabularData, *, test_size: float, seed: int) -> tuple[TabularData, TabularData]:
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise DataError(f"--test-size must be between 0 and 1, got {test_size}")
    stratify = None if data.task == "regression" else data.y[:, 1] if data.task == "survival" else data.y
    try:
        train, test = train_test_split(
            np.arange(len(data.y)), test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as error:
        raise DataError(f"cannot make a stratified {test_size:g} hold-out split: {error}") from None

    def part(rows: np.ndarray) -> TabularData:
        return TabularData(data.X.iloc[rows].reset_index(drop=True), data.y[rows], data.task, data.outcome)

    return part(train), part(test)


def _fit(estimator: Any, data: TabularData) -> Any:
    try:
        return estimator.fit(data.X, data.y)
    except ValueError as error:
        raise DataError(f"the model cannot be fitted: {error}") from None


def train_model(
    *,
    model: str,
    data: Path,
    target: str = "target",
    time: str | None = None,
    event: str | None = None,
    test_data: Path | None = None,
    test_size: float = 0.2,
    seed: int = 42,
    cv: int | None = None,
    params: dict[str, Any] | None = None,
    n_bootstrap: int = 500,
    registry_dir: Path | None = None,
    progress: Progress | None = None,
    quality: str = "warn",
    quality_config: Path | None = None,
    labels: Path | None = None,
    id_col: str | None = None,
    test_labels: Path | None = None,
    device: str = "auto",
) -> TrainResult:
    """Train a model on a table, evaluate it with CIs, and save it with report and card.

    Parameters
    ----------
    model
        ``linear``, ``logistic``, ``cox``, ``cnn`` or ``rnn``.
    data
        CSV or Parquet training table; for ``cnn`` a MedMNIST-style ``.npz`` (see
        :mod:`medfusion.services.image_training`); for ``rnn`` sequences (see
        :mod:`medfusion.services.sequence_training`).
    target, time, event
        Outcome column(s): ``target`` for linear/logistic, ``time`` and ``event`` for cox.
    test_data
        Explicit test table; otherwise a stratified hold-out of ``test_size``.
    seed
        Seeds the split, the estimator, cross-validation and the bootstrap.
    cv
        Also report ``cv``-fold cross-validation on the training rows (``cv_*`` metrics).
    params
        Estimator parameters.
    n_bootstrap
        Bootstrap resamples for the confidence intervals.
    registry_dir
        Registry folder (default ``Settings.models_dir``).
    progress
        Called with ``(step, done, total)``.
    quality, quality_config
        Data-quality gate (``off``, ``warn``, ``strict``) and an optional catalogue override;
        see :func:`medfusion.services.quality.quality_gate`. Not applied to sequence data.
    labels, id_col, test_labels
        ``rnn`` on a stay folder / archive or a long CSV: the outcome file, its id column
        (``target`` names the outcome column) and the test set's outcome file.
    device
        ``cnn`` and ``rnn``: ``auto``, ``cpu`` or ``cuda``.

    Raises
    ------
    DataError
        Unusable input, or (``quality="strict"``) an error-severity quality check failed;
        nothing is written.
    """
    if model == "cnn" or (model != "rnn" and data.suffix.lower() == ".npz"):
        from medfusion.services.image_training import train_images

        return _result(
            model,
            train_images(
                model=model,
                data=data,
                test_data=test_data,
                test_size=test_size,
                seed=seed,
                cv=cv,
                params={"device": device, **(params or {})},
                n_bootstrap=n_bootstrap,
                registry=_registry(registry_dir),
                progress=progress,
                quality=quality,
            ),
        )
    if model == "rnn":
        from medfusion.services.sequence_training import train_sequence_model

        return _result(
            model,
            train_sequence_model(
                data=data,
                labels=labels,
                id_col=id_col,
                target=None if target == "target" and labels is None else target,
                test_data=test_data,
                test_labels=test_labels,
                test_size=test_size,
                seed=seed,
                cv=cv,
                params=params,
                device=device,
                n_bootstrap=n_bootstrap,
                registry=_registry(registry_dir),
                progress=progress,
            ),
        )
    started = clock.perf_counter()
    step = Steps(progress, 6 + (cv or 0))

    estimator = make_estimator(model, random_state=seed, **(params or {}))
    frame = read_table(data)
    checked = quality_gate(frame, mode=quality, config=quality_config)
    findings = [f.to_dict(examples=3, values=False) for f in checked.findings] if checked else []
    full = prepare(frame, model=model, target=target, time=time, event=event)
    if test_data is not None:
        train = full
        test = prepare(read_table(test_data), model=model, target=target, time=time, event=event)
        missing = sorted(set(train.X.columns) - set(test.X.columns))
        if missing:
            raise DataError(f"the test data lacks feature columns: {', '.join(missing)}")
        test = TabularData(test.X[list(train.X.columns)], test.y, test.task, test.outcome)
        split = f"explicit test file {test_data.name}"
    else:
        train, test = _split(full, test_size=test_size, seed=seed)
        kind = "random" if full.task == "regression" else "stratified random"
        split = f"{kind} hold-out, test_size={test_size}, seed={seed}"
    step("data read and checked")
    cv_eval = None
    if cv:
        cv_eval = cross_validate(
            estimator,
            train.X,
            train.y,
            task=train.task,
            folds=cv,
            seed=seed,
            n_boot=n_bootstrap,
            progress=lambda: step("cross-validation fold"),
        )
    fitted = _fit(estimator, train)
    step("model fitted")
    evaluation = evaluate(fitted, test.X, test.y, task=train.task, n_boot=n_bootstrap, seed=seed)
    step("metrics and bootstrap")
    plots = plot_evaluation(evaluation)
    step("plots")
    metadata: dict[str, Any] = {
        **run_header(model, fitted, task=train.task, seed=seed, n_bootstrap=n_bootstrap),
        "data": {
            "file": data.name,
            "fingerprint": file_sha256(data),
            "n_rows": len(full.y) + (len(test.y) if test_data is not None else 0),
            "n_train": len(train.y),
            "n_test": len(test.y),
            "split": split,
            "predictors": list(train.X.columns),
            "outcome": list(train.outcome),
            "outcome_summary": outcome_summary(train),
            "target": target,
            "time": time,
            "event": event,
        },
        "metrics": metrics_json(evaluation.metrics),
        "cv_folds": cv,
        "cv_metrics": metrics_json(cv_eval.metrics) if cv_eval else {},
        "libraries": library_versions(),
        **model_details(model, fitted),
        "explanation": _explanation_summary(fitted, test.X),
        "quality": {"mode": quality, "catalogue_version": CATALOGUE_VERSION, "findings": findings},
    }
    if train.task == "survival":
        events = train.y[train.y[:, 1] == 1, 0]
        metadata["survival_times"] = np.unique(np.percentile(events, [25, 50, 75])).tolist()

    files = report_files(plots)

    metadata["seconds"] = clock.perf_counter() - started
    record = _registry(registry_dir).save(
        name=f"{model}-{metadata['data']['fingerprint'][:10]}", model=fitted, metadata=metadata, files=files
    )
    step("saved to the registry")
    metrics = dict(evaluation.metrics)
    if cv_eval:
        metrics.update({f"cv_{name}": value for name, value in cv_eval.metrics.items()})
    return TrainResult(
        record.model_id,
        model,
        train.task,
        len(train.y),
        len(test.y),
        clock.perf_counter() - started,
        metrics,
        evaluation,
        record,
        sorted(plots),
        findings,
    )


def _result(model: str, out: dict[str, Any]) -> TrainResult:
    """The ``TrainResult`` of an image or sequence training run (see their services)."""
    return TrainResult(
        out["record"].model_id,
        model,
        out["task"],
        out["n_train"],
        out["n_test"],
        out["seconds"],
        out["metrics"],
        out["evaluation"],
        out["record"],
        out["plots"],
    )


def _explanation_summary(model: Any, rows: pd.DataFrame, examples: int = 3) -> dict[str, Any]:
    """Global importance on the test rows and a few explained example rows, for the report."""
    from medfusion.services.explaining import explain_rows

    summary = explain_rows(model, rows).as_json("")
    del summary["model_id"]
    summary["rows"] = summary["rows"][:examples]
    summary["n_rows"] = len(rows)
    return summary


def evaluate_model(
    *,
    model_id: str,
    data: Path,
    n_bootstrap: int = 500,
    seed: int = 42,
    registry_dir: Path | None = None,
    labels: Path | None = None,
) -> EvaluateResult:
    """Metrics with CIs of a saved model on a new table (which must hold the outcome).

    ``rnn`` models read sequences instead, with ``labels`` for the folder / long-CSV layouts.
    """
    started = clock.perf_counter()
    fitted, record = _registry(registry_dir).load(model_id)
    meta = record.metadata
    info = meta["data"]
    if info.get("kind") == "images":
        from medfusion.services.image_training import evaluate_images

        evaluation = evaluate_images(fitted, data, task=meta["task"], n_bootstrap=n_bootstrap, seed=seed)
    elif meta["model"] == "rnn":
        from medfusion.services.sequence_training import evaluate_sequence_model

        evaluation = evaluate_sequence_model(fitted, meta, data, labels, n_bootstrap=n_bootstrap, seed=seed)
    else:
        evaluation = None
    if evaluation is not None:
        return EvaluateResult(
            record.model_id,
            meta["model"],
            meta["task"],
            info["n_train"],
            len(evaluation.y),
            clock.perf_counter() - started,
            evaluation.metrics,
            evaluation,
        )
    prepared = prepare(
        read_table(data), model=meta["model"], target=info["target"], time=info["time"], event=info["event"]
    )
    X = model_features(fitted, prepared.X, prepared.outcome)
    evaluation = evaluate(fitted, X, prepared.y, task=meta["task"], n_boot=n_bootstrap, seed=seed)
    return EvaluateResult(
        record.model_id,
        meta["model"],
        meta["task"],
        info["n_train"],
        len(prepared.y),
        clock.perf_counter() - started,
        evaluation.metrics,
        evaluation,
    )


def predict_with_model(
    *, model_id: str, data: Path, out: Path, explain: bool = False, registry_dir: Path | None = None
) -> PredictResult:
    """Write per-row predictions of a saved model to a CSV file (atomically).

    Regression gives ``prediction``; classification ``prediction`` and ``prob_<class>``;
    survival ``risk`` and ``survival_t<time>`` at the training event-time quartiles.
    With ``explain``, the exact explanation follows: ``explained_<output>`` (the output
    explained, e.g. ``explained_log_odds``), ``base_value`` and ``contribution_<feature>``
    per input feature, which sum to it.
    """
    fitted, record = _registry(registry_dir).load(model_id)
    meta = record.metadata
    info = meta["data"]
    if info.get("kind") == "images" or meta["model"] == "rnn":
        if explain:
            raise InvalidRequestError(
                f"--explain on predict adds per-feature columns for tabular models; for {meta['model']} "
                "use medfusion explain MODEL --data FILE --out DIR"
            )
        if info.get("kind") == "images":
            from medfusion.services.image_training import predict_images

            table = predict_images(fitted, data)
        else:
            from medfusion.services.sequence_training import predict_sequence_model

            table = predict_sequence_model(fitted, meta, data)
        _write_csv(table, out)
        return PredictResult(record.model_id, out, len(table))
    X = model_features(fitted, read_table(data), tuple(c for c in info["outcome"] if c))
    result = pd.DataFrame({"row": np.arange(1, len(X) + 1)})
    if meta["task"] == "regression":
        result["prediction"] = fitted.predict(X)
    elif meta["task"] == "survival":
        result["risk"] = fitted.predict(X)
        times = meta.get("survival_times", [])
        curves = fitted.predict_survival_function(X, times)
        for index, t in enumerate(times):
            result[f"survival_t{t:g}"] = curves[:, index]
    else:
        proba = fitted.predict_proba(X)
        result["prediction"] = fitted.classes_[np.argmax(proba, axis=1)]
        for index, label in enumerate(fitted.classes_):
            result[f"prob_{label}"] = proba[:, index]
    if explain:
        from medfusion.services.explaining import explain_rows

        explanation = explain_rows(fitted, X)
        result[f"explained_{explanation.output}"] = explanation.predictions
        result["base_value"] = explanation.base_value
        for index, name in enumerate(explanation.features):
            result[f"contribution_{name}"] = explanation.contributions[:, index]
    _write_csv(result, out)
    return PredictResult(record.model_id, out, len(result))


def _write_csv(result: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, result.to_csv(index=False).encode())


def list_models(*, registry_dir: Path | None = None) -> list[ModelRecord]:
    """Every saved model version."""
    return _registry(registry_dir).list()


def show_model(*, model_id: str, registry_dir: Path | None = None) -> ModelRecord:
    """One model version's record (``NAME`` means the latest version)."""
    return _registry(registry_dir).get(model_id)
