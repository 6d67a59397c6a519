"""`edgex bench --streams N` (images/s with N requests in flight) and `--floor` (p50 over the machine's floor)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest
from helpers import run_edgex
from test_bench_fixtures import tiny_int8_artifacts

from edgex.bench import runner
from edgex.bench.macs import model_gmac


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_model, images_dir, tmp_path_factory):
    return tiny_int8_artifacts(tiny_model, images_dir, tmp_path_factory)


def _runner_json(*args: str) -> dict:
    out = io.StringIO()
    with redirect_stdout(out):
        code = runner.main(["run", *args])
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.parametrize(("target", "runtime", "model"), [("onnx", "onnxruntime", "model.onnx"),
                                                          ("tflite", "litert", "model.tflite"),
                                                          ("openvino", "openvino", "model.xml")])
def test_streams_measure_throughput_with_requests_in_flight(tiny_artifacts, target, runtime, model):
    result = _runner_json("--artifact", str(tiny_artifacts / f"{target}-int8" / model), "--runtime", runtime,
                          "--threads", "2", "--streams", "2", "--min-runs", "6", "--min-seconds", "0",
                          "--warmup", "1")
    streams = result["streams"]
    assert streams["streams"] == 2 and streams["runs"] >= 6
    assert streams["throughput_ips"] == pytest.approx(streams["runs"] / streams["seconds"])
    assert streams["latency_ms"]["p50"] > 0
    if runtime == "openvino":  # one compiled model in throughput mode, its streams fed by their own requests
        assert streams["runtime"]["performance_hint"] == "THROUGHPUT"
        assert result["runtime"]["performance_hint"] == "LATENCY"  # the one-request latency is untouched
    else:  # separate sessions sharing the threads
        assert streams["runtime"]["threads_per_stream"] == 1
    assert "streams" not in _runner_json("--artifact", str(tiny_artifacts / f"{target}-int8" / model), "--runtime",
                                         runtime, "--min-runs", "2", "--min-seconds", "0", "--warmup", "0")


def test_macs_are_counted_alike_in_every_format(tiny_artifacts):
    formats = (("onnx", "onnxruntime", "model.onnx"), ("tflite", "litert", "model.tflite"),
               ("openvino", "openvino", "model.xml"))
    counts = {runtime: model_gmac(tiny_artifacts / f"{target}-int8" / model, runtime)
              for target, runtime, model in formats}
    assert all(c and c > 0 for c in counts.values()), counts
    assert max(counts.values()) == pytest.approx(min(counts.values()), rel=1e-6), counts


def test_macs_known_answer(tmp_path):
    """One 3x3 conv 8->16 on 10x10 (pad 1) then a dense 16->4: 16*8*9*100 + 16*4 MACs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((16, 8, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "d")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("MatMul", ["f", "d"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert model_gmac(path, "onnxruntime") * 1e9 == pytest.approx(16 * 8 * 9 * 100 + 16 * 4)


def test_bench_reports_throughput_and_floor(tiny_artifacts, tmp_path):
    report_dir = tmp_path / "report"
    done = run_edgex("bench", tiny_artifacts / "onnx-int8", tiny_artifacts / "tflite-int8", "--streams", "2",
                     "--floor", "--min-runs", "3", "--min-seconds", "0", "--warmup", "1", "--output", report_dir,
                     "-q")
    assert done.returncode == 0, done.stderr
    report = json.loads((report_dir / "report.json").read_text())
    assert report["settings"]["streams"] == 2 and report["settings"]["floor"] is True
    floor = report["floor"]
    assert floor["gmac_per_s"]["int8"] > 0 and floor["gmac_per_s"]["f32"] > 0
    for kind, best in floor["best_chain"].items():  # which chain gave the floor
        layer = next(row for row in floor["layers"] if row["layer"] == best["layer"])
        assert best["layer"].startswith("pointwise") and layer["gmac_per_s"][best["key"]] == floor["gmac_per_s"][kind]
    for row in report["results"]:
        assert row["streams"]["streams"] == 2 and row["streams"]["throughput_ips"] > 0
        assert row["floor"]["kind"] == "int8"
        expected = row["latency_ms"]["p50"] / (row["floor"]["gmac"] / floor["gmac_per_s"]["int8"] * 1000)
        assert row["floor"]["ratio"] == pytest.approx(expected, rel=1e-2)
    markdown = (report_dir / "report.md").read_text()
    assert "images/s" in markdown and "× floor" in markdown and "(2 streams)" in markdown
    assert "- floor: f32" in markdown
    html = (report_dir / "report.html").read_text()
    assert 'id="throughput"' in html and "with 2 streams" in html


def test_floor_is_refused_where_the_artifacts_run_elsewhere(tiny_artifacts):
    done = run_edgex("bench", tiny_artifacts / "onnx-int8", "--floor", "--remote", "pi@192.0.2.1")
    assert done.returncode == 2
    assert "--floor measures this machine" in done.stderr and "Traceback" not in done.stderr


def test_streams_must_be_positive(tiny_artifacts):
    done = run_edgex("bench", tiny_artifacts / "onnx-int8", "--streams", "0")
    assert done.returncode == 2 and "--streams must be at least 1" in done.stderr


def test_a_floor_chain_opens_alone_for_timing_beside_artifacts(tmp_path):
    from edgex.bench.floor import CHAIN, open_chains

    runs, _, x, gmac = open_chains("pointwise 256->256 @74x74", 1, tmp_path)
    assert {"f32/onnxruntime", "int8/onnxruntime"} <= set(runs)
    assert x.shape == (1, 256, 74, 74) and gmac == pytest.approx(CHAIN * 256 * 256 * 74 * 74 / 1e9)
    out = runs["int8/onnxruntime"](x)
    assert out.shape == x.shape and np.isfinite(out).all() and (out >= 0).all()  # the chain ends in a ReLU
