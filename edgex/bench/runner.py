"""Time one artifact in its real runtime, in one clean process; or describe this machine.

    python runner.py run --artifact MODEL_FILE --runtime {onnxruntime,openvino,litert} [--threads N]
        [--min-runs 50] [--min-seconds 10] [--warmup 5] [--batch 1] [--streams 1] [--device cpu|gpu]
        [--precision P] [--inputs in.npy --outputs out.npy]
    python runner.py probe

--threads defaults to every core this process may use (`probe`'s cores_usable), decided here, on the
machine that runs the artifact, for every runtime: LiteRT's own default is one thread, ONNX Runtime's
the physical cores, OpenVINO's all cores, and a host cannot know a device's cores.

This file is self-contained on purpose: it imports only the standard library, numpy and the runtime
it measures, so it can be copied alone to an edge device (a Raspberry Pi with tflite-runtime) and run
there. edgex runs it in a child process per artifact, so one crash or leak spoils no other row.

Protocol: the last line on stdout is ONE JSON object. `run` reports load_ms, first_inference_ms,
latency_ms {mean, std, min, p50, p90, p99, max} of the timed runs (warm-up excluded; runs continue
until both --min-runs and --min-seconds are reached), round_p50_ms (the p50 of each of 5 consecutive
rounds of those runs), runs, seconds, batch, warmup, threads (also in
runtime.threads), throughput_ips and
peak_rss_mb (the process high-water mark after the timed runs, before the memory-mapped --inputs
batch is run). With --streams N > 1 it adds "streams": throughput_ips with N requests in flight at once
and their latency_ms, measured after the one-request runs with the same --min-runs/--min-seconds. With
--inputs (a float32 batch, preprocessed as the artifact expects) it also writes float32 logits to
--outputs; quantized model inputs and outputs are converted here. On failure it prints
{"ok": false, "kind": ..., "error": ..., "hint": ...} and exits with:

    2   usage error (argparse)
    65  bad_input: the artifact or --inputs file is missing or has the wrong shape
    69  missing_runtime: the runtime (or the asked device/provider) is not installed (EX_UNAVAILABLE)
    70  load_failed / run_failed: the runtime could not load or run the artifact (EX_SOFTWARE)
    130 interrupted
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

RUNTIMES = ("onnxruntime", "openvino", "litert")
EXIT_BAD_INPUT = 65
EXIT_MISSING_RUNTIME = 69
EXIT_FAILED = 70
EXIT_INTERRUPTED = 130
EXIT_CODES = {"bad_input": EXIT_BAD_INPUT, "missing_runtime": EXIT_MISSING_RUNTIME, "load_failed": EXIT_FAILED,
              "run_failed": EXIT_FAILED}
INSTALL_HINTS = {
    "onnxruntime": "pip install onnxruntime (onnxruntime-gpu for CUDA/TensorRT)",
    "openvino": "pip install openvino",
    "litert": "pip install ai-edge-litert (or tflite-runtime on devices with numpy 1)",
}
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "neon", "asimd", "asimdhp",
             "asimddp", "i8mm", "bf16", "sve", "sve2", "fphp")
_COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution")
_PRECISION_NAMES = {"u8": "int8", "i8": "int8", "bf16": "bf16", "f32": "fp32", "f16": "fp16"}


class RunnerError(Exception):
    """A failure with its protocol kind ("missing_runtime", "load_failed", "run_failed", "bad_input")."""

    def __init__(self, kind: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.hint = kind, message, hint

    def to_dict(self) -> dict:
        return {"ok": False, "kind": self.kind, "error": self.message, "hint": self.hint}


def package_version(*names: str) -> tuple[str | None, str | None]:
    """(distribution name, version) of the first of `names` that is installed."""
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return name, metadata.version(name)
    return None, None


def module_distribution(module, *names: str) -> str | None:
    """Which of the installed distributions `names` holds the imported `module`: two builds of one package can
    sit on the path (onnxruntime beside an onnxruntime-gpu earlier on PYTHONPATH), and the first installed one
    is not always the one that runs. The only one installed if there is one; None when several are and
    none is in the module's folder (the version then comes from the module alone)."""
    folder = Path(module.__file__).resolve().parent.parent
    installed = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            root = Path(str(metadata.distribution(name).locate_file(""))).resolve()
            installed.append((name, root))
    only = installed[0][0] if len(installed) == 1 else None
    return next((name for name, root in installed if root == folder), only)


