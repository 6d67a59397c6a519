"""PyTorch sources: safetensors + JSON sidecar, plain state_dict `.pt`, and `torch.export` programs (`.pt2`).

Only formats that cannot run code load by default: safetensors is pure data and `.pt` goes through
`torch.load(weights_only=True)`. A `.pt2` program can hold pickled code, so it needs --trust-model.
The sidecar (M.json beside M.safetensors or M.pt) says which architecture the weights belong to,
the class names and the preprocessing. Artifacts take the layout recorded in the preprocessing
(NHWC by default, what phone and Pi apps feed); the module itself runs NCHW, adapted by a transpose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgex.errors import DataError, MissingDependencyError, MissingInputError, RefusedError, UsageError
from edgex.preprocess import Preprocess

TORCH_SUFFIXES = (".safetensors", ".pt", ".pth", ".pt2")
SIDECAR_FORMAT = "edgex-torch-sidecar/1"
DEFAULT_ARTIFACT_LAYOUT = "NHWC"


def sidecar_path(weights: Path) -> Path:
    """M.safetensors -> M.json (the sidecar that says what the weights are)."""
    return Path(weights).with_suffix(".json")


def write_sidecar(path: Path, *, architecture: str, config: dict, classes: list[str] | None,
                  preprocess: Preprocess, module_layout: str = "NCHW", extra: dict | None = None) -> dict:
    data = {
        "format": SIDECAR_FORMAT,
        "architecture": architecture,
        "config": config,
        "classes": classes,
        "input_size": [preprocess.height, preprocess.width],
        "module_layout": module_layout,
        "preprocess": preprocess.to_dict(),
        **(extra or {}),
    }
    from edgex.artifacts.hashing import write_json

    write_json(path, data)
    return data


def read_sidecar(path: Path, required: bool) -> dict | None:
    if not path.is_file():
        if required:
            raise MissingInputError(f"no sidecar {path} beside the weights (it names the architecture)",
                                    "Create the weights with `edgex port`, or write the sidecar JSON.")
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"sidecar {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise DataError(f"sidecar {path} is not an edgex sidecar (format {SIDECAR_FORMAT!r} expected)")
    classes = data.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise DataError(f"sidecar {path}: classes must be a list of names, got {type(classes).__name__}",
                        "Fix or remove its \"classes\" entry (or pass --classes).")
    return data


def _require_torch():
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("PyTorch sources need torch", "pip install 'edgex[torch]'") from exc
    return torch


def adapt_layout(module, module_layout: str, layout: str):
    """`module` taking `layout` input: a leading transpose when the module itself takes the other layout."""
    torch = _require_torch()
    if module_layout == layout:
        return module

    class _Permuted(torch.nn.Module):
        def __init__(self, inner, order):
            super().__init__()
            self.inner, self.order = inner, order

        def forward(self, x):
            return self.inner(x.permute(*self.order))

    wrapped = _Permuted(module, (0, 3, 1, 2) if layout == "NHWC" else (0, 2, 3, 1))
    wrapped.training = False  # not .eval(): exported programs' modules refuse train()/eval()
    return wrapped


@dataclass
class TorchModel:
    """A loaded nn.Module (eval mode) and the layout its forward takes."""

    module: object
    module_layout: str = "NCHW"
    architecture: str = "module"
    config: dict | None = None
    dynamic_batch: bool = True  # False for exported programs, whose graphs are specialised to their batch

    def for_layout(self, layout: str):
        """The module as an artifact exports it: input in `layout`."""
        return adapt_layout(self.module, self.module_layout, layout)

    def layout_note(self, layout: str) -> str:
        """Said in the printed input contract: an NCHW module still gets NHWC artifacts unless asked."""
        if layout == self.module_layout:
            return ""
        return (f" (the module takes {self.module_layout}; the artifacts take {layout}, transposed inside; "
                f"--layout {self.module_layout} or layout=\"{self.module_layout}\" keeps {self.module_layout})")

    def example_input(self, preprocess: Preprocess, batch: int = 1):
        torch = _require_torch()
        generator = torch.Generator().manual_seed(0)
        shape = (batch, *preprocess.input_shape[1:])
        return torch.rand(shape, generator=generator) * 2 - 1

    def predict(self, batch: np.ndarray, layout: str) -> np.ndarray:
        torch = _require_torch()
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if layout != self.module_layout:
            x = x.permute(0, 3, 1, 2) if layout == "NHWC" else x.permute(0, 2, 3, 1)
        with torch.inference_mode():
            parts = [x] if self.dynamic_batch else [x[i : i + 1] for i in range(len(x))]
            out = torch.cat([self.module(part) for part in parts])
        return out.detach().float().numpy()


def architecture_config(architecture: str, config: dict):
    """The sidecar's architecture and config, checked as data (65) before anything is built."""
    if architecture != "xception":
        raise DataError(f"unknown architecture {architecture!r}", "edgex builds: xception.")
    from edgex.models.torch_xception import XceptionConfig

    try:
        return XceptionConfig.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise DataError(f"invalid Xception config: {exc}",
                        "Fix its \"config\", or write the sidecar again with `edgex port`.") from exc


