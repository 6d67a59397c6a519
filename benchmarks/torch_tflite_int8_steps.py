"""Where the time of a PyTorch source's TFLite int8 goes: litert-torch PT2E (edgex before) vs the float graph
quantized by the Keras path's quantizer (edgex now), step by step, on the timm legacy_xception fixture.

Usage (timm as in benchmarks/timm_source.py):
    python benchmarks/torch_tflite_int8_steps.py --timm-path /tmp/timm-pkg [--images 300] [--pt2e-images 30]

PT2E's steps: torch.export, prepare_pt2e (observers inserted), calibration (the observed graph run eagerly,
image by image), convert_pt2e, litert-torch lowering. The new path's: litert-torch float lowering, the
calibrate-only pass (2 images), edgex's ranges on XNNPACK (all images), MLIR quantizer. PT2E calibration is
timed on --pt2e-images and its per-image cost printed, so the full-set figure is a stated extrapolation when
fewer images are used. Both artifacts are then compared with the float module on the held-out test images.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_clothing_model, shared_dir  # noqa: E402
from timm_source import build_timm_xception, import_timm, labelled  # noqa: E402


class Steps:
    def __init__(self, title: str):
        self.title, self.rows = title, []

    def time(self, name: str, fn, *args, **kwargs):
        started = time.perf_counter()
        value = fn(*args, **kwargs)
        self.rows.append((name, time.perf_counter() - started))
        print(f"  [{self.title.split(',')[0]}] {name}: {self.rows[-1][1]:.1f} s "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        return value

    def print(self) -> None:
        print(f"\n{self.title}")
        for name, seconds in self.rows:
            print(f"  {name:<52} {seconds:8.1f} s")
        print(f"  {'total':<52} {sum(s for _, s in self.rows):8.1f} s")


def pt2e_int8(source, calib_samples: list[np.ndarray]) -> tuple[bytes, Steps]:
    """edgex's previous TFLite int8 for PyTorch sources: litert-torch PT2E fed with the calibration set."""
    import litert_torch
    import torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    steps = Steps(f"litert-torch PT2E int8 (edgex before), calibration on {len(calib_samples)} images")
    module = source.model.for_layout(source.preprocess.layout)
    example = source.model.example_input(source.preprocess)
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    graph = steps.time("torch.export", lambda: torch.export.export(module, (example,)).module())
    graph = steps.time("prepare_pt2e (observers)", quantize_pt2e.prepare_pt2e, graph, quantizer)

    def calibrate():
        with torch.no_grad():
            for sample in calib_samples:
                graph(torch.from_numpy(sample))

    steps.time("calibration (observed graph, eager)", calibrate)
    quantized = steps.time("convert_pt2e", quantize_pt2e.convert_pt2e, graph, fold_quantize=False)
    edge = steps.time("litert-torch lowering (quantized graph)", litert_torch.convert, quantized, (example,),
                      quant_config=QuantConfig(pt2e_quantizer=quantizer))
    return bytes(edge.model_content()), steps


def keras_quantizer_int8(source, calib) -> tuple[bytes, Steps]:
    """edgex now: float TFLite from litert-torch, then the Keras path's calibrate-only + ranges + MLIR quantizer."""
    import tensorflow as tf
    from edgex.converters.tflite import _calibrate_only, _litert_torch_float, apply_robust_ranges
    from edgex.converters.tflite_xnnpack import fuse_relu_into_add
    from tensorflow.lite.python.convert import mlir_quantize

    steps = Steps(f"litert-torch float + edgex's TFLite quantizer (edgex now), ranges on {len(calib)} images")
    flat = steps.time("litert-torch lowering (float graph)", _litert_torch_float, source)
    flat = steps.time("calibrate-only pass (2 images)", _calibrate_only, flat, calib)
    flat, _ = steps.time("edgex ranges on XNNPACK", apply_robust_ranges, flat, calib, "mean_minmax")

    def quantize(calibrated):
        out = mlir_quantize(calibrated, disable_per_channel=False, input_data_type=tf.int8,
                            output_data_type=tf.int8)
        return fuse_relu_into_add(out)[0]

    return steps.time("MLIR quantizer + ReLU fusion", quantize, flat), steps