# -- quantized io ---------------------------------------------------------------------------


def quantize(x: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    """Float input to the integer type a full-int8 model expects (round to nearest, saturate)."""
    limits = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, limits.min, limits.max).astype(dtype)


def dequantize(y: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


# -- one session class per runtime: .info, .input_shape(batch), .run(float32 batch) ------------


def _import_runtime(module: str, runtime: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise RunnerError("missing_runtime", f"{runtime} is not installed ({exc})", INSTALL_HINTS[runtime]) from exc


def _fixed_shape(dims, batch: int) -> tuple[int, ...]:
    """A concrete input shape: dynamic (named, None, -1) batch dims become `batch`."""
    return tuple(batch if i == 0 or not isinstance(d, int) or d < 0 else int(d) for i, d in enumerate(dims))


class OnnxRuntimeSession:
    """ONNX Runtime: CPU provider; with device="gpu", TensorRT then CUDA providers when present."""

    def __init__(self, path: Path, precision: str | None, threads: int, device: str = "cpu"):
        ort = _import_runtime("onnxruntime", "onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device == "gpu":
            accelerated = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
            if not accelerated:
                raise RunnerError("missing_runtime", f"onnxruntime has no GPU provider (has {', '.join(available)})",
                                  "pip install onnxruntime-gpu")
            providers = accelerated + providers
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input = self.session.get_inputs()[0]
        package = module_distribution(ort, "onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")
        self.info = {"name": "onnxruntime", "runtime": "onnxruntime", "package": package,
                     "version": ort.__version__, "providers": self.session.get_providers(),
                     "precision": precision, "precision_ran": precision or "as stored", "threads": threads}

    def input_shape(self, batch: int) -> tuple[int, ...]:
        return _fixed_shape(self.input.shape, batch)

    def run(self, batch: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run(None, {self.input.name: batch.astype(np.float32, copy=False)})
        return np.asarray(logits, dtype=np.float32)


class OpenVinoSession:
    """OpenVINO on CPU (or GPU). fp32 artifacts run with INFERENCE_PRECISION_HINT=f32: on CPUs with bf16
    (AMX or AVX512_BF16) the plugin otherwise silently runs bf16. PERFORMANCE_HINT=LATENCY is set, not
    left to the plugin version's default: the protocol times one synchronous request. `info` says what
    really ran, read from the compiled model's runtime graph."""

    def __init__(self, path: Path, precision: str | None, threads: int, device: str = "cpu", streams: int = 1):
        ov = _import_runtime("openvino", "openvino")
        core = ov.Core()
        target = device.upper()
        if target not in core.available_devices:
            raise RunnerError("missing_runtime", f"OpenVINO has no {target} device "
                              f"(has {', '.join(core.available_devices)})", "Install the device's OpenVINO plugin.")
        # One stream: the LATENCY hint times one synchronous request. Several: the THROUGHPUT hint with
        # that many CPU streams, each fed by its own infer request (what OpenVINO's benchmark_app does).
        config = {"PERFORMANCE_HINT": "LATENCY"} if streams == 1 else {"PERFORMANCE_HINT": "THROUGHPUT",
                                                                        "NUM_STREAMS": streams}
        if precision == "fp32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if target == "CPU":
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(str(path), target, config)
        self.request = self.compiled.create_infer_request()
        self.extra_requests = [self.compiled.create_infer_request() for _ in range(streams - 1)]
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        hint = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        layers = self._compute_precisions()
        ran = max(layers, key=layers.get) if layers else hint
        self.info = {"name": "openvino", "runtime": "openvino", "package": "openvino",
                     "version": package_version("openvino")[1] or ov.get_version(), "device": target,
                     "precision": precision, "precision_ran": _PRECISION_NAMES.get(ran, ran),
                     "inference_precision": hint, "compute_layer_precisions": layers,
                     "performance_hint": config["PERFORMANCE_HINT"], "threads": threads if target == "CPU" else None}

    def _compute_precisions(self) -> dict[str, int]:
        """How many convolution/matmul layers ran in each precision (u8 for int8, bf16, f32...)."""
        counts: dict[str, int] = {}
        with contextlib.suppress(Exception):  # the runtime graph is a debugging aid; never fail on it
            for op in self.compiled.get_runtime_model().get_ordered_ops():
                rt = op.get_rt_info()
                if "layerType" in rt and rt["layerType"].astype(str) in _COMPUTE_LAYERS and "runtimePrecision" in rt:
                    name = rt["runtimePrecision"].astype(str)
                    counts[name] = counts.get(name, 0) + 1
        return counts

    def input_shape(self, batch: int) -> tuple[int, ...]:
        dims = [d.get_length() if d.is_static else -1 for d in self.compiled.input(0).get_partial_shape()]
        return _fixed_shape(dims, batch)

    def run(self, batch: np.ndarray, request=None) -> np.ndarray:
        result = (request or self.request).infer({0: batch.astype(np.float32, copy=False)})
        return np.asarray(result[self.compiled.output(0)], dtype=np.float32)

    def stream_runs(self) -> list:
        """One run function per stream, each with its own infer request on the one compiled model."""
        return [self.run] + [lambda x, r=r: self.run(x, r) for r in self.extra_requests]


def litert_interpreter():
    """The LiteRT Interpreter class and its package: ai-edge-litert, else tflite-runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise RunnerError("missing_runtime", "neither ai-edge-litert nor tflite-runtime is installed",
                              INSTALL_HINTS["litert"]) from exc
        return Interpreter, "tflite-runtime"


class LiteRtSession:
    """LiteRT with its default XNNPACK delegate; num_threads is always passed (left out, it is 1). The graph
    has a fixed batch (edgex converts batch 1); other batch sizes resize the input once, and shorter
    batches are padded."""

    def __init__(self, path: Path, precision: str | None, threads: int, device: str = "cpu"):
        if device != "cpu":
            raise RunnerError("missing_runtime", "edgex runs LiteRT on the CPU only (XNNPACK)", "Use --device cpu.")
        interpreter, package = litert_interpreter()
        self.interpreter = interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0])
        dtype = np.dtype(self.input["dtype"]).name
        self.info = {"name": "litert", "runtime": "litert", "package": package, "version": package_version(package)[1],
                     "delegate": "XNNPACK (default)", "precision": precision,
                     "precision_ran": "int8" if dtype in ("int8", "uint8") else (precision or "as stored"),
                     "input_dtype": dtype, "threads": threads}

    def input_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, *(int(d) for d in self.input["shape"][1:]))

    def resize(self, batch: int) -> None:
        if batch != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], self.input_shape(batch))
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self.batch = batch

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.concatenate([self._run_fixed(batch[i : i + self.batch]) for i in range(0, len(batch), self.batch)])

    def _run_fixed(self, x: np.ndarray) -> np.ndarray:
        count = len(x)
        if count < self.batch:
            x = np.concatenate([x, np.repeat(x[-1:], self.batch - count, axis=0)])
        dtype = np.dtype(self.input["dtype"])
        if dtype != np.float32:
            x = quantize(x, dtype, *self.input["quantization"])
        self.interpreter.set_tensor(self.input["index"], x.astype(dtype, copy=False))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if y.dtype != np.float32:
            y = dequantize(y, *self.output["quantization"])
        return np.array(y[:count], dtype=np.float32)


SESSIONS = {"onnxruntime": OnnxRuntimeSession, "openvino": OpenVinoSession, "litert": LiteRtSession}


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask: taskset, cpusets), else all of them: the
    default thread count of every runtime, and `probe`'s cores_usable."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def open_session(runtime: str, path: Path, precision: str | None = None, threads: int | None = None,
                 device: str = "cpu"):
    """Load an artifact in `runtime` with `threads` (default: usable_cores()); RunnerError(kind=...) tells
    why it could not."""
    path = Path(path)
    if not path.is_file():
        raise RunnerError("bad_input", f"artifact {path} does not exist", "Check --artifact.")
    try:
        return SESSIONS[runtime](path, precision, threads or usable_cores(), device)
    except RunnerError:
        raise
    except Exception as exc:  # runtimes raise anything on a bad file
        raise RunnerError("load_failed", f"{runtime} cannot load {path.name}: {_first_line(exc)}",
                          "Is the file complete? Re-run edgex convert.") from exc


def stream_runs(runtime: str, path: Path, precision: str | None, threads: int, device: str, streams: int,
                batch: int) -> tuple[list, dict]:
    """`streams` run functions that may run side by side, and the runtime info of the first.

    OpenVINO: one model compiled with the THROUGHPUT hint and `streams` CPU streams sharing `threads`.
    ONNX Runtime and LiteRT: `streams` sessions of threads // streams threads each (at least one)."""
    if runtime == "openvino":
        try:
            session = OpenVinoSession(Path(path), precision, threads, device, streams=streams)
        except Exception as exc:
            raise RunnerError("load_failed", f"openvino cannot load {Path(path).name} with {streams} streams: "
                              f"{_first_line(exc)}") from exc
        return session.stream_runs(), {**session.info, "streams": streams}
    per_stream = max(1, threads // streams)
    sessions = [open_session(runtime, path, precision, per_stream, device) for _ in range(streams)]
    for session in sessions:
        if hasattr(session, "resize"):
            session.resize(batch)
    return [s.run for s in sessions], {**sessions[0].info, "streams": streams, "threads_per_stream": per_stream}


def predict(session, inputs: np.ndarray, batch: int = 1) -> np.ndarray:
    """Logits for every input, `batch` at a time."""
    return np.concatenate([session.run(inputs[i : i + batch]) for i in range(0, len(inputs), batch)])


# -- timing -----------------------------------------------------------------------------------

LATENCY_ROUNDS = 5  # the timed runs are reported as this many consecutive rounds' p50s too


def time_runs(run, sample: np.ndarray, min_runs: int, min_seconds: float, warmup: int) -> tuple[list[float], float]:
    """Latencies (ms) of back-to-back runs until both min_runs and min_seconds are reached."""
    for _ in range(warmup):
        run(sample)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < max(min_runs, 1) or time.perf_counter() - started < min_seconds:
        t = time.perf_counter()
        run(sample)
        times.append((time.perf_counter() - t) * 1000.0)
    return times, time.perf_counter() - started


def time_streams(runs: list, sample: np.ndarray, min_runs: int, min_seconds: float,
                 warmup: int) -> tuple[list[float], int, float]:
    """Every stream's run function called back to back in its own thread, all at once, until both
    min_runs (all streams together) and min_seconds are reached: (latencies ms, runs, wall seconds).
    The runtimes release the GIL while they infer, so the streams really run side by side."""
    import threading

    for run in runs:
        for _ in range(max(warmup, 1)):
            run(sample)
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in runs]
    errors: list[BaseException] = []

    def loop(run, out: list[float]) -> None:
        try:
            while not stop.is_set():
                t = time.perf_counter()
                run(sample)
                out.append((time.perf_counter() - t) * 1000.0)
        except BaseException as exc:  # re-raised in the timing thread
            errors.append(exc)
            stop.set()

    workers = [threading.Thread(target=loop, args=(run, out), daemon=True)
               for run, out in zip(runs, latencies, strict=True)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    while not stop.is_set() and (sum(map(len, latencies)) < max(min_runs, 1)
                                 or time.perf_counter() - started < min_seconds):
        time.sleep(0.005)
    stop.set()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    every = [ms for out in latencies for ms in out]
    return every, len(every), time.perf_counter() - started


def latency_stats(times_ms: list[float]) -> dict[str, float]:
    """mean, std, min, p50, p90 (MLPerf single-stream), p99, max; percentiles interpolate linearly."""
    t = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    return {"mean": float(t.mean()), "std": float(t.std(ddof=1)) if len(t) > 1 else 0.0, "min": float(t.min()),
            "p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(t.max())}


def round_p50s(times_ms: list[float], rounds: int = LATENCY_ROUNDS) -> list[float]:
    """The p50 of each of `rounds` consecutive, equal slices of the timed runs (fewer when runs are few).

    Their spread is the run's own round-to-round wander (other load, clocks, heat): `edgex compare` calls a
    latency change noise unless it clearly exceeds it."""
    t = np.asarray(times_ms, dtype=np.float64)
    count = max(1, min(rounds, len(t) // 5 or 1))
    return [float(np.percentile(part, 50)) for part in np.array_split(t, count)]


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB).

    Linux: VmHWM, the high-water mark of this process's own address space. ru_maxrss is the fallback
    elsewhere; on Linux it is not used because it survives exec: a child started with vfork inherits the
    peak of its (possibly huge) parent.
    """
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def _artifact_precision(path: Path) -> str | None:
    """The precision recorded in an edgex manifest beside the model file, when there is one."""
    manifest = path.parent / "manifest.json"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return json.loads(manifest.read_text()).get("precision")
    return None


def _load_inputs(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The --inputs batch, memory-mapped: timing reads only the sample's pages, so peak RSS stays the model's."""
    try:
        inputs = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise RunnerError("bad_input", f"cannot read --inputs {path}: {_first_line(exc)}",
                          "Pass a .npy float32 batch.") from exc
    if inputs.ndim != len(shape) or tuple(inputs.shape[1:]) != tuple(shape[1:]):
        raise RunnerError("bad_input", f"--inputs {path} has shape {inputs.shape}; the artifact expects "
                          f"(N, {', '.join(map(str, shape[1:]))})", "Preprocess as the artifact's manifest says.")
    if inputs.dtype != np.float32:
        raise RunnerError("bad_input", f"--inputs {path} holds {inputs.dtype}, not float32", "Save a float32 batch.")
    return inputs


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def run_benchmark(args: argparse.Namespace) -> dict:
    """Load, first inference, warm-up, timed runs; then logits for --inputs when given."""
    artifact = Path(args.artifact)
    precision = args.precision or _artifact_precision(artifact)
    started = time.perf_counter()
    session = open_session(args.runtime, artifact, precision, args.threads, args.device)
    load_ms = (time.perf_counter() - started) * 1000.0
    if args.runtime == "litert":
        session.resize(args.batch)
    shape = session.input_shape(args.batch)
    inputs = _load_inputs(Path(args.inputs), shape) if args.inputs else None
    if inputs is not None and len(inputs):
        sample = np.resize(inputs[: args.batch], shape).astype(np.float32)
    else:
        sample = np.random.default_rng(0).uniform(-1.0, 1.0, shape).astype(np.float32)
    try:
        started = time.perf_counter()
        session.run(sample)
        first_ms = (time.perf_counter() - started) * 1000.0
        times, seconds = time_runs(session.run, sample, args.min_runs, args.min_seconds, args.warmup)
    except Exception as exc:
        raise RunnerError("run_failed", f"{args.runtime} failed running {artifact.name}: {_first_line(exc)}") from exc
    stats = latency_stats(times)
    result = {"ok": True, "artifact": str(artifact), "runtime": session.info, "load_ms": load_ms,
              "first_inference_ms": first_ms, "warmup": args.warmup, "threads": session.info["threads"],
              "latency_ms": stats, "round_p50_ms": round_p50s(times), "runs": len(times), "seconds": seconds,
              "batch": args.batch, "input_shape": list(shape),
              "throughput_ips": args.batch * 1000.0 / stats["mean"], "peak_rss_mb": peak_rss_mb()}
    if args.streams > 1:
        result["streams"] = _throughput(args, artifact, precision, session.info["threads"], sample)
    if inputs is not None and args.outputs:
        started = time.perf_counter()
        try:
            logits = predict(session, np.asarray(inputs), args.batch)
        except Exception as exc:
            raise RunnerError("run_failed", f"{args.runtime} failed on --inputs: {_first_line(exc)}") from exc
        _save_atomic(Path(args.outputs), logits)
        result.update(outputs=str(args.outputs), outputs_shape=list(logits.shape),
                      outputs_seconds=time.perf_counter() - started)
    return result


def _throughput(args: argparse.Namespace, artifact: Path, precision: str | None, threads: int,
                sample: np.ndarray) -> dict:
    """Images/s with --streams requests in flight at once, beside the one-request latency above."""
    try:
        runs, info = stream_runs(args.runtime, artifact, precision, threads, args.device, args.streams, args.batch)
        times, count, wall = time_streams(runs, sample, args.min_runs, args.min_seconds, args.warmup)
    except RunnerError:
        raise
    except Exception as exc:
        raise RunnerError("run_failed", f"{args.runtime} failed running {artifact.name} with {args.streams} "
                          f"streams: {_first_line(exc)}") from exc
    return {"streams": args.streams, "threads": threads, "runtime": info, "runs": count, "seconds": wall,
            "throughput_ips": count * args.batch / wall, "latency_ms": latency_stats(times)}


# -- probe ------------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    with contextlib.suppress(OSError):
        return Path(path).read_text(errors="replace").strip()
    return None


def _cpuinfo() -> tuple[str | None, list[str], int | None]:
    """CPU model, ISA flags of interest, physical cores, from /proc/cpuinfo (x86 and ARM spellings)."""
    text = _read("/proc/cpuinfo") or ""
    model, flags, cores = None, set(), set()
    physical = "0"
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key in ("model name", "Model", "Hardware", "cpu model") and not model:
            model = value
        elif key in ("flags", "Features"):
            flags.update(value.split())
        elif key == "physical id":
            physical = value
        elif key == "core id":
            cores.add((physical, value))
    if not model:
        model = (_read("/proc/device-tree/model") or "").rstrip("\0") or platform.processor() or None
    if "asimd" in flags:
        flags.add("neon")  # AArch64 spells NEON "asimd"
    return model, [f for f in ISA_FLAGS if f in flags], len(cores) or None


def _meminfo() -> dict[str, float]:
    out = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            out["memory_total_mb" if key == "MemTotal" else "memory_available_mb"] = int(value.split()[0]) / 1024
    return out


def _temperature_c() -> float | None:
    temps = []
    for zone in Path("/sys/class/thermal").glob("thermal_zone*/temp"):
        with contextlib.suppress(ValueError, TypeError):
            temps.append(int(_read(str(zone))) / 1000.0)
    return max(temps) if temps else None


def _os_name() -> str:
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return f"{platform.system()} {platform.release()}"


def probe_runtimes() -> dict:
    """Which runtimes import here, their versions, and their providers or devices."""
    found: dict[str, dict] = {}
    try:
        _, package = litert_interpreter()
        found["litert"] = {"available": True, "package": package, "version": package_version(package)[1]}
    except RunnerError as exc:
        found["litert"] = {"available": False, "error": exc.message, "hint": exc.hint}
    try:
        import onnxruntime as ort

        found["onnxruntime"] = {"available": True, "version": ort.__version__,
                                "providers": ort.get_available_providers()}
    except ImportError:
        found["onnxruntime"] = {"available": False, "hint": INSTALL_HINTS["onnxruntime"]}
    try:
        import openvino as ov

        found["openvino"] = {"available": True, "version": package_version("openvino")[1] or ov.get_version(),
                             "devices": ov.Core().available_devices}
    except ImportError:
        found["openvino"] = {"available": False, "hint": INSTALL_HINTS["openvino"]}
    return found


def probe(runtimes: bool = True) -> dict:
    """This machine: Python, numpy, CPU model and ISA flags, cores, governor, temperature, memory, runtimes."""
    model, flags, physical = _cpuinfo()
    info = {"ok": True, "python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
            "system": platform.system(), "kernel": platform.release(), "os": _os_name(), "cpu_model": model,
            "cores_logical": os.cpu_count(), "cores_physical": physical, "cores_usable": usable_cores(), "isa": flags,
            "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            "temperature_c": _temperature_c(), **_meminfo()}
    if runtimes:
        info["runtimes"] = probe_runtimes()
    return info


# -- command line -------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


@contextlib.contextmanager
def _logs_to_stderr():
    """Native runtime logs written to fd 1 go to stderr, so the JSON stays the last line of stdout."""
    sys.stdout.flush()
    kept = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(kept, 1)
        os.close(kept)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runner.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="time one artifact (and write its logits for --inputs)")
    run.add_argument("--artifact", required=True, help="the model file (.onnx, .xml, .tflite)")
    run.add_argument("--runtime", required=True, choices=RUNTIMES)
    run.add_argument("--threads", type=int, help="intra-op threads (default: every core this process may use, "
                     "as probe's cores_usable)")
    run.add_argument("--min-runs", type=int, default=50)
    run.add_argument("--min-seconds", type=float, default=10.0)
    run.add_argument("--warmup", type=int, default=5)
    run.add_argument("--batch", type=int, default=1)
    run.add_argument("--streams", type=int, default=1, help="also measure throughput with this many requests in "
                     "flight (OpenVINO THROUGHPUT streams; ONNX Runtime/LiteRT sessions sharing --threads)")
    run.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    run.add_argument("--precision", help="the artifact's precision (default: from manifest.json beside it)")
    run.add_argument("--inputs", help="float32 .npy batch to compute logits for")
    run.add_argument("--outputs", help="where to write the float32 logits (.npy)")
    commands.add_parser("probe", help="describe this machine and its runtimes")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run" and bool(args.inputs) != bool(args.outputs):
        result, code = RunnerError("bad_input", "--inputs and --outputs go together").to_dict(), EXIT_BAD_INPUT
    else:
        try:
            with _logs_to_stderr():
                result = run_benchmark(args) if args.command == "run" else probe()
            code = 0
        except RunnerError as error:
            result, code = error.to_dict(), EXIT_CODES[error.kind]
        except KeyboardInterrupt:
            result, code = {"ok": False, "kind": "interrupted", "error": "interrupted"}, EXIT_INTERRUPTED
        except MemoryError as exc:
            result, code = RunnerError("run_failed", f"out of memory: {exc}").to_dict(), EXIT_FAILED
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
