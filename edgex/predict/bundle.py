"""`edgex bundle`: an artifact as a self-contained folder or .tar.gz a device can run with predict.py alone.

Contents: the model files and manifest.json (checked against their sha256 first), labels.txt, predict.py
(edgex/predict/standalone.py verbatim), requirements.txt and README.md (edgex.predict.device_docs). The
bundle is assembled in a hidden folder beside the output and moved into place whole, so a failed or
interrupted run leaves no half bundle.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgex.errors import DataError, OutputError, UsageError, output_failure
from edgex.predict import device_docs
from edgex.predict.standalone import class_names

TAR_SUFFIXES = (".tar.gz", ".tgz")
STANDALONE = Path(__file__).with_name("standalone.py")


@dataclass
class Bundle:
    path: Path
    name: str
    files: list[str]


def build_bundle(artifact: Path, output: Path, force: bool = False) -> Bundle:
    """Write the bundle of `artifact` to `output` (a .tar.gz/.tgz file, else a folder)."""
    from edgex.artifacts.manifest import load_manifest, verify_files
    from edgex.converters import TARGETS

    folder = Path(artifact)
    if folder.is_file() and (folder.parent / "manifest.json").is_file():
        folder = folder.parent
    manifest = load_manifest(folder)
    verify_files(folder, manifest)
    if manifest["target"] not in TARGETS:
        raise DataError(f"{folder}: unknown target {manifest['target']!r} in manifest.json")
    runtime = TARGETS[manifest["target"]].runtime
    output = Path(output)
    _check_output(folder, output, force)
    name = bundle_name(manifest, folder)
    tarball = output.name.lower().endswith(TAR_SUFFIXES)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".edgex-bundle-", dir=output.parent) as tmp:
            root = Path(tmp) / name
            files = _write_contents(root, folder, manifest, runtime, output.name if tarball else None)
            if tarball:
                staged = Path(tmp) / "bundle.tar.gz"
                _write_tar(staged, root, name, files)
                os.replace(staged, output)
            else:
                _swap_in(root, output)
    except OSError as exc:
        raise output_failure(exc, output) from exc
    return Bundle(output, name, files)


def bundle_name(manifest: dict, folder: Path) -> str:
    """<source model>-<target>-<precision>, in characters safe for any file system and shell."""
    source = (manifest.get("source") or {}).get("name") or folder.resolve().parent.name or "model"
    raw = f"{source}-{manifest['target']}-{manifest['precision']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._") or "edgex-bundle"


def labels(manifest: dict) -> list[str]:
    """The class names in output order (class_<i> where the manifest has none)."""
    count = _output_classes(manifest)
    classes = manifest.get("classes") or []
    return class_names(classes, max(count or 0, len(classes)))


def _output_classes(manifest: dict) -> int | None:
    outputs = manifest.get("outputs") or [{}]
    shape = outputs[0].get("shape") if isinstance(outputs[0], dict) else None
    if isinstance(shape, str):  # OpenVINO: "[?,4]"
        shape = shape.strip("[]").split(",")
    with contextlib.suppress(TypeError, ValueError, IndexError):
        return int(shape[-1])
    return None


def _check_output(folder: Path, output: Path, force: bool) -> None:
    here, there = folder.resolve(), output.resolve()
    if there == here or there in here.parents or here in there.parents:
        raise UsageError(f"--output {output} overlaps the artifact folder {folder}", "Write the bundle elsewhere.")
    if output.exists() and not force and (output.is_file() or any(output.iterdir())):
        raise OutputError(f"{output} already exists", "Pass --force to replace it, or choose another --output.")
    if output.is_file() != output.name.lower().endswith(TAR_SUFFIXES) and output.exists():
        raise OutputError(f"{output} exists and is a {'file' if output.is_file() else 'folder'}",
                          "Choose another --output.")


def _write_contents(root: Path, folder: Path, manifest: dict, runtime: str, tarball: str | None) -> list[str]:
    """Everything the device needs, in `root`; returns the file names."""
    root.mkdir()
    names = [entry["name"] for entry in manifest["files"]]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / name, root / name)
    shutil.copyfile(folder / "manifest.json", root / "manifest.json")
    classes = labels(manifest)
    (root / "labels.txt").write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
    shutil.copyfile(STANDALONE, root / "predict.py")
    (root / "predict.py").chmod(0o755)
    (root / "requirements.txt").write_text(device_docs.requirements_txt(runtime, manifest), encoding="utf-8")
    (root / "README.md").write_text(device_docs.readme(root.name, manifest, runtime, classes, tarball),
                                    encoding="utf-8")
    return [*names, "manifest.json", "labels.txt", "predict.py", "requirements.txt", "README.md"]


def _write_tar(path: Path, root: Path, name: str, files: list[str]) -> None:
    """A gzip tarball with one top folder; owner root, modes 644 (755 for predict.py and folders)."""
    now = int(time.time())

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = now
        info.mode = 0o755 if info.isdir() or info.name.endswith("/predict.py") else 0o644
        return info

    with tarfile.open(path, "w:gz") as tar:
        folders = sorted({p.as_posix() for f in files for p in Path(f).parents if p.as_posix() != "."})
        for member in ["", *folders]:  # the top folder, then any folders of nested model files
            tar.add(root / member, arcname=f"{name}/{member}".rstrip("/"), recursive=False, filter=clean)
        for file in files:
            tar.add(root / file, arcname=f"{name}/{file}", filter=clean)


def _swap_in(root: Path, output: Path) -> None:
    """Move the finished folder to `output`, replacing an old one only once the new one is complete."""
    old = None
    if output.exists():
        old = output.with_name(f".edgex-bundle-old-{os.getpid()}-{output.name}")
        output.rename(old)
    try:
        root.rename(output)
    except OSError:
        if old is not None:
            old.rename(output)
        raise
    if old is not None and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink()
