"""Where a CNN looks: Grad-CAM, occlusion sensitivity, overlays, and a deletion test.

- Grad-CAM (Selvaraju et al. 2017): the last residual stage's feature maps weighted by
  the mean gradient of the explained class's logit, rectified, upsampled to the image
  and scaled to 0-1. For an ensemble, the members' maps are averaged.
- Occlusion sensitivity (Zeiler & Fergus 2014): how much the explained class's
  probability drops when a square patch is replaced by the training mean, averaged over
  the patches covering each pixel. Model-agnostic and slower; a check on Grad-CAM.
- Deletion test: masking the top-k attributed pixels must move the probability more than
  masking k random pixels, otherwise the map is not faithful to the model.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as nnf

from medfusion.ml._cnn import CNNClassifier

__all__ = ["CamResult", "ImageDeletion", "grad_cam", "image_deletion_test", "occlusion", "overlay_png"]


@dataclass(frozen=True, slots=True)
class CamResult:
    """Attribution maps of images for one class each.

    Attributes
    ----------
    maps
        ``(n, H, W)`` in 0-1; higher means more evidence for the explained class.
    targets
        Index (into ``classes_``) of the class each map explains: the predicted one unless given.
    scores
        The model's probability of that class per image.
    """

    maps: np.ndarray
    targets: np.ndarray
    scores: np.ndarray


def _targets(model: CNNClassifier, images: Any, target: int | None) -> tuple[np.ndarray, np.ndarray]:
    proba = model.predict_proba(images)
    chosen = np.argmax(proba, axis=1) if target is None else np.full(len(proba), int(target))
    if (chosen < 0).any() or (chosen >= len(model.classes_)).any():
        raise ValueError(f"target class index must be in 0..{len(model.classes_) - 1}; got {target}")
    return chosen, proba[np.arange(len(proba)), chosen]


def _scale(maps: torch.Tensor) -> np.ndarray:
    peak = maps.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    return (maps / peak).numpy()


def grad_cam(model: CNNClassifier, images: Any, *, target: int | None = None, stage: int = 3) -> CamResult:
    """Grad-CAM maps of ``images`` for ``target`` (a class index), or each image's predicted class.

    The maps are the networks' evidence; a kernel member (``kernels_``) has no gradient to
    follow, and :func:`occlusion`, which only calls ``predict_proba``, covers the whole model.

    Parameters
    ----------
    stage
        Residual stage whose output is explained: 3 (the last, 1/4 of the image side),
        2 (1/2 of the side) or 1 (full resolution).

    Raises
    ------
    ValueError
        Images of another shape than the training images, or a bad ``target``.
    """
    inputs = model.transform_images(images)
    chosen, scores = _targets(model, images, target)
    index = torch.from_numpy(chosen)
    total = torch.zeros(inputs.shape[0], *inputs.shape[2:])
    for module in model.modules_:
        module.eval()
        split = len(module.features) - (3 - stage)
        with torch.enable_grad():
            maps = module.features[:split](inputs)
            logits = module.classify(module.features[split:](maps))
            selected = logits.gather(1, index[:, None]).sum()
            (gradient,) = torch.autograd.grad(selected, maps)
        weights = gradient.mean(dim=(2, 3), keepdim=True)
        cam = nnf.relu((weights * maps).sum(1, keepdim=True)).detach()
        cam = nnf.interpolate(cam, size=inputs.shape[2:], mode="bilinear", align_corners=False)[:, 0]
        total += torch.from_numpy(_scale(cam))
    return CamResult(_scale(total / len(model.modules_)), chosen, scores)


def occlusion(
    model: CNNClassifier,
    images: Any,
    *,
    target: int | None = None,
    patch: int | None = None,
    stride: int | None = None,
) -> CamResult:
    """Occlusion sensitivity: the drop in the class's probability with each patch masked.

    Parameters
    ----------
    patch, stride
        Square patch side and step in pixels (default: a seventh of the short side, and half that).
    """
    inputs = model.transform_images(images)
    chosen, scores = _targets(model, images, target)
    _, _, height, width = inputs.shape
    patch = patch or max(2, min(height, width) // 7)
    stride = stride or max(1, patch // 2)
    rows = list(range(0, height - patch + 1, stride))
    cols = list(range(0, width - patch + 1, stride))
    device = model._device()
    members = [m.to(device).eval() for m in model.modules_]
    out = np.zeros((len(inputs), height, width), dtype=np.float32)
    for i in range(len(inputs)):
        masked = inputs[i].repeat(len(rows) * len(cols), 1, 1, 1)
        for k, (r, c) in enumerate((r, c) for r in rows for c in cols):
            masked[k, :, r : r + patch, c : c + patch] = 0.0  # the training mean, once normalised
        probs = model._probabilities(members, masked, device)[:, chosen[i]].numpy()
        drop = np.zeros((height, width), dtype=np.float32)
        cover = np.zeros((height, width), dtype=np.float32)
        for k, (r, c) in enumerate((r, c) for r in rows for c in cols):
            drop[r : r + patch, c : c + patch] += scores[i] - probs[k]
            cover[r : r + patch, c : c + patch] += 1
        out[i] = np.clip(drop / np.maximum(cover, 1), 0, None)
    return CamResult(_scale(torch.from_numpy(out)), chosen, scores)


@dataclass(frozen=True, slots=True)
class ImageDeletion:
    """Result of the deletion test on images.

    Attributes
    ----------
    top_drop, random_drop
        Mean fall of the explained class's probability with the top-k / k random pixels masked.
    margin
        ``top_drop - random_drop``; positive when the attribution is faithful.
    k
        Pixels masked per image.
    per_image
        ``(n, 2)``: top and mean random drop per image.
    """

    top_drop: float
    random_drop: float
    margin: float
    k: int
    per_image: np.ndarray


def image_deletion_test(
    model: CNNClassifier,
    images: Any,
    maps: np.ndarray,
    targets: np.ndarray,
    *,
    fraction: float = 0.1,
    draws: int = 10,
    seed: int = 0,
) -> ImageDeletion:
    """Mask each image's top ``fraction`` of pixels by attribution vs the same number at random.

    Masked pixels take the training mean intensity (0 after normalisation) in every channel.
    """
    inputs = model.transform_images(images)
    n, _, height, width = inputs.shape
    k = max(1, round(fraction * height * width))
    device = model._device()
    members = [m.to(device).eval() for m in model.modules_]

    def probability(batch: torch.Tensor, cls: int) -> np.ndarray:
        return model._probabilities(members, batch, device)[:, cls].numpy()

    rng = np.random.default_rng(seed)
    per_image = np.zeros((n, 2))
    for i in range(n):
        base = probability(inputs[i : i + 1], int(targets[i]))[0]
        order = np.argsort(-maps[i].ravel(), kind="stable")
        chosen = [order[:k]] + [rng.choice(height * width, size=k, replace=False) for _ in range(draws)]
        batch = inputs[i].repeat(len(chosen), 1, 1, 1)
        for j, pixels in enumerate(chosen):
            flat = batch[j].reshape(batch.shape[1], -1)
            flat[:, torch.from_numpy(pixels)] = 0.0
        drops = base - probability(batch, int(targets[i]))
        per_image[i] = drops[0], drops[1:].mean()
    top, random = per_image.mean(axis=0)
    return ImageDeletion(float(top), float(random), float(top - random), k, per_image)


def overlay_png(
    image: np.ndarray, maps: dict[str, np.ndarray], *, title: str = "", alpha: float = 0.45
) -> bytes:
    """A PNG of the image beside each attribution map laid over it (``jet`` colours).

    Parameters
    ----------
    image
        One image ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` as stored.
    maps
        Panel title to ``(H, W)`` map in 0-1.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    picture = np.asarray(image, dtype=np.float32)
    if picture.ndim == 3 and picture.shape[0] in (1, 3) and picture.shape[-1] not in (1, 3):
        picture = np.moveaxis(picture, 0, -1)
    if picture.ndim == 3 and picture.shape[-1] == 1:
        picture = picture[..., 0]
    span = float(picture.max() - picture.min()) or 1.0
    picture = (picture - picture.min()) / span
    fig = Figure(figsize=(2.4 * (1 + len(maps)), 2.7), dpi=100)
    axes = fig.subplots(1, 1 + len(maps))
    axes = np.atleast_1d(axes)
    cmap = "gray" if picture.ndim == 2 else None
    axes[0].imshow(picture, cmap=cmap)
    axes[0].set_title("image", fontsize=9)
    for ax, (name, heat) in zip(axes[1:], maps.items(), strict=True):
        ax.imshow(picture, cmap=cmap)
        ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()
