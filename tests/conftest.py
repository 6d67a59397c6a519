"""Shared fixtures: a tiny trained-head Xception, generated labelled images, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
CLASSES = ["red_stripes", "green_bars", "blue_checks", "gray_rings"]
TINY_SIZE = 96


def shared_dir() -> Path:
    return Path(os.environ.get("EDGEX_SHARED", REPO.parent / "shared")).resolve()


def make_image(kind: int, rng: np.random.Generator, height: int = 90, width: int = 120) -> np.ndarray:
    """A noisy synthetic picture whose pattern (and colour) encodes its class."""
    yy, xx = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 6.28)
    period = rng.uniform(6, 14)
    if kind == 0:
        pattern, colour = np.sin(yy / period * 6.28 + phase), (200, 40, 40)
    elif kind == 1:
        pattern, colour = np.sin(xx / period * 6.28 + phase), (40, 180, 60)
    elif kind == 2:
        pattern, colour = np.sign(np.sin(xx / period * 3.14) * np.sin(yy / period * 3.14)), (40, 60, 200)
    else:
        r = np.hypot(yy - height / 2, xx - width / 2)
        pattern, colour = np.sin(r / period * 6.28 + phase), (150, 150, 150)
    base = 0.5 + 0.4 * pattern[..., None]
    image = base * np.asarray(colour) + rng.normal(0, 12, (height, width, 3)) + 30
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def images_dir(tmp_path_factory) -> Path:
    """Folder per class, 8 images each, jpg and png mixed, in nested sub-folders."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        for i in range(8):
            folder = root / name / ("a" if i % 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            suffix = ".png" if i % 3 == 0 else ".jpg"
            Image.fromarray(make_image(k, rng)).save(folder / f"{i}{suffix}")
    return root


@pytest.fixture(scope="session")
def constant_images_dir(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("constant")
    for i in range(6):
        Image.new("RGB", (100, 100), (128, 128, 128)).save(root / f"c{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, images_dir) -> Path:
    """A tiny Xception (width 1/8, 2 middle blocks, 96x96) with a head fitted to the generated images."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from edgex.evaluate import labelled_folder, preprocess_all
    from edgex.models.keras_xception import build_xception, fit_linear_head, recalibrate_batchnorm
    from edgex.preprocess import Preprocess

    keras.utils.set_random_seed(0)
    model = build_xception(input_size=TINY_SIZE, classes=len(CLASSES), width=0.125, middle_blocks=2)
    files, labels, _ = labelled_folder(images_dir, CLASSES)
    inputs = preprocess_all(files, Preprocess(TINY_SIZE, TINY_SIZE))
    recalibrate_batchnorm(model, inputs)
    fit_linear_head(model, inputs, labels)
    path = tmp_path_factory.mktemp("model") / "tiny_xception.keras"
    model.save(path)
    path.with_suffix(".classes.json").write_text(json.dumps(CLASSES))
    return path


def run_edgex(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in a child process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "edgex", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def leftovers(output: Path) -> list[Path]:
    """Staging folders or temp files an interrupted or failed run might leave behind."""
    return [p for p in output.rglob("*") if p.name.startswith(".edgex-staging-") or p.suffix == ".tmp"]
