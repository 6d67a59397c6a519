"""One activation-range pass per conversion: a later target takes an earlier target's ranges, matched by values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edgex.calibration.shared_ranges import FINGERPRINT_IMAGES, RangeBook, fingerprint, shared_note
from nan_model import tiny_fp32_artifacts
from test_bench_fixtures import tiny_int8_artifacts


def _prints(*tensors: np.ndarray) -> np.ndarray:
    return np.concatenate([fingerprint(t) for t in tensors])


def test_a_tensor_matches_in_another_layout_and_only_its_own_values():
    rng = np.random.default_rng(0)
    images = [rng.normal(size=(1, 4, 6, 6)).astype(np.float32) for _ in range(FINGERPRINT_IMAGES)]
    relu = [np.maximum(x, 0) for x in images]
    book = RangeBook({"conv": (-3.0, 3.0), "relu": (0.0, 3.0)}, {"conv": _prints(*images), "relu": _prints(*relu)},
                     "tflite")
    nhwc = [x.transpose(0, 2, 3, 1) + 1e-6 for x in images]  # another runtime's rounding, another layout
    assert book.lookup({"t": _prints(*nhwc)}) == {"t": (-3.0, 3.0)}
    assert book.lookup({"t": _prints(*[np.maximum(x, 0) for x in nhwc])}) == {"t": (0.0, 3.0)}
    assert book.lookup({"t": _prints(*nhwc), "u": _prints(*[x * 1.1 for x in images])}) is None  # one unmatched
    padded = [np.pad(r, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf) for r in relu]
    assert book.lookup({"pad": _prints(*padded)}) == {"pad": (0.0, 3.0)}  # a max-pool's -inf border is no value


def test_tensors_of_equal_values_but_different_ranges_are_not_guessed():
    x = [np.arange(24, dtype=np.float32).reshape(1, 24) - 10 for _ in range(FINGERPRINT_IMAGES)]
    book = RangeBook({"a": (-10.0, 13.0), "b": (-12.0, 13.0)}, {"a": _prints(*x), "b": _prints(*x)}, "onnx")
    assert book.lookup({"t": _prints(*x)}) is None


def test_onnx_takes_the_tflite_pass_ranges_equal_to_its_own(tiny_model, images_dir, tmp_path_factory, tmp_path):
    """The book written by TFLite's pass over the tiny model's float graph gives ONNX the ranges its own pass gives
    (to float rounding), except where ORT's quantizer replaces them anyway (a tensor read by one Relu alone)."""
    from edgex.calibration.dataset import CalibrationSet
    from edgex.calibration.shared_ranges import book_path
    from edgex.converters.onnx_ranges import (
        _fingerprints,
        activation_ranges,
        collect_ranges,
        onnx_load,
        ranges_quantize_static_replaces,
    )
    from edgex.converters.tflite import _calibrate_only, apply_robust_ranges
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgex.sources.load import load_source

    fp32 = tiny_fp32_artifacts(tiny_model, tmp_path_factory)
    calib = CalibrationSet.from_folder(images_dir, load_source(tiny_model).preprocess, size=12)
    book = book_path(tmp_path, calib, "mean_minmax")
    calibrated = _calibrate_only((fp32 / "tflite-fp32" / "model.tflite").read_bytes(), calib)
    assert apply_robust_ranges(calibrated, calib, "mean_minmax", book=book)[1] is None
    assert RangeBook.load(book).made_by == "tflite"
    prepared = tmp_path / "prepared.onnx"
    quant_pre_process(str(fp32 / "onnx-fp32" / "model.onnx"), str(prepared), skip_symbolic_shape=True)
    shared, made_by = activation_ranges(prepared, calib, "mean_minmax", tmp_path, None, book)
    assert made_by == "tflite"
    own, prints = collect_ranges(prepared, calib, "mean_minmax", tmp_path, fingerprinted=True)
    # a tensor read by one Relu alone is not observed: it has the Relu's range, as quantize_static would give it
    replaced = ranges_quantize_static_replaces(onnx_load(prepared))
    assert replaced and set(prints) == set(own) - set(replaced)
    for name, relu_output in replaced.items():
        assert own[name] == own[relu_output], name
    # the fingerprints the ONNX pass writes into its book come from its own session, a chunk of tensors per run:
    # the same as a separate session's
    separate = _fingerprints(prepared, list(prints), calib)
    for name in prints:
        np.testing.assert_allclose(prints[name], separate[name], rtol=1e-4, atol=1e-6, err_msg=name)
    compared = [name for name in own if name not in replaced]
    assert len(compared) >= 40 and set(own) <= set(shared)
    for name in compared:
        np.testing.assert_allclose(shared[name], own[name], rtol=1e-3, atol=1e-5, err_msg=name)
    assert apply_robust_ranges(calibrated, calib, "mean_minmax", book=book)[1] == "tflite"  # its own book: matched


@pytest.mark.parametrize(("target", "made_by"), [("onnx", None), ("openvino", None), ("tflite", "onnx")])
def test_the_manifest_says_whose_ranges_an_artifact_has(tiny_model, images_dir, tmp_path_factory, target, made_by):
    """`convert --target all --int8` of a Keras Xception: the ONNX graph is exported through the PyTorch port (no
    tf2onnx) and its range pass is the run's one; OpenVINO and ONNX share its QDQ graph; TFLite takes the ranges and
    says so."""
    out = tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)
    manifest = json.loads((out / f"{target}-int8" / "manifest.json").read_text())
    notes = manifest["quantization"]["notes"]
    assert (shared_note(made_by) in notes) if made_by else "pass over the same images" not in notes, notes
    assert not any("tf2onnx" in step for step in manifest["timings_s"]), manifest["timings_s"]
    if target == "openvino":  # built before ONNX, so its QDQ graph made the export and the pass
        assert manifest["quantization"]["name"] == "qdq-w7"
        assert "ONNX QDQ graph: torch.onnx.export of the PyTorch port" in manifest["timings_s"], manifest["timings_s"]
