"""ONNX files as sources: the tiny Xception exported to ONNX (NHWC by tf2onnx, NCHW by torch.onnx) converts to
ONNX and OpenVINO, fp32 and int8, checked against the file in ONNX Runtime; tflite is refused with its reason."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from failure_checks import assert_clean_failure
from helpers import CLASSES, build_once, build_tiny_model, run_edgex, run_shared_dir

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, images_dir, tmp_path_factory):
    """The tiny Keras Xception as NHWC ONNX written by tf2onnx, with the metadata of edgex's own fp32 conversion."""
    import onnx
    from edgex.converters.onnx import export_with_tf2onnx

    from edgex.api import convert
    from edgex.sources.load import load_source

    def build(folder):
        convert(tiny_model, "onnx", calib_data=images_dir, output=folder / "out")
        converted = onnx.load(str(folder / "out" / "tiny_xception" / "onnx-fp32" / "model.onnx"))
        source = load_source(tiny_model)
        try:
            export_with_tf2onnx(source.saved_model(), folder / "tiny.onnx", 17)
        finally:
            source.close()
        model = onnx.load(str(folder / "tiny.onnx"))
        model.metadata_props.extend(converted.metadata_props)
        onnx.save(model, str(folder / "tiny.onnx"))
        (folder / "tiny.classes.json").write_text(json.dumps(CLASSES))
        shutil.rmtree(folder / "out")

    return build_once(run_shared_dir(tmp_path_factory, "onnx-nhwc"), build) / "tiny.onnx"


@pytest.fixture(scope="session")
def tiny_onnx_nchw(tiny_model, tmp_path_factory):
    """The tiny Xception ported to PyTorch, exported by torch.onnx as a PyTorch user would: NCHW, batch 1."""
    torch = pytest.importorskip("torch")

    def build(folder):
        from edgex.sources.load import load_source
        from edgex.sources.port import port_keras

        port_keras(tiny_model, folder / "tiny_torch.safetensors")
        module = load_source(folder / "tiny_torch.safetensors").model.module.eval()
        torch.onnx.export(module, (torch.zeros(1, 3, 96, 96),), str(folder / "tiny_nchw.onnx"), dynamo=True,
                          input_names=["input"], external_data=False)
        (folder / "tiny_nchw.classes.json").write_text(json.dumps(CLASSES))

    return build_once(run_shared_dir(tmp_path_factory, "onnx-nchw"), build) / "tiny_nchw.onnx"


def _keras_logits(images_dir):
    """Logits of the original Keras model (the independent reference) and the NHWC inputs they came from."""
    from edgex.preprocess import Preprocess, find_images

    pre = Preprocess(height=96, width=96)
    images = np.stack([pre.load(p) for p in find_images(images_dir)[:6]])
    return np.asarray(build_tiny_model()(images, training=False)), images


def _manifest(folder, target: str, precision: str) -> dict:
    return json.loads((folder / f"{target}-{precision}" / "manifest.json").read_text())


