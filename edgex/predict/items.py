"""What `Predictor.predict` accepts, turned into one preprocessed float32 batch.

Paths and PIL images go through edgex.preprocess (EXIF orientation, RGB conversion, resize, scaling), as
`edgex predict` and `edgex eval` do. Arrays are told apart by dtype: uint8 arrays are pixels, (H, W, 3) or a
batch (N, H, W, 3) (gray and RGBA too), preprocessed like images; float arrays must already be
preprocessed, shaped like the model input: one image (H, W, 3) / (3, H, W) or a batch (N, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgex.errors import UsageError
from edgex.preprocess import Preprocess, to_rgb8


def tensors(items, preprocess: Preprocess) -> tuple[list[str], np.ndarray]:
    """(a name per image, the batch): names are paths as given, `<image i>` or `<array i[j]>`."""
    if isinstance(items, (str, Path, np.ndarray)) or _is_pil(items):
        items = [items]
    names: list[str] = []
    rows: list[np.ndarray] = []
    for i, item in enumerate(items):
        if isinstance(item, (str, Path)):
            names.append(str(item))
            rows.append(preprocess.load(Path(item)))
        elif _is_pil(item):
            from PIL import ImageOps

            names.append(f"<image {i}>")
            rows.append(preprocess.apply(to_rgb8(ImageOps.exif_transpose(item))))
        elif isinstance(item, np.ndarray):
            batch = _array(item, preprocess, i)
            names += [f"<array {i}[{j}]>" for j in range(len(batch))] if item.ndim == 4 else [f"<array {i}>"]
            rows += list(batch)
        else:
            raise UsageError(f"cannot predict on item {i} of type {type(item).__name__}",
                             "Pass file paths, PIL images or numpy arrays.")
    if not rows:
        raise UsageError("predict() got no images")
    return names, np.stack(rows).astype(np.float32, copy=False)


def _is_pil(item) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover (Pillow is a dependency)
        return False
    return isinstance(item, Image.Image)


def _array(item: np.ndarray, preprocess: Preprocess, i: int) -> np.ndarray:
    """A batch (N, ...) of preprocessed float32 images from one array."""
    shape = preprocess.input_shape[1:]
    if item.dtype == np.uint8:
        from PIL import Image

        if item.ndim not in (2, 3, 4):
            raise UsageError(f"array {i} has shape {item.shape}; uint8 pixels are (H, W, 3) or (N, H, W, 3)")
        try:
            images = [Image.fromarray(p) for p in (list(item) if item.ndim == 4 else [item])]
        except (TypeError, ValueError) as exc:
            raise UsageError(f"array {i} of shape {item.shape} is not an image: {exc}") from exc
        return np.stack([preprocess.apply(to_rgb8(image)) for image in images])
    if np.issubdtype(item.dtype, np.floating):
        if item.shape == shape:
            return item[None].astype(np.float32)
        if item.ndim == 4 and item.shape[1:] == shape:
            return item.astype(np.float32)
        raise UsageError(f"float array {i} has shape {item.shape}; a preprocessed image is {shape} "
                         f"(or a batch of them); pass uint8 pixels to have edgex preprocess them")
    raise UsageError(f"array {i} has dtype {item.dtype}", "Pass uint8 pixels or preprocessed float32 images.")
