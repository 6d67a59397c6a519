"""PyTorch sources through `convert`: ONNX, OpenVINO and TFLite, fp32 and int8, checked against the source."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import CLASSES, leftovers  # noqa: E402

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
        results += convert(tiny_torch, target, calib_data=images_dir, output=tmp_path)
    assert [r["status"] for r in results] == ["ok", "ok"]
    source = load_source(tiny_torch)
    images = np.stack([source.preprocess.load(p) for p in find_images(images_dir)[:6]])
    reference = source.predict(images)
    for result, runtime in zip(results, ("onnxruntime", "openvino"), strict=True):
        manifest = json.loads((tmp_path / "tiny_torch" / f"{result['target']}-fp32" / "manifest.json").read_text())
        assert manifest["source"]["framework"] == "torch" and manifest["classes"] == CLASSES
        assert manifest["inputs"][0]["layout"] == "NHWC"
        model = tmp_path / "tiny_torch" / f"{result['target']}-fp32" / manifest["model_file"]
        logits = open_runtime(runtime, model, "fp32").run(images)
        np.testing.assert_allclose(logits, reference, rtol=0, atol=1e-3)
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_int8_agrees_with_the_pytorch_source(tiny_torch, images_dir, tmp_path, target):
    from edgex.api import convert

    (result,) = convert(tiny_torch, target, int8=True, calib_data=images_dir, calib_size=24, output=tmp_path)
    assert result["status"] == "ok" and result["parity"]["agreement"] >= 0.9, result


@pytest.mark.skipif(not HAS_LITERT_TORCH, reason="litert-torch is not installed (pip install 'edgex[litert-torch]')")
@pytest.mark.parametrize(("float_io", "io_dtype"), [(False, "int8"), (True, "float32")])
def test_tflite_int8_from_pytorch_has_nhwc_input_and_agrees(tiny_torch, images_dir, tmp_path, float_io, io_dtype):
    """litert-torch's float graph quantized by the Keras path's quantizer: edgex's ranges, --float-io honoured,
    recipe notes that name the artifact's own IO types, one XNNPACK partition."""
    from edgex.api import convert
    from edgex.options import CALIBRATION

    (result,) = convert(tiny_torch, "tflite", int8=True, calib_data=images_dir, calib_size=24, output=tmp_path,
                        float_io=float_io)
    assert result["status"] == "ok" and result["parity"]["agreement"] >= 0.9, result
    assert result["parity"]["cosine"] >= 0.98, result  # 0.999 measured: the gate's default floor is 0.98
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


@pytest.mark.skipif(HAS_LITERT_TORCH, reason="checks the hint shown when litert-torch is missing")
def test_tflite_without_litert_torch_names_the_extra(tiny_torch, tmp_path):
    from edgex.api import convert
    from edgex.errors import MissingDependencyError

    with pytest.raises(MissingDependencyError, match="litert-torch"):
        convert(tiny_torch, "tflite", output=tmp_path)


def test_python_api_takes_an_nn_module_with_an_example_input(tiny_torch, tmp_path):
    from edgex.api import convert
    from edgex.sources.load import load_source

    module = load_source(tiny_torch).model.module
    results = convert(module, "onnx", example_input=torch.zeros(1, 3, 96, 96), output=tmp_path, classes=CLASSES)
    assert results[0]["status"] == "ok" and results[0]["parity"]["max_abs"] <= 1e-3
    manifest = json.loads((tmp_path / "xception" / "onnx-fp32" / "manifest.json").read_text())
    assert manifest["classes"] == CLASSES and manifest["inputs"][0]["shape"][1:] == [96, 96, 3]
    origin = manifest["preprocess"]["source"]
    assert origin["assumed"].startswith("Xception's default") and "--mean" in origin["note"]
    from edgex.conversion.build import describe_input
    from edgex.preprocess import Preprocess

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
    results = convert(module, "onnx", example_input=torch.zeros(1, 3, 96, 96), output=tmp_path, classes=CLASSES)
    assert results[0]["status"] == "ok"
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
    (result,) = convert(module, "tflite", int8=True, example_input=torch.zeros(1, 3, 64, 64), calib_data=images_dir,
                        calib_size=8, output=tmp_path, min_agreement=0.0)
    assert result["status"] == "ok", result
