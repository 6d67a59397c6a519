"""The machine's floor: the best rate this CPU reaches on Xception-shaped convolutions, f32 and int8.

An artifact's p50 over "its MACs at that rate" says how far a runtime is from what the hardware does
on the same work, on this machine, measured in the same run: unlike a speed-up, it needs no second
artifact and survives a machine change. Pointwise (1x1) convolutions carry ~97% of Xception's MACs, so
the floor is the best pointwise rate; depthwise rates are measured and reported, not used.

    python -m edgex.bench.floor [--threads N] [--runs 30]     # one JSON object on stdout

Chains of `CHAIN` Conv+ReLU (so per-call overhead and the int8 graph's quantize/dequantize edges
amortize) in ONNX Runtime (f32, and int8 QDQ from ORT's own `quantize_static`) and OpenVINO (f32, and
the same QDQ model where its CPU plugin can compile it), each runtime with its default options.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHAIN = 8
# (name, in channels, out channels, spatial size, groups): Xception's middle flow (728 channels at 19x19 for
# a 299 input) and entry flow (256 channels at 74x74).
LAYERS = (("pointwise 728->728 @19x19", 728, 728, 19, 1), ("depthwise 3x3 728 @19x19", 728, 728, 19, 728),
          ("pointwise 256->256 @74x74", 256, 256, 74, 1))
KINDS = ("f32", "int8")
# Seconds between two runners' turns. ONNX Runtime's, OpenVINO's and XNNPACK's idle worker threads spin after
# their work; on 2 cores the runner that just finished held one core for up to ~10 runs of the next one (an
# ORT chain: 4.3 ms alone, 6.4 ms median in turns, 4.5 ms with this pause). A deployment runs one model.
TURN_PAUSE_S = 0.2


def conv_chain(cin: int, cout: int, size: int, groups: int, depth: int = CHAIN):
    """`depth` Conv+ReLU in a chain (NCHW float) as an ONNX model, He-initialised so values stay in range."""
    from onnx import TensorProto, helper, numpy_helper

    k = 3 if groups > 1 else 1
    rng = np.random.default_rng(0)
    nodes, weights, name = [], [], "x"
    for i in range(depth):
        weight = rng.standard_normal((cout, cin // groups, k, k)) * (2 / (cin // groups * k * k)) ** 0.5
        weights.append(numpy_helper.from_array(weight.astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("Conv", [name, f"w{i}"], [f"c{i}"], group=groups, pads=[k // 2] * 4),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        name = f"r{i}"
    graph = helper.make_graph(nodes, "floor", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              [1, cin, size, size])],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, cout, size, size])],
                              weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _quantize(f32: Path, q8: Path, x: np.ndarray) -> None:
    """ORT's documented static QDQ path (U8S8, per-tensor), calibrated on the one input."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": x}])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(f32), str(q8), Reader(), weight_type=QuantType.QInt8)


