"""int8 speed on this machine, in one run: edgex's artifacts, the by-hand peers, and the machine's floor.

    .venv/bin/python benchmarks/speed.py ARTIFACTS_DIR [--threads 2] [--rounds 6] [--block 10]
                                         [--peers --calib-data DIR] [--floor-only]

ARTIFACTS_DIR holds edgex artifact folders `{onnx,openvino,tflite}-{fp32,int8}` (e.g. what
benchmarks/convert_clothing.py leaves in build/bench-clothing/clothing_xception). Prints one table:

- per target: fp32 and int8 batch-1 latency p50/p90, timed in blocks taken in turns by a timer that shares
  no code with edgex (each runtime's own API), and the int8 speed-up;
- with --peers: the path from each vendor's docs converted on the same calibration images (ORT
  `quantize_static` defaults, NNCF `quantize` defaults, TFLiteConverter full int8) timed in the same turns;
- the floor (edgex.bench.floor, the same microbenchmark as `edgex bench --floor`): Xception-shaped pointwise
  (1x1) and depthwise (3x3) convolutions timed in f32 and int8 in ONNX Runtime and OpenVINO; the best
  pointwise rate (pointwise convs carry ~97% of the MACs; depthwise rates are printed, not used) gives the
  machine's floor for Xception's 8.36 GMAC; the pointwise chains are then timed again in the same turns as
  the artifacts, and the best rate there gives the floor each artifact's ms is held to (drift cancels);
- the machine: CPU model, family/model, clock, the ISA flags that decide int8 speed, threads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import latency_in_blocks  # noqa: E402

from edgex.bench.floor import measure_floor, open_chains  # noqa: E402

XCEPTION_GMAC = 8.36  # at 299x299 (Chollet 2017); scaled by (H*W)/(299*299) for other input sizes
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16",
             "asimddp", "i8mm", "bf16")


def machine(threads: int) -> dict:
    """The fingerprint printed beside every number."""
    info = {"machine": platform.machine(), "threads": threads}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    fields = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = (part.strip() for part in line.split(":", 1))
            fields.setdefault(key, value)
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    info.update(model=fields.get("model name") or fields.get("CPU part", "?"), family=fields.get("cpu family"),
                cpu_model=fields.get("model"), mhz=fields.get("cpu MHz"),
                isa=[f for f in ISA_FLAGS if f in flags])
    return info


def _input_of(manifest: dict) -> tuple[int, ...]:
    pre = manifest["preprocess"]
    h, w = pre["height"], pre["width"]
    return (1, 3, h, w) if pre.get("layout", "NHWC") == "NCHW" else (1, h, w, 3)


def open_onnx(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # everything else: ORT's defaults, as users run it
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def open_openvino(path: Path, threads: int, precision: str | None = None):
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})


def open_tflite(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    index, dtype = detail["index"], detail["dtype"]
    scale, zero = detail["quantization"]

    def run(x):
        if dtype != np.float32:  # int8 input: quantize once per call, as a deployment does
            x = np.clip(np.round(x / scale + zero), np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
        interpreter.set_tensor(index, x)
        interpreter.invoke()

    return run


def artifact_runner(folder: Path, threads: int):
    """(runner, input shape) from an edgex artifact folder, through the runtime's own API."""
    manifest = json.loads((folder / "manifest.json").read_text())
    model = folder / manifest["model_file"]
    target = manifest["target"]
    if target == "onnx":
        run = open_onnx(model, threads)
    elif target == "openvino":  # fp32: true f32, not the bf16 OpenVINO picks by default on AMX/bf16 CPUs
        run = open_openvino(model, threads, "f32" if manifest["precision"] == "fp32" else None)
    else:
        run = open_tflite(model, threads)
    return run, _input_of(manifest)


