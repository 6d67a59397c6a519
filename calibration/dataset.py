"""CalibrationSet: a seeded, reproducible subset of an image folder, streamed in batches.

Images are decoded lazily, a batch at a time, so calibrating on 300 Xception inputs
holds one batch in memory, never the whole set or its activations.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgex.errors import MissingInputError
from edgex.preprocess import Preprocess, find_images

DEFAULT_CALIB_SIZE = 300
DEFAULT_SEED = 0
DEFAULT_PARITY_SIZE = 32


@dataclass
class CalibrationSet:
    """Images used to estimate activation ranges, plus held-back images for the parity check."""

    root: Path
    files: list[Path]
    parity_files: list[Path]
    preprocess: Preprocess
    seed: int
    parity_overlaps_calibration: bool = False

    @classmethod
    def from_folder(
        cls,
        root: Path,
        preprocess: Preprocess,
        size: int = DEFAULT_CALIB_SIZE,
        seed: int = DEFAULT_SEED,
        parity_size: int = DEFAULT_PARITY_SIZE,
    ) -> CalibrationSet:
        """Pick `size` images at random (seeded) for calibration and hold back up to `parity_size` others.

        When the folder is too small to hold images back, parity reuses calibration images and the
        manifest says so: agreement on seen images is weaker evidence, but still catches broken artifacts.
        """
        root = Path(root)
        if not root.is_dir():
            raise MissingInputError(f"calibration folder {root} does not exist", "Pass --calib-data DIR.")
        every = find_images(root)
        if not every:
            raise MissingInputError(
                f"no images (jpg, jpeg, png, bmp, webp) found under {root}", "Point --calib-data at images."
            )
        if size < 1:
            raise MissingInputError(f"--calib-size must be at least 1, got {size}")
        order = list(every)
        random.Random(seed).shuffle(order)
        chosen = order[:size]
        rest = order[size:][:parity_size]
        overlaps = len(rest) < min(parity_size, 8)
        if overlaps:
            rest = (rest + chosen)[: max(parity_size, len(rest))]
            rest = list(dict.fromkeys(rest))[:parity_size]
        return cls(root, chosen, rest, preprocess, seed, overlaps)

    def __len__(self) -> int:
        return len(self.files)

    def batches(self, batch_size: int = 1, files: list[Path] | None = None) -> Iterator[np.ndarray]:
        """Preprocessed float32 batches, decoded on demand."""
        files = self.files if files is None else files
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            yield np.stack([self.preprocess.load(p) for p in chunk])

    def samples(self) -> Iterator[np.ndarray]:
        """One-image batches: what most calibrators want."""
        return self.batches(1)

    def files_sha256(self) -> str:
        """Hash of the chosen files (relative path and size): identifies the set in a manifest."""
        digest = hashlib.sha256()
        for path in self.files:
            digest.update(f"{path.relative_to(self.root).as_posix()}\t{path.stat().st_size}\n".encode())
        return digest.hexdigest()

    def describe(self) -> dict:
        return {
            "root": str(self.root),
            "count": len(self.files),
            "seed": self.seed,
            "files_sha256": self.files_sha256(),
            "parity_count": len(self.parity_files),
            "parity_overlaps_calibration": self.parity_overlaps_calibration,
        }
