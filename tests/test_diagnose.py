"""edgex diagnose: per-layer int8 error on the tiny Xception, names traced to Keras layers and across formats."""

import json
import math
import shutil

import numpy as np
import pytest
from helpers import run_edgex
from nan_model import tiny_fp32_artifacts

from edgex.diagnose.metrics import ErrorStats, RangeUse
from edgex.diagnose.names import layers_in_name, part_of_layer, primary_layer

LAYERS = {"xception": "Functional", "block1_conv1": "Conv2D", "block1_conv1_bn": "BatchNormalization",
          "block1_conv1_act": "Activation", "conv2d": "Conv2D", "conv2d_1": "Conv2D",
          "batch_normalization": "BatchNormalization", "batch_normalization_1": "BatchNormalization",
          "add_5": "Add", "block4_sepconv1": "SeparableConv2D"}


def test_error_stats_sqnr_and_relative_error():
    stats = ErrorStats()
    reference = np.ones((4, 4), np.float32)
    stats.add(reference, reference * 1.1)  # noise energy 1% of the signal: 20 dB
    assert stats.sqnr_db == pytest.approx(20.0)
    assert stats.rel_error == pytest.approx(0.1)
    same = ErrorStats()
    same.add(reference, reference)
    assert same.sqnr_db == math.inf and same.rel_error == 0.0


def test_range_use_is_low_when_the_grid_is_stretched():
    use = RangeUse()
    scale = 3.0 / 255
    values = np.round(np.linspace(0, 1, 50) / scale) * scale  # dequantized: 1 of a 3-wide uint8 grid
    use.add_dequantized(values, scale, 0, 0, 255)
    assert use.mean == pytest.approx(85 / 255)


def test_graph_names_map_to_keras_layers_with_keras3_scope_suffixes():
    fused = ("xception_1/block1_conv1_act_1/Relu;xception_1/block1_conv1_bn_1/batchnorm/add_1;"
             "xception_1/block1_conv1_1/convolution")
    assert layers_in_name(fused, LAYERS) == ["block1_conv1_act", "block1_conv1_bn", "block1_conv1"]
    assert primary_layer(fused, LAYERS) == "block1_conv1"  # the weighted layer of a fused op
    assert primary_layer("m/xception_1/add_5_1/Add", LAYERS) == "add_5"  # the nested model is no answer
    assert primary_layer("m/xception_1/conv2d_1/convolution", LAYERS) == "conv2d"
    assert primary_layer("m/xception_1/conv2d_1_2/convolution", LAYERS) == "conv2d_1"
    assert primary_layer("m/xception_1/batch_normalization_1/batchnorm", LAYERS) == "batch_normalization"
    assert part_of_layer("m/block4_sepconv1_1/separable_conv2d/depthwise1") == "depthwise"
    assert primary_layer("unrelated/tensor", LAYERS) is None


@pytest.fixture(scope="module")
def minmax_artifacts(tiny_model, images_dir, tmp_path_factory):
    """Tiny Xception: tflite fp32 and onnx/openvino/tflite int8 calibrated with global min/max on 4 images."""
    out = tmp_path_factory.mktemp("diag")
    done = run_edgex("convert", "--model", tiny_model, "--calib-data", images_dir, "--output", out, "-q",
                     "--min-agreement", "0", "--min-cosine", "0", "--target", "all", "--int8", "--calib-method",
                     "minmax", "--calib-size", "4")
    assert done.returncode == 0, done.stderr
    # the float reference beside them: a copy of the shared fp32 conversion of the same source
    shutil.copytree(tiny_fp32_artifacts(tiny_model, tmp_path_factory) / "tflite-fp32", out / "tiny_xception" /
                    "tflite-fp32")
    return out / "tiny_xception"