def calibration_batches(calib_dir: Path, manifest: dict, count: int) -> list[np.ndarray]:
    """The manifest's preprocessing, written out by hand (the peers get exactly the images edgex used)."""
    from PIL import Image

    pre = manifest["preprocess"]
    files = sorted(p for p in calib_dir.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[
        pre.get("interpolation", "bilinear")]
    out = []
    for file in files:
        img = Image.open(file).convert("RGB").resize((pre["width"], pre["height"]), resample)
        x = (np.asarray(img, np.float32) - np.asarray(pre["mean"], np.float32)) / np.asarray(pre["std"], np.float32)
        out.append((x.transpose(2, 0, 1) if pre.get("layout") == "NCHW" else x)[None])
    return out


def ort_peer(fp32_onnx: Path, batches: list[np.ndarray], out: Path) -> Path:
    """ONNX Runtime's documented static quantization, defaults only (QDQ, per-tensor, MinMax)."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    name = ort.InferenceSession(str(fp32_onnx), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(batches)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {name: x}

    quantize_static(str(fp32_onnx), str(out), Reader())
    return out


def nncf_peer(fp32_xml: Path, batches: list[np.ndarray], out: Path) -> Path:
    """NNCF's documented post-training quantization, defaults only."""
    import nncf
    import openvino as ov

    model = nncf.quantize(ov.Core().read_model(str(fp32_xml)), nncf.Dataset(batches))
    ov.save_model(model, str(out))
    return out


def tflite_peer(keras_model: Path, batches: list[np.ndarray], out: Path) -> Path:
    """TFLiteConverter full-integer quantization as its guide shows (int8 in and out)."""
    import keras
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(keras_model, compile=False))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([b] for b in batches)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with contextlib.redirect_stdout(sys.stderr):  # the converter prints its SavedModel's signature
        out.write_bytes(converter.convert())
    return out


def _fixed_input(run, x: np.ndarray):
    """A runner that ignores the shared sample: each artifact gets an input of its own shape."""
    return lambda _: run(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", type=Path, nargs="?", help="folder of {target}-{precision} artifact folders")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--peers", action="store_true", help="also convert and time each vendor's documented path")
    ap.add_argument("--calib-data", type=Path, help="calibration images for --peers (the ones edgex used)")
    ap.add_argument("--calib-size", type=int, default=300)
    ap.add_argument("--keras-model", type=Path, help="source .keras for the TFLite peer")
    ap.add_argument("--floor-only", action="store_true")
    ap.add_argument("--json", type=Path, help="also write every number here")
    args = ap.parse_args()

    info = machine(args.threads)
    print(f"machine: {info.get('model')} (family {info.get('family')} model {info.get('cpu_model')}, "
          f"{info.get('mhz')} MHz), {info['machine']}, ISA {' '.join(info.get('isa', []))}, "
          f"{args.threads} threads", flush=True)
    result: dict = {"machine": info}
    chain_folder = Path(tempfile.mkdtemp(prefix="edgex-floor-chains-"))  # written once, opened again below
    result["floor"] = fl = measure_floor(args.threads, folder=chain_folder)  # as `edgex bench --floor`
    for row in fl["layers"]:
        print(f"floor {row['layer']:28s} " + "  ".join(f"{k} {v:6.1f} GMAC/s" for k, v in row["gmac_per_s"].items())
              + "".join(f"  (no {note})" for note in row["unsupported"]), flush=True)
    fl["floor_ms"] = {kind: XCEPTION_GMAC / rate * 1000 for kind, rate in fl["gmac_per_s"].items() if rate}
    print(f"floor for {XCEPTION_GMAC} GMAC: f32 {fl['floor_ms']['f32']:.1f} ms, int8 {fl['floor_ms']['int8']:.1f} ms",
          flush=True)
    if args.floor_only or args.artifacts is None:
        return _write(args.json, result)

    runners, shapes, scale = {}, {}, 1.0
    for target in ("onnx", "openvino", "tflite"):
        for precision in ("fp32", "int8"):
            folder = args.artifacts / f"{target}-{precision}"
            if (folder / "manifest.json").is_file():
                runners[f"{target}-{precision}"], shapes[f"{target}-{precision}"] = artifact_runner(folder,
                                                                                                    args.threads)
    if not runners:
        raise SystemExit(f"no artifact folders under {args.artifacts}")
    if args.peers:
        _add_peers(args, runners, shapes)
    shape = next(iter(shapes.values()))
    h, w = (shape[2], shape[3]) if shape[1] == 3 else (shape[1], shape[2])
    scale = h * w / (299 * 299)
    samples = {name: np.random.default_rng(0).uniform(-1, 1, s).astype(np.float32) for name, s in shapes.items()}
    timed = {name: _fixed_input(run, samples[name]) for name, run in runners.items()}
    chains = _floor_chains(fl, args.threads, timed, chain_folder)
    shutil.rmtree(chain_folder)  # the sessions hold their models
    times = latency_in_blocks(timed, None, rounds=args.rounds, block=args.block)
    rows = {name: {"p50": statistics.median(ms), "p90": float(np.percentile(ms, 90)), "runs": len(ms)}
            for name, ms in times.items() if name not in chains}
    result["latency"] = rows
    # the floor as timed in the same turns as the artifacts (drift between the floor's own run and theirs
    # cancels): the best pointwise rate of each kind among the chains timed there
    rates = {name: gmac / statistics.median(times[name]) * 1000 for name, (kind, gmac) in chains.items()}
    best = {kind: max((name for name in chains if chains[name][0] == kind), key=rates.get)
            for kind in {kind for kind, _ in chains.values()}}
    fl["in_turns"] = {"gmac_per_s": rates, "best": best}
    fl["floor_ms_in_turns"] = {kind: XCEPTION_GMAC / rates[name] * 1000 for kind, name in best.items()}
    floors = {k: v * scale for k, v in {**fl["floor_ms"], **fl["floor_ms_in_turns"]}.items()}
    print("floor chains timed in the same turns: " + ", ".join(f"{name} {rate:.1f} GMAC/s"
                                                               for name, rate in rates.items()), flush=True)
    print(f"\n| artifact | p50 ms | p90 ms | int8 speed-up | x floor ({h}x{w}: f32 {floors['f32']:.1f} ms, "
          f"int8 {floors['int8']:.1f} ms) |\n|---|---|---|---|---|")
    for name, row in rows.items():
        target, precision = name.rsplit("-", 1)
        fp32 = rows.get(f"{target.split('/')[0]}-fp32")
        speedup = f"{fp32['p50'] / row['p50']:.2f}x" if fp32 and precision != "fp32" else ""
        ratio = row["p50"] / floors["f32" if precision == "fp32" else "int8"]
        row.update(speedup=speedup, floor_ratio=ratio)
        print(f"| {name} | {row['p50']:.1f} | {row['p90']:.1f} | {speedup} | {ratio:.2f} |")
    return _write(args.json, result)


