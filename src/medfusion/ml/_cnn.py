"""``cnn``: a small residual network classifying 2-D images, as a scikit-learn estimator.

The default is deliberately small (three residual stages of 32, 64 and 128 channels, about
307 k weights) because the target data (MedMNIST, 28x28) is small and the machine is a CPU.
What makes it accurate on such data is the training recipe rather than depth: random flips
and small affine jitter, label smoothing, AdamW with a one-cycle schedule, the weights of
the best validation-AUROC epoch, horizontal-flip test-time augmentation, an ensemble of
two seeds whose probabilities are averaged, and Platt scaling on the validation images.
On BreastMNIST two networks of width 32 beat five of width 16 at about the same CPU
cost. ``upsample=2`` (a stem convolution on the 2x bilinearly enlarged image, max-pooled
back) makes a width-16 network as good as a width-32 one in cross-validation at half the
CPU, but four of them did not beat the default on the test split (see docs/benchmarks.md).

Images are ``(n, H, W)`` (grayscale) or ``(n, H, W, C)`` / ``(n, C, H, W)`` with
``C`` 1 or 3, at least 28x28. Integer images are read as 0-255 intensities.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d
from torch import nn
from torch.nn import functional as nnf

from medfusion.ml._images import as_images
from medfusion.ml._rocket import RocketClassifier
from medfusion.ml._torch import (
    EpochRecord,
    FitConfig,
    History,
    TorchEstimator,
    fit_loop,
    seeded,
    torch_threads,
)

__all__ = ["MAX_CALIBRATION_SLOPE", "CNNClassifier", "ResNetSmall"]

MAX_CALIBRATION_SLOPE = 5.0
# ``kernels='auto'``: the kernel member's cost grows with images x pixels.
_KERNEL_MAX_IMAGES = 5000
_KERNEL_MAX_PIXELS = 64 * 64


class _Block(nn.Module):
    """Basic residual block (two 3x3 convolutions), projecting the shortcut when needed."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nnf.relu(self.bn1(self.conv1(x)))
        return nnf.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNetSmall(nn.Module):
    """Stem, three residual stages (widths ``w, 2w, 4w``), global average pooling, linear head.

    Images larger than 56 pixels a side are first halved by max-pooling until the short
    side is under 56, so a 224x224 input costs about what a 28x28 one does per stage.
    ``upsample`` > 1 first enlarges images under 56 pixels a side bilinearly; the stem
    convolution then runs at that size and the pooling above brings the maps back (28x28:
    stem at 56x56, stages at 28, 14 and 7): a finer stem at little extra cost.

    Attributes
    ----------
    features
        Everything up to the last residual stage: its output is what Grad-CAM explains.
    """

    def __init__(
        self, channels: int, n_classes: int, *, width: int, side: int, dropout: float, upsample: int = 1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if upsample > 1 and side <= 55:
            # Inside the network, so inputs, Grad-CAM maps and saved models stay at the image size.
            layers.append(nn.Upsample(scale_factor=upsample, mode="bilinear", align_corners=False))
            side *= upsample
        pools = max(0, math.ceil(math.log2(side / 55))) if side > 55 else 0
        layers += [
            nn.Conv2d(channels, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        layers += [nn.MaxPool2d(2) for _ in range(pools)]
        layers += [_Block(width, width, 1), _Block(width, 2 * width, 2), _Block(2 * width, 4 * width, 2)]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(4 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))

    def classify(self, maps: torch.Tensor) -> torch.Tensor:
        """Logits from the last stage's feature maps (split out for Grad-CAM)."""
        logits: torch.Tensor = self.head(self.dropout(maps.mean(dim=(2, 3))))
        return logits


def _augmenter(
    flip: bool, rotate: float, shift: float, scale: float
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Random horizontal flip plus a small rotation / shift / zoom, one draw per image."""

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = x.shape[0]

        def uniform(*shape: int) -> torch.Tensor:
            return (torch.rand(*shape, generator=generator) * 2 - 1).to(x.device)

        angle = uniform(n) * math.radians(rotate)
        zoom = 1 + uniform(n) * scale
        offset = uniform(n, 2) * shift
        mirror = torch.ones(n, device=x.device)
        if flip:
            mirror = torch.where(torch.rand(n, generator=generator).to(x.device) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [
                torch.stack([cos * mirror, -sin, offset[:, 0]], 1),
                torch.stack([sin * mirror, cos, offset[:, 1]], 1),
            ],
            1,
        )
        grid = nnf.affine_grid(theta, list(x.shape), align_corners=False)
        return nnf.grid_sample(x, grid, padding_mode="border", align_corners=False)

    return augment


class CNNClassifier(ClassifierMixin, TorchEstimator):
    """Image classifier: an ensemble of small ResNets, binary or multiclass.

    Parameters
    ----------
    width
        Channels of the first residual stage (then doubled twice).
    upsample
        Enlarge images under 56 pixels a side by this factor (bilinear, inside the
        network) for the stem convolution, which is then max-pooled back to under 56
        pixels; 1 leaves them as they are.
    max_epochs
        Epochs per member; early stopping may end sooner.
    batch_size
    lr
        Peak AdamW learning rate (one-cycle schedule).
    weight_decay
    label_smoothing
        Cross-entropy label smoothing.
    dropout
        Dropout before the linear head.
    augment
        Random flips and small affine jitter during training.
    rotate, shift, scale
        Augmentation ranges: degrees, share of the image side, relative zoom.
    tta
        Average the predictions on each image and its mirror image.
    calibrate
        Recalibrate the ensemble's probabilities on the validation images: Platt scaling
        of the logit (binary) or a temperature (multiclass). Label smoothing and class
        imbalance leave raw softmax outputs biased, which costs accuracy at 0.5.
    n_members
        Networks trained with different seeds whose probabilities are averaged.
    kernels
        ``auto`` (default), ``on`` or ``off``: a second, non-neural member, ROCKET random
        convolutional kernels over each image read row by row (``ml._rocket``), whose
        probabilities are mixed with the networks'. ``auto`` uses it for small sets (at
        most 5,000 training images of at most 64x64 pixels), where on BreastMNIST it
        lifted cross-validated AUROC from 0.891 to 0.909 (see docs/benchmarks.md).
    kernel_weight
        Share of the kernel member in the mixed probabilities.
    patience
        Epochs without a better validation AUROC before a member stops (``None``: never).
    validation_fraction
        Share of the training images held out for early stopping when ``fit`` gets no
        ``validation_data`` (stratified); ``0`` trains on all and keeps the last epoch.
    n_threads
        CPU threads torch uses while fitting and predicting (``None``: torch's default).
        As for ``rnn``: one thread wastes least on a shared machine, and a fixed count
        keeps seeded CPU results identical.
    device
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    random_state
        Seed of the weights, batch order, dropout and augmentation.

    Attributes
    ----------
    classes_ : ndarray
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images; prediction requires the same.
    mean_, std_ : ndarray
        Per-channel intensity mean and SD of the training images.
    modules_ : list of ResNetSmall
        The trained members, on the CPU after pickling.
    histories_ : list of History
        Training curves per member.
    calibration_ : tuple of float or None
        ``(slope, intercept)`` applied to the logit (binary; multiclass: ``(1 / T, 0)``),
        ``None`` without validation data or when the fit was degenerate.
    """

    def __init__(
        self,
        *,
        width: int = 32,
        upsample: int = 1,
        max_epochs: int = 40,
        batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 5e-4,
        label_smoothing: float = 0.1,
        dropout: float = 0.2,
        augment: bool = True,
        rotate: float = 10.0,
        shift: float = 0.1,
        scale: float = 0.1,
        tta: bool = True,
        calibrate: bool = True,
        n_members: int = 2,
        kernels: str = "auto",
        kernel_weight: float = 0.5,
        patience: int | None = 15,
        validation_fraction: float = 0.15,
        n_threads: int | None = 1,
        device: str = "auto",
        random_state: int | None = None,
    ) -> None:
        self.width = width
        self.upsample = upsample
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.dropout = dropout
        self.augment = augment
        self.rotate = rotate
        self.shift = shift
        self.scale = scale
        self.tta = tta
        self.calibrate = calibrate
        self.n_members = n_members
        self.kernels = kernels
        self.kernel_weight = kernel_weight
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.n_threads = n_threads
        self.device = device
        self.random_state = random_state

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("upsample", 1)  # models saved before the parameters existed
        state.setdefault("kernels", "off")
        state.setdefault("kernel_weight", 0.5)
        state.setdefault("kernels_", None)
        super().__setstate__(state)

    # -- fitting -----------------------------------------------------------------------

    def _check_params(self) -> None:
        positive = {
            "width": self.width,
            "upsample": self.upsample,
            "max_epochs": self.max_epochs,
            "batch_size": self.batch_size,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not isinstance(self.n_members, int) or self.n_members < 1:
            raise ValueError(f"n_members must be a positive integer; got {self.n_members!r}")
        if self.kernels not in ("auto", "on", "off"):
            raise ValueError(f"kernels must be 'auto', 'on' or 'off'; got {self.kernels!r}")
        if not 0 <= self.kernel_weight <= 1:
            raise ValueError(f"kernel_weight must be in [0, 1]; got {self.kernel_weight!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1); got {self.validation_fraction}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive; got {self.lr}")
        self._device()  # an unknown or unavailable device fails before any work

    def _encode(self, y: Any, n: int, what: str) -> np.ndarray:
        labels = column_or_1d(np.asarray(y), warn=True)
        if len(labels) != n:
            raise ValueError(f"{what} has {n} images but {len(labels)} labels")
        index = {label: i for i, label in enumerate(self.classes_)}
        try:
            return np.array([index[label] for label in labels], dtype=np.int64)
        except KeyError as missing:
            raise ValueError(f"{what} holds class {missing} absent from the training labels") from None

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        validation_data: tuple[Any, Any] | None = None,
        progress: Callable[[int, EpochRecord], None] | None = None,
    ) -> CNNClassifier:
        """Train ``n_members`` networks, each keeping its best validation-AUROC epoch.

        Parameters
        ----------
        X
            Training images.
        y
            Class labels, one per image.
        validation_data
            ``(images, labels)`` for early stopping (e.g. MedMNIST's ``val`` split);
            otherwise ``validation_fraction`` of ``X`` is held out.
        progress
            Called with ``(member, epoch record)`` after every epoch.
        """
        with torch_threads(self.n_threads):
            return self._fit(X, y, validation_data, progress)

    def _fit(
        self,
        X: Any,
        y: Any,
        validation_data: tuple[Any, Any] | None,
        progress: Callable[[int, EpochRecord], None] | None,
    ) -> CNNClassifier:
        self._check_params()
        if y is None:
            raise ValueError("CNNClassifier requires y to be passed, but the target y is None.")
        images = as_images(X)
        labels = column_or_1d(np.asarray(y), warn=True)
        if len(labels) != len(images):
            raise ValueError(f"X has {len(images)} images but y has {len(labels)} labels")
        check_classification_targets(labels)
        self.classes_ = unique_labels(labels)
        if len(self.classes_) < 2:
            raise ValueError("y has a single class; a classifier needs two or more")
        target = self._encode(labels, len(images), "y")
        val_images: np.ndarray | None
        val_target: np.ndarray | None
        if validation_data is not None:
            val_images = as_images(validation_data[0], what="validation images")
            if val_images.shape[1:] != images.shape[1:]:
                raise ValueError(
                    f"validation images are {val_images.shape[1:]} but training images {images.shape[1:]}"
                )
            val_target = self._encode(validation_data[1], len(val_images), "validation labels")
        elif self.validation_fraction > 0 and np.bincount(target).min() >= 2 and len(target) >= 10:
            train_rows, val_rows = train_test_split(
                np.arange(len(target)),
                test_size=self.validation_fraction,
                stratify=target,
                random_state=self.random_state,
            )
            images, val_images = images[train_rows], images[val_rows]
            target, val_target = target[train_rows], target[val_rows]
        else:
            val_images, val_target = None, None
        self.image_shape_ = tuple(int(s) for s in images.shape[1:])
        self.n_features_in_ = int(np.prod(self.image_shape_))
        self.mean_ = images.mean(axis=(0, 2, 3)).astype(np.float32)
        self.std_ = (images.std(axis=(0, 2, 3)) + 1e-6).astype(np.float32)
        train = [self._normalise(images), torch.from_numpy(target)]
        validation = None
        if val_images is not None and val_target is not None:
            validation = [self._normalise(val_images), torch.from_numpy(val_target)]
        device = self._device()
        self.modules_: list[ResNetSmall] = []
        self.histories_: list[History] = []
        base = 0 if self.random_state is None else int(self.random_state)
        for member in range(self.n_members):
            seed = None if self.random_state is None else base + 1009 * member
            module, history = self._fit_member(train, validation, seed, device, member, progress)
            self.modules_.append(module)
            self.histories_.append(history)
        self.calibration_ = None
        if self.calibrate and validation is not None:
            self.calibration_ = _fit_calibration(
                self._logits(self.modules_, validation[0], device), validation[1].numpy()
            )
        self.kernels_: RocketClassifier | None = None
        if self._use_kernels(train[0]) and len(np.unique(target)) == len(self.classes_):
            self.kernels_ = RocketClassifier(random_state=base).fit(_rows(train[0]), target)
        return self

    def _use_kernels(self, inputs: torch.Tensor) -> bool:
        if self.kernels == "off" or self.kernel_weight == 0:
            return False
        n, _, height, width = inputs.shape
        return self.kernels == "on" or (n <= _KERNEL_MAX_IMAGES and height * width <= _KERNEL_MAX_PIXELS)

    def _fit_member(
        self,
        train: list[torch.Tensor],
        validation: list[torch.Tensor] | None,
        seed: int | None,
        device: torch.device,
        member: int,
        progress: Callable[[int, EpochRecord], None] | None,
    ) -> tuple[ResNetSmall, History]:
        channels, height, width = self.image_shape_
        config = FitConfig(
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            min_delta=-1e-9,  # among equal validation AUROCs the later, more trained weights win
        )
        loss = nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)
        augment = _augmenter(True, self.rotate, self.shift, self.scale) if self.augment else None
        with seeded(seed, device) as generator:
            module = ResNetSmall(
                channels,
                len(self.classes_),
                width=self.width,
                side=min(height, width),
                dropout=self.dropout,
                upsample=self.upsample,
            ).to(device)
            history = fit_loop(
                module,
                train,
                loss=loss,
                config=config,
                generator=generator,
                device=device,
                validation=validation,
                score=self._validation_score(loss, device),
                score_name="auroc",
                augment=augment,
                progress=None if progress is None else lambda record: progress(member, record),
            )
        return module.to("cpu") if device.type != "cpu" else module, history

    def _validation_score(
        self, loss: nn.Module, device: torch.device
    ) -> Callable[[nn.Module, Sequence[torch.Tensor]], tuple[float, float]]:
        from sklearn.metrics import roc_auc_score

        def score(module: nn.Module, validation: Sequence[torch.Tensor]) -> tuple[float, float]:
            inputs, targets = validation
            logits = self._logits([module], inputs, device)
            value = float(loss(logits, targets.cpu()))
            probabilities = torch.softmax(logits, 1).numpy()
            y = targets.cpu().numpy()
            if len(np.unique(y)) < 2:
                return -value, value
            if probabilities.shape[1] == 2:
                return float(roc_auc_score(y, probabilities[:, 1])), value
            present = np.unique(y)
            # Macro one-vs-rest over the classes present in the validation data.
            aucs = [roc_auc_score(y == c, probabilities[:, c]) for c in present]
            return float(np.mean(aucs)), value

        return score

    # -- prediction --------------------------------------------------------------------

    def _normalise(self, images: np.ndarray) -> torch.Tensor:
        mean, std = self.mean_[None, :, None, None], self.std_[None, :, None, None]
        return torch.from_numpy(np.ascontiguousarray((images - mean) / std, dtype=np.float32))

    def transform_images(self, X: Any) -> torch.Tensor:
        """Checked, normalised network input ``(n, C, H, W)`` for images ``X``.

        Raises
        ------
        ValueError
            The images' shape differs from the training images'.
        """
        check_is_fitted(self, "modules_")
        images = as_images(X)
        if tuple(images.shape[1:]) != self.image_shape_:
            c, h, w = images.shape[1:]
            tc, th, tw = self.image_shape_
            raise ValueError(
                f"X has images of {h}x{w} pixels with {c} channel(s); the model was trained on "
                f"{th}x{tw} with {tc}"
            )
        return self._normalise(images)

    def _logits(
        self, modules: Sequence[nn.Module], inputs: torch.Tensor, device: torch.device, chunk: int = 512
    ) -> torch.Tensor:
        """Mean log-probabilities turned back into logits: ensemble and mirror averaged."""
        out = []
        with torch.no_grad():
            for start in range(0, len(inputs), chunk):
                x = inputs[start : start + chunk].to(device)
                views = [x, x.flip(3)] if self.tta else [x]
                probs = torch.stack([torch.softmax(m(v), 1) for m in modules for v in views]).mean(0)
                out.append(torch.log(probs.clamp_min(1e-12)).cpu())
        return torch.cat(out)

    def _probabilities(
        self, modules: Sequence[nn.Module], inputs: torch.Tensor, device: torch.device
    ) -> torch.Tensor:
        """Ensemble (and mirror) averaged probabilities, recalibrated when ``calibration_`` is set."""
        logits = self._logits(modules, inputs, device)
        calibration = getattr(self, "calibration_", None)
        if calibration is not None:
            slope, intercept = calibration
            if logits.shape[1] == 2:
                logits = torch.stack(
                    [torch.zeros(len(logits)), slope * (logits[:, 1] - logits[:, 0]) + intercept], 1
                )
            else:
                logits = slope * logits
        return torch.softmax(logits, 1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``: the networks' (members and mirror images
        averaged, then recalibrated), mixed with the kernel member's when there is one."""
        inputs = self.transform_images(X)
        device = self._device()
        modules = [m.to(device).eval() for m in self.modules_]
        with torch_threads(self.n_threads):
            proba = self._probabilities(modules, inputs, device).numpy().astype(np.float64)
            if self.kernels_ is not None:
                weight = self.kernel_weight
                proba = (1 - weight) * proba + weight * self.kernels_.predict_proba(_rows(inputs))
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class per image."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before classes_ is read
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])

    @property
    def history_(self) -> History:
        """The first member's training curves (all members: ``histories_``)."""
        check_is_fitted(self, "histories_")
        return self.histories_[0]


def _rows(inputs: torch.Tensor) -> np.ndarray:
    """Normalised images as series for the kernel member: each channel read row by row,
    ``(n, H * W, C)``."""
    n, channels = inputs.shape[:2]
    return inputs.reshape(n, channels, -1).permute(0, 2, 1).numpy()


def _fit_calibration(logits: torch.Tensor, y: np.ndarray) -> tuple[float, float] | None:
    """Platt scaling of the logit (binary) or a temperature (multiclass), fitted by log loss.

    Returns ``None`` when the validation labels hold one class or the fitted slope is not
    positive (a calibration that would reverse the ranking is a sign of noise, not bias).
    The slope is capped at ``MAX_CALIBRATION_SLOPE``: a steeper one means the validation
    images are (nearly) separable, the fit is not identified, and the probabilities would
    saturate at 0 and 1, leaving nothing for occlusion or deletion tests to measure.
    """
    from scipy.optimize import minimize

    if len(np.unique(y)) < 2:
        return None
    scores = logits.double().numpy()
    rows = np.arange(len(y))

    def loss(params: np.ndarray) -> float:
        slope, intercept = params
        if scores.shape[1] == 2:
            z = slope * (scores[:, 1] - scores[:, 0]) + intercept
            return float(np.mean(np.logaddexp(0, -z) * (y == 1) + np.logaddexp(0, z) * (y == 0)))
        scaled = slope * scores
        return float(np.mean(np.logaddexp.reduce(scaled, axis=1) - scaled[rows, y]))

    start = np.array([1.0, 0.0])
    if scores.shape[1] == 2:
        slope, intercept = minimize(loss, start, method="Nelder-Mead").x
        if slope > MAX_CALIBRATION_SLOPE:
            slope = MAX_CALIBRATION_SLOPE
            intercept = minimize(lambda b: loss(np.array([slope, b[0]])), start[1:], method="Nelder-Mead").x[
                0
            ]
    else:
        slope = minimize(lambda t: loss(np.array([t[0], 0.0])), start[:1], method="Nelder-Mead").x[0]
        slope, intercept = min(slope, MAX_CALIBRATION_SLOPE), 0.0
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope <= 0:
        return None
    return float(slope), float(intercept)
