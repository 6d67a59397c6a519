"""Find the artifacts to benchmark: artifact folders (with manifest.json), folders of them, or bare model files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgex.converters import TARGETS
from edgex.errors import EdgexError, MissingInputError, UsageError

MODEL_SUFFIXES = {info.suffix: (info.name, info.runtime) for info in TARGETS.values()}


@dataclass
class ArtifactRef:
    """One artifact to measure; `problem` is set when it cannot even be described (bad manifest)."""

    name: str
    folder: Path
    model_file: Path
    target: str
    precision: str | None
    runtime: str
    manifest: dict | None
    problem: str | None = None
    problem_kind: str = "bad_input"

    @property
    def size_bytes(self) -> int:
        if self.manifest and self.manifest.get("files"):
            names = [self.folder / f["name"] for f in self.manifest["files"]]
        else:
            names = [self.model_file, self.model_file.with_suffix(".bin")]
        return sum(p.stat().st_size for p in names if p.is_file())


def find_artifacts(paths: list[Path]) -> list[ArtifactRef]:
    """Each path: an artifact folder, a folder of artifact folders (searched two levels deep), or a model file."""
    found: list[ArtifactRef] = []
    for path in map(Path, paths):
        if not path.exists():
            raise MissingInputError(f"{path} does not exist", "Pass artifact folders made by edgex convert.")
        if path.is_file():
            if path.suffix not in MODEL_SUFFIXES:
                raise UsageError(f"cannot tell the runtime of {path}", "edgex benchmarks .onnx, .xml and .tflite.")
            found.append(_from_file(path))
        elif (path / "manifest.json").is_file():
            found.append(_from_folder(path))
        else:
            folders = sorted({m.parent for pattern in ("*/manifest.json", "*/*/manifest.json")
                              for m in path.glob(pattern)})
            if not folders:
                raise MissingInputError(f"no artifacts (manifest.json) under {path}",
                                        "Convert first: edgex convert --output DIR.")
            found += [_from_folder(f) for f in folders]
    return found


def _from_folder(folder: Path) -> ArtifactRef:
    from edgex.artifacts.manifest import load_manifest

    try:
        manifest = load_manifest(folder)
        target, model_file = manifest["target"], folder / manifest["model_file"]
        runtime = TARGETS[target].runtime
    except (EdgexError, KeyError) as exc:
        return ArtifactRef(folder.name, folder, folder / "?", "?", None, "?", None,
                           problem=f"unusable manifest.json: {exc}")
    ref = ArtifactRef(f"{target}-{manifest.get('precision')}", folder, model_file, target,
                      manifest.get("precision"), runtime, manifest)
    ref.problem = _unsafe(model_file)
    ref.problem_kind = "load_failed"
    return ref


def _from_file(path: Path) -> ArtifactRef:
    if (path.parent / "manifest.json").is_file():
        return _from_folder(path.parent)
    target, runtime = MODEL_SUFFIXES[path.suffix]
    return ArtifactRef(path.stem, path.parent, path, target, None, runtime, None, problem=_unsafe(path),
                       problem_kind="load_failed")


def _unsafe(model_file: Path) -> str | None:
    """Why the model file must not be handed to a runtime (format, external data, sizes), or None.

    The full parse happens in the runner's own child process, so a native crash there spoils one row only.
    """
    from edgex.safety.model_file import check_model_file

    try:
        check_model_file(model_file, parse=False, formats={"onnx", "tflite", "openvino_ir"})
    except EdgexError as exc:
        return exc.one_line()
    return None