def _diagnose(artifact, images_dir, *extra):
    done = run_edgex("diagnose", artifact, "--calib-data", images_dir, "--samples", "2", "--json", "-q", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_tflite_diagnosis_ranks_layers_worst_first_with_keras_names_and_trace(minmax_artifacts, images_dir):
    result = _diagnose(minmax_artifacts / "tflite-int8", images_dir)
    assert result["target"] == "tflite" and result["samples"] == 2 and result["isolated"] is True
    assert result["reference"].endswith("tflite-fp32/model.tflite")
    layers = result["layers"]
    assert len(layers) > 20  # every quantized activation of the tiny Xception, the input included
    assert any(row["op"] == "INPUT" for row in layers)
    iso = [row["isolated_sqnr_db"] for row in layers]
    assert iso == sorted(iso)  # worst (lowest output SQNR with only this layer quantized) first
    for row in layers:
        assert row["sqnr_db"] is not None and row["rel_error"] >= 0
        assert 0 <= row["range_use"] <= 1
        assert 0 <= row["isolated_agreement"] <= 1
    named = [row for row in layers if row["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert named and all(row["keras_layer"] for row in named)
    assert any(row["part"] == "depthwise" for row in named)
    # the sibling ONNX and OpenVINO artifacts are traced through the same Keras layer (OpenVINO's IR read from the
    # ONNX QDQ graph keeps its Keras-scoped names; one from NNCF is matched in graph order, a depthwise half to a
    # GroupConvolution)
    assert any("onnx" in row.get("trace", {}) for row in named)
    depthwise = [row for row in named if row["part"] == "depthwise"]
    assert all(any(n.startswith("GroupConvolution") or "/depthwise/" in n for n in row["trace"]["openvino"])
               for row in depthwise)
    # one quantizer's output error is smaller than the whole model's
    assert max(iso) >= result["output"]["sqnr_db"]


def test_onnx_diagnosis_is_self_contained_and_names_nodes_to_exclude(minmax_artifacts, images_dir):
    result = _diagnose(minmax_artifacts / "onnx-int8", images_dir)
    layers = result["layers"]
    assert result["target"] == "onnx" and len(layers) > 20
    assert all(row["keep_float"] for row in layers if row["op"] != "INPUT")
    assert any(row["keras_layer"] for row in layers)
    assert result["output"]["sqnr_db"] < 60  # int8 is not the float graph


def test_openvino_diagnosis_measures_each_fake_quantize(minmax_artifacts, images_dir):
    result = _diagnose(minmax_artifacts / "openvino-int8", images_dir)
    layers = result["layers"]
    assert result["target"] == "openvino" and len(layers) > 20
    assert all(row["keep_float"] and row["isolated_sqnr_db"] is not None for row in layers)
    assert all(row["range_use"] is not None for row in layers)
    # from the ONNX QDQ graph (qdq-w7), whose ReLUs ORT's quantizer folded into their FakeQuantize: bypassed, those
    # pass through a ReLU, so the unquantized artifact is the source with int8 weights (23.6 dB here), not a
    # network without ReLUs (-45.7 dB before)
    assert json.loads((minmax_artifacts / "openvino-int8" / "manifest.json").read_text())["quantization"]["name"] \
        == "qdq-w7"
    assert result["references"]["source"]["unquantized_output"]["sqnr_db"] > 15


def test_text_report_lists_top_layers(minmax_artifacts, images_dir):
    done = run_edgex("diagnose", minmax_artifacts / "tflite-int8", "--calib-data", images_dir, "--samples", "2",
                     "--top", "5", "--no-isolated", "-q")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "keras layer" in line)
    rows = [line for line in lines[header + 1:] if line[:3].strip().isdigit()]
    assert len(rows) == 5
    assert "model output: SQNR" in done.stdout


def test_diagnose_refuses_a_float_artifact_and_a_missing_folder(minmax_artifacts, images_dir, tmp_path):
    done = run_edgex("diagnose", minmax_artifacts / "tflite-fp32", "--calib-data", images_dir)
    assert done.returncode == 2 and "not int8" in done.stderr
    done = run_edgex("diagnose", tmp_path / "nothing", "--calib-data", images_dir)
    assert done.returncode == 66 and done.stderr.startswith("edgex: error:")
