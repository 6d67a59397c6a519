"""`edgex convert --timings`: one row per step that ran, shared steps once, seconds and peak memory."""

from __future__ import annotations

import json

from helpers import run_edgex


def test_timings_table_names_every_step(tiny_model_via_tf2onnx, images_dir, tmp_path):
    """A Keras model whose ONNX graph comes from tf2onnx: the export starts first, in the background."""
    tiny_model = tiny_model_via_tf2onnx
    out = tmp_path / "out"
    cache = {"EDGEX_CACHE_DIR": str(tmp_path / "cache")}  # empty: this run exports with tf2onnx
    done = run_edgex("convert", "--model", tiny_model, "--target", "all", "--int8", "--calib-data", images_dir,
                     "--calib-size", "12", "--output", out, "--timings", "-q", env=cache)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = lines.index("| artifact | step | seconds | CPU s (edgex + children) | peak RSS MB (edgex) "
                         "| peak RSS MB (largest child) | peak RSS MB (edgex + children, summed) |")
    rows = [line.split(" | ") for line in lines[header + 2:] if line.startswith("| ")]
    steps = [(row[0].lstrip("| "), row[1]) for row in rows]
    shared = [step for artifact, step in steps if artifact == "shared"]
    assert shared == ["load source model", "export SavedModel (shared by every target)",
                      "pick calibration images, decode parity images", "source model on parity images"]
    for target in ("onnx-int8", "openvino-int8", "tflite-int8"):
        own = [step for artifact, step in steps if artifact == target]
        assert any(step.startswith("parity check") for step in own), own
        assert own[-1] == "write manifest, publish", own
    # one range pass: TFLite's (ONNX waits for tf2onnx), whose book gives ONNX its ranges
    assert ("tflite-int8", "activation ranges (12 images) (int8)") in steps
    assert ("onnx-int8", "activation ranges (the tflite pass's, matched on 3 images) (u8s8-w7)") in steps
    # tf2onnx started before the other targets were built, so that it overlaps them
    assert ("onnx-int8", "tf2onnx (in the background) (u8s8-w7)") in steps
    assert steps[-1] == ("all", "wall time")
    for row in rows:
        assert float(row[2]) >= 0 and float(row[4]) > 0 and float(row[6].rstrip(" |")) > 0
        assert row[3] == "n/a" or float(row[3]) >= 0
    # CPU time is read off a sampler every 0.1 s: the tiny model's range step (12 images) can read 0.0, so it
    # must be a sampled number, and the whole run's CPU time must be positive
    ranges = next(row for row in rows if row[1].startswith("activation ranges") and "onnx" in row[0])
    assert ranges[3] != "n/a" and float(ranges[3]) >= 0
    assert float(rows[-1][3]) > 0
    assert any(line.startswith("(summed: VmRSS") for line in lines)
    # --json carries the same steps per result. The first run's fp32 export is in the cache now; damaged, it
    # is found so only when fetched (no SavedModel was exported up front): exported again, the SavedModel too.
    (entry,) = (tmp_path / "cache" / "onnx-exports").glob("*.onnx")
    data = entry.read_bytes()
    entry.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    again = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--calib-data", images_dir,
                      "--output", tmp_path / "json", "--json", "--timings", "-q", env=cache)
    assert again.returncode == 0, again.stderr
    (result,) = json.loads(again.stdout)["results"]
    steps = [s["step"] for s in result["timings"]]
    assert steps[0] == "load source model" and "tf2onnx" in steps, steps
    assert "tf2onnx (reused from the cache of earlier runs)" not in steps
    assert result["status"] == "ok"


def test_a_damaged_onnx_export_cache_entry_is_dropped(tmp_path, monkeypatch):
    from edgex.converters import tf2onnx_cache

    monkeypatch.setenv("EDGEX_CACHE_DIR", str(tmp_path))
    exported = tmp_path / "fp32.onnx"
    exported.write_bytes(b"\x08\x07" * 1000)
    tf2onnx_cache.store("k1", exported)
    copy = tmp_path / "copy.onnx"
    assert tf2onnx_cache.has("k1") and tf2onnx_cache.fetch("k1", copy)
    assert copy.read_bytes() == exported.read_bytes()
    entry = tmp_path / "onnx-exports" / "k1.onnx"
    entry.write_bytes(b"\x08\x08" + entry.read_bytes()[2:])  # one flipped byte
    assert not tf2onnx_cache.fetch("k1", copy)
    assert not copy.exists() and not tf2onnx_cache.has("k1")
    assert not entry.exists() and not entry.with_suffix(".json").exists()
    assert not list((tmp_path / "onnx-exports").glob(".*.tmp"))


def test_tree_sampler_adds_up_the_children():
    """A child holding 300 MB: the summed RSS of this process's tree counts it; this process's own does not."""
    import subprocess
    import sys

    from edgex.conversion.timings import TreeSampler, descendants, tree_rss_mb

    hold = "import sys; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); print(1, flush=True); " \
           "sys.stdin.read()"
    alone = tree_rss_mb()
    child = subprocess.Popen([sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == b"1"  # the 300 MB are resident now
        assert child.pid in descendants(__import__("os").getpid())
        sampler = TreeSampler()
        assert sampler.sample() >= alone + 280
        assert tree_rss_mb(child.pid) >= 280
    finally:
        child.communicate(b"")
    assert tree_rss_mb() < sampler.peak_mb - 200  # the peak stays after the child is gone


def test_step_cpu_is_read_off_the_samples_around_the_step():
    from edgex.conversion.timings import TreeSampler

    sampler = TreeSampler()
    sampler.cpu = [(10.0, 0.0), (11.0, 1.0), (12.0, 3.0)]  # (instant, tree CPU seconds so far)
    assert sampler.cpu_between(10.5, 11.5) == 1.5
    assert sampler.cpu_between(9.0, 13.0) == 3.0  # clamped to what was sampled
    assert sampler.cpu_between(13.0, 14.0) is None  # after the last sample: unknown, not zero


def test_the_onnx_export_cache_key_changes_with_what_shapes_the_export(tmp_path):
    from types import SimpleNamespace

    from edgex.converters.tf2onnx_cache import export_key

    model = tmp_path / "m.keras"
    model.write_bytes(b"weights v1")
    source = SimpleNamespace(path=model, framework="keras", preprocess=SimpleNamespace(input_shape=(1, 96, 96, 3)),
                             output_kind="logits", removed_layers=[], export_model=None)
    key = export_key(source, 17)
    assert export_key(source, 17) == key  # stable
    assert export_key(source, 18) != key
    source.preprocess.input_shape = (1, 128, 128, 3)
    assert export_key(source, 17) != key
    source.preprocess.input_shape = (1, 96, 96, 3)
    model.write_bytes(b"weights v2")  # the same name, other bytes
    assert export_key(source, 17) != key
