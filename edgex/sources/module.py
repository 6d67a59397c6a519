"""A `torch.nn.Module` handed to `edgex.convert`: saved as a torch.export program beside the artifacts.

The program is the source every manifest names (path and sha256), so it must outlive the call: it is
written to OUTPUT/<name>/<name>.pt2, next to the <target>-<precision> folders, where `edgex eval` finds it
to compare the artifacts against the FP32 model. edgex writes it from the caller's module, so loading it
back in the same call is trusted; later loads (eval, predict) ask for --trust-model like any .pt2.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgex.errors import DataError, UsageError


def module_as_program(model, example_input, trust_model: bool, output: Path) -> tuple[object, bool]:
    """(path, trust) for the converter: an nn.Module becomes OUTPUT/<name>/<name>.pt2; anything else unchanged."""
    if model is None or isinstance(model, (str, Path)):
        if example_input is not None:
            raise UsageError("example_input is only for a torch.nn.Module model")
        return model, trust_model
    name = type(model).__name__.lower()
    return save_module_program(model, example_input, Path(output) / name, name), True


def save_module_program(module, example_input, folder: Path, name: str) -> Path:
    """torch.export the module at the example input's size into folder/name.pt2 (written whole or not at all)."""
    try:
        import torch
    except ImportError as exc:  # a module without torch cannot exist; a foreign object gets the usage line
        raise UsageError(f"model must be a path or a torch.nn.Module, not {type(module).__name__}") from exc
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"model must be a path or a torch.nn.Module, not {type(module).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.ndim != 4:
        raise UsageError("a torch.nn.Module needs example_input: one image batch tensor (1, 3, H, W)")
    try:
        program = torch.export.export(module.eval(), (example_input[:1].float(),))
    except Exception as exc:  # torch.export raises many untyped errors for untraceable modules
        raise DataError(f"torch.export could not capture {type(module).__name__}: {str(exc).splitlines()[0]}") from exc
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt2"
    partial = folder / f".{name}.{os.getpid()}.partial.pt2"  # torch.export.save warns unless it ends .pt2
    try:
        torch.export.save(program, str(partial))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    _write_module_preprocess(module, example_input, path)
    return path


def _write_module_preprocess(module, example_input, path: Path) -> None:
    """The program drops module attributes: a sidecar carries timm-style preprocessing (`pretrained_cfg`)."""
    from edgex.sources.pytorch import module_cfg, preprocess_from_cfg, sidecar_path, write_sidecar

    found = module_cfg(module)
    if found is not None:
        height, width = (int(d) for d in example_input.shape[-2:])
        write_sidecar(sidecar_path(path), architecture="torch.export", config={}, classes=None,
                      preprocess=preprocess_from_cfg(found[1], found[0], height, width),
                      extra={"module": type(module).__name__})