def build_architecture(architecture: str, config: dict):
    """The nn.Module a sidecar names, with freshly initialised weights."""
    from edgex.models.torch_xception import build_xception

    return build_xception(architecture_config(architecture, config))


def checked_sidecar(weights: Path, builds: bool, required: bool | None = None) -> tuple[dict | None,
                                                                                        Preprocess | None]:
    """The sidecar beside `weights` (by default required when it names what to `build`), every field checked
    as data before a module is built or a weight read: architecture and config, module layout, preprocessing
    and its size. `load_torch_model` and `edgex check` both call it."""
    sidecar = read_sidecar(sidecar_path(weights), required=builds if required is None else required)
    if sidecar is None:
        return None, None
    where = sidecar_path(weights)
    architecture = sidecar.get("architecture", "")
    try:
        if builds:
            architecture_config(architecture, sidecar.get("config") or {})
        layout = sidecar.get("module_layout", "NCHW")
        if layout not in ("NCHW", "NHWC"):
            raise DataError(f"module_layout {layout!r} is neither NCHW nor NHWC",
                            "Fix it, or write the sidecar again with `edgex port`.")
        preprocess = Preprocess.from_dict(sidecar["preprocess"]) if sidecar.get("preprocess") else None
    except DataError as exc:  # said once, with the file it is in
        raise DataError(f"sidecar {where}: {exc.message}", exc.hint) from exc
    if builds and preprocess is not None:
        check_input_size(architecture, preprocess, weights)
    return sidecar, preprocess


def check_input_size(architecture: str, preprocess: Preprocess, weights: Path) -> None:
    from edgex.models.torch_xception import MIN_INPUT_SIZE

    if architecture == "xception" and min(preprocess.height, preprocess.width) < MIN_INPUT_SIZE:
        raise DataError(f"the sidecar of {weights.name} gives a {preprocess.height}x{preprocess.width} input; "
                        f"Xception needs at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}",
                        "Fix preprocess.height/width in the sidecar (edgex port writes the model's own size).")


def load_state_dict_into(module, state: dict, path: Path) -> None:
    torch = _require_torch()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path} does not hold a state_dict (a mapping of names to tensors)",
                        "Save it with torch.save(model.state_dict(), path).")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise DataError(f"weights in {path} do not fit the sidecar's architecture: {detail[:400]}") from exc


def _load_pt(path: Path):
    torch = _require_torch()
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RefusedError(f"{path} holds more than tensors (pickled objects or code); refused",
                           "Save model.state_dict(), or use safetensors.") from exc
    except Exception as exc:  # a damaged zip or tensor record raises anything (BadZipFile, KeyError...)
        raise DataError(f"cannot read PyTorch file {path}: {(str(exc).splitlines() or [type(exc).__name__])[0]}",
                        "Re-save or re-download it.") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def _load_weights(path: Path) -> dict:
    if path.suffix.lower() == ".safetensors":
        _require_torch()
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise DataError(f"cannot read safetensors file {path}: {exc}") from exc
    return _load_pt(path)


def _load_exported(path: Path, trust_model: bool) -> tuple[TorchModel, tuple[int, ...]]:
    if not trust_model:
        raise RefusedError(f"{path} is a torch.export program, which can hold pickled code",
                           "Pass --trust-model if you trust its author, or use .safetensors with a sidecar.")
    torch = _require_torch()
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # torch.export.load raises many untyped errors for foreign files.
        raise DataError(f"cannot load torch.export program {path}: {exc}") from exc
    shape = _exported_input_shape(program)
    layout = "NHWC" if shape[-1] == 3 and shape[1] != 3 else "NCHW"
    model = TorchModel(module=program.module(), module_layout=layout, architecture="torch.export",
                       dynamic_batch=False)
    return model, shape


def _exported_input_shape(program) -> tuple[int, ...]:
    names = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            value = node.meta.get("val")
            if value is not None and len(value.shape) == 4:
                return tuple(int(d) if str(d).isdigit() else -1 for d in value.shape)
    raise DataError("the torch.export program does not take one image batch (N, C, H, W)")


XCEPTION_DEFAULT = "Xception's default, x/127.5 - 1, bilinear resize, no crop"
OVERRIDE_HINT = "--mean/--std/--interpolation/--crop-fraction (API: mean=, std=, interpolation=, crop_fraction=)"
MODULE_CFG_ATTRIBUTES = ("pretrained_cfg", "default_cfg")  # timm's names for what a checkpoint expects


