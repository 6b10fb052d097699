"""Use cases of the ``rnn`` model: train, predict, evaluate and explain on sequence data.

The sequence readers (UCR ``.tsv``, PhysioNet-style stay folders or archives, long CSV)
replace the table reader; everything else (metrics with CIs, plots, the registry, the
model card) is shared with the tabular models. The grid of the training data (variables,
steps, resolution) is saved in the metadata so new data is read onto the same grid.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfusion.errors import DataError
from medfusion.ml import (
    Registry,
    SequenceData,
    cross_validate,
    evaluate,
    file_sha256,
    integrated_gradients,
    library_versions,
    make_estimator,
    metrics_json,
    plot_attribution,
    plot_evaluation,
    plot_training_curves,
    read_sequences,
    report_files,
    run_header,
)
from medfusion.services._files import write_atomic
from medfusion.services._steps import Steps

__all__ = [
    "evaluate_sequence_model",
    "explain_sequence_model",
    "predict_sequence_model",
    "train_sequence_model",
]

Progress = Callable[[str, int, int], None]


def _official_test(data: Path) -> Path | None:
    """UCR's ``NAME_TRAIN.tsv`` comes with ``NAME_TEST.tsv``: the official split."""
    if data.name.upper().endswith("_TRAIN.TSV"):
        sibling = data.with_name(data.name[: -len("_TRAIN.tsv")] + "_TEST" + data.suffix)
        if sibling.is_file():
            return sibling
    return None


def _split(data: SequenceData, *, test_size: float, seed: int) -> tuple[SequenceData, SequenceData]:
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise DataError(f"--test-size must be between 0 and 1, got {test_size}")
    assert data.y is not None
    try:
        train, test = train_test_split(
            np.arange(len(data.y)), test_size=test_size, random_state=seed, stratify=data.y
        )
    except ValueError as error:
        raise DataError(f"cannot make a stratified {test_size:g} hold-out split: {error}") from None
    return data.subset(np.sort(train)), data.subset(np.sort(test))


def _data_fingerprint(path: Path, data: SequenceData) -> str:
    if path.is_file():
        return file_sha256(path)
    return data.fingerprint()


def _read_like(meta: dict[str, Any], path: Path, labels: Path | None, *, labelled: bool) -> SequenceData:
    grid = meta["sequence"]
    info = meta["data"]
    return read_sequences(
        path,
        labels=labels,
        id_col=info.get("id_col"),
        target=info.get("target"),
        resolution=grid["resolution"] or 1.0,
        variables=grid["variables"] if grid["resolution"] is not None else None,
        n_steps=grid["n_steps"] if grid["resolution"] is not None else None,
        labelled=labelled,
    )


def _check_grid(fitted: Any, data: SequenceData) -> None:
    if data.X.shape[1:] != (fitted.n_steps_, fitted.n_variables_):
        raise DataError(
            f"the series have {data.X.shape[1]} steps of {data.X.shape[2]} variables but the model "
            f"was trained on {fitted.n_steps_} steps of {fitted.n_variables_}"
        )


