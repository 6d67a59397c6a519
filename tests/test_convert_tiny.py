"""Convert the tiny Xception to every target: parity-checked, manifests complete, metadata embedded."""

import json

import pytest
from helpers import CLASSES, leftovers, recorded_run, run_edgex
from nan_model import tiny_fp32_artifacts
from test_bench_fixtures import tiny_int8_artifacts

MANIFEST_KEYS = {"edgex_version", "source", "target", "precision", "files", "inputs", "outputs", "classes",
                 "preprocess", "calibration", "parity", "versions", "timings_s"}


@pytest.fixture(scope="module")
def int8_run(tiny_model, images_dir, tmp_path_factory):
    """The shared int8 conversion (`convert --target all --int8 --calib-size 24 --json -q`), read only."""
    out = tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory).parent
    stdout, stderr = recorded_run(out)
    assert stderr == "", f"-q must keep TensorFlow's, tf2onnx's and NNCF's logs off the terminal: {stderr}"
    return out, json.loads(stdout)


def test_int8_all_targets_pass_parity(int8_run):
    out, summary = int8_run
    assert summary["ok"] is True
    assert {r["target"] for r in summary["results"]} == {"onnx", "openvino", "tflite"}
    for result in summary["results"]:
        assert result["status"] == "ok"
        assert result["parity"]["agreement"] >= 0.9
    assert leftovers(out) == []


def test_int8_manifest_is_complete(int8_run, images_dir):
    out, summary = int8_run
    for result in summary["results"]:
        manifest = json.loads((out / "tiny_xception" / f"{result['target']}-int8" / "manifest.json").read_text())
        assert set(manifest) >= MANIFEST_KEYS
        assert manifest["classes"] == CLASSES
        assert manifest["calibration"]["count"] == 24 and manifest["calibration"]["seed"] == 0
        assert manifest["quantization"]["range_estimator"]
        assert manifest["preprocess"]["height"] == 96 and manifest["preprocess"]["interpolation"] == "bilinear"
        assert manifest["parity"]["passed"] and manifest["parity"]["n"] == 8
        assert len(manifest["source"]["sha256"]) == 64
        for entry in manifest["files"]:
            assert (out / "tiny_xception" / f"{result['target']}-int8" / entry["name"]).stat().st_size == entry["bytes"]


def test_onnx_int8_is_qdq_with_uint8_activations_and_metadata(int8_run):
    import onnx

    out, _ = int8_run
    model = onnx.load(str(out / "tiny_xception" / "onnx-int8" / "model.onnx"))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["edgex.preprocess"])["height"] == 96
    assert json.loads(meta["edgex.classes"]) == CLASSES


def test_onnx_int8_runs_in_ort_integer_kernels_only(int8_run, tmp_path):
    """After edgex's rewrites (edgex.converters.onnx_ort_fusions, onnx_channel_padding) ORT's fusions leave no
    float op between the input's QuantizeLinear and the logits' DequantizeLinear, every depthwise conv (91
    channels at width 1/8, like Xception's 728) runs with a channel count MLAS's fast kernel takes, and so does
    the RGB stem (3 input channels, widened to 4 by the one float MatMul before the QuantizeLinear)."""
    import onnx
    import onnxruntime as ort

    out, _ = int8_run
    folder = out / "tiny_xception" / "onnx-int8"
    rewrites = json.loads((folder / "manifest.json").read_text())["quantization"]["graph_rewrites"]
    assert [r.split(":")[0] for r in rewrites] == ["relu_sums_as_adds", "spatial_means_as_pools",
                                                   "align_depthwise_channels", "align_input_channels"]
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    nodes = onnx.load(str(tmp_path / "optimized.onnx")).graph.node
    ops = [n.op_type for n in nodes]
    assert ops.count("QuantizeLinear") == 1 and ops.count("DequantizeLinear") == 1, ops
    assert {"Relu", "ReduceMean", "Add", "Conv"}.isdisjoint(ops), ops
    groups = [a.i for n in nodes if n.op_type == "QLinearConv" for a in n.attribute if a.name == "group" and a.i > 1]
    assert groups and all(g % 16 == 0 for g in groups), groups
    weights = {i.name: list(i.dims) for i in onnx.load(str(tmp_path / "optimized.onnx")).graph.initializer}
    conv_inputs = [weights[n.input[3]][1] for n in nodes if n.op_type == "QLinearConv"
                   and not any(a.name == "group" and a.i > 1 for a in n.attribute)]
    assert conv_inputs and all(c % 4 == 0 for c in conv_inputs), conv_inputs
    assert ops.count("MatMul") == 1, ops