def default_preprocess(model: TorchModel, shape: tuple[int, ...] | None) -> Preprocess:
    """Xception scaling (x/127.5 - 1) at the module's example size, NHWC artifacts: an assumption, said so."""
    height = width = 299
    if shape is not None:
        height, width = (shape[2], shape[3]) if model.module_layout == "NCHW" else (shape[1], shape[2])
    return Preprocess(height=int(height), width=int(width), layout=DEFAULT_ARTIFACT_LAYOUT,
                      source={"inferred_from": "torch module input", "assumed": XCEPTION_DEFAULT,
                              "note": f"assumed {XCEPTION_DEFAULT} (the model records no preprocessing); "
                                      f"if it was trained otherwise, pass {OVERRIDE_HINT}"})


def module_cfg(module) -> tuple[str, dict] | None:
    """(attribute, cfg) when the module carries timm-style preprocessing (mean and std at least)."""
    for attribute in MODULE_CFG_ATTRIBUTES:
        cfg = getattr(module, attribute, None)
        if isinstance(cfg, dict) and cfg.get("mean") is not None and cfg.get("std") is not None:
            return attribute, cfg
    return None


def preprocess_from_cfg(cfg: dict, attribute: str, height: int, width: int) -> Preprocess:
    """timm's pretrained_cfg (mean/std on 0..1 pixels, interpolation, crop_pct) as edgex's Preprocess.

    The size is the example input's (the exported program is fixed to it). timm's eval crop resizes the
    shorter side to size / crop_pct and cuts the center square; edgex cuts crop_pct of each side, then
    resizes: the same pixels on square photos, a slightly different region on others (recorded).
    """
    from edgex.preprocess import INTERPOLATIONS

    def triple(key: str) -> tuple[float, float, float]:
        values = cfg[key]
        values = [values] * 3 if isinstance(values, (int, float)) else list(values)
        if len(values) != 3:
            raise DataError(f"module.{attribute}[{key!r}] has {len(values)} values; RGB needs 3",
                            f"Fix the module's {attribute}, or pass --mean/--std.")
        return tuple(round(float(v) * 255.0, 6) for v in values)

    read = {k: cfg[k] for k in ("mean", "std", "interpolation", "crop_pct", "crop_mode", "input_size") if k in cfg}
    notes = []
    interpolation = str(cfg.get("interpolation") or "bilinear")
    if interpolation not in INTERPOLATIONS:
        notes.append(f"interpolation {interpolation!r} has no edgex equivalent: bilinear used")
        interpolation = "bilinear"
    crop = cfg.get("crop_pct")
    crop_fraction = float(crop) if crop is not None and 0.0 < float(crop) < 1.0 else None
    if crop_fraction is not None:
        mode = cfg.get("crop_mode", "center")
        notes.append(f"timm crop_mode {mode!r} keeps a square of the shorter side; edgex crops {crop_fraction:g} "
                     "of each side, then resizes (the same on square images)")
    size = cfg.get("input_size")
    if size is not None and tuple(int(v) for v in list(size)[-2:]) != (height, width):
        notes.append(f"input_size {list(size)} differs from the example input's {height}x{width}: "
                     "the artifacts take the example's size")
    origin = {"read_from": f"module.{attribute} (timm-style)", "values": _plain(read)}
    if notes:
        origin["notes"] = notes
    return Preprocess(height=int(height), width=int(width), interpolation=interpolation, crop_fraction=crop_fraction,
                      mean=triple("mean"), std=triple("std"), layout=DEFAULT_ARTIFACT_LAYOUT, source=origin)


def _plain(value):
    """JSON-safe copy (tuples to lists) of a cfg excerpt."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def load_torch_model(path: Path, trust_model: bool = False) -> tuple[TorchModel, Preprocess, list[str] | None]:
    """A PyTorch file (weights + sidecar, or an exported program) as (model, preprocessing, sidecar's classes).

    edgex.sources.load wraps them in a `Source`; this module never imports it (no import circle)."""
    suffix = path.suffix.lower()
    if suffix not in TORCH_SUFFIXES:
        raise UsageError(f"{path} is not a PyTorch file", f"Use one of: {', '.join(TORCH_SUFFIXES)}.")
    shape = None
    if suffix == ".pt2":
        model, shape = _load_exported(path, trust_model)
        sidecar, preprocess = checked_sidecar(path, builds=False)
    else:
        sidecar, preprocess = checked_sidecar(path, builds=True)
        module = build_architecture(sidecar.get("architecture", ""), sidecar.get("config") or {})
        load_state_dict_into(module, _load_weights(path), path)
        model = TorchModel(module=module.eval(), module_layout=sidecar.get("module_layout", "NCHW"),
                           architecture=sidecar["architecture"], config=sidecar.get("config"))
    if preprocess is None:
        preprocess = default_preprocess(model, shape)
    check_input_size(model.architecture, preprocess, path)
    return model, preprocess, (sidecar or {}).get("classes")