def _small_classifier(path, opset: int = 11, external_data: bool = False):
    """A hand-made NCHW classifier with a free spatial size and a softmax head: Conv, GlobalAveragePool, Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["pixels", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"]), helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
             helper.make_node("Flatten", ["pool"], ["flat"]), helper.make_node("Softmax", ["flat"], ["probs"])]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT,
                                                                              ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 4])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path), save_as_external_data=external_data, location="small.weights", size_threshold=0)
    return path


def test_nhwc_onnx_converts_to_onnx_and_openvino_int8_and_skips_tflite(tiny_onnx, images_dir, tmp_path):
    done = run_edgex("convert", "--model", tiny_onnx, "--target", "all", "--int8", "--calib-data", images_dir,
                     "--output", tmp_path, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "input: RGB 96x96 NHWC" in done.stderr and "assumed scaling: x / 127.5 - 1" in done.stderr
    skipped = [line for line in done.stderr.splitlines() if "tflite skipped" in line]
    assert len(skipped) == 1 and "onnx2tf" in skipped[0], done.stderr
    results = json.loads(done.stdout)["results"]
    assert [(r["target"], r["status"]) for r in results] == [("onnx", "ok"), ("openvino", "ok")]
    assert all(r["parity"]["agreement"] >= 0.9 for r in results), results
    for target in ("onnx", "openvino"):
        manifest = _manifest(tmp_path / "tiny", target, "int8")
        assert manifest["source"]["framework"] == "onnx" and manifest["classes"] == CLASSES
        assert manifest["inputs"][0]["layout"] == "NHWC" and manifest["quantization"]["target"] == target
        assert manifest["parity"]["runtime"]["runtime"] == target.replace("onnx", "onnxruntime")


def test_the_onnx_source_runs_the_file_in_onnx_runtime(tiny_onnx, images_dir):
    from edgex.sources.load import load_source

    source = load_source(tiny_onnx)
    expected, images = _keras_logits(images_dir)
    assert source.framework == "onnx" and source.output_kind == "logits" and source.classes == CLASSES
    assert source.preprocess.layout == "NHWC" and (source.preprocess.height, source.preprocess.width) == (96, 96)
    np.testing.assert_allclose(source.predict(images), expected, rtol=0, atol=1e-3)
    from edgex.runtimes.source import source_runtime_info

    assert source_runtime_info("onnx", 2)["package"] == "onnxruntime"  # what eval's FP32 row says ran it


def test_nchw_onnx_gives_nchw_artifacts_that_match_the_keras_model(tiny_onnx_nchw, images_dir, tmp_path):
    from edgex.runtimes import open_runtime

    done = run_edgex("convert", "--model", tiny_onnx_nchw, "--target", "all", "--calib-data", images_dir,
                     "--output", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "input: RGB 96x96 NCHW" in done.stdout  # status lines: stdout, or stderr with --json
    expected, images = _keras_logits(images_dir)
    for target, runtime in (("onnx", "onnxruntime"), ("openvino", "openvino")):
        manifest = _manifest(tmp_path / "tiny_nchw", target, "fp32")
        assert manifest["inputs"][0]["layout"] == "NCHW" and manifest["preprocess"]["layout"] == "NCHW"
        assert manifest["inputs"][0]["name"] == "input"  # the source's input name is kept
        model = tmp_path / "tiny_nchw" / f"{target}-fp32" / manifest["model_file"]
        logits = np.concatenate([open_runtime(runtime, model, "fp32").run(x[None].transpose(0, 3, 1, 2))
                                 for x in images])
        np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-3)


def test_nchw_onnx_with_layout_nhwc_gives_nhwc_int8_artifacts(tiny_onnx_nchw, images_dir, tmp_path):
    done = run_edgex("convert", "--model", tiny_onnx_nchw, "--target", "all", "--int8", "--calib-data", images_dir,
                     "--layout", "NHWC", "--output", tmp_path, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "input: RGB 96x96 NHWC" in done.stderr
    results = json.loads(done.stdout)["results"]
    assert [r["status"] for r in results] == ["ok", "ok"] and all(r["parity"]["agreement"] >= 0.9 for r in results)
    onnx_inputs = _manifest(tmp_path / "tiny_nchw", "onnx", "int8")["inputs"][0]
    assert onnx_inputs["layout"] == "NHWC" and onnx_inputs["shape"][1:] == [96, 96, 3]


def test_free_spatial_size_is_xception_299_said_in_a_line_and_softmax_is_detected(images_dir, tmp_path):
    model = _small_classifier(tmp_path / "m" / "small.onnx", external_data=True)  # contained external data
    done = run_edgex("convert", "--model", model, "--target", "onnx", "--int8", "--calib-data", images_dir,
                     "--output", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "input: RGB 299x299 NCHW" in done.stdout and "output: softmax" in done.stdout
    assert "assumed input size: the graph leaves it free; using Xception's 299x299" in done.stdout
    manifest = _manifest(tmp_path / "out" / "small", "onnx", "int8")
    assert manifest["output_kind"] == "softmax" and manifest["inputs"][0]["shape"][1:] == [3, 299, 299]
    assert [f["name"] for f in manifest["files"]] == ["model.onnx"]  # the external weights inlined


def test_overridden_contract_prints_no_assumption(images_dir, tmp_path):
    model = _small_classifier(tmp_path / "small.onnx", opset=17)
    done = run_edgex("convert", "--model", model, "--target", "openvino", "--calib-data", images_dir,
                     "--input-size", "64", "--mean", "0", "--std", "255", "--output", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "input: RGB 64x64 NCHW, bilinear resize, (x - 0) / 255" in done.stdout and "assumed" not in done.stdout


def test_non_image_onnx_is_refused_65(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["features"], ["scores"])], "g",
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 16])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "tabular.onnx"))
    done = run_edgex("convert", "--model", tmp_path / "tabular.onnx", "--output", tmp_path / "out")
    assert_clean_failure(done, 65, "tabular.onnx", "shape 1x16", "image classifiers", output=tmp_path / "out")


def test_tflite_from_an_onnx_source_is_a_usage_error(tmp_path):
    model = _small_classifier(tmp_path / "small.onnx")
    done = run_edgex("convert", "--model", model, "--target", "tflite", "--output", tmp_path / "out")
    assert_clean_failure(done, 2, "tflite cannot be built from an ONNX source", "onnx2tf", "--target onnx or openvino",
                         output=tmp_path / "out")
    assert not (tmp_path / "out" / "small").exists()
