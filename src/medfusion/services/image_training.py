"""Use cases of the image models: train a ``cnn`` on a MedMNIST-style ``.npz``, predict, evaluate.

:mod:`medfusion.services.training` dispatches here for ``--model cnn`` (or a ``.npz``
file). The flow is the tabular one: every input check happens before anything is
written, and the registry write is atomic. Training uses the file's ``train`` split, its
``val`` split for early stopping, and its official ``test`` split for the metrics (an
explicit ``--test-data`` file, or a stratified hold-out when the file has no test split).
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from medfusion.errors import DataError, InvalidRequestError
from medfusion.ml import (
    ImageSet,
    Registry,
    describe_images,
    evaluate,
    file_sha256,
    library_versions,
    make_estimator,
    metrics_json,
    plot_evaluation,
    plot_training_curves,
    read_image_split,
    read_image_splits,
    report_files,
    run_header,
)
from medfusion.quality import CATALOGUE_VERSION
from medfusion.services._steps import Steps

if TYPE_CHECKING:  # torch loads only when an image model is trained or used
    from medfusion.ml import CNNClassifier

__all__ = ["evaluate_images", "image_model_details", "predict_images", "train_images"]

Progress = Callable[[str, int, int], None]


def _task(labels: np.ndarray) -> str:
    classes = np.unique(labels.astype(str))
    if len(classes) < 2:
        raise DataError("the training labels have a single class; a classifier needs two or more")
    return "binary" if len(classes) == 2 else "multiclass"


def _labels(part: ImageSet) -> np.ndarray:
    assert part.labels is not None  # training and test splits are read with labels required
    return part.labels


def _holdout(train: ImageSet, test_size: float, seed: int) -> tuple[ImageSet, ImageSet]:
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise DataError(f"--test-size must be between 0 and 1, got {test_size}")
    assert train.labels is not None
    try:
        keep, held = train_test_split(
            np.arange(len(train)), test_size=test_size, random_state=seed, stratify=train.labels
        )
    except ValueError as error:
        raise DataError(f"cannot make a stratified {test_size:g} hold-out split: {error}") from None
    return (
        ImageSet(train.images[keep], train.labels[keep]),
        ImageSet(train.images[held], train.labels[held]),
    )


def image_model_details(model: CNNClassifier) -> dict[str, Any]:
    """Architecture, size and training curves of a fitted CNN, for metadata and cards."""
    n_parameters = sum(int(p.numel()) for p in model.modules_[0].parameters())
    kernels = getattr(model, "kernels_", None)
    return {
        "architecture": (
            f"{model.n_members} x ResNetSmall (3 residual stages, widths {model.width}/"
            f"{2 * model.width}/{4 * model.width}"
            + (f", input upsampled {model.upsample}x" if getattr(model, "upsample", 1) > 1 else "")
            + f"), {n_parameters:,} weights each"
            + (
                f"; mixed {1 - model.kernel_weight:g} / {model.kernel_weight:g} with ROCKET random "
                f"kernels over the image rows ({kernels.n_kernels:,} kernels)"
                if kernels is not None
                else ""
            )
        ),
        "n_parameters": n_parameters,
        "training": [h.as_dict() for h in model.histories_],
    }


def train_images(
    *,
    model: str,
    data: Path,
    test_data: Path | None,
    test_size: float,
    seed: int,
    cv: int | None,
    params: dict[str, Any],
    n_bootstrap: int,
    registry: Registry,
    progress: Progress | None,
    quality: str,
) -> dict[str, Any]:
    """Train and save an image model; the pieces :class:`~medfusion.services.training.TrainResult` needs.

    Raises
    ------
    DataError
        Unreadable file, images of the wrong shape, labels that do not match, one class.
    InvalidRequestError
        A model kind that does not take images, ``--cv`` (not offered for CNNs), or a bad
        parameter.
    """
    started = clock.perf_counter()
    if model != "cnn":
        raise InvalidRequestError(f"model {model!r} does not take images; use --model cnn for a .npz file")
    if cv:
        raise InvalidRequestError("--cv is not offered for the cnn model; it uses the validation split")
    if quality not in ("off", "warn", "strict"):
        raise InvalidRequestError(f"--quality must be one of off, warn, strict, got {quality!r}")
    try:
        estimator = cast("CNNClassifier", make_estimator(model, random_state=seed, **params))
        estimator._check_params()
    except ValueError as error:
        raise InvalidRequestError(f"bad parameter for model {model!r}: {error}") from None
    splits = read_image_splits(data)
    train = splits["train"]
    assert train.labels is not None
    task = _task(train.labels)
    if test_data is not None:
        test = read_image_split(test_data, labels=True)
        if test.images.shape[1:] != train.images.shape[1:]:
            raise DataError(
                f"{test_data.name} has images of shape {test.images.shape[1:]}, "
                f"the training images {train.images.shape[1:]}"
            )
        split = f"explicit test file {test_data.name}"
    elif "test" in splits:
        test = splits["test"]
        split = "the file's official test split"
    else:
        train, test = _holdout(train, test_size, seed)
        split = f"stratified random hold-out, test_size={test_size}, seed={seed}"
    assert test.labels is not None
    unknown = sorted(set(test.labels.astype(str)) - set(_labels(train).astype(str)))
    if unknown:
        raise DataError(f"the test labels hold classes absent from training: {', '.join(unknown)}")
    validation = splits.get("val")
    step = Steps(progress, estimator.n_members * estimator.max_epochs + 4)

    def epoch(member: int, record: Any) -> None:
        score = "" if record.val_score is None else f", val auroc {record.val_score:.3f}"
        step(f"member {member + 1} epoch {record.epoch}: loss {record.train_loss:.3f}{score}")

    step("images read and checked")
    try:
        fitted = estimator.fit(
            train.images,
            train.labels,
            validation_data=None if validation is None else (validation.images, validation.labels),
            progress=epoch,
        )
    except ValueError as error:
        raise DataError(f"the model cannot be fitted: {error}") from None
    step.done = step.total - 3  # early stopping may end before max_epochs
    evaluation = evaluate(fitted, test.images, test.labels, task=task, n_boot=n_bootstrap, seed=seed)  # type: ignore[arg-type]
    step("metrics and bootstrap")
    plots = plot_evaluation(evaluation)
    plots["training_curves"] = plot_training_curves([h.as_dict() for h in fitted.histories_])
    step("plots")
    labels, counts = np.unique(_labels(train).astype(str), return_counts=True)
    shape = describe_images(train.images)
    metadata: dict[str, Any] = {
        **run_header(model, fitted, task=task, seed=seed, n_bootstrap=n_bootstrap),
        "data": {
            "file": data.name,
            "fingerprint": file_sha256(data),
            "kind": "images",
            "image_shape": list(fitted.image_shape_),
            "n_rows": sum(len(s) for s in splits.values()),
            "n_train": len(train),
            "n_val": 0 if validation is None else len(validation),
            "n_test": len(test),
            "split": split
            + (
                "; early stopping on the file's val split"
                if validation is not None
                else f"; early stopping on a {estimator.validation_fraction:g} share of the training images"
            ),
            "predictors": [f"pixels of {shape} images"],
            "outcome": ["label"],
            "outcome_summary": "Class counts (training): "
            + ", ".join(f"{lab} {n}" for lab, n in zip(labels, counts, strict=True))
            + ".",
            "target": "label",
            "time": None,
            "event": None,
        },
        "metrics": metrics_json(evaluation.metrics),
        "cv_folds": None,
        "cv_metrics": {},
        "libraries": library_versions("torch"),
        "predictors_note": (
            "Intensities scaled to 0-1 and standardised per channel with the training mean and SD."
        ),
        **image_model_details(fitted),
        "limitations": [
            "Validated on one data set's test split only; performance on images from other "
            "scanners, sites or populations is unknown.",
            (
                "Probabilities are the members' mean softmax outputs, recalibrated on the "
                "validation images (Platt scaling); see the calibration plot."
                if fitted.calibration_ is not None
                else "Probabilities are the members' mean softmax outputs (label-smoothed "
                "training), not recalibrated; see the calibration plot."
            ),
            "Grad-CAM maps show where the network looked, not why; they are coarse (the last "
            "stage's resolution) and no substitute for validation.",
        ],
        "quality": {
            "mode": "off",
            "catalogue_version": CATALOGUE_VERSION,
            "findings": [],
            "note": "the data-quality catalogue checks tables; images were checked for shape and values only",
        },
    }
    metadata["explanation"] = _explanation_summary(fitted, test.images)

    files = report_files(plots)

    metadata["seconds"] = clock.perf_counter() - started
    record = registry.save(
        name=f"{model}-{metadata['data']['fingerprint'][:10]}", model=fitted, metadata=metadata, files=files
    )
    step("saved to the registry")
    return {
        "record": record,
        "fitted": fitted,
        "task": task,
        "n_train": len(train),
        "n_test": len(test),
        "evaluation": evaluation,
        "metrics": dict(evaluation.metrics),
        "plots": sorted(plots),
        "seconds": clock.perf_counter() - started,
    }


def _explanation_summary(model: CNNClassifier, images: np.ndarray, examples: int = 3) -> dict[str, Any]:
    """Grad-CAM of a few test images for the report: where the network looked."""
    from medfusion.ml import grad_cam

    cams = grad_cam(model, images[:examples])
    return {
        "method": "grad_cam",
        "output": "probability",
        "n_rows": int(min(examples, len(images))),
        "rows": [
            {
                "row": i + 1,
                "prediction": float(p),
                "peak": [int(v) for v in np.unravel_index(c.argmax(), c.shape)],
            }
            for i, (c, p) in enumerate(zip(cams.maps, cams.scores, strict=True))
        ],
    }


def predict_images(model: CNNClassifier, data: Path) -> pd.DataFrame:
    """``row``, ``prediction`` and ``prob_<class>`` for the images of a file."""
    images = read_image_split(data).images
    try:
        proba = model.predict_proba(images)
    except ValueError as error:
        raise DataError(str(error)) from None
    result = pd.DataFrame({"row": np.arange(1, len(images) + 1)})
    result["prediction"] = model.classes_[np.argmax(proba, axis=1)]
    for index, label in enumerate(model.classes_):
        result[f"prob_{label}"] = proba[:, index]
    return result


def evaluate_images(model: CNNClassifier, data: Path, *, task: str, n_bootstrap: int, seed: int) -> Any:
    """Metrics with CIs of a saved image model on a labelled file (``images`` or ``test_*``)."""
    part = read_image_split(data, labels=True)
    try:
        model.transform_images(part.images[:1])
    except ValueError as error:
        raise DataError(str(error)) from None
    return evaluate(model, part.images, part.labels, task=task, n_boot=n_bootstrap, seed=seed)  # type: ignore[arg-type]
