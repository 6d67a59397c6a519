"""The written contracts hold: every registered converter is a `Converter`, every adapter a `Runtime`."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite"])
def test_every_registered_converter_satisfies_the_protocol(target):
    from edgex.converters import TARGETS, load_converter
    from edgex.converters.base import Converter

    assert isinstance(load_converter(TARGETS[target]), Converter)


def test_a_module_missing_a_hook_is_not_a_converter():
    import types

    from edgex.converters.base import Converter

    partial = types.SimpleNamespace(convert=lambda *a, **k: None, describe=lambda path: ([], []))
    assert not isinstance(partial, Converter)


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite"])
def test_int8_recipe_is_a_recipe_on_both_source_frameworks(target):
    from edgex.calibration.recipes import Recipe
    from edgex.converters import TARGETS, load_converter
    from edgex.converters.base import ConvertOptions

    converter = load_converter(TARGETS[target])
    for framework in ("keras", "torch"):
        source = type("S", (), {"framework": framework})()
        assert isinstance(converter.quantize_recipe(source, ConvertOptions(precision="int8")), Recipe)
        assert converter.quantize_recipe(source, ConvertOptions(precision="fp32")) is None


def test_the_source_adapter_is_a_runtime():
    from edgex.runtimes import Runtime
    from edgex.runtimes.source import SourceSession

    session = SourceSession.__new__(SourceSession)
    session.info = {}
    assert isinstance(session, Runtime)


def test_openvino_op_naming_is_coded_once():
    """'Type#k' op names were built in converters/openvino.py and again in diagnose/openvino.py."""
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    builders = [str(p.relative_to(repo)) for p in [*repo.glob("converters/*.py"), *repo.glob("edgex/**/*.py")]
                if 'f"{kind}#' in p.read_text()]
    assert builders == ["converters/openvino.py"], builders


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_describe_reads_inputs_and_outputs_back(target, tmp_path):
    import onnx
    from edgex.converters import TARGETS, load_converter
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["logits"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    inputs, outputs = load_converter(TARGETS[target]).describe(path)
    assert [i["name"] for i in inputs] == ["image"] and [o["name"] for o in outputs] == ["logits"]
