"""The tiny fixtures are the same bytes on every machine, and their int8 sits far from every gate."""

from __future__ import annotations

import json

from helpers import IMAGES_SHA256, TINY_WEIGHTS_SHA256, build_tiny_model, pixels_sha256, weights_sha256
from test_bench_fixtures import tiny_int8_artifacts


def test_tiny_model_weights_are_the_committed_bytes():
    assert weights_sha256(build_tiny_model()) == TINY_WEIGHTS_SHA256


def test_generated_images_are_the_same_pixels(images_dir):
    assert pixels_sha256(images_dir) == IMAGES_SHA256


def test_int8_parity_has_twice_the_gate_margin(tiny_model, images_dir, tmp_path_factory):
    """Gate: agreement >= 0.9, cosine >= 0.95, worst-5% cosine >= 0.85. Every target keeps at least twice
    that distance from perfect agreement: a machine whose kernels round differently cannot tip it over."""
    from edgex.options import DEFAULT_THRESHOLDS

    gate = DEFAULT_THRESHOLDS["int8"]
    base = tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)
    for target in ("onnx", "openvino", "tflite"):
        parity = json.loads((base / f"{target}-int8" / "manifest.json").read_text())["parity"]
        assert 1 - parity["cosine"] <= (1 - gate.min_cosine) / 2, (target, parity["cosine"])
        assert 1 - parity["agreement"] <= (1 - gate.min_agreement) / 2, (target, parity["agreement"])
        assert 1 - parity["p05_cosine"] <= (1 - gate.min_tail_cosine) / 2, (target, parity["p05_cosine"])
