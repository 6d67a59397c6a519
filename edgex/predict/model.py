"""`edgex.load(path)`: an artifact (or source model) ready to classify images.

It runs through the same pieces as `edgex eval` and the parity gate, so they cannot disagree: the runtime
adapter of `edgex.runtimes.open_runtime` (int8 input quantization and output dequantization happen
there) and `edgex.preprocess.Preprocess` built from the manifest.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgex.errors import DataError, MissingDependencyError, MissingInputError, NonFiniteOutputError, UsageError
from edgex.predict.result import Predictions

SOURCE_SUFFIXES = (".keras", ".h5", ".hdf5", ".safetensors", ".pt", ".pth", ".pt2")
ARTIFACT_SUFFIXES = (".onnx", ".xml", ".tflite", ".bin")
DEFAULT_TOP_K = 5


class Predictor:
    """A loaded model, its preprocessing, class names and output kind; a context manager that frees the
    runtime on exit. `predict` takes paths, PIL images and numpy arrays (see edgex.predict.items)."""

    def __init__(self, model: str | Path, *, device: str = "cpu", threads: int | None = None,
                 trust_model: bool = False, top_k: int = DEFAULT_TOP_K):
        if device not in ("cpu", "gpu"):
            raise UsageError(f"unknown device {device!r}", "Use cpu or gpu.")
        if top_k < 1 or (threads is not None and threads < 1):
            raise UsageError("top_k and threads must be at least 1")
        self.path, self.top_k, self.device = Path(model), top_k, device
        self.fixed_batch: int | None = None
        folder = _artifact_folder(self.path)
        if folder is not None:
            self._open_artifact(folder, threads, device)
        else:
            self._open_source(threads, device, trust_model)

    def _open_artifact(self, folder: Path, threads: int | None, device: str) -> None:
        from edgex.artifacts.manifest import load_manifest, verify_files
        from edgex.converters import TARGETS
        from edgex.preprocess import Preprocess
        from edgex.safety.first_open import files_digest, first_open_in_child
        from edgex.safety.model_file import check_model_file

        manifest = load_manifest(folder)
        verify_files(folder, manifest)  # a truncated copy fails here, not with a runtime's cryptic message
        if manifest["target"] not in TARGETS:
            raise DataError(f"{folder}: unknown target {manifest['target']!r} in manifest.json",
                            f"Targets: {', '.join(TARGETS)}.")
        if not isinstance(manifest.get("preprocess"), dict):
            raise DataError(f"{folder}: manifest.json has no preprocessing", "Rebuild the artifact with edgex convert.")
        model_file = folder / manifest["model_file"]
        check_model_file(model_file, parse=False, formats={"onnx", "tflite", "openvino_ir"})
        self.folder, self.manifest, self.kind = folder, manifest, "artifact"
        self.runtime = TARGETS[manifest["target"]].runtime
        self.preprocess = Preprocess.from_dict(manifest["preprocess"])
        self.classes = manifest.get("classes")
        self.output_kind = _output_kind(manifest.get("output_kind"), folder)
        self.fixed_batch = _fixed_batch(manifest)
        first_open_in_child(self.runtime, model_file, manifest.get("precision"), files_digest(manifest))
        self.session = _open(self.runtime, model_file, manifest.get("precision"), threads, device)
        if device == "gpu":
            from edgex.runtimes.gpu import ran_on_gpu

            if not ran_on_gpu({"runtime": self.session.info}):
                raise MissingDependencyError(f"{self.runtime} cannot run {model_file.name} on a GPU here",
                                             "Run edgex doctor to see which GPU back-ends are missing.")

    def _open_source(self, threads: int | None, device: str, trust_model: bool) -> None:
        from edgex.runtimes.source import SourceSession

        if device != "cpu":
            raise UsageError("--device gpu applies to converted artifacts", "Convert first, or use --device cpu.")
        session = SourceSession(self.path, None, threads, trust_model=trust_model)
        self.folder, self.manifest, self.kind = self.path, None, "source"
        self.runtime = session.source.framework
        self.session = session
        self.preprocess = session.source.preprocess
        self.classes = session.source.classes
        self.output_kind = session.source.output_kind

    # -- inference -------------------------------------------------------------------------------------

    def load_image(self, path: str | Path) -> np.ndarray:
        """One image file, preprocessed as the manifest says (DataError, exit 65, when it cannot be read)."""
        return self.preprocess.load(Path(path))

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw float32 outputs for a preprocessed batch, split to the graph's fixed batch when it has one."""
        if self.session is None:
            raise UsageError("this predictor is closed", "Call edgex.load() again.")
        step = self.fixed_batch or len(batch)
        try:
            out = [self.session.run(batch[i : i + step]) for i in range(0, len(batch), step)]
        except Exception as exc:  # runtimes raise anything on a bad graph
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise DataError(f"{self.runtime} failed running {self.path.name}: {first}",
                            "Is the artifact complete? Re-run edgex convert.") from exc
        return np.concatenate(out).astype(np.float32, copy=False)

    def predict(self, items, top_k: int | None = None) -> Predictions:
        """Classify paths, PIL images and arrays (one item or a list); a file that cannot be read raises.

        Outputs holding NaN or Inf are not predictions: NonFiniteOutputError (exit code 4) names those inputs
        and carries the raw rows in `.outputs`; no Predictions is returned for the call."""
        from edgex.predict.items import tensors

        names, batch = tensors(items, self.preprocess)
        outputs = self.run(batch)
        check_finite(outputs.reshape(len(names), -1), names, self.path)
        return Predictions.from_outputs(names, outputs, self.classes, self.output_kind, top_k or self.top_k)

    # -- lifetime --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the runtime (and a source model's framework objects); later calls to predict raise."""
        session, self.session = getattr(self, "session", None), None
        source = getattr(session, "source", None)
        if source is not None:
            source.close()
            source.model = source.export_model = None
        del session
        import gc

        gc.collect()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.session is None else self.runtime
        return f"<edgex Predictor {self.path} ({self.kind}, {state}, {len(self.classes or [])} classes)>"


