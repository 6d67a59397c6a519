"""PyTorch sources through `convert`: ONNX, OpenVINO and TFLite, fp32 and int8, checked against the source."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import CLASSES, leftovers, run_edgex  # noqa: E402

from edgex.options import CalibrationOptions, ParityOptions  # noqa: E402

HAS_LITERT_TORCH = importlib.util.find_spec("litert_torch") is not None


@pytest.fixture(scope="module")
def tiny_torch(tiny_model, images_dir, tmp_path_factory):
    """The tiny Keras Xception ported to PyTorch (safetensors + sidecar)."""
    from edgex.sources.port import port_keras

    out = tmp_path_factory.mktemp("ported") / "tiny_torch.safetensors"
    port_keras(tiny_model, out, verify_data=images_dir)
    return out


def test_fp32_onnx_and_openvino_match_the_pytorch_source(tiny_torch, images_dir, tmp_path):
    from edgex.api import convert
    from edgex.preprocess import find_images
    from edgex.runtimes import open_runtime
    from edgex.sources.load import load_source

    results = []
    for target in ("onnx", "openvino"):
        results += convert(tiny_torch, target, calib_data=images_dir, output=tmp_path, progress=False)
    assert [r.status for r in results] == ["ok", "ok"]
    source = load_source(tiny_torch)
    images = np.stack([source.preprocess.load(p) for p in find_images(images_dir)[:6]])
    reference = source.predict(images)
    for result, runtime in zip(results, ("onnxruntime", "openvino"), strict=True):
        manifest = json.loads((result.path / "manifest.json").read_text())
        assert manifest["source"]["framework"] == "torch" and manifest["classes"] == CLASSES
        assert manifest["inputs"][0]["layout"] == "NHWC"
        assert result.path == tmp_path / "tiny_torch" / f"{result.target}-fp32"
        model = result.path / manifest["model_file"]
        logits = open_runtime(runtime, model, "fp32").run(images)
        np.testing.assert_allclose(logits, reference, rtol=0, atol=1e-3)
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_int8_agrees_with_the_pytorch_source(tiny_torch, images_dir, tmp_path, target):
    from edgex.api import convert

    (result,) = convert(tiny_torch, target, precision="int8", calib_data=images_dir,
                        calibration=CalibrationOptions(size=24), output=tmp_path, progress=False)
    assert result.ok and result.parity["agreement"] >= 0.9, result
    if target == "openvino":  # the ONNX QDQ graph, read by OpenVINO, runs int8 kernels (no NNCF pass)
        manifest = json.loads((result.path / "manifest.json").read_text())
        assert manifest["quantization"]["name"] == "qdq-w7", manifest["quantization"]
        assert _openvino_conv_precisions(result.path / "model.xml") == {"u8"}


def _openvino_conv_precisions(model: Path) -> set[str]:
    """The precisions OpenVINO's CPU plugin runs the model's convolutions in, read from its compiled graph."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(model), "CPU")
    found = set()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            found.add(info["runtimePrecision"].astype(str))
    return found