def run_int8(flat: bytes, batch: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flat, num_threads=2)
    interpreter.allocate_tensors()
    given, produced = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    out = []
    for image in batch:
        x = image[None]
        if given["dtype"] == np.int8:
            scale, zero = given["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(given["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(produced["index"]).astype(np.float32)
        if produced["dtype"] == np.int8:
            scale, zero = produced["quantization"]
            y = (y - zero) * scale
        out.append(y[0])
    return np.stack(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timm-path", default=os.environ.get("EDGEX_TIMM_PATH"))
    parser.add_argument("--build", type=Path, default=Path("/tmp/edgex-timm"))
    parser.add_argument("--images", type=int, default=300, help="calibration images (validation/)")
    parser.add_argument("--pt2e-images", type=int, default=None, help="PT2E calibration images (default: --images)")
    parser.add_argument("--skip-pt2e", action="store_true")
    parser.add_argument("--test-images", type=int, default=None, help="held-out images compared (0: none)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args.build.mkdir(parents=True, exist_ok=True)
    timm, _ = import_timm(args.timm_path)
    import tempfile

    import torch
    from edgex.calibration.dataset import CalibrationSet

    from edgex.sources.load import load_source, quiet_tensorflow
    from edgex.sources.pytorch import save_module_program

    quiet_tensorflow()
    data = shared_dir() / "datasets" / "clothing-small"
    keras_source = load_source(build_clothing_model(args.build))
    classes = keras_source.classes
    module = build_timm_xception(timm, keras_source)
    keras_source.close()
    folder = tempfile.TemporaryDirectory(prefix="edgex-steps-")
    program = save_module_program(module, torch.zeros(1, 3, 299, 299), Path(folder.name), "timm_xception")
    source = load_source(program, trust_model=True)
    calib = CalibrationSet.from_folder(data / "validation", source.preprocess, size=args.images, parity_size=0)
    print(f"calibration: {len(calib)} images from validation/; load average {os.getloadavg()[0]:.2f}")
    built = {"edgex now": keras_quantizer_int8(source, calib)}
    if not args.skip_pt2e:
        count = args.pt2e_images or args.images
        samples = [s for _, s in zip(range(count), calib.samples(), strict=False)]
        built["PT2E (before)"] = pt2e_int8(source, samples)
        if count < len(calib):
            per_image = dict(built["PT2E (before)"][1].rows)["calibration (observed graph, eager)"] / count
            print(f"PT2E calibration: {per_image:.2f} s per image, so {per_image * len(calib):.0f} s for "
                  f"{len(calib)} images (extrapolated)")
    print(f"load average now {os.getloadavg()[0]:.2f}")
    files, labels = labelled(data / "test")
    files, labels = files[: args.test_images], labels[: args.test_images]
    if not files:
        for _, steps in built.values():
            steps.print()
        return 0
    batch = np.stack([source.preprocess.load(p) for p in files])
    truth = np.asarray([classes.index(label) for label in labels])
    reference = np.concatenate([source.model.predict(batch[i : i + 16], source.preprocess.layout)
                                for i in range(0, len(batch), 16)])
    print(f"\nfloat module top-1 on {len(files)} held-out test images: {(reference.argmax(1) == truth).mean():.4f}")
    for flat, steps in built.values():
        steps.print()
        logits = run_int8(flat, batch)
        agree = (logits.argmax(1) == reference.argmax(1)).mean()
        print(f"  int8 top-1 {(logits.argmax(1) == truth).mean():.4f}, agreement with float {agree:.4f}, "
              f"max |diff| {np.abs(logits - reference).max():.3g}")
    source.close()
    folder.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
