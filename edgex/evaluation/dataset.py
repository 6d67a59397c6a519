"""Labelled evaluation images: a folder per class, or a CSV of `path,label`."""

from __future__ import annotations

import csv
import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgex.errors import DataError, MissingInputError
from edgex.evaluation.labelled import labelled_folder


@dataclass
class LabelledImages:
    files: list[Path]
    labels: np.ndarray
    classes: list[str]
    root: Path
    kind: str  # "folders" or "csv"
    source: Path | None = None  # the CSV file, when labels came from one
    classes_from: str = "the caller"  # where the class names (and their order) came from, said in the report

    def image_keys(self) -> list[str]:
        """Each image's name in reports: its path under the data root (POSIX), else its full path."""
        return [(path.relative_to(self.root) if path.is_relative_to(self.root) else path).as_posix()
                for path in self.files]

    def describe(self) -> dict:
        """Where the images came from, their digest, and each image's label (by key), for paired comparisons."""
        digest = hashlib.sha256()
        keys = self.image_keys()
        for key, label in zip(keys, self.labels, strict=True):
            digest.update(f"{key}:{label}\n".encode())
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {"path": str(self.source or self.root), "kind": self.kind, "count": len(self.files),
                "classes": self.classes, "classes_from": self.classes_from,
                "per_class": dict(zip(self.classes, map(int, counts), strict=True)), "sha256": digest.hexdigest(),
                "labels": dict(zip(keys, map(int, self.labels), strict=True))}


def load_labelled(path: Path, classes: list[str] | None = None) -> LabelledImages:
    """Class order comes from `classes` (the manifest's names) when given, else sorted folder names / labels."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"evaluation data {path} does not exist",
                                "Pass --eval-data DIR (a folder per class) or a CSV of path,label.")
    if path.is_file():
        data = _from_csv(path, classes)
    else:
        files, labels, names = labelled_folder(path, classes)
        if not files:
            raise MissingInputError(f"no images under the class folders of {path}")
        data = LabelledImages(files, labels, names, path, "folders")
    if not classes:
        data.classes_from = "sorted folder names" if data.kind == "folders" else "the CSV's labels, sorted"
    return data


def _from_csv(path: Path, classes: list[str] | None) -> LabelledImages:
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    if not rows:
        raise MissingInputError(f"{path} lists no images", "Write one 'path,label' row per image.")
    bad = [i + 1 for i, row in enumerate(rows) if len(row) < 2]
    if bad:
        raise DataError(f"{path} row {bad[0]} has no label", "Write one 'path,label' row per image.")
    names = list(classes) if classes else sorted({row[1].strip() for row in rows})
    files, labels = [], []
    for number, row in enumerate(rows, 1):
        image, label = Path(row[0].strip()), row[1].strip()
        image = image if image.is_absolute() else path.parent / image
        if not image.is_file():
            raise MissingInputError(f"image {image} (row {number} of {path}) does not exist",
                                    "Paths are relative to the CSV's folder.")
        files.append(image)
        labels.append(_label_index(label, names, path, number))
    return LabelledImages(files, np.asarray(labels), names, path.parent, "csv", path)


def _label_index(label: str, names: list[str], path: Path, row: int) -> int:
    if label in names:
        return names.index(label)
    if label.isdigit() and int(label) < len(names):
        return int(label)
    close = difflib.get_close_matches(label, names, n=1)
    hint = f"Did you mean {close[0]!r}? " if close else ""
    raise DataError(f"label {label!r} in row {row} of {path} is not one of the model's classes",
                    f"{hint}Classes: {', '.join(names)}.")


def preprocess_images(files: list[Path], preprocess, advance=lambda: None) -> np.ndarray:
    """One float32 batch of every image, with the artifact's preprocessing; `advance` ticks a progress bar."""
    out = None
    for i, path in enumerate(files):
        image = preprocess.load(path)
        if out is None:
            out = np.empty((len(files), *image.shape), dtype=np.float32)
        out[i] = image
        advance()
    return out
