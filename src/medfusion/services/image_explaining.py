"""Use case: explain a saved image model: Grad-CAM and occlusion maps drawn over each image.

:func:`medfusion.services.explaining.explain_model` dispatches here for image models. One
PNG per image shows the image, its Grad-CAM map and its occlusion-sensitivity map, for the
predicted class; the JSON rows name the PNG in ``attribution_file``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medfusion.errors import DataError
from medfusion.ml import read_image_split

if TYPE_CHECKING:  # torch loads only when an image model is explained
    from medfusion.ml import CNNClassifier

__all__ = ["ImageExplainResult", "explain_images"]


@dataclass(frozen=True, slots=True)
class ImageExplainResult:
    """Attribution maps of a saved image model for the first images of a file.

    Attributes
    ----------
    rows
        Per image: ``row`` (1-based), ``prediction`` (probability of ``class``), ``class``
        (the predicted label) and ``attribution_file`` (the PNG).
    """

    model_id: str
    method: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def plots(self) -> list[Path]:
        """The PNG files written."""
        return [Path(r["attribution_file"]) for r in self.rows]

    def as_json(self) -> dict[str, Any]:
        """The ``medfusion explain --json`` object for images."""
        return {
            "model_id": self.model_id,
            "method": self.method,
            "output": "probability",
            "rows": self.rows,
            "global_importance": {},
        }


def _write(path: Path, payload: bytes) -> None:
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def explain_images(
    model: CNNClassifier, model_id: str, data: Path, *, rows: int | None, out: Path | None
) -> ImageExplainResult:
    """Grad-CAM and occlusion PNGs for the first ``rows`` images of ``data`` (``images`` or ``test_*``).

    Raises
    ------
    DataError
        No ``--out`` folder, an unreadable file, or images of another shape than the model's.
    """
    from medfusion.ml import grad_cam, occlusion, overlay_png

    if out is None:
        raise DataError("explaining images writes PNG heat maps: give a folder with --out DIR")
    images = read_image_split(data).images
    if rows is not None:
        images = images[:rows]
    try:
        cams = grad_cam(model, images)
        occluded = occlusion(model, images)
    except ValueError as error:
        raise DataError(str(error)) from None
    out.mkdir(parents=True, exist_ok=True)
    result = []
    for index, image in enumerate(images):
        label = model.classes_[cams.targets[index]]
        score = float(cams.scores[index])
        png = overlay_png(
            image,
            {"Grad-CAM": cams.maps[index], "occlusion": occluded.maps[index]},
            title=f"image {index + 1}: class {label}, p = {score:.3f}",
        )
        path = out / f"image_{index + 1}.png"
        _write(path, png)
        result.append(
            {
                "row": index + 1,
                "prediction": score,
                "class": label.item() if isinstance(label, np.generic) else label,
                "attribution_file": str(path),
            }
        )
    return ImageExplainResult(model_id, "grad_cam+occlusion", result)