@pytest.mark.skipif(not HAS_LITERT_TORCH, reason="litert-torch is not installed (pip install 'edgex[litert-torch]')")
@pytest.mark.parametrize(("float_io", "io_dtype"), [(False, "int8"), (True, "float32")])
def test_tflite_int8_from_pytorch_has_nhwc_input_and_agrees(tiny_torch, images_dir, tmp_path, float_io, io_dtype):
    """litert-torch's float graph quantized by the Keras path's quantizer: edgex's ranges, --float-io honoured,
    recipe notes that name the artifact's own IO types, one XNNPACK partition."""
    from edgex.api import convert
    from edgex.options import CALIBRATION

    (result,) = convert(tiny_torch, "tflite", precision="int8", calib_data=images_dir,
                        calibration=CalibrationOptions(size=24), output=tmp_path, progress=False, float_io=float_io)
    assert result.ok and result.parity["agreement"] >= 0.9, result
    assert result.parity["cosine"] >= 0.98, result  # 0.999 measured: the gate's default floor is 0.98
    manifest = json.loads((tmp_path / "tiny_torch" / "tflite-int8" / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"] == [1, 96, 96, 3] and manifest["inputs"][0]["layout"] == "NHWC"
    assert manifest["quantization"]["range_estimator"] == CALIBRATION.method
    assert manifest["preprocess"]["layout"] == "NHWC"
    assert [d["dtype"] for d in manifest["inputs"] + manifest["outputs"]] == [io_dtype, io_dtype]
    assert manifest["quantization"]["notes"].endswith(f"; {io_dtype} input and output")
    assert "litert-torch float graph" in manifest["quantization"]["notes"]
    from edgex.converters.tflite_xnnpack import xnnpack_partitions

    partitions = xnnpack_partitions(tmp_path / "tiny_torch" / "tflite-int8" / "model.tflite")
    assert partitions == 1 and manifest["quantization"]["graph_rewrites"][0].startswith("relu_into_add")
    assert float_weights(tmp_path / "tiny_torch" / "tflite-int8" / "model.tflite") == []


def float_weights(path) -> list[str]:
    """Weights of conv and dense ops left in float32: none in an int8 model (litert-torch's
    keep_stablehlo_constant metadata once kept all of them, with QUANTIZE/DEQUANTIZE around each conv)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    weighted = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D,
                schema.BuiltinOperator.FULLY_CONNECTED}
    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    found = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) in weighted:
            weight = graph.tensors[op.inputs[1]]
            if weight.type != schema.TensorType.INT8:
                found.append(weight.name.decode())
    return found


@pytest.mark.skipif(HAS_LITERT_TORCH, reason="checks the hint shown when litert-torch is missing")
def test_tflite_without_litert_torch_names_the_extra(tiny_torch, tmp_path):
    from edgex.api import convert
    from edgex.errors import MissingDependencyError

    with pytest.raises(MissingDependencyError, match="litert-torch"):
        convert(tiny_torch, "tflite", output=tmp_path, progress=False)


@pytest.fixture(scope="module")
def module_conversion(tiny_torch, tmp_path_factory):
    """The tiny Xception as a plain nn.Module through edgex.convert with its defaults: (artifact, stderr)."""
    import contextlib
    import io

    from edgex.api import convert
    from edgex.sources.load import load_source

    module = load_source(tiny_torch).model.module
    output = tmp_path_factory.mktemp("module")
    with contextlib.redirect_stderr(io.StringIO()) as stderr:  # progress=True (default): status lines on stderr
        (artifact,) = convert(module, "onnx", example_input=torch.zeros(1, 3, 96, 96), output=output,
                              classes=CLASSES)
    return artifact, stderr.getvalue()


def test_the_api_reports_progress_by_default_and_names_the_layout_change(module_conversion):
    artifact, stderr = module_conversion
    assert "loading model" in stderr and f"✓ onnx fp32: {artifact.path}" in stderr
    contract = next(line for line in stderr.splitlines() if line.startswith("input:"))
    assert "96x96 NHWC" in contract and "the module takes NCHW" in contract and 'layout="NCHW"' in contract


def test_progress_false_is_silent_and_layout_chooses_the_artifacts_layout(module_conversion, tmp_path, capsys):
    from edgex.api import convert

    capsys.readouterr()
    (nchw,) = convert(Path(module_conversion[0].path).parent / "xception.pt2", "onnx", trust_model=True,
                      layout="NCHW", output=tmp_path, progress=False)
    assert capsys.readouterr().err == ""
    manifest = json.loads((nchw.path / "manifest.json").read_text())
    assert manifest["inputs"][0]["layout"] == "NCHW" and manifest["inputs"][0]["shape"] == [1, 3, 96, 96]


def test_a_module_conversion_records_its_classes_and_keeps_its_source(module_conversion):
    from edgex.artifacts.hashing import sha256_path

    artifact, _ = module_conversion
    assert artifact.ok and artifact.parity["max_abs"] <= 1e-3 and artifact.size_bytes > 0
    manifest = json.loads((artifact.path / "manifest.json").read_text())
    assert manifest["classes"] == CLASSES and manifest["inputs"][0]["shape"][1:] == [96, 96, 3]
    source = Path(manifest["source"]["path"])  # the module's torch.export program, kept beside the artifacts
    assert source == artifact.path.parent / "xception.pt2" and source.is_file()
    assert sha256_path(source) == manifest["source"]["sha256"] and not leftovers(artifact.path.parent)


def test_eval_compares_a_module_artifact_against_its_source_with_its_classes(module_conversion, images_dir):
    """Eval said "–" for the FP32 comparison without a word, and used sorted folder names silently."""
    import io

    from edgex.bench.suite import run_suite
    from edgex.options import BenchSettings
    from edgex.progress import RichReporter
    from edgex.report.markdown import render_markdown

    artifact, _ = module_conversion
    settings = BenchSettings(latency=False, threads=1)
    said = io.StringIO()
    untrusted = run_suite([artifact.path], settings, images_dir, reporter=RichReporter(said))
    row = untrusted["results"][0]
    assert row.get("vs_source") is None and "--trust-model" in row["vs_source_note"]
    assert "no comparison with the FP32 source" in said.getvalue() and "--trust-model" in said.getvalue()
    assert "no FP32 comparison for onnx-fp32" in render_markdown(untrusted)
    assert "class names from the manifest of onnx-fp32" in said.getvalue()

    report = run_suite([artifact.path], settings, images_dir, trust_source=True)
    row = report["results"][0]
    assert report["eval_data"]["classes"] == CLASSES and report["eval_data"]["classes_from"].startswith("the manifest")
    assert row["vs_source"]["agreement"] == 1.0 and row["accuracy"]["top1"] >= 0.9
    assert report["references"][0]["path"] == str(artifact.path.parent / "xception.pt2")


def test_artifact_predict_equals_edgex_predict(module_conversion, images_dir):
    from edgex.predict.model import load
    from edgex.preprocess import find_images

    artifact, _ = module_conversion
    files = find_images(images_dir)[:6]
    with load(artifact.path) as predictor:
        batch = np.stack([predictor.load_image(f) for f in files])
    with artifact:  # opened once for both calls, closed on exit
        mine = artifact.predict(files)
        logits = artifact(batch)
    done = run_edgex("predict", str(artifact.path), *map(str, files), "--json")
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)["images"]
    assert mine.labels == [image["label"] for image in theirs]
    np.testing.assert_allclose(mine.probabilities.max(axis=1), [image["probability"] for image in theirs],
                               atol=1e-6)
    np.testing.assert_allclose(logits, mine.logits, atol=1e-6)


def test_a_module_without_a_cfg_says_its_preprocessing_is_assumed(module_conversion):
    from edgex.conversion.build import describe_input
    from edgex.preprocess import Preprocess

    artifact, _ = module_conversion
    manifest = json.loads((artifact.path / "manifest.json").read_text())
    origin = manifest["preprocess"]["source"]
    assert origin["assumed"].startswith("Xception's default") and "--mean" in origin["note"]
    line = describe_input(Preprocess.from_dict(manifest["preprocess"]))
    assert "assumed Xception's default" in line and "--mean/--std" in line


def test_a_module_carrying_timm_pretrained_cfg_gets_its_preprocessing(tiny_torch, tmp_path):
    """timm's pretrained_cfg (mean/std on 0..1 pixels, interpolation, crop) becomes the manifest's preprocess."""
    from edgex.api import convert
    from edgex.conversion.build import describe_input
    from edgex.preprocess import Preprocess
    from edgex.sources.load import load_source

    module = load_source(tiny_torch).model.module
    module.pretrained_cfg = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "interpolation": "bicubic",
                             "crop_pct": 0.875, "crop_mode": "center", "input_size": (3, 96, 96)}
    results = convert(module, "onnx", example_input=torch.zeros(1, 3, 96, 96), output=tmp_path, classes=CLASSES,
                      progress=False)
    assert results[0].ok
    manifest = json.loads((tmp_path / "xception" / "onnx-fp32" / "manifest.json").read_text())
    pre = manifest["preprocess"]
    np.testing.assert_allclose(pre["mean"], [123.675, 116.28, 103.53], rtol=1e-6)
    np.testing.assert_allclose(pre["std"], [58.395, 57.12, 57.375], rtol=1e-6)
    assert (pre["height"], pre["width"], pre["interpolation"], pre["crop_fraction"]) == (96, 96, "bicubic", 0.875)
    assert pre["source"]["read_from"] == "module.pretrained_cfg (timm-style)"
    assert "read from module.pretrained_cfg" in describe_input(Preprocess.from_dict(pre))


def test_default_cfg_is_read_too_and_a_differing_size_is_said(tiny_torch):
    """timm's older name, default_cfg; the artifact takes the example input's size and the record says so."""
    from edgex.sources.load import load_source
    from edgex.sources.pytorch import module_cfg, preprocess_from_cfg

    module = load_source(tiny_torch).model.module
    assert module_cfg(module) is None
    module.default_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "lanczos",
                          "input_size": (3, 299, 299)}
    attribute, cfg = module_cfg(module)
    pre = preprocess_from_cfg(cfg, attribute, 96, 96)
    assert attribute == "default_cfg" and pre.mean == (127.5, 127.5, 127.5) and pre.crop_fraction is None
    assert pre.interpolation == "bilinear" and (pre.height, pre.width) == (96, 96)
    assert any("lanczos" in n for n in pre.source["notes"]) and any("299" in n for n in pre.source["notes"])


@pytest.mark.skipif(not HAS_LITERT_TORCH, reason="litert-torch is not installed (pip install 'edgex[litert-torch]')")
def test_a_padded_max_pool_calibrates_in_tflite_int8(images_dir, tmp_path):
    """PyTorch's MaxPool2d(3, 2, padding=1) (timm's Xception) lowers to PADV2 with -inf then MAX_POOL: that border
    is no activation, so calibration must not refuse it as 'NaN or Inf' (the full timm model hit this)."""
    from edgex.api import convert

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, len(CLASSES))).eval()
    (result,) = convert(module, "tflite", precision="int8", example_input=torch.zeros(1, 3, 64, 64),
                        calib_data=images_dir, calibration=CalibrationOptions(size=8), output=tmp_path,
                        parity=ParityOptions(min_agreement=0.0), progress=False)
    assert result.ok, result


@pytest.mark.skipif(not HAS_LITERT_TORCH, reason="litert-torch is not installed (pip install 'edgex[litert-torch]')")
def test_the_api_prints_only_its_own_lines(tiny_torch, tmp_path):
    """edgex.convert in a user's script: progress lines, and none of the native logs of litert-torch,
    TensorFlow or LiteRT ("INFO: Created TensorFlow Lite XNNPACK delegate", absl's "W1202 ..." lines)."""
    import re
    import subprocess
    import sys

    script = (f"import edgex\nedgex.convert({str(tiny_torch)!r}, 'tflite', output={str(tmp_path)!r})\n"
              "print('script goes on', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "script goes on\n"  # the caller's stdout is theirs, and works after the call
    lines = done.stderr.splitlines()
    assert any(line.startswith("✓ tflite fp32") for line in lines), lines
    noise = re.compile(r"^(INFO:|WARNING:|[IWE]\d{4} |fully_quantize|.*absl)")
    assert [line for line in lines if noise.match(line)] == []
