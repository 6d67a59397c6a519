"""Defects a close read found (architecture issue), each pinned by a test that failed before its fix."""

from __future__ import annotations

import pytest


def test_openvino_minmax_estimator_reaches_nncf():
    """--calib-method minmax was written into the manifest recipe but never passed to nncf.quantize."""
    from edgex.calibration.recipes import recipe_named
    from edgex.converters.openvino import _advanced
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    params = _advanced(recipe_named("openvino", None, "minmax"))
    assert params.activations_range_estimator_params == RangeEstimatorParametersSet.MINMAX
    assert _advanced(recipe_named("openvino", None)).activations_range_estimator_params != \
        RangeEstimatorParametersSet.MINMAX


def test_runtime_load_failure_is_a_typed_error_not_exit_1(tmp_path):
    """RunnerError escaped the parity check and the accuracy budget as 'internal error' (exit 1)."""
    from edgex.errors import EXIT_INTERNAL, EdgexError
    from edgex.runtimes import open_runtime

    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x08\x07not an onnx model")
    with pytest.raises(EdgexError) as caught:
        open_runtime("onnxruntime", broken, "int8")
    assert caught.value.exit_code != EXIT_INTERNAL


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite"])
def test_missing_calibration_in_a_converter_is_exit_66(target, tmp_path):
    """Each converter raised the base EdgexError (exit 1) where the pipeline raises 66."""
    import importlib

    from edgex.converters.base import ConvertOptions

    from edgex.errors import EXIT_NO_INPUT, EdgexError

    class _Source:  # reaches the calibration check before anything touches the model
        framework = "keras"

        def saved_model(self):
            raise AssertionError("must not export before checking the calibration set")

    converter = importlib.import_module(f"edgex.converters.{target}")
    with pytest.raises(EdgexError) as caught:
        converter.convert(_Source(), tmp_path, ConvertOptions(precision="int8"), None)
    assert caught.value.exit_code == EXIT_NO_INPUT


def test_tflite_target_requires_the_litert_runtime():
    """The parity check runs TFLite artifacts in LiteRT; `requires` listed TensorFlow only."""
    from edgex.converters import TARGETS

    assert "ai_edge_litert" in TARGETS["tflite"].requires


class _TorchSource:
    """Fails loudly if a converter gets past its option checks and touches the model."""

    framework = "torch"
    path = "tiny.safetensors"

    @property
    def model(self):
        raise AssertionError("must refuse the options before exporting the model")


@pytest.mark.parametrize(("options", "keep_float", "names"), [
    ({"precision": "fp16"}, (), "fp16"),
])
def test_pytorch_tflite_refuses_options_it_cannot_honour(options, keep_float, names, tmp_path):
    """PyTorch -> TFLite has no fp16; int8 now takes keep_float and every range estimator (the Keras quantizer)."""
    from edgex.converters.base import ConvertOptions
    from edgex.converters.tflite import convert

    from edgex.errors import UsageError

    with pytest.raises(UsageError, match=names):
        convert(_TorchSource(), tmp_path, ConvertOptions(**options), object(), keep_float=keep_float)


def test_tflite_recipe_notes_name_the_artifacts_io_types():
    """The PT2E recipe said "float32 input and output" of int8-in, int8-out artifacts: the notes now read the file's."""
    from edgex.calibration.recipes import recipe_named
    from edgex.converters.tflite import io_note

    int8 = [{"dtype": "int8"}]
    float32 = [{"dtype": "float32"}]
    assert io_note(int8, int8) == "int8 input and output"
    assert io_note(float32, float32) == "float32 input and output"
    assert io_note(float32, int8) == "float32 input, int8 output"
    recipe = recipe_named("tflite", None).with_note(io_note(int8, int8))
    assert recipe.notes.endswith("; int8 input and output") and "float32" not in recipe.notes


