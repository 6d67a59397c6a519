"""Accuracy on labelled images (folder per class), with the artifact's own preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgex.errors import MissingInputError
from edgex.preprocess import Preprocess, find_images


def labelled_folder(root: Path, classes: list[str] | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """Images under root/<class>/...; class order from `classes`, else sorted folder names."""
    root = Path(root)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        raise MissingInputError(f"no class folders under {root}", "Use one sub-folder of images per class.")
    classes = list(classes) if classes else folders
    unknown = [f for f in folders if f not in classes]
    if unknown:
        raise MissingInputError(f"folders {unknown} under {root} are not among the model's classes {classes}")
    files, labels = [], []
    for folder in folders:
        for path in find_images(root / folder):
            files.append(path)
            labels.append(classes.index(folder))
    return files, np.asarray(labels), classes


def preprocess_all(files: list[Path], preprocess: Preprocess) -> np.ndarray:
    return np.stack([preprocess.load(p) for p in files])


def predict(run, inputs: np.ndarray, batch_size: int = 1) -> np.ndarray:
    return np.concatenate([run(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))
