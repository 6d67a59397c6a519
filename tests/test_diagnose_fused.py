"""edgex diagnose, the configuration users run: ORT's optimized (fused) session against the unoptimized QDQ
graph names the fused node where they part; the FP32 source agreement equals edgex eval's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import CLASSES, run_edgex
from test_bench_fixtures import tiny_int8_artifacts

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

from edgex.diagnose.runtime_config import DIVERGES_DB, fused_section, onnx_fused  # noqa: E402

SAMPLES = 4


@pytest.fixture(scope="module")
def default_onnx(tiny_model, images_dir, tmp_path_factory) -> Path:
    """The default ONNX recipe: 7-bit weights, so ORT's fused kernels cannot saturate on any x86 CPU."""
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory) / "onnx-int8"


def _samples(artifact: Path, images_dir: Path) -> list[np.ndarray]:
    from edgex.artifacts.manifest import parse_manifest
    from edgex.diagnose.run import load_samples
    from edgex.preprocess import Preprocess

    manifest = parse_manifest((artifact / "manifest.json").read_bytes(), "manifest")
    return load_samples(images_dir, Preprocess.from_dict(manifest["preprocess"]), SAMPLES)


def test_c_the_fused_comparison_flags_the_node_forced_to_diverge(default_onnx, images_dir):
    samples = _samples(default_onnx, images_dir)
    untouched = fused_section(onnx_fused(default_onnx / "model.onnx", samples), {}, None)
    assert untouched["diverging"] == [] and untouched["first_parting"] is None  # same math, any x86 CPU
    assert untouched["output"]["top1_agreement"] == 1.0
    forced = []

    def triple_output_scale(fused) -> None:
        """One mid-network QLinearConv writes its codes on a 3x coarser grid than its consumers read."""
        convs = [n for n in fused.graph.node if n.op_type == "QLinearConv"]
        node = convs[len(convs) // 2]
        old = next(i for i in fused.graph.initializer if i.name == node.input[6])
        new = numpy_helper.from_array(numpy_helper.to_array(old) * 3, f"{node.input[6]}/edgex_test")
        fused.graph.initializer.append(new)
        node.input[6] = new.name
        forced.append(node.name)

    section = fused_section(onnx_fused(default_onnx / "model.onnx", samples, edit=triple_output_scale), {}, None)
    (node_name,) = forced
    flagged = next(n for n in section["nodes"] if n["node"] == node_name)
    assert flagged["diverges"] and flagged["added_sqnr_db"] < DIVERGES_DB
    assert section["first_parting"] == node_name
    assert not any(n["diverges"] for n in section["nodes"] if n["position"] < flagged["position"])
    assert section["output"]["sqnr_db"] < untouched["output"]["sqnr_db"]


def test_model_output_agreement_with_the_source_equals_edgex_eval(tiny_model, constant_images_dir, images_dir,
                                                                  tmp_path):
    """An artifact calibrated on flat gray images disagrees with its source on some images: eval and diagnose
    must count the same ones."""
    done = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--int8", "--calib-data",
                     constant_images_dir, "--calib-size", "6", "--output", tmp_path / "out", "-q",
                     "--min-agreement", "0", "--min-cosine", "0")
    assert done.returncode == 0, done.stderr
    artifact = tmp_path / "out" / "tiny_xception" / "onnx-int8"
    folder = tmp_path / "eval"
    for name in CLASSES:
        (folder / name).mkdir(parents=True)
        for path in sorted((images_dir / name).rglob("*.*"))[:3]:
            shutil.copy(path, folder / name / f"{path.parent.name}_{path.name}")
    done = run_edgex("eval", artifact, "--eval-data", folder, "--json", "-q")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["results"]
    done = run_edgex("diagnose", artifact, "--calib-data", folder, "--samples", "12", "--no-isolated", "--json", "-q")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["samples"] == row["accuracy"]["n"] == 12
    agreement = result["references"]["source"]["output"]["top1_agreement"]
    assert agreement == pytest.approx(row["vs_source"]["agreement"], abs=1e-9)
    assert agreement < 1.0  # not 1 == 1: the comparison could have failed
    assert result["runtime_config"]["vs_source"]["fused_agreement"] == agreement  # eval runs ORT's defaults


def test_emulate_cpu_is_refused_where_it_cannot_apply(default_onnx, images_dir, tmp_path):
    done = run_edgex("diagnose", default_onnx, "--calib-data", images_dir, "--emulate-cpu", "Haswel", "-q")
    assert done.returncode == 2 and done.stderr.startswith("edgex: error:") and "qemu" in done.stderr, done.stderr
    if shutil.which("qemu-x86_64"):
        assert "did you mean 'haswell'" in done.stderr.lower()
    tflite = tmp_path / "tiny_xception" / "tflite-int8"
    tflite.mkdir(parents=True)
    manifest = json.loads((default_onnx / "manifest.json").read_text())
    (tflite / "manifest.json").write_text(json.dumps({**manifest, "target": "tflite", "model_file": "model.tflite"}))
    done = run_edgex("diagnose", tflite, "--calib-data", images_dir, "--emulate-cpu", "Haswell", "-q")
    assert done.returncode == 2 and "applies to ONNX artifacts" in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="needs qemu-user (qemu-x86_64)")
def test_under_an_emulated_avx2_cpu_full_8bit_weights_part_at_fused_convolutions(tiny_model, images_dir,
                                                                                   tmp_path):
    """u8s8 (8-bit weights) saturates ORT's AVX2 U8S8 kernels: diagnose names the fused QLinearConvs."""
    done = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--int8", "--recipe", "u8s8",
                     "--calib-data", images_dir, "--calib-size", "24", "--output", tmp_path, "-q",
                     "--min-agreement", "0", "--min-cosine", "0")  # an AVX2-only host fails u8s8's parity itself
    assert done.returncode == 0, done.stderr
    done = run_edgex("diagnose", tmp_path / "tiny_xception" / "onnx-int8", "--calib-data", images_dir,
                     "--samples", str(SAMPLES), "--no-isolated", "--emulate-cpu", "Haswell", "--json", "-q")
    assert done.returncode == 0, done.stderr
    section = json.loads(done.stdout)["runtime_config"]
    assert section["emulated_cpu"] == "Haswell"
    assert section["diverging"] and section["first_parting"] in section["diverging"]
    worst = section["nodes"][0]
    assert worst["op"] == "QLinearConv" and worst["diverges"] and worst["keras_layer"]