def test_tflite_int8_has_int8_io_and_metadata(int8_run):
    from edgex.converters.tflite import read_metadata

    out, _ = int8_run
    folder = out / "tiny_xception" / "tflite-int8"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["inputs"][0]["dtype"] == "int8" and "quantization" in manifest["inputs"][0]
    assert manifest["outputs"][0]["dtype"] == "int8"
    assert read_metadata(folder / "model.tflite")["classes"] == CLASSES


def test_tflite_int8_runs_as_one_xnnpack_partition(int8_run):
    """Standalone int8 ReLUs would each fall back to TFLite's reference kernel and split the graph."""
    from edgex.converters.tflite_xnnpack import xnnpack_partitions

    out, _ = int8_run
    folder = out / "tiny_xception" / "tflite-int8"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert any(r.startswith("relu_into_add") for r in manifest["quantization"]["graph_rewrites"])
    assert xnnpack_partitions(folder / "model.tflite") == 1


def test_openvino_int8_has_fake_quantize_and_rt_info(int8_run):
    import openvino as ov

    out, _ = int8_run
    model = ov.Core().read_model(str(out / "tiny_xception" / "openvino-int8" / "model.xml"))
    assert any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    assert json.loads(model.get_rt_info(["edgex", "classes"]).astype(str)) == CLASSES


def test_fp32_all_targets_match_closely_and_ran_in_f32(tiny_model, tmp_path_factory):
    out = tiny_fp32_artifacts(tiny_model, tmp_path_factory)  # `convert --target all --json -q`, shared
    stdout, stderr = recorded_run(out.parent)
    results = json.loads(stdout)["results"]
    assert {r["target"] for r in results} == {"onnx", "openvino", "tflite"} and stderr == ""
    for result in results:
        assert result["parity"]["agreement"] == 1.0
        assert result["parity"]["max_abs"] < 1e-3
    manifest = json.loads((out / "openvino-fp32" / "manifest.json").read_text())
    assert manifest["parity"]["runtime"]["inference_precision"] == "f32"


def test_tflite_float_variants_and_preprocess_override(tiny_model, images_dir, tmp_path):
    for flag in ("--fp16", "--dynamic"):
        done = run_edgex("convert", "--model", tiny_model, "--target", "tflite", flag, "--calib-data",
                         images_dir, "--interpolation", "nearest", "--output", tmp_path, "-q")
        assert done.returncode == 0, done.stderr
        manifest = json.loads((tmp_path / "tiny_xception" / f"tflite-{flag[2:]}" / "manifest.json").read_text())
        assert manifest["preprocess"]["interpolation"] == "nearest"


def test_rerun_replaces_the_artifact_atomically(tiny_model_via_tf2onnx, images_dir, tmp_path):
    args = ("convert", "--model", tiny_model_via_tf2onnx, "--target", "onnx", "--calib-data", images_dir, "--output",
            tmp_path, "-q")
    assert run_edgex(*args).returncode == 0
    stale = tmp_path / "tiny_xception" / ".edgex-staging-999999999-onnx-fp32-dead"
    stale.mkdir()
    again = run_edgex(*args, "--json", "--timings")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (tmp_path / "tiny_xception").iterdir()) == ["onnx-fp32"]
    # the rerun starts from the first run's fp32 export (the cache in $EDGEX_CACHE_DIR), with no SavedModel
    (result,) = json.loads(again.stdout)["results"]
    steps = [s["step"] for s in result["timings"]]
    assert "tf2onnx (reused from the cache of earlier runs)" in steps and "tf2onnx" not in steps, steps
    assert "export SavedModel (shared by every target)" not in steps
