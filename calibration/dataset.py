"""CalibrationSet: a seeded, reproducible subset of an image folder, streamed in batches.

Images are decoded lazily, a batch at a time, so calibrating on 300 Xception inputs
holds one batch in memory, never the whole set or its activations.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgex.errors import DataError, MissingInputError
from edgex.options import CALIBRATION
from edgex.preprocess import Preprocess, find_images


@dataclass
class CalibrationSet:
    """Images used to estimate activation ranges, plus held-back images for the parity check."""

    root: Path
    files: list[Path]
    parity_files: list[Path]
    preprocess: Preprocess
    seed: int
    parity_overlaps_calibration: bool = False
    # Unreadable images passed over with --skip-bad-images: (file, reason), reported in the manifest.
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    # Decoded and resized once (uint8, ~80 MB for 300 Xception inputs), reused by every target's calibration.
    _pixels: dict[Path, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_folder(
        cls,
        root: Path,
        preprocess: Preprocess,
        size: int = CALIBRATION.size,
        seed: int = CALIBRATION.seed,
        parity_size: int = CALIBRATION.parity_size,
        skip_bad_images: bool = False,
    ) -> CalibrationSet:
        """Pick `size` images at random (seeded) for calibration and hold back up to `parity_size` others.

        Every picked image is decoded once up front, so a corrupt file stops the run (65, naming it)
        before any converter starts; with `skip_bad_images` it is skipped, counted, and the next image
        in the seeded order takes its place. When the folder is too small to hold images back, parity
        reuses calibration images and the manifest says so.
        """
        root = Path(root)
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise MissingInputError(f"image folder {root} {what}", "Pass a folder of images (--calib-data DIR).")
        every = find_images(root)
        if not every:
            raise MissingInputError(
                f"no images (jpg, jpeg, png, bmp, webp) found under {root}", "Point --calib-data at images."
            )
        if size < 1:
            raise MissingInputError(f"--calib-size must be at least 1, got {size}")
        order = list(every)
        random.Random(seed).shuffle(order)
        good, skipped = _readable(order, size + parity_size, preprocess, skip_bad_images)
        if not good:
            raise MissingInputError(f"none of the {len(order)} images under {root} can be decoded "
                                    f"({len(skipped)} skipped)", "Point --calib-data at real images.")
        chosen = good[:size]
        rest = good[size:][:parity_size]
        overlaps = len(rest) < min(parity_size, 8)
        if overlaps:
            rest = (rest + chosen)[: max(parity_size, len(rest))]
            rest = list(dict.fromkeys(rest))[:parity_size]
        found = cls(root, chosen, rest, preprocess, seed, overlaps)
        found.skipped = skipped
        return found

    def __len__(self) -> int:
        return len(self.files)

    def batches(self, batch_size: int = 1, files: list[Path] | None = None) -> Iterator[np.ndarray]:
        """Preprocessed float32 batches; each image is decoded and resized once per set, whatever the number
        of targets calibrated from it."""
        files = self.files if files is None else files
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            yield np.stack([self._tensor(p) for p in chunk])

    def _tensor(self, path: Path) -> np.ndarray:
        from edgex.preprocess import read_rgb

        if path not in self._pixels:
            self._pixels[path] = self.preprocess.pixels(read_rgb(path))
        return checked_finite(self.preprocess.tensor(self._pixels[path]), path, self.preprocess)

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
            "skipped_bad_images": [{"file": self._relative(p), "reason": why} for p, why in self.skipped],
        }

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def require_images(root: Path, flag: str = "--calib-data") -> None:
    """Fail fast (66), before any model is loaded, on a missing, empty or image-less folder."""
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise MissingInputError(f"image folder {root} {what}", f"Pass a folder of images ({flag} DIR).")
    if not find_images(root):
        raise MissingInputError(f"no images (jpg, jpeg, png, bmp, webp) found under {root}",
                                f"Point {flag} at a folder of images.")


def checked_finite(tensor: np.ndarray, path: Path, preprocess: Preprocess) -> np.ndarray:
    """`tensor`, or a DataError naming `path` when preprocessing made NaN or Inf of it."""
    if not np.isfinite(tensor).all():
        raise DataError(f"image {path} becomes NaN or Inf after preprocessing (mean {list(preprocess.mean)}, "
                        f"std {list(preprocess.std)})", "Check --mean and --std.")
    return tensor


def _readable(order: list[Path], needed: int, preprocess: Preprocess,
              skip_bad_images: bool) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The first `needed` images of `order` that decode; the unreadable ones skipped (or the first raised)."""
    from edgex.preprocess import read_rgb

    good: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    checked_preprocessing = False
    for path in order:
        if len(good) >= needed:
            break
        try:
            image = read_rgb(path)
        except DataError as exc:
            if not skip_bad_images:
                raise DataError(exc.message, "Remove or replace the file, or pass --skip-bad-images.") from exc
            skipped.append((path, exc.message))
            continue
        if not checked_preprocessing:
            # Preprocessing is the same for every image: one finite check catches a bad mean/std.
            tensor = preprocess.apply(image)
            if not np.isfinite(tensor).all():
                raise DataError(f"image {path} becomes NaN or Inf after preprocessing (mean "
                                f"{list(preprocess.mean)}, std {list(preprocess.std)})", "Check --mean and --std.")
            checked_preprocessing = True
        good.append(path)
    return good, skipped


def need_calibration(calib: CalibrationSet | None) -> CalibrationSet:
    """The calibration set an int8 build needs; a missing one is the user's missing input (66), not a bug."""
    if calib is None:
        raise MissingInputError("int8 needs calibration images", "Pass --calib-data DIR (a few hundred images).")
    return calib
