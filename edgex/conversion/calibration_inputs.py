"""The images a conversion calibrates on and the ones its parity gate checks against, chosen once for all targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgex.calibration.dataset import CalibrationSet
from edgex.conversion.request import ConvertRequest
from edgex.errors import MissingInputError
from edgex.sources.load import Source, default_calibration_dir

SYNTHETIC_PARITY_IMAGES = 8  # without any images: this many seeded noise images for the parity check


def calibration_and_parity(request: ConvertRequest, source: Source):
    """The calibration set (int8 only) and the parity inputs: (batches, description)."""
    calib_dir = request.calib_data
    if calib_dir is None and request.model is None:
        calib_dir = default_calibration_dir()
    calib = None
    if calib_dir is not None:
        size = request.calib_size if request.precision == "int8" else 0
        calib = CalibrationSet.from_folder(Path(calib_dir), source.preprocess, size=max(size, 0) or 1,
                                           seed=request.seed, parity_size=request.parity_size,
                                           skip_bad_images=request.skip_bad_images)
        if request.precision != "int8":
            # Nothing to calibrate: every image found can serve the parity check.
            calib.parity_files = (calib.files + calib.parity_files)[: request.parity_size]
            calib.parity_overlaps_calibration = False
    elif request.precision == "int8":
        raise MissingInputError("int8 needs calibration images", "Pass --calib-data DIR (a few hundred images).")
    if request.parity_data is not None:
        held = CalibrationSet.from_folder(Path(request.parity_data), source.preprocess, size=request.parity_size,
                                          seed=request.seed, parity_size=0, skip_bad_images=request.skip_bad_images)
        images = [source.preprocess.load(p) for p in held.files]
        desc = {"kind": "images", "root": str(request.parity_data), "count": len(images),
                "overlaps_calibration": False}
    elif calib is not None:
        images = [source.preprocess.load(p) for p in calib.parity_files]
        desc = {"kind": "images", "count": len(images),
                "overlaps_calibration": calib.parity_overlaps_calibration}
    else:
        rng = np.random.default_rng(request.seed)
        from PIL import Image

        images = [source.preprocess.apply(Image.fromarray(rng.integers(0, 256, (source.preprocess.height,
                  source.preprocess.width, 3), dtype=np.uint8))) for _ in range(SYNTHETIC_PARITY_IMAGES)]
        desc = {"kind": "synthetic noise images (pass --calib-data for real ones)", "count": len(images)}
    skipped = [*(calib.skipped if calib is not None else []),
               *(held.skipped if request.parity_data is not None else [])]
    if skipped:  # --skip-bad-images: counted in the summary and the manifest
        desc["skipped_bad_images"] = [{"file": str(path), "reason": why} for path, why in skipped]
    return (calib if request.precision == "int8" else None), (images, desc)