def load(model: str | Path, *, device: str = "cpu", threads: int | None = None, trust_model: bool = False,
         top_k: int = DEFAULT_TOP_K) -> Predictor:
    """Load an artifact folder (or its model file, or a source model) for prediction.

        with edgex.load("out/m/tflite-int8") as p:
            result = p.predict(["a.jpg", pil_image, uint8_batch])
            result.labels, result.probabilities, result.top_k
    """
    return Predictor(model, device=device, threads=threads, trust_model=trust_model, top_k=top_k)


def check_finite(outputs: np.ndarray, names: list[str], model: Path) -> None:
    """NonFiniteOutputError naming the inputs whose output rows hold NaN/Inf (the shared nonfinite_reason)."""
    from edgex.predict.standalone import nonfinite_reason

    bad = [i for i, row in enumerate(outputs) if nonfinite_reason(row) is not None]
    if bad:
        shown = ", ".join(names[i] for i in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteOutputError(f"{model.name}: {nonfinite_reason(outputs[bad])} for {shown}",
                                   "The artifact's weights or arithmetic are broken: rebuild it with edgex convert.",
                                   inputs=[names[i] for i in bad], outputs=outputs)


def _artifact_folder(path: Path) -> Path | None:
    """The artifact folder `path` names (the folder, or a model file inside it); None for a source model."""
    if not path.exists():
        raise MissingInputError(f"{path} does not exist", "Pass an artifact folder (with manifest.json) or a model.")
    if path.is_dir():
        if (path / "manifest.json").is_file():
            return path
        if (path / "saved_model.pb").is_file():
            return None
        found = sorted(m.parent for pattern in ("*/manifest.json", "*/*/manifest.json") for m in path.glob(pattern))
        hint = f"Choose one, e.g. {found[0]}." if found else "Convert first: edgex convert --output DIR."
        raise UsageError(f"{path} is not an artifact folder (no manifest.json)", hint)
    if path.suffix.lower() in ARTIFACT_SUFFIXES:
        if (path.parent / "manifest.json").is_file():
            return path.parent
        raise UsageError(f"{path} has no manifest.json beside it: its preprocessing and classes are unknown",
                         "Pass the artifact folder made by edgex convert.")
    if path.suffix.lower() in SOURCE_SUFFIXES:
        return None
    raise UsageError(f"cannot tell what {path} is", "Pass an artifact folder or a source model "
                     f"({', '.join(SOURCE_SUFFIXES)}).")


def _output_kind(kind: object, folder: Path) -> str:
    from edgex.predict.standalone import OUTPUT_KINDS

    kind = kind or "logits"  # manifests before output_kind was recorded held logits models
    if kind not in OUTPUT_KINDS:
        raise DataError(f"{folder}: unknown output_kind {kind!r} in manifest.json",
                        f"Expected one of {', '.join(OUTPUT_KINDS)}.")
    return str(kind)


def _fixed_batch(manifest: dict) -> int | None:
    """The graph's fixed batch size from the manifest's first input shape; None when it is dynamic."""
    inputs = manifest.get("inputs") or [{}]
    shape = inputs[0].get("shape") if isinstance(inputs[0], dict) else None
    first = shape[0] if isinstance(shape, list) and shape else None
    if isinstance(shape, str):  # OpenVINO writes "[?,96,96,3]" or "[1,96,96,3]"
        match = re.match(r"\s*\[\s*(\d+)\s*,", shape)
        first = int(match.group(1)) if match else None
    return first if isinstance(first, int) and not isinstance(first, bool) and first > 0 else None


def _open(runtime: str, model_file: Path, precision: str | None, threads: int | None, device: str):
    """open_runtime: a runtime that cannot load is already a typed edgex error (and exit code) there."""
    from edgex.runtimes import open_runtime

    return open_runtime(runtime, model_file, precision, threads, device)
