"""Shared fixtures: a tiny trained-head Xception, generated labelled images (helpers: tests/helpers.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import CLASSES, build_once, build_tiny_model, run_shared_dir, write_images

_CACHE_MADE_HERE = pytest.StashKey[Path]()


def pytest_configure(config) -> None:
    """A suite started in the background of a non-interactive shell inherits SIGINT ignored; Python then
    never raises KeyboardInterrupt, here or in the CLI children (which inherit the disposition). The
    Ctrl-C tests need what a user's terminal gives: the default handler."""
    import signal
    import tempfile

    # Not the user's cache; one for all xdist workers of a run (they inherit the controller's environment), so
    # an fp32 ONNX export is made once per run. Whoever made it removes it (pytest_unconfigure): each run's
    # cache held about 90 MB, and /tmp kept them all.
    if "EDGEX_CACHE_DIR" not in os.environ:
        os.environ["EDGEX_CACHE_DIR"] = tempfile.mkdtemp(prefix="edgex-test-cache-")
        config.stash[_CACHE_MADE_HERE] = Path(os.environ["EDGEX_CACHE_DIR"])
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config) -> None:
    import shutil

    made = config.stash.get(_CACHE_MADE_HERE, None)
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def cli_fork_server() -> None:
    """Start this worker's fork server for CLI calls (tests/cli_calls.py) while the first test sets up."""
    from cli_calls import start_server

    start_server()


@pytest.fixture(scope="session")
def images_dir(tmp_path_factory) -> Path:
    return build_once(run_shared_dir(tmp_path_factory, "images"), write_images)


@pytest.fixture(scope="session")
def constant_images_dir(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("constant")
    for i in range(6):
        Image.new("RGB", (100, 100), (128, 128, 128)).save(root / f"c{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny Xception (width 1/8, 2 middle blocks, 96x96) with the committed weights of
    tests/data/tiny_xception.weights.npz: trained on the generated images, never retrained here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    def build(folder: Path) -> None:
        build_tiny_model().save(folder / "tiny_xception.keras")
        (folder / "tiny_xception.classes.json").write_text(json.dumps(CLASSES))

    return build_once(run_shared_dir(tmp_path_factory, "model"), build) / "tiny_xception.keras"


@pytest.fixture(scope="session")
def tiny_model_via_tf2onnx(tmp_path_factory) -> Path:
    """The tiny Xception followed by an Identity layer, which edgex's PyTorch port does not map: its ONNX graph
    comes from tf2onnx (a SavedModel, child processes, the export cache), as for any non-Xception Keras model."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    def build(folder: Path) -> None:
        import keras

        tiny = build_tiny_model()
        inputs = keras.Input(tiny.input_shape[1:])
        keras.Model(inputs, keras.layers.Identity()(tiny(inputs))).save(folder / "tiny_xception.keras")
        (folder / "tiny_xception.classes.json").write_text(json.dumps(CLASSES))

    return build_once(run_shared_dir(tmp_path_factory, "model-tf2onnx"), build) / "tiny_xception.keras"
