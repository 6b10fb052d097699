"""Use case: explain a saved image model: Grad-CAM and occlusion maps drawn over each image.

:func:`medfusion.services.explaining.explain_model` dispatches here for image models. One
PNG per image shows the image, its Grad-CAM map and its occlusion-sensitivity map, for the
predicted class; the JSON rows name the PNG in ``attribution_file``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medfusion.errors import DataError
from medfusion.ml import read_image_split
from medfusion.services._files import write_atomic

if TYPE_CHECKING:  # torch loads only when an image model is explained
    from medfusion.ml import CNNClassifier

__all__ = ["explain_images"]


def explain_images(
    model: CNNClassifier, model_id: str, data: Path, *, rows: int | None, out: Path
) -> dict[str, Any]:
    """Grad-CAM and occlusion PNGs for the first ``rows`` images of ``data`` (``images`` or ``test_*``).

    Returns the ``medfusion explain --json`` object: per image ``row`` (1-based),
    ``prediction`` (probability of ``class``), ``class`` (the predicted label) and
    ``attribution_file`` (the PNG).

    Raises
    ------
    DataError
        An unreadable file, or images of another shape than the model's.
    """
    from medfusion.ml import grad_cam, occlusion, overlay_png

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
        write_atomic(path, png)
        result.append(
            {
                "row": index + 1,
                "prediction": score,
                "class": label.item() if isinstance(label, np.generic) else label,
                "attribution_file": str(path),
            }
        )
    return {
        "model_id": model_id,
        "method": "grad_cam+occlusion",
        "output": "probability",
        "rows": result,
        "global_importance": {},
    }
