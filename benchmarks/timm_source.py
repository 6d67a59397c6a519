"""A timm `legacy_xception` with trained weights, as a user would hand it to edgex (benchmark, not CI).

Usage:
    pip install --no-deps --target /tmp/timm-pkg timm==1.0.31      # timm only, without torchvision
    python benchmarks/timm_source.py [--timm-path /tmp/timm-pkg] [--build DIR] [--convert]

The weights: the trained Keras clothing Xception (the kitchenware ImageNet backbone + the clothing head
in ../shared) ported into timm's module through edgex's own port (edgex.sources.port), whose PyTorch
names are then mapped onto timm's. BatchNorm epsilon is set to Keras' 1e-3 (a property of the weights).
The script prints the largest |timm - Keras| logit difference and top-1 on the held-out test images, and
with --convert runs `edgex.convert(module, example_input=..., target="all", precision="int8")` with 300
calibration images from validation/, prints its step timings, then `edgex eval` of the three artifacts
against the FP32 source on the held-out test images.

timm imports torchvision at import time (FrozenBatchNorm2d, data transforms), and the index's torchvision
wheels are CUDA builds that cannot load beside a CPU torch (`torchvision::nms does not exist`). When
torchvision does not import, a stand-in module supplies the names timm imports; each one raises if used.
Building and running `legacy_xception` uses none of them (the logit check against Keras proves it).
timm is not a dependency of edgex or of its tests.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import os
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_clothing_model, shared_dir  # noqa: E402

TIMM_VERSION = "1.0.31"
CALIBRATION_IMAGES = 300


class _Unavailable:
    """A torchvision name timm imports but legacy_xception never uses: using it raises."""

    def __init__(self, name: str):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self._name} needs torchvision, which is not importable here")

    def __getattr__(self, item: str):
        if item.startswith("__"):
            raise AttributeError(item)
        return _Unavailable(f"{self._name}.{item}")

    def __mro_entries__(self, bases):  # `class X(torchvision.ops.misc.FrozenBatchNorm2d)` at import
        return (object,)


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)

        def missing(item: str):
            if item.startswith("__"):
                raise AttributeError(item)
            return _Unavailable(f"{spec.name}.{item}")

        module.__getattr__ = missing
        return module

    def exec_module(self, module) -> None:
        module.__path__ = []


def import_timm(timm_path: str | None):
    """timm, with the torchvision stand-in only where the real torchvision cannot be imported."""
    if timm_path:
        sys.path.insert(0, timm_path)
    try:
        import torchvision  # noqa: F401
        stand_in = False
    except Exception:  # ImportError, or the CUDA wheel's RuntimeError (torchvision::nms)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _TorchvisionStandIn())
        stand_in = True
    import timm

    if timm.__version__ != TIMM_VERSION:
        print(f"note: timm {timm.__version__} (measured with {TIMM_VERSION})")
    return timm, stand_in


def edgex_to_timm_names(config) -> dict[str, str]:
    """edgex's PyTorch Xception state_dict prefix -> timm legacy_xception's."""
    names = {"stem1.conv": "conv1", "stem1.bn": "bn1", "stem2.conv": "conv2", "stem2.bn": "bn2"}

    def separable(ours: str, theirs: str, bn: str) -> None:
        names[f"{ours}.depthwise"] = f"{theirs}.conv1"
        names[f"{ours}.pointwise"] = f"{theirs}.pointwise"
        names[f"{ours}.bn"] = bn

    for i in range(3):  # entry flow: timm block1 has no leading ReLU, so its rep indices start at 0
        block = f"block{i + 1}"
        names[f"entry.{i}.residual.conv"], names[f"entry.{i}.residual.bn"] = f"{block}.skip", f"{block}.skipbn"
        first = 0 if i == 0 else 1
        separable(f"entry.{i}.sep1", f"{block}.rep.{first}", f"{block}.rep.{first + 1}")
        separable(f"entry.{i}.sep2", f"{block}.rep.{first + 3}", f"{block}.rep.{first + 4}")
    for i in range(config.middle_blocks):
        for j in range(3):
            separable(f"middle.{i}.seps.{j}", f"block{i + 4}.rep.{3 * j + 1}", f"block{i + 4}.rep.{3 * j + 2}")
    exit_block = f"block{config.middle_blocks + 4}"
    names["exit.residual.conv"], names["exit.residual.bn"] = f"{exit_block}.skip", f"{exit_block}.skipbn"
    separable("exit.sep1", f"{exit_block}.rep.1", f"{exit_block}.rep.2")
    separable("exit.sep2", f"{exit_block}.rep.4", f"{exit_block}.rep.5")
    separable("exit_sep1", "conv3", "bn3")
    separable("exit_sep2", "conv4", "bn4")
    names["head"] = "fc"
    return names


def rename(state: dict, names: dict[str, str]) -> dict:
    out = {}
    for key, value in state.items():
        prefix, leaf = key.rsplit(".", 1)
        out[f"{names[prefix]}.{leaf}"] = value
    return out


def build_timm_xception(timm, keras_source):
    """timm's legacy_xception holding the Keras model's trained weights, and the edgex config it matches."""
    import torch

    from edgex.models.torch_xception import build_xception
    from edgex.sources.port import collect_layers, config_for, keras_to_state_dict

    preprocess = keras_source.preprocess
    found = collect_layers(keras_source.model)
    config = config_for(found, (preprocess.height, preprocess.width))
    ours = build_xception(config)
    state = rename(keras_to_state_dict(found, ours), edgex_to_timm_names(config))
    module = timm.models.create_model("legacy_xception", pretrained=False, num_classes=config.num_classes)
    module.load_state_dict(state, strict=True)
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.eps = config.bn_epsilon
    # What the head was fitted with (Keras' x/127.5 - 1 = timm's mean = std = 0.5, whole image, no crop),
    # not timm's ImageNet evaluation recipe (bicubic, crop 0.8975): a fine-tuner's cfg describes their data.
    module.pretrained_cfg = {**module.pretrained_cfg, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
                             "interpolation": preprocess.interpolation, "crop_pct": 1.0,
                             "input_size": (3, preprocess.height, preprocess.width), "num_classes": config.num_classes}
    return module.eval()


def labelled(folder: Path) -> tuple[list[Path], list[str]]:
    from edgex.preprocess import find_images

    files = find_images(folder)
    return files, [p.parent.name for p in files]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timm-path", default=os.environ.get("EDGEX_TIMM_PATH"),
                        help="folder timm was pip-installed into with --target (default: timm on sys.path)")
    parser.add_argument("--build", type=Path, default=Path("/tmp/edgex-timm"))
    parser.add_argument("--convert", action="store_true", help="also run edgex.convert(target=all, int8)")
    parser.add_argument("--skip-verify", action="store_true", help="no logit check against Keras (with --convert)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args.build.mkdir(parents=True, exist_ok=True)
    timm, stand_in = import_timm(args.timm_path)
    import torch

    from edgex.sources.load import load_source

    data = shared_dir() / "datasets" / "clothing-small"
    keras_source = load_source(build_clothing_model(args.build))
    module = build_timm_xception(timm, keras_source)
    print(f"timm {timm.__version__} legacy_xception, torchvision "
          f"{'stand-in (not importable here)' if stand_in else 'real'}; machine: see the docs")
    classes = keras_source.classes
    if not args.skip_verify:
        verify(module, keras_source, data / "test")
    torch.save(module.state_dict(), args.build / "timm_legacy_xception.pt")
    keras_source.close()
    if args.convert:
        convert_and_time(module, classes, data, args.build / "artifacts")
    return 0


def verify(module, keras_source, folder: Path) -> None:
    """Largest |timm - Keras| logit and top-1 on held-out images."""
    import torch

    files, labels = labelled(folder)
    classes = keras_source.classes
    batch = np.stack([keras_source.preprocess.load(p) for p in files])  # NHWC, x/127.5 - 1
    keras_logits = np.concatenate([keras_source.predict(batch[i : i + 16]) for i in range(0, len(batch), 16)])
    with torch.inference_mode():
        nchw = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
        timm_logits = np.concatenate([module(nchw[i : i + 16]).numpy() for i in range(0, len(nchw), 16)])
    truth = np.asarray([classes.index(label) for label in labels])
    diff = float(np.abs(timm_logits - keras_logits).max())
    agree = float((timm_logits.argmax(1) == keras_logits.argmax(1)).mean())
    print(f"held-out test images: {len(files)}")
    print(f"max |timm - Keras| logit: {diff:.3g}; top-1 agreement {agree:.4f}")
    print(f"top-1: Keras {(keras_logits.argmax(1) == truth).mean():.4f}, "
          f"timm {(timm_logits.argmax(1) == truth).mean():.4f}")
    # Why they differ: timm pools with symmetric padding 1, TensorFlow's 'same' pads 0/1 on even sizes
    # (block2's 74x74 map at 299). The same module with TF's pooling should match Keras to float rounding.
    with torch.inference_mode():
        tf_pooled = np.concatenate([tf_same_pooling(module)(nchw[i : i + 16]).numpy() for i in range(0, 48, 16)])
    print(f"diagnosis, the same weights with TF 'same' max-pooling: max |diff| "
          f"{float(np.abs(tf_pooled - keras_logits[:48]).max()):.3g} on 48 images")


def tf_same_pooling(module):
    """A copy of the timm module whose 3x3/2 max-pools pad as TensorFlow's 'same' does (diagnosis only)."""
    import copy

    import torch

    from edgex.models.torch_xception import SamePadMaxPool

    twin = copy.deepcopy(module)
    for block in twin.modules():
        rep = getattr(block, "rep", None)
        if isinstance(rep, torch.nn.Sequential) and isinstance(rep[-1], torch.nn.MaxPool2d):
            rep[-1] = SamePadMaxPool()
    return twin.eval()


def convert_and_time(module, classes: list[str], data: Path, output: Path) -> None:
    """The issue's call, with its step timings (the CLI's --timings table)."""
    import torch

    from edgex.api import convert
    from edgex.conversion.timings import process_cpu_s, timings_table
    from edgex.options import CalibrationOptions

    started, cpu_at_start = time.perf_counter(), process_cpu_s()
    results = convert(module, "all", precision="int8", example_input=torch.zeros(1, 3, 299, 299),
                      calib_data=data / "validation", calibration=CalibrationOptions(size=CALIBRATION_IMAGES),
                      classes=classes, output=output)
    total = time.perf_counter() - started
    for result in results:
        print(result.target, result.status, result.parity.get("agreement"))
    print(timings_table([step for r in results for step in (r.timings or [])], total, cpu_at_start))
    print(f"total {total:.0f} s; load average {os.getloadavg()[0]:.2f}")
    # top-1 of each int8 artifact and of the FP32 source (the kept .pt2) on the held-out test images
    import subprocess

    subprocess.run([sys.executable, "-m", "edgex", "eval", str(output / "xception"), "--eval-data",
                    str(data / "test"), "--trust-model"], check=False)


if __name__ == "__main__":
    sys.exit(main())