def test_noqa_comments_name_only_rules_ruff_checks():
    """`noqa: SLF001/BLE001` named rules ruff does not run: a suppression of nothing that reads like a policy."""
    import re
    from pathlib import Path

    import tomllib

    repo = Path(__file__).resolve().parent.parent
    selected = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]["select"]
    stray = []
    for folder in ("edgex", "converters", "calibration", "tests", "benchmarks"):
        for path in (repo / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for code in re.findall(r"#\s*noqa: ?([A-Z]+[0-9]+)", line):
                    if not any(code.startswith(rule) and code[len(rule):].isdigit() for rule in selected):
                        stray.append(f"{path.relative_to(repo)}:{number}: {code}")
    assert not stray, stray


def test_dead_code_is_gone():
    """Names nothing called: sources.remove_tree, schema.RESULT_FIELDS, recipes.has_int8_dot_product, notes."""
    import dataclasses

    from edgex.calibration import recipes
    from edgex.converters.base import ArtifactFiles

    from edgex.report import schema
    from edgex.sources import load as sources

    assert not hasattr(sources, "remove_tree") and not hasattr(schema, "RESULT_FIELDS")
    assert not hasattr(recipes, "has_int8_dot_product")
    assert "notes" not in {f.name for f in dataclasses.fields(ArtifactFiles)}


def test_a_failed_conversion_of_any_kind_becomes_a_row_and_the_others_continue(tmp_path, monkeypatch):
    """run_pipeline caught only GateError: any other failure of one target ended the whole run."""
    import edgex.api
    from edgex.errors import DataError, GateError
    from edgex.run.config import plan_from_config
    from edgex.run.execute import run_pipeline

    config = tmp_path / "pipeline.yaml"
    config.write_text("model: model.keras\ntargets: [onnx, openvino, tflite]\nprecisions: [fp32]\n")
    tried = []

    def convert(model, target, **kwargs):
        tried.append(target)
        raise {"onnx": DataError("tf2onnx could not convert"), "openvino": GateError("parity gate failed"),
               "tflite": KeyError("boom")}[target]

    monkeypatch.setattr(edgex.api, "convert", convert)
    report = run_pipeline(plan_from_config(config))
    assert tried == ["onnx", "openvino", "tflite"]
    rows = {r["name"]: r for r in report["results"]}
    assert rows["onnx-fp32"]["error"] == "tf2onnx could not convert" and rows["onnx-fp32"]["status"] == "failed"
    assert rows["openvino-fp32"]["kind"] == "convert_failed"
    assert rows["tflite-fp32"]["kind"] == "convert_crashed" and "KeyError" in rows["tflite-fp32"]["error"]


def test_docstrings_quote_no_measured_latencies_or_accuracies():
    """tflite_xnnpack's docstring said 41 -> 31 ms while the README said 32.5 -> 13.8 ms: numbers live in the README."""
    import ast
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    measured = re.compile(r"\d+(\.\d+)? ?ms\b|\b0\.\d+ top-1")
    found = []
    for folder in ("edgex", "converters", "calibration"):
        for path in (repo / folder).rglob("*.py"):
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            if measured.search(doc):
                found.append(str(path.relative_to(repo)))
    assert not found, found


def test_reference_row_and_source_runtime_name_the_source_framework():
    """The reference row said "keras (in-process)" and runtimes/keras.py reported keras for PyTorch sources."""
    from pathlib import Path

    from edgex.bench.suite import reference_row
    from edgex.report.tables import reference_cells
    from edgex.runtimes.source import source_runtime_info

    row = reference_row(Path("m.safetensors"), {"source": {"framework": "torch", "sha256": "ab"}}, {"top1": 0.9})
    assert row["target"] == "torch" and reference_cells(row)[-1] == "torch (in-process)"
    info = source_runtime_info("torch", 2)
    assert info["runtime"] == "torch" and info["package"] == "torch" and info["backend"] is None
    assert source_runtime_info("keras", None)["package"] == "keras"