def chain_files(layer: str, folder: Path) -> tuple[Path, Path, np.ndarray, float]:
    """(f32 model, int8 model, input, GMAC) of one of LAYERS' chains in `folder`, written there unless an
    earlier call did (the input is the same seeded array either way)."""
    import onnx

    name, cin, cout, size, groups = next(row for row in LAYERS if row[0] == layer)
    k = 3 if groups > 1 else 1
    gmac = CHAIN * cout * (cin // groups) * k * k * size * size / 1e9
    stem = f"{name.split()[0]}-{cin}-{size}"
    f32, q8 = folder / f"{stem}-f32.onnx", folder / f"{stem}-int8.onnx"
    x = np.random.default_rng(1).standard_normal((1, cin, size, size)).astype(np.float32)
    if not q8.is_file():
        onnx.save(conv_chain(cin, cout, size, groups), f32)
        _quantize(f32, q8, x)
    return f32, q8, x, gmac


def open_chains(layer: str, threads: int, folder: Path) -> tuple[dict, list[str], np.ndarray, float]:
    """({key: run} for every runtime and kind that opens, e.g. "int8/onnxruntime"; why the others do not, where
    the runtime is there; input; GMAC) of one layer's chain, for the floor and for a benchmark that times the
    chains in the same turns as the artifacts it holds to the floor."""
    from edgex.bench.runner import RunnerError

    f32, q8, x, gmac = chain_files(layer, folder)
    runs, unsupported = {}, []
    for key, opener in _openers(f32, q8, threads).items():
        try:
            runs[key] = opener()
        except RunnerError as error:
            if error.kind != "missing_runtime":  # e.g. no OpenVINO kernel for ORT's QDQ pattern here
                why = str(error.__cause__ or error).strip().splitlines()[-1]
                unsupported.append(f"{key}: {why[:80]}")
    return runs, unsupported, x, gmac


def _openers(f32: Path, q8: Path, threads: int) -> dict:
    """Each chain in each runtime, opened as artifacts are (the runner's sessions, the runtime's defaults)."""
    from edgex.bench.runner import open_session

    return {f"{kind}/{runtime}": (lambda runtime=runtime, path=path, precision=precision:
                                  open_session(runtime, path, precision, threads).run)
            for runtime in ("onnxruntime", "openvino")
            for kind, path, precision in (("f32", f32, "fp32"), ("int8", q8, "int8"))}


def _time_in_turns(runners: dict, x: np.ndarray, runs: int, rounds: int = 3) -> dict[str, float]:
    """Median ms per runner, timed in blocks taken in turns (drift on a noisy machine hits all alike), with a
    pause before each turn (TURN_PAUSE_S)."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        run(x)
    for _ in range(rounds):
        for name, run in runners.items():
            time.sleep(TURN_PAUSE_S)
            run(x)
            for _ in range(max(runs // rounds, 1)):
                start = time.perf_counter()
                run(x)
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(ms) for name, ms in times.items()}


def measure_floor(threads: int, runs: int = 30, folder: Path | None = None) -> dict:
    """GMAC/s of each layer kind per precision and runtime, the best pointwise rate per precision, and which
    chain gave it (`best_chain`, for the report). The chains are written into `folder` when given (a caller
    that opens them again reuses them), else into a temporary one."""
    layers = []
    with tempfile.TemporaryDirectory(prefix="edgex-floor-") as tmp:
        for name, *_ in LAYERS:
            runners, unsupported, x, gmac = open_chains(name, threads, folder or Path(tmp))
            medians = _time_in_turns(runners, x, runs)
            layers.append({"layer": name, "gmac": gmac, "unsupported": unsupported,
                           "gmac_per_s": {key: gmac / (ms / 1000) for key, ms in medians.items()}})
    best = {kind: max(((rate, row["layer"], key) for row in layers if row["layer"].startswith("pointwise")
                       for key, rate in row["gmac_per_s"].items() if key.startswith(kind + "/")), default=None)
            for kind in KINDS}
    return {"threads": threads, "chain": CHAIN, "layers": layers,
            "gmac_per_s": {kind: found[0] if found else None for kind, found in best.items()},
            "best_chain": {kind: {"layer": found[1], "key": found[2]} for kind, found in best.items() if found}}


def floor_kind(precision: str | None) -> str:
    """The floor an artifact is held to: int8 for int8 artifacts, f32 for every float one."""
    return "int8" if precision == "int8" else "f32"


def floor_of(row: dict, floor: dict, gmac: float | None) -> dict | None:
    """{kind, gmac, floor_ms, ratio} for one timed row: its p50 over its MACs at the floor's rate."""
    p50 = (row.get("latency_ms") or {}).get("p50")
    kind = floor_kind(row.get("precision"))
    rate = (floor.get("gmac_per_s") or {}).get(kind)
    if not (p50 and gmac and rate):
        return None
    floor_ms = gmac / rate * 1000.0 * (row.get("batch") or 1)
    return {"kind": kind, "gmac": round(gmac, 4), "gmac_per_s": round(rate, 1), "floor_ms": round(floor_ms, 3),
            "ratio": round(p50 / floor_ms, 3)}


def floor_in_child(threads: int, timeout_s: float) -> dict:
    """measure_floor in a clean child process, as artifacts are timed (nothing else loaded or warm).
    A floor that cannot be measured is {"error": why}: the report says so, the rows stand."""
    import subprocess

    try:
        done = subprocess.run([sys.executable, "-m", "edgex.bench.floor", "--threads", str(threads)],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"the floor microbenchmark ran past {timeout_s:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-2:])
        return {"error": f"the floor microbenchmark failed (exit {done.returncode}): {tail}"}
    return json.loads(lines[-1])


def annotate(rows: list[dict], floor: dict) -> None:
    """Give every timed row its floor ratio (rows whose graph cannot be counted get none)."""
    from edgex.bench.macs import model_gmac

    for row in rows:
        if row.get("status") == "ok" and row.get("model_file") and (row.get("runtime") or {}).get("runtime"):
            model = Path(row.get("path") or ".") / row["model_file"]  # model_file is relative to the folder
            row["floor"] = floor_of(row, floor, model_gmac(model, row["runtime"]["runtime"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgex.bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(measure_floor(args.threads, args.runs)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
