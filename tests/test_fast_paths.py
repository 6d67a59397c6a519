"""The faster conversion paths compute what the slow ones did: TFLite ranges on XNNPACK equal the builtin
kernels' with every tensor preserved; the two-child tf2onnx export equals tf2onnx's CLI; a failing fast
export falls back to the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def source(tiny_model):
    from edgex.sources.load import load_source

    loaded = load_source(tiny_model)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def calib(source, images_dir):
    from edgex.calibration.dataset import CalibrationSet

    return CalibrationSet.from_folder(images_dir, source.preprocess, size=12, parity_size=0)


def _builtin_ranges(calibrated: bytes, calib) -> dict[str, tuple[float, float]]:
    """The previous way: builtin kernels, one thread, every intermediate tensor preserved."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from edgex.calibration.ranges import RangeCollector
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    targets = [i for i, t in enumerate(model.subgraphs[0].tensors)
               if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min)]
    interpreter = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    collector = RangeCollector()
    for sample in calib.samples():
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample)
        interpreter.invoke()
        for index in targets:
            collector.observe_array(str(index), interpreter.get_tensor(index))
    return collector.ranges()


def test_tflite_ranges_on_xnnpack_equal_the_builtin_kernels_ranges(source, calib):
    import tensorflow as tf
    from edgex.converters.tflite import apply_robust_ranges
    from tensorflow.lite.tools import flatbuffer_utils

    converter = tf.lite.TFLiteConverter.from_saved_model(str(source.saved_model()))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([s] for s in calib.batches(1, calib.files[:2]))
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()

    expected = _builtin_ranges(calibrated, calib)
    flat, shared_from = apply_robust_ranges(calibrated, calib, "mean_minmax")
    assert shared_from is None
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    got = {str(i): (float(t.quantization.min[0]), float(t.quantization.max[0]))
           for i, t in enumerate(model.subgraphs[0].tensors)
           if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min)}
    assert got.keys() == expected.keys() and len(got) > 20
    for name, (lo, hi) in expected.items():
        span = max(hi - lo, 1e-6)
        assert abs(got[name][0] - lo) <= 1e-4 * span and abs(got[name][1] - hi) <= 1e-4 * span, name
    assert list(model.subgraphs[0].outputs) == list(
        flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated)).subgraphs[0].outputs)


def _cli_export(saved_model: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model), "--output", str(out),
                    "--opset", "17", "--signature_def", "serving_default"], check=True, capture_output=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.fixture(scope="module")
def cli_outputs(source, calib, tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """Four calibration images and what tf2onnx's own CLI export of the SavedModel answers for them."""
    import onnxruntime as ort

    cli = tmp_path_factory.mktemp("cli") / "cli.onnx"
    _cli_export(source.saved_model(), cli)
    x = np.concatenate(list(calib.batches(4, calib.files[:4])))
    return x, ort.InferenceSession(str(cli), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


@pytest.mark.parametrize("one_child_below_mb", [32, 0], ids=["one-child", "two-children"])
def test_fast_tf2onnx_export_equals_the_cli(source, cli_outputs, tmp_path, monkeypatch, one_child_below_mb):
    import edgex.converters.onnx as onnx_converter
    import onnxruntime as ort

    stages = []
    real_run = subprocess.run

    def recorded(cmd, *args, **kwargs):
        stages.append(cmd[3] if "edgex.converters.tf2onnx_export" in cmd else cmd[2])
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(onnx_converter, "TF2ONNX_ONE_CHILD_MB", one_child_below_mb)
    monkeypatch.setattr(onnx_converter.subprocess, "run", recorded)
    fast = tmp_path / "fast.onnx"
    onnx_converter.export_with_tf2onnx(source.saved_model(), fast, 17)
    assert stages == (["both"] if one_child_below_mb else ["freeze", "convert"])  # the tiny SavedModel: < 1 MB
    session = ort.InferenceSession(str(fast), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    np.testing.assert_array_equal(session.run(None, {"image": cli_outputs[0]})[0], cli_outputs[1])
    assert not list(tmp_path.glob("*.frozen.*"))  # the intermediate GraphDef is removed


def test_a_failing_fast_export_falls_back_to_the_cli(source, tmp_path, monkeypatch):
    import edgex.converters.onnx as onnx_converter

    real_run = subprocess.run

    def broken_stage(cmd, *args, **kwargs):
        if "edgex.converters.tf2onnx_export" in cmd:
            return subprocess.CompletedProcess(cmd, 1, "", "simulated failure")
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(onnx_converter.subprocess, "run", broken_stage)
    out = tmp_path / "fallback.onnx"
    onnx_converter.export_with_tf2onnx(source.saved_model(), out, 17)
    assert out.is_file() and out.stat().st_size > 1000
