"""PyTorch source -> each target's float graph: ONNX (dynamo exporter), OpenVINO, TFLite (litert-torch).

The converters call these at their export step only; quantization then runs the same path as for
a Keras source (ORT QDQ with edgex's ranges, NNCF, TFLite's MLIR quantizer with edgex's ranges);
only TFLite --dynamic comes from litert-torch's own PT2E quantizer. Every graph takes its input in the
source's preprocess layout (NHWC by default), so the layout in the manifest is the artifact's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from edgex.calibration.recipes import Recipe
from edgex.errors import DataError, MissingDependencyError, UsageError

ONNX_MIN_OPSET = 18  # the dynamo exporter's lowest native opset


def _module_and_example(model, preprocess, batch: int = 1):
    module = model.for_layout(preprocess.layout)
    return module, model.example_input(preprocess, batch)


@contextlib.contextmanager
def _quiet():
    """The exporters print progress, warnings and log lines; edgex reports what matters itself."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch._export", "torch.export", "torchao")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_onnx(source, out: Path, opset: int) -> None:
    """fp32 ONNX of a PyTorch source with a dynamic batch dimension, weights inside the file."""
    export_module_onnx(source.model, source.preprocess, out, opset, source.path)


def export_module_onnx(model, preprocess, out: Path, opset: int, origin: Path, output_name: str = "logits",
                       traced: bool = False) -> None:
    """fp32 ONNX of a TorchModel taking `preprocess`'s layout (a dynamic batch where the module allows one);
    `origin` names the model in errors. `traced`: torch.onnx's TorchScript exporter, for edgex's own ported
    Xception, whose forward it traces exactly, in a sixth of the dynamo exporter's time (the same 74 convs);
    its node names carry the module paths."""
    import torch

    dynamic = model.dynamic_batch
    module, example = _module_and_example(model, preprocess, batch=2 if dynamic else 1)
    opset = max(opset, ONNX_MIN_OPSET)
    try:
        with _quiet():
            if traced:
                axes = {"image": {0: "batch"}, output_name: {0: "batch"}} if dynamic else None
                torch.onnx.export(module, (example,), str(out), dynamo=False, opset_version=opset,
                                  input_names=["image"], output_names=[output_name], dynamic_axes=axes,
                                  verbose=False)
            else:
                shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic else None
                torch.onnx.export(module, (example,), str(out), dynamo=True, opset_version=opset,
                                  input_names=["image"], output_names=[output_name], dynamic_shapes=shapes,
                                  external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many untyped errors for unsupported graphs
        raise DataError(f"torch.onnx.export could not export {origin}: {_first_line(exc)}") from exc
    if not out.is_file():
        raise DataError(f"torch.onnx.export wrote no model for {origin}")


def _openvino_from_program(module, example, ov):
    """OpenVINO converts an ExportedProgram directly, no TorchScript tracing needed."""
    import torch

    return ov.convert_model(torch.export.export(module, (example,)))


def to_openvino(source):
    """An OpenVINO model converted straight from the nn.Module (traced with an example input)."""
    import openvino as ov

    module, example = _module_and_example(source.model, source.preprocess)
    shape = [-1 if source.model.dynamic_batch else 1, *example.shape[1:]]
    try:
        with _quiet():
            try:
                model = ov.convert_model(module, example_input=example, input=[ov.PartialShape(shape)])
            except Exception:  # TorchScript cannot trace e.g. a torch.export program's module)
                model = _openvino_from_program(module, example, ov)
                model.reshape({model.inputs[0]: ov.PartialShape(shape)})
    except Exception as exc:  # OpenVINO raises its own untyped errors
        raise DataError(f"OpenVINO could not convert {source.path}: {_first_line(exc)}") from exc
    # Traced graphs have unnamed tensors; name them as the ONNX export does, for manifests and apps.
    for ports, name in ((model.inputs, "image"), (model.outputs, "logits")):
        for i, port in enumerate(ports):
            if not port.get_names():
                port.get_tensor().set_names({name if len(ports) == 1 else f"{name}_{i}"})
    return model


def tflite_flatbuffer(source, precision: str, calib=None, progress=None) -> bytes:
    """TFLite bytes from litert-torch: fp32, or dynamic-range int8 (PT2E, recipe: `pt2e_recipe`).

    Static int8 does not come from here: the tflite converter quantizes this float graph as it does a
    Keras one (edgex's ranges collected on XNNPACK, then the MLIR quantizer) rather than running PT2E's
    observers in eager PyTorch and lowering a second time (docs/models.md has the step timings).
    """
    if precision not in ("fp32", "dynamic"):
        raise UsageError(f"litert-torch builds fp32 or dynamic here, not {precision}")
    try:
        with _quiet():  # torchao logs a warning per optional CUDA kernel library it cannot load
            import litert_torch
            from litert_torch.quantize import pt2e_quantizer
            from litert_torch.quantize.quant_config import QuantConfig
    except ImportError as exc:
        raise MissingDependencyError("TFLite from a PyTorch source needs litert-torch",
                                     "pip install 'edgex[litert-torch]'") from exc
    import torch

    module, example = _module_and_example(source.model, source.preprocess)
    quant_config = None
    try:
        with _quiet():
            if precision == "dynamic":
                from torchao.quantization.pt2e import quantize_pt2e

                quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
                    pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
                graph = torch.export.export(module, (example,)).module()
                graph = quantize_pt2e.prepare_pt2e(graph, quantizer)
                graph(example)
                module = quantize_pt2e.convert_pt2e(graph, fold_quantize=False)
                quant_config = QuantConfig(pt2e_quantizer=quantizer)
            edge = litert_torch.convert(module, (example,), quant_config=quant_config)
            flat = edge.model_content()
    except (UsageError, MissingDependencyError):
        raise
    except Exception as exc:  # litert-torch raises many untyped errors for unsupported graphs
        raise DataError(f"litert-torch could not convert {source.path}: {_first_line(exc)}") from exc
    return bytes(flat)


def pt2e_recipe(dynamic: bool = True) -> Recipe:
    """--dynamic from a PyTorch source: litert-torch PT2E's dynamic-range recipe, as a `Recipe`."""
    return Recipe("tflite", "dynamic", range_estimator="dynamic",
                  notes="litert-torch PT2E, symmetric per-channel int8 weights, activations quantized at run time")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