def _floor_chains(floor: dict, threads: int, timed: dict, folder: Path) -> dict[str, tuple[str, float]]:
    """Add every pointwise chain the floor timed (each runtime, each kind; their models in `folder`) to `timed`;
    returns {runner name: (kind, chain GMAC)}. All of them, not the floor's best alone: on a noisy machine the
    best of one period is not always the best of the next."""
    chains = {}
    for row in floor["layers"]:
        if not row["layer"].startswith("pointwise"):
            continue
        runs, _, x, gmac = open_chains(row["layer"], threads, folder)
        for key, run in runs.items():
            name = f"floor {key} {row['layer'].split()[1]}"
            timed[name] = _fixed_input(run, x)
            chains[name] = (key.split("/")[0], gmac)
    return chains


def _add_peers(args, runners: dict, shapes: dict) -> None:
    """Convert each vendor's documented path on the same images and time it in the same turns."""
    if args.calib_data is None:
        raise SystemExit("--peers needs --calib-data (the images edgex calibrated on)")
    tmp = Path(tempfile.mkdtemp(prefix="edgex-peers-"))
    for target, convert, suffix in (("onnx", ort_peer, ".onnx"), ("openvino", nncf_peer, ".xml"),
                                    ("tflite", tflite_peer, ".tflite")):
        fp32 = args.artifacts / f"{target}-fp32"
        if not (fp32 / "manifest.json").is_file() or (target == "tflite" and args.keras_model is None):
            continue
        manifest = json.loads((fp32 / "manifest.json").read_text())
        batches = calibration_batches(args.calib_data, manifest, args.calib_size)
        source = args.keras_model if target == "tflite" else fp32 / manifest["model_file"]
        start = time.perf_counter()
        model = convert(source, batches, tmp / f"peer-{target}{suffix}")
        print(f"peer {target}: converted in {time.perf_counter() - start:.0f} s", flush=True)
        opener = {"onnx": open_onnx, "openvino": open_openvino, "tflite": open_tflite}[target]
        runners[f"{target}/peer-int8"], shapes[f"{target}/peer-int8"] = opener(model, args.threads), \
            _input_of(manifest)


def _write(path: Path | None, result: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
