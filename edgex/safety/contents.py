"""What `edgex check` reads beyond the gate every load passes: every weight byte of the formats whose
loaders only run in-process.

The gate (`check_model_file`) parses ONNX, TFLite, OpenVINO IR and Keras files fully in a child. A
SavedModel folder and the PyTorch zips it only sniffs: a bit flip in their weights passed `check` and
failed the next `convert` or `predict` (found by benchmarks/fuzz.py). Here, still running none of the
model's code: a SavedModel's graph protobuf is parsed and its operations looked up, and every variable
read back through TensorFlow's checkpoint reader (which verifies each tensor's CRC32C); a torch zip's
entries are read against their CRC-32, and the JSON sidecar beside PyTorch weights is checked as
`convert` checks it; a safetensors file's float tensors and a TFLite model's float constants are scanned
for NaN (ONNX, OpenVINO and Keras weights are scanned by the gate's parse).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from edgex.errors import DataError
from edgex.safety import sniff
from edgex.safety.model_file import ModelFile

_TORCH_ZIPS = {sniff.TORCH, sniff.TORCHSCRIPT, sniff.PT2}
_WITH_SIDECAR = {sniff.TORCH, sniff.PICKLE, sniff.SAFETENSORS}  # weights only: the sidecar says what they are
_IN_CHILD = {sniff.SAVED_MODEL: "saved_model_contents", sniff.SAFETENSORS: "safetensors_contents",
             sniff.TFLITE: "tflite_contents"}


def verify_contents(model: ModelFile) -> dict:
    """Read every weight of `model` where the gate did not; returns what was read, raises DataError (65)."""
    found = _check_sidecar(model) if model.format in _TORCH_ZIPS | _WITH_SIDECAR else {}
    if model.format in _TORCH_ZIPS:
        return {**found, "zip_entries_crc_checked": _check_zip_crcs(model.path, model.format)}
    probe = _IN_CHILD.get(model.format)
    if probe is None:
        return found
    from edgex.safety.probe import parse_in_child

    return {**found, **parse_in_child(model.path, model.format, probe=probe)}


def _check_sidecar(model: ModelFile) -> dict:
    """The JSON sidecar beside PyTorch weights, where there is one, checked as `convert` checks it before
    building anything (a state_dict without one is still a sound file)."""
    from edgex.sources.pytorch import checked_sidecar, sidecar_path

    sidecar, _ = checked_sidecar(model.path, builds=model.format in _WITH_SIDECAR, required=False)
    return {"sidecar": sidecar_path(model.path).name} if sidecar is not None else {}


def _check_zip_crcs(path: Path, fmt: str) -> int:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{path} is not a valid {sniff.describe(fmt, article=False)}: {exc}",
                        "Re-save or re-download it.") from exc
    folder = names[0].split("/", 1)[0] if names else ""
    stray = next((n for n in names if not n.startswith(folder + "/") or ".." in n.split("/")), None)
    if stray is not None:  # PyTorch's reader refuses it too ("file in archive is not in a subdirectory")
        raise DataError(f"{path} is not a valid {sniff.describe(fmt, article=False)}: entry {stray!r} is outside "
                        f"the archive's folder {folder}/", "Re-save or re-download it.")
    if bad is not None:
        raise DataError(f"{path} is not a valid {sniff.describe(fmt, article=False)}: entry {bad!r} fails its "
                        "CRC-32 (damaged bytes)", "Re-save or re-download it.")
    return len(names)
