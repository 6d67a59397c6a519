"""edgex diagnose on artifacts whose answer is known: one activation range stretched 50x, and activations on
a 16-bit grid wide enough that nothing is clipped (no quantization error to speak of)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import run_edgex
from test_bench_fixtures import tiny_int8_artifacts

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

from edgex.diagnose.onnx import activation_pairs, session  # noqa: E402

STRETCH = 50.0  # 20x leaves this tensor second to block3's clipped depthwise output; 50x leaves ~5 codes
SAMPLES = 4


@pytest.fixture(scope="module")
def onnx_int8(tiny_model, images_dir, tmp_path_factory) -> Path:
    """The session-shared tiny onnx-int8 (default recipe); tests that edit it work on a copy."""
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory) / "onnx-int8"


def _variant(artifact: Path, folder: Path, edit) -> Path:
    """A copy of the artifact whose model.onnx went through `edit(model, pairs, nodes, initializers)`."""
    copy = folder / "tiny_xception" / "onnx-int8"
    shutil.copytree(artifact, copy)
    model = onnx.load(str(copy / "model.onnx"))
    edit(model, activation_pairs(model), {n.name: n for n in model.graph.node},
         {i.name: i for i in model.graph.initializer})
    onnx.save(model, str(copy / "model.onnx"))
    return copy


def _regrid(model, row: dict, nodes: dict, scale: float, zero_point, domain: str | None = None) -> None:
    """Give one pair's Q and DQ nodes their own (scale, zero point) initializers: no other pair shares them."""
    scale_name, zp_name = f"{row['q']}/edgex_test_scale", f"{row['q']}/edgex_test_zero_point"
    model.graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), scale_name),
                                    numpy_helper.from_array(np.asarray(zero_point), zp_name)])
    for name in [row["q"], *row["dq"]]:
        nodes[name].input[1], nodes[name].input[2] = scale_name, zp_name
        if domain is not None:
            nodes[name].domain = domain


def _diagnose(artifact: Path, images_dir: Path, **options) -> dict:
    from edgex.diagnose.run import diagnose

    return diagnose(artifact, images_dir, samples=SAMPLES, **options)


def test_a_stretched_activation_range_ranks_first_with_its_known_range_use(onnx_int8, images_dir, tmp_path):
    pairs = activation_pairs(onnx.load(str(onnx_int8 / "model.onnx")))
    chosen = next(r for r in pairs if "depthwise" in r["layer"])  # block2's first depthwise output, 31 dB alone

    def stretch(model, rows, nodes, initializers):
        _regrid(model, chosen, nodes, chosen["scale"] * STRETCH, np.uint8(chosen["zero_point"]))

    stretched = _variant(onnx_int8, tmp_path, stretch)
    result = _diagnose(stretched, images_dir, use_source=False, runtime_config=False)
    first = result["layers"][0]
    assert first["layer"] == chosen["layer"], [r["layer"] for r in result["layers"][:3]]

    # the known value: the codes the stretched grid gives the (unchanged, upstream) float tensor
    from edgex.artifacts.manifest import parse_manifest
    from edgex.diagnose.run import load_samples
    from edgex.preprocess import Preprocess

    manifest = parse_manifest((onnx_int8 / "manifest.json").read_bytes(), "manifest")
    original = session(onnx.load(str(onnx_int8 / "model.onnx")), [chosen["layer"]])
    spans = []
    for sample in load_samples(images_dir, Preprocess.from_dict(manifest["preprocess"]), SAMPLES):
        x = original.run([chosen["layer"]], {original.get_inputs()[0].name: sample})[0]
        codes = np.clip(np.rint(x / (chosen["scale"] * STRETCH)) + chosen["zero_point"], 0, 255)
        spans.append((codes.max() - codes.min()) / 255)
    known = float(np.mean(spans))
    assert first["range_use"] == pytest.approx(known, abs=0.002)
    unstretched = _diagnose(onnx_int8, images_dir, use_source=False, runtime_config=False, isolated=False)
    before = next(r["range_use"] for r in unstretched["layers"] if r["layer"] == chosen["layer"])
    assert known == pytest.approx(before / STRETCH, rel=0.35)  # STRETCH x the grid: that much less of it used
    assert first["clipped"] == 0.0


def test_b_an_artifact_without_quantization_error_is_above_40_db_everywhere(onnx_int8, images_dir, tmp_path):
    """Every activation on a 16-bit grid four times wider than calibrated: nothing clipped, steps 1/65535."""

    def widen(model, rows, nodes, initializers):
        for row in rows:
            low = (row["qmin"] - row["zero_point"]) * row["scale"]
            high = (row["qmax"] - row["zero_point"]) * row["scale"]
            width = high - low
            low, high = (0.0, 4 * high) if row["folds_relu"] else (low - 1.5 * width, high + 1.5 * width)
            scale = (high - low) / 65535
            zero_point = np.uint16(np.clip(np.rint(-low / scale), 0, 65535))
            _regrid(model, row, nodes, scale, zero_point, domain="com.microsoft")

    wide = _variant(onnx_int8, tmp_path, widen)
    result = _diagnose(wide, images_dir)
    assert result["output"]["sqnr_db"] > 40
    for row in result["layers"]:
        assert row["sqnr_db"] > 40 and row["isolated_sqnr_db"] > 40, row
        assert row["clipped"] == 0.0
        assert 0 < row["range_use"] < 0.5  # a grid four times the calibrated range: a quarter, plus outliers
    assert result["runtime_config"]["output"]["sqnr_db"] > 40  # nothing fused to 8 bits either
    # the artifact unquantized is reference 2; the FP32 source still sees the int8 weights
    source = result["references"]["source"]
    assert source["output"]["top1_agreement"] == 1.0
    assert source["output"]["sqnr_db"] == pytest.approx(source["unquantized_output"]["sqnr_db"], abs=1.0)


def test_the_cli_prints_every_figure_checked_and_no_banner(onnx_int8, images_dir):
    done = run_edgex("diagnose", onnx_int8, "--calib-data", images_dir, "--samples", "2", "--top", "4",
                     "--no-isolated")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    for banner in ("cpu_feature_guard", "oneDNN", "TensorFlow binary", "absl"):
        assert banner not in done.stdout
    assert "reference 1: the FP32 source" in done.stdout and "reference 2: the artifact unquantized" in done.stdout
    assert "runtime configuration: onnxruntime default session" in done.stdout
