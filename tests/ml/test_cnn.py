"""The CNN estimator, its torch base, the image reader, and Grad-CAM / occlusion."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimators_unfitted,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)
from torch import nn

from medfusion.errors import DataError, InvalidRequestError
from medfusion.ml import (
    CNNClassifier,
    FitConfig,
    as_images,
    fit_loop,
    grad_cam,
    image_deletion_test,
    make_estimator,
    occlusion,
    read_image_split,
    read_image_splits,
    resolve_device,
)
from medfusion.ml._cnn import MAX_CALIBRATION_SLOPE, _fit_calibration, _rows
from medfusion.ml._torch import batches, seeded

# Small and quick: upsample=1 halves the cost of these tests; the upsampled network has its
# own test. These tests are about the networks, so the kernel member (on by default for
# small sets) is off here and has its own test.
FAST: dict[str, Any] = {
    "width": 8,
    "upsample": 1,
    "kernels": "off",
    "max_epochs": 6,
    "n_members": 1,
    "patience": None,
    "device": "cpu",
}


def blobs(
    n: int = 90, classes: int = 2, seed: int = 0, side: int = 28, channels: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy uint8 images whose class is the height of a bright, centred square.

    Heights, not left / right, tell classes apart, since training flips images sideways.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    images = rng.integers(0, 90, size=(n, side, side)).astype(np.float64)
    middle = side // 2 - 4
    rows = [3, side - 11] if classes == 2 else [3, middle, side - 11]
    corners = [(r, middle) for r in rows]
    for i, label in enumerate(y):
        r, c = corners[label]
        r, c = r + rng.integers(-2, 3), c + rng.integers(-2, 3)
        images[i, r : r + 8, c : c + 8] += 150
    images = np.clip(images, 0, 255).astype(np.uint8)
    if channels:
        images = np.repeat(images[..., None], channels, axis=-1)
    return images, y


@pytest.fixture(scope="module")
def fitted() -> tuple[CNNClassifier, np.ndarray, np.ndarray]:
    X, y = blobs(120)
    model = CNNClassifier(**{**FAST, "max_epochs": 10}, random_state=0).fit(X, y)
    test_X, test_y = blobs(40, seed=1)
    return model, test_X, test_y


# -- the torch base ---------------------------------------------------------------------------


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InvalidRequestError, match="auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidRequestError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_batches_cover_every_row_once_and_never_leave_a_single_row() -> None:
    parts = batches(65, 32, generator=torch.Generator().manual_seed(0))
    assert sorted(torch.cat(parts).tolist()) == list(range(65))
    assert [len(p) for p in parts] == [32, 33]
    assert torch.cat(batches(10, 4)).tolist() == list(range(10))


def test_seeded_neither_depends_on_nor_disturbs_the_global_generator() -> None:
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7, torch.device("cpu")) as generator:
        first = torch.rand(2), torch.rand(2, generator=generator)
    assert torch.equal(torch.rand(3), before)  # the caller's stream continues untouched
    torch.manual_seed(999)
    with seeded(7, torch.device("cpu")) as generator:
        second = torch.rand(2), torch.rand(2, generator=generator)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_fit_loop_stops_early_and_keeps_the_best_epoch() -> None:
    torch.manual_seed(0)
    X = torch.randn(64, 3)
    y = (X[:, 0] > 0).long()
    module = nn.Linear(3, 2)
    scores = iter([0.5, 0.9, 0.7, 0.6, 0.8, 0.1, 0.1])
    seen: list[int] = []

    def score(m: nn.Module, validation: Sequence[torch.Tensor]) -> tuple[float, float]:
        seen.append(1)
        return next(scores), 0.0

    history = fit_loop(
        module,
        (X, y),
        loss=nn.CrossEntropyLoss(),
        config=FitConfig(max_epochs=20, batch_size=16, patience=3),
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
        validation=(X, y),
        score=score,
        progress=lambda record: None,
    )
    assert history.best_epoch == 2 and history.stopped_early
    assert len(history.epochs) == 5 == len(seen)
    assert history.as_dict()["epochs"][0]["train_loss"] > 0


def test_fit_loop_keeps_the_best_weights_not_the_last() -> None:
    X, y = torch.randn(32, 2), torch.zeros(32, dtype=torch.long)
    module = nn.Linear(2, 2)
    snapshots: list[torch.Tensor] = []

    def score(m: nn.Module, validation: Sequence[torch.Tensor]) -> tuple[float, float]:
        snapshots.append(m.weight.detach().clone())
        return [0.1, 0.9, 0.2, 0.3][len(snapshots) - 1], 0.0

    fit_loop(
        module,
        (X, y),
        loss=nn.CrossEntropyLoss(),
        config=FitConfig(max_epochs=4, batch_size=8, patience=None),
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
        validation=(X, y),
        score=score,
    )
    assert torch.equal(module.weight, snapshots[1])
    assert not torch.equal(snapshots[1], snapshots[3])


def test_fit_loop_takes_several_inputs_a_constant_rate_and_augments_the_first() -> None:
    # The rnn's setting: (values, mask, target), Adam at a constant learning rate.
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 2)

        def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.linear(values * mask)  # type: ignore[no-any-return]

    torch.manual_seed(0)
    X, mask = torch.randn(40, 3), torch.ones(40, 3)
    y = (X[:, 0] > 0).long()
    shapes: list[tuple[int, ...]] = []

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return x

    history = fit_loop(
        Two(),
        (X, mask, y),
        loss=nn.functional.cross_entropy,
        config=FitConfig(max_epochs=3, batch_size=16, lr=0.01, optimizer="adam", schedule="constant"),
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
        validation=(X, mask, y),
        augment=augment,
    )
    assert {e.lr for e in history.epochs} == {0.01}
    assert history.score_name == "-loss" and history.epochs[0].val_score == -history.epochs[0].val_loss
    assert all(shape[1] == 3 for shape in shapes) and sum(s[0] for s in shapes) == 3 * 40
    assert history.samples_per_second > 0 and all(e.samples == 40 for e in history.epochs)


# -- the estimator -----------------------------------------------------------------------------


def test_passes_the_applicable_estimator_checks() -> None:
    # scikit-learn's full suite feeds 2-D tables; a CNN takes images, so the structural
    # checks are run directly and fitting / prediction are tested on images below.
    name, model = "CNNClassifier", CNNClassifier()
    check_parameters_default_constructible(name, model)
    check_no_attributes_set_in_init(name, model)
    check_get_params_invariance(name, model)
    check_set_params(name, model)
    check_estimator_cloneable(name, model)
    check_estimator_repr(name, model)
    check_estimators_unfitted(name, model)
    assert make_estimator("cnn", random_state=3).random_state == 3


def test_learns_images_binary(fitted: tuple[CNNClassifier, np.ndarray, np.ndarray]) -> None:
    model, X, y = fitted
    proba = model.predict_proba(X)
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (model.predict(X) == y).mean() >= 0.9
    assert model.image_shape_ == (1, 28, 28) and model.n_features_in_ == 784
    history = model.history_
    assert 1 <= history.best_epoch <= len(history.epochs) == 10
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss


def test_multiclass_rgb_and_string_labels() -> None:
    X, y = blobs(150, classes=3, channels=3)
    labels = np.array(["left", "right", "top"])[y]
    model = CNNClassifier(**{**FAST, "max_epochs": 12}, random_state=0).fit(X, labels)
    test_X, test_y = blobs(30, classes=3, seed=1, channels=3)
    assert list(model.classes_) == ["left", "right", "top"]
    assert model.predict_proba(test_X).shape == (30, 3)
    assert (model.predict(test_X) == np.array(["left", "right", "top"])[test_y]).mean() >= 0.8
    # Channels first is read the same way.
    np.testing.assert_allclose(
        model.predict_proba(np.moveaxis(test_X, -1, 1)), model.predict_proba(test_X), rtol=1e-6
    )


def test_larger_images_are_accepted() -> None:
    X, y = blobs(40, side=64)
    model = CNNClassifier(**{**FAST, "max_epochs": 2}, random_state=0).fit(X, y)
    assert model.predict_proba(X[:3]).shape == (3, 2)


def test_upsampling_happens_inside_the_network() -> None:
    X, y = blobs(60)
    params = {**FAST, "max_epochs": 3, "upsample": 2}
    model = CNNClassifier(**params, random_state=0).fit(X, y)
    network = model.modules_[0]
    assert isinstance(network.features[0], nn.Upsample)
    seen: list[tuple[int, ...]] = []
    hook = network.features[1].register_forward_hook(
        lambda _m, inputs, _o: seen.append(tuple(inputs[0].shape))
    )
    proba = model.predict_proba(X[:4])
    hook.remove()
    # The stem convolution sees 56x56 (and its mirror image); callers still pass 28x28, and
    # max-pooling brings the residual stages back to 28, 14 and 7.
    assert seen and all(shape[2:] == (56, 56) for shape in seen)
    assert isinstance(network.features[4], nn.MaxPool2d)
    assert network.features(model.transform_images(X[:2])).shape[2:] == (7, 7)
    assert grad_cam(model, X[:4]).maps.shape == (4, 28, 28)
    again = CNNClassifier(**params, random_state=0).fit(X, y).predict_proba(X[:4])
    np.testing.assert_array_equal(proba, again)
    plain = CNNClassifier(**{**params, "upsample": 1}, random_state=0).fit(X, y)
    assert not isinstance(plain.modules_[0].features[0], nn.Upsample)
    assert not np.array_equal(plain.predict_proba(X[:4]), proba)
    # Images of 56 pixels a side or more are not enlarged.
    large, large_y = blobs(30, side=64)
    big = CNNClassifier(**{**FAST, "max_epochs": 1, "upsample": 2}, random_state=0).fit(large, large_y)
    assert not any(isinstance(layer, nn.Upsample) for layer in big.modules_[0].features)
    with pytest.raises(ValueError, match="upsample must be a positive integer"):
        CNNClassifier(**{**FAST, "upsample": 0}).fit(X, y)


def test_two_seeded_fits_are_identical_and_other_seeds_differ() -> None:
    X, y = blobs(60)
    params = {**FAST, "max_epochs": 3, "n_members": 2}
    a = CNNClassifier(**params, random_state=5).fit(X, y).predict_proba(X)
    b = CNNClassifier(**params, random_state=5).fit(X, y).predict_proba(X)
    c = CNNClassifier(**params, random_state=6).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_explicit_validation_data_and_pickling(tmp_path: Path) -> None:
    X, y = blobs(60)
    val_X, val_y = blobs(20, seed=2)
    model = CNNClassifier(**{**FAST, "max_epochs": 3}, random_state=0)
    model.fit(X, y, validation_data=(val_X, val_y))
    assert all(e.val_score is not None for e in model.history_.epochs)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(val_X), model.predict_proba(val_X))
    unfitted = clone(model)
    with pytest.raises(NotFittedError):
        unfitted.predict(val_X)


def test_a_model_pickled_before_upsample_existed_loads_as_upsample_1() -> None:
    X, y = blobs(40)
    model = CNNClassifier(**{**FAST, "max_epochs": 1}, random_state=0).fit(X, y)
    state = model.__getstate__()
    del state["upsample"]
    old = CNNClassifier.__new__(CNNClassifier)
    old.__setstate__(state)
    assert old.get_params()["upsample"] == 1
    np.testing.assert_array_equal(old.predict_proba(X[:5]), model.predict_proba(X[:5]))


def test_calibration_undoes_a_known_distortion_of_the_logit() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-true))).astype(int)
    shown = 0.5 * true + 1.0  # under-confident and biased towards class 1, as label smoothing leaves it
    logits = torch.from_numpy(np.stack([np.zeros_like(shown), shown], 1))
    calibration = _fit_calibration(logits, y)
    assert calibration is not None
    slope, intercept = calibration
    assert slope == pytest.approx(2.0, rel=0.1) and intercept == pytest.approx(-2.0, abs=0.25)
    assert _fit_calibration(logits, np.ones(4000, dtype=int)) is None  # one class: nothing to fit
    # Separable validation data: the slope is capped rather than sent to infinity.
    separable = torch.tensor([[0.0, -3.0]] * 20 + [[0.0, 3.0]] * 20, dtype=torch.float64)
    capped = _fit_calibration(separable, np.array([0] * 20 + [1] * 20))
    assert capped is not None and capped[0] == MAX_CALIBRATION_SLOPE
    three = torch.from_numpy(rng.normal(size=(300, 3)))
    labels = three.argmax(1).numpy()
    slope, intercept = _fit_calibration(three / 4, labels) or (0.0, 1.0)
    assert slope > 1 and intercept == 0.0  # a temperature that sharpens flattened logits


def test_calibration_is_fitted_on_validation_data_and_can_be_turned_off() -> None:
    X, y = blobs(60)
    val_X, val_y = blobs(20, seed=2)
    raw = CNNClassifier(**{**FAST, "max_epochs": 3}, calibrate=False, random_state=0)
    raw.fit(X, y, validation_data=(val_X, val_y))
    assert raw.calibration_ is None
    calibrated = clone(raw).set_params(calibrate=True).fit(X, y, validation_data=(val_X, val_y))
    if calibrated.calibration_ is not None:  # the same networks, only the probabilities move
        order = np.argsort(raw.predict_proba(val_X)[:, 1], kind="stable")
        assert (np.diff(calibrated.predict_proba(val_X)[order, 1]) >= -1e-12).all()
    no_validation = CNNClassifier(**{**FAST, "max_epochs": 2}, validation_fraction=0.0, random_state=0)
    assert no_validation.fit(X, y).calibration_ is None


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((5, 784)), "expected images"),
        (np.zeros((5, 20, 20)), "at least 28x28"),
        (np.zeros((5, 28, 28, 4)), "1 or 3 channels"),
        (np.zeros((0, 28, 28)), "no images"),
        (np.full((5, 28, 28), np.nan), "NaN"),
        (np.full((5, 28, 28), "a"), "numeric"),
    ],
)
def test_bad_images_are_named(images: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CNNClassifier(**FAST).fit(images, np.arange(len(images)) % 2)


def test_bad_labels_and_parameters() -> None:
    X, y = blobs(20)
    with pytest.raises(ValueError, match="single class"):
        CNNClassifier(**FAST).fit(X, np.zeros(20))
    with pytest.raises(ValueError, match="20 images but y has 19"):
        CNNClassifier(**FAST).fit(X, y[:19])
    with pytest.raises(ValueError, match="max_epochs"):
        CNNClassifier(**{**FAST, "max_epochs": 0}).fit(X, y)
    with pytest.raises(ValueError, match="device"):
        CNNClassifier(**{**FAST, "device": "gpu"}).fit(X, y)


def test_prediction_refuses_another_image_shape(fitted: tuple[CNNClassifier, np.ndarray, np.ndarray]) -> None:
    model, _, _ = fitted
    with pytest.raises(ValueError, match="trained on 28x28 with 1"):
        model.predict(blobs(4, side=32)[0])
    with pytest.raises(ValueError, match="trained on 28x28 with 1"):
        model.predict(blobs(4, channels=3)[0])


def test_as_images_scales_integers_only() -> None:
    assert as_images(np.full((1, 28, 28), 255, dtype=np.uint8)).max() == 1.0
    assert as_images(np.full((1, 28, 28), 0.5)).max() == 0.5


# -- Grad-CAM and occlusion ------------------------------------------------------------------


def test_grad_cam_shape_range_and_location(fitted: tuple[CNNClassifier, np.ndarray, np.ndarray]) -> None:
    model, X, y = fitted
    cams = grad_cam(model, X[:8])
    assert cams.maps.shape == (8, 28, 28)
    assert cams.maps.min() >= 0 and np.isclose(cams.maps.max(), 1.0)
    np.testing.assert_allclose(cams.scores, model.predict_proba(X[:8]).max(axis=1), rtol=1e-6)
    # The map of the other class is different: Grad-CAM depends on the explained class.
    other = grad_cam(model, X[:8], target=0)
    assert not np.allclose(other.maps[y[:8] == 1], cams.maps[y[:8] == 1])
    with pytest.raises(ValueError, match="target class index"):
        grad_cam(model, X[:2], target=5)


def test_occlusion_finds_the_square(fitted: tuple[CNNClassifier, np.ndarray, np.ndarray]) -> None:
    model, X, y = fitted
    maps = occlusion(model, X[:6]).maps
    assert maps.shape == (6, 28, 28)
    # The most sensitive patch lies in the half of the image where the class's square is.
    for heat, label in zip(maps, y[:6], strict=True):
        r, _ = np.unravel_index(heat.argmax(), heat.shape)
        assert r < 14 if label == 0 else r >= 14


def squares(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 1: a bright 7x7 square anywhere in noise; class 0: noise only."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    images = rng.integers(0, 90, size=(n, 28, 28)).astype(np.float64)
    for i in np.flatnonzero(y):
        r, c = rng.integers(1, 20, size=2)
        images[i, r : r + 7, c : c + 7] += 150
    return np.clip(images, 0, 255).astype(np.uint8), y


def test_deletion_of_top_grad_cam_pixels_beats_random() -> None:
    # The evidence for class 1 is the square: masking the pixels Grad-CAM ranks highest
    # must lower P(class 1) more than masking as many random pixels.
    X, y = squares(120)
    model = CNNClassifier(**{**FAST, "max_epochs": 8}, random_state=0).fit(X, y)
    test_X, test_y = squares(40, seed=1)
    positives = test_X[test_y == 1]
    assert model.predict_proba(positives)[:, 1].mean() > 0.8
    cams = grad_cam(model, positives, target=1)
    result = image_deletion_test(model, positives, cams.maps, cams.targets, fraction=0.1, draws=5)
    assert result.k == 78
    assert result.margin > 0.1, result
    # A map that points away from the evidence does worse.
    inverted = image_deletion_test(model, positives, 1 - cams.maps, cams.targets, fraction=0.1, draws=5)
    assert inverted.margin < result.margin


# -- the .npz reader ---------------------------------------------------------------------------


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_reads_medmnist_splits(tmp_path: Path) -> None:
    X, y = blobs(30)
    path = _npz(
        tmp_path / "d.npz",
        train_images=X[:20],
        train_labels=y[:20, None],
        val_images=X[20:25],
        val_labels=y[20:25, None],
        test_images=X[25:],
        test_labels=y[25:],
    )
    splits = read_image_splits(path)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [20, 5, 5]
    assert splits["train"].labels is not None and splits["train"].labels.shape == (20,)
    assert len(read_image_split(path)) == 5  # the test split when there is no plain ``images``


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros(3)}, "no train_images"),
        ({"train_images": np.zeros((4, 28)), "train_labels": np.zeros(4)}, "expected images"),
        ({"train_images": np.zeros((4, 28, 28)), "train_labels": np.zeros(3)}, "4 train_images but 3"),
        ({"train_images": np.zeros((4, 28, 28))}, "no train_labels"),
        ({"train_images": np.zeros((4, 28, 28)), "train_labels": np.zeros((4, 3))}, "multi-label"),
        (
            {
                "train_images": np.zeros((4, 28, 28)),
                "train_labels": np.zeros(4),
                "test_images": np.zeros((2, 32, 32)),
                "test_labels": np.zeros(2),
            },
            "different image shapes",
        ),
    ],
)
def test_bad_files_are_named(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_image_splits(_npz(tmp_path / "bad.npz", **arrays))


def test_empty_missing_and_corrupt_files(tmp_path: Path) -> None:
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="is empty"):
        read_image_splits(tmp_path / "empty.npz")
    with pytest.raises(DataError, match="does not exist"):
        read_image_splits(tmp_path / "absent.npz")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        read_image_splits(tmp_path / "junk.npz")


def test_the_kernel_member_is_mixed_in_for_small_sets() -> None:
    X, y = blobs(60)
    test_X, test_y = blobs(40, seed=3)
    params = {**FAST, "max_epochs": 2, "kernels": "auto", "kernel_weight": 0.5}
    mixed = CNNClassifier(**params, random_state=0).fit(X, y)
    assert mixed.kernels_ is not None  # 60 images of 28x28: a small set
    networks = CNNClassifier(**{**params, "kernels": "off"}, random_state=0).fit(X, y)
    assert networks.kernels_ is None
    proba = mixed.predict_proba(test_X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # Exactly the stated mix of the same networks' probabilities and the kernel member's.
    kernel_proba = mixed.kernels_.predict_proba(_rows(mixed.transform_images(test_X)))
    np.testing.assert_allclose(proba, 0.5 * networks.predict_proba(test_X) + 0.5 * kernel_proba, atol=1e-9)
    assert (mixed.kernels_.predict(_rows(mixed.transform_images(test_X))) == test_y).mean() >= 0.8
    again = CNNClassifier(**params, random_state=0).fit(X, y).predict_proba(test_X)
    np.testing.assert_array_equal(proba, again)  # seeded: the kernels are drawn from random_state
    restored = pickle.loads(pickle.dumps(mixed))
    np.testing.assert_array_equal(restored.predict_proba(test_X), proba)
    with pytest.raises(ValueError, match="kernels must be"):
        CNNClassifier(**{**FAST, "kernels": "maybe"}).fit(X, y)
    with pytest.raises(ValueError, match="kernel_weight"):
        CNNClassifier(**{**FAST, "kernel_weight": 1.5}).fit(X, y)