def train_sequence_model(
    *,
    data: Path,
    labels: Path | None = None,
    id_col: str | None = None,
    target: str | None = None,
    test_data: Path | None = None,
    test_labels: Path | None = None,
    test_size: float = 0.2,
    seed: int = 42,
    cv: int | None = None,
    params: dict[str, Any] | None = None,
    device: str = "auto",
    resolution: float = 1.0,
    n_bootstrap: int = 500,
    registry: Registry,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train the ``rnn`` model on sequences, evaluate with CIs, save it; see ``train_model``.

    Returns the pieces :func:`medfusion.services.training.train_model` turns into a
    ``TrainResult``: ``record``, ``evaluation``, ``metrics``, ``task``, ``n_train``,
    ``n_test``, ``plots``.
    """
    started = clock.perf_counter()
    step = Steps(progress, 6 + (cv or 0))

    estimator = make_estimator("rnn", random_state=seed, **{"device": device, **(params or {})})
    full = read_sequences(data, labels=labels, id_col=id_col, target=target, resolution=resolution)
    assert full.y is not None and full.task is not None
    test_data = test_data or _official_test(data)
    if test_data is not None:
        train = full
        test = read_sequences(
            test_data,
            labels=test_labels or labels,
            id_col=id_col,
            target=target,
            resolution=resolution,
            variables=None if full.regular else full.variables,
            n_steps=None if full.regular else full.X.shape[1],
        )
        if test.X.shape[1:] != train.X.shape[1:]:
            raise DataError(
                f"the test series have shape {test.X.shape[1:]} (steps, variables) but the training "
                f"series {train.X.shape[1:]}"
            )
        split = f"explicit test data {test_data.name}"
    else:
        train, test = _split(full, test_size=test_size, seed=seed)
        split = f"stratified random hold-out, test_size={test_size}, seed={seed}"
    task = full.task
    assert train.y is not None and test.y is not None
    train_y, test_y = train.y, test.y
    step("data read and checked")
    cv_eval = None
    if cv:
        cv_eval = cross_validate(
            estimator,
            train.X,
            train_y,
            task=task,
            folds=cv,
            seed=seed,
            n_boot=n_bootstrap,
            progress=lambda: step("cross-validation fold"),
        )
    try:
        fitted = estimator.fit(train.X, train_y)
    except ValueError as error:
        raise DataError(f"the model cannot be fitted: {error}") from None
    step("model fitted")
    evaluation = evaluate(fitted, test.X, test_y, task=task, n_boot=n_bootstrap, seed=seed)
    step("metrics and bootstrap")
    plots = plot_evaluation(evaluation)
    plots["training_curves"] = plot_training_curves([h.as_dict() for h in fitted.histories_])
    explained = test.subset(np.arange(min(3, len(test_y))))
    explanation = integrated_gradients(fitted, explained.X, variables=full.variables, steps=32)
    for row, attribution in enumerate(explanation.attributions):
        plots[f"attribution_test_row_{row}"] = plot_attribution(
            attribution, full.variables, title=f"Integrated gradients, test series {explained.ids[row]}"
        )
    step("plots")
    fingerprint = _data_fingerprint(data, full)
    info = {
        "file": data.name,
        "fingerprint": fingerprint,
        "n_rows": len(full.y) + (len(test_y) if test_data is not None else 0),
        "n_train": len(train_y),
        "n_test": len(test_y),
        "split": split,
        "predictors": list(full.variables),
        "outcome": [target or "label"],
        "outcome_summary": _outcome_summary(train_y),
        "target": target,
        "id_col": id_col,
        "labels": labels.name if labels else None,
        "time": None,
        "event": None,
    }
    metadata: dict[str, Any] = {
        **run_header("rnn", fitted, task=task, seed=seed, n_bootstrap=n_bootstrap),
        "data": info,
        "sequence": {
            "kind": "regular" if full.regular else "irregular",
            "variables": list(full.variables),
            "n_steps": int(full.X.shape[1]),
            "resolution": full.resolution,
        },
        "metrics": metrics_json(evaluation.metrics),
        "cv_folds": cv,
        "cv_metrics": metrics_json(cv_eval.metrics) if cv_eval else {},
        "libraries": library_versions("torch"),
        "network": {
            "members": list(fitted.members_),
            "validation_scores": fitted.validation_scores_,
            "epochs": [len(h.epochs) for h in fitted.histories_],
            "samples_per_second": fitted.samples_per_second_,
            "device": device,
        },
        "predictors_note": (
            f"{len(full.variables)} variables on a grid of {full.X.shape[1]} steps"
            + (f" of {full.resolution:g} h" if full.resolution else "")
            + "; values standardised with the training mean and SD"
            + (
                "; missingness masks and time since the last observation are inputs (GRU-D style)."
                if fitted.irregular_
                else "."
            )
        ),
        "limitations": [
            "Validated internally on one data set only; performance on other sites, periods or "
            "populations is unknown.",
            "Probabilities are the mean of the ensemble members and are not recalibrated.",
            "Series are binned onto a regular grid; observations within one step are averaged.",
        ],
        "explanation_note": (
            f"Integrated gradients of the networks' probability on {len(explained.ids)} test series "
            f"(heat maps in the plots); largest completeness error "
            f"{float(explanation.completeness_error().max()):.2g}."
        ),
        "quality": {"mode": "off", "note": "the table checks do not apply to sequence data"},
    }

    files = report_files(plots)

    metadata["seconds"] = clock.perf_counter() - started
    record = registry.save(name=f"rnn-{fingerprint[:10]}", model=fitted, metadata=metadata, files=files)
    step("saved to the registry")
    metrics = dict(evaluation.metrics)
    if cv_eval:
        metrics.update({f"cv_{name}": value for name, value in cv_eval.metrics.items()})
    return {
        "record": record,
        "evaluation": evaluation,
        "metrics": metrics,
        "task": task,
        "n_train": len(train_y),
        "n_test": len(test_y),
        "plots": sorted(plots),
        "seconds": clock.perf_counter() - started,
    }


def _outcome_summary(y: np.ndarray) -> str:
    labels, counts = np.unique(y.astype(str), return_counts=True)
    return "Class counts: " + ", ".join(f"{lab} {n}" for lab, n in zip(labels, counts, strict=True)) + "."


def evaluate_sequence_model(
    fitted: Any, meta: dict[str, Any], data: Path, labels: Path | None, *, n_bootstrap: int, seed: int
) -> Any:
    """Metrics with CIs of a saved ``rnn`` model on labelled sequences; returns an ``Evaluation``."""
    sequences = _read_like(meta, data, labels, labelled=True)
    _check_grid(fitted, sequences)
    assert sequences.y is not None
    return evaluate(fitted, sequences.X, sequences.y, task=meta["task"], n_boot=n_bootstrap, seed=seed)


def predict_sequence_model(fitted: Any, meta: dict[str, Any], data: Path) -> pd.DataFrame:
    """Per-series ``id``, ``prediction`` and ``prob_<class>`` of a saved ``rnn`` model."""
    sequences = _read_like(meta, data, None, labelled=False)
    _check_grid(fitted, sequences)
    proba = fitted.predict_proba(sequences.X)
    result = pd.DataFrame({"row": np.arange(1, len(proba) + 1), "id": list(sequences.ids)})
    result["prediction"] = fitted.classes_[np.argmax(proba, axis=1)]
    for index, label in enumerate(fitted.classes_):
        result[f"prob_{label}"] = proba[:, index]
    return result


def explain_sequence_model(
    fitted: Any,
    meta: dict[str, Any],
    *,
    model_id: str,
    data: Path,
    rows: int | None,
    out: Path,
    steps: int = 64,
) -> dict[str, Any]:
    """Integrated gradients per series: ``attr_<row>.npy`` and ``attr_<row>.png`` under ``out``.

    Returns the ``medfusion explain --json`` object: rows carry ``attribution_file`` (the
    NPY, shape ``(n_steps, n_variables)``) and ``heatmap_file`` (the PNG).
    """
    import io

    sequences = _read_like(meta, data, None, labelled=False)
    _check_grid(fitted, sequences)
    if rows is not None:
        sequences = sequences.subset(np.arange(min(rows, len(sequences.ids))))
    variables = tuple(meta["sequence"]["variables"])
    explanation = integrated_gradients(fitted, sequences.X, variables=variables, steps=steps)
    out.mkdir(parents=True, exist_ok=True)
    json_rows = []
    step_label = (
        f"time step ({meta['sequence']['resolution']:g} h)" if meta["sequence"]["resolution"] else "time step"
    )
    for row, attribution in enumerate(explanation.attributions):
        npy, png = out / f"attr_{row}.npy", out / f"attr_{row}.png"
        buffer = io.BytesIO()
        np.save(buffer, attribution)
        write_atomic(npy, buffer.getvalue())
        title = f"Integrated gradients, series {sequences.ids[row]}"
        write_atomic(png, plot_attribution(attribution, variables, title=title, step_label=step_label))
        json_rows.append(
            {
                "row": row,
                "id": sequences.ids[row],
                "class": str(fitted.classes_[explanation.target[row]]),
                "prediction": float(explanation.predictions[row]),
                "baseline_prediction": float(explanation.baselines[row]),
                "attribution_sum": float(attribution.sum()),
                "attribution_file": str(npy),
                "heatmap_file": str(png),
            }
        )
    return {
        "model_id": model_id,
        "method": explanation.method,
        "base_value": float(np.mean(explanation.baselines)) if len(explanation.baselines) else 0.0,
        "output": "probability",
        "rows": json_rows,
        "global_importance": explanation.global_importance(),
    }
