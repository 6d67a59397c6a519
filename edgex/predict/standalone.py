#!/usr/bin/env python3
"""Classify images with the model beside this file, exactly as edgex does, on any device.

    python3 predict.py IMAGE|DIR|GLOB... [--csv FILE] [--top-k 5] [--batch 1] [--threads N]

Needs only Python 3.9+, numpy (1 or 2), Pillow and the model's runtime (requirements.txt): ai-edge-litert or
tflite-runtime (.tflite), onnxruntime (.onnx), openvino (.xml). The manifest.json beside it gives the
preprocessing, int8 scaling, class names and whether the model outputs logits or probabilities.

This is edgex/predict/standalone.py, copied verbatim by `edgex bundle`. `edgex predict` imports its scoring,
output and input-listing code, so both print and write the same; its preprocessing and runtimes mirror
edgex.preprocess and edgex/bench/runner.py, and tests/test_bundle.py proves the logits agree.

Prints one line per image (`photo.jpg  dress 0.91  shirt 0.05 ...`); an unreadable image gets an error line
and the others continue. --csv FILE writes `path,label,probability,top_k` (top_k: label:prob joined by |).

Exit codes: 0 all images classified; 2 usage error; 4 some images failed (each has its line; an image whose
outputs are NaN/Inf fails: that is not a prediction); 65 the model
cannot be loaded or run; 66 no images (or no manifest.json); 69 the runtime (or Pillow) is not installed;
73 the CSV cannot be written.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_IMAGE_PIXELS = 64_000_000  # larger images are refused before decoding (a decompression bomb)
CSV_HEADER = ("path", "label", "probability", "top_k")
OUTPUT_KINDS = ("logits", "softmax", "sigmoid")
EXIT_OK, EXIT_SOME_FAILED, EXIT_MODEL, EXIT_NO_INPUT, EXIT_MISSING, EXIT_CANT_CREATE = 0, 4, 65, 66, 69, 73

Row = namedtuple("Row", "path top outputs error")  # top: [(label, probability)], None when error is set


class ImageError(Exception):
    """An image that cannot be read: it gets its own error line, the others continue."""


class ModelError(Exception):
    """The model cannot be loaded or run (exit 65), or its runtime is missing (exit 69)."""

    def __init__(self, message: str, code: int = EXIT_MODEL):
        super().__init__(message)
        self.code = code


# -- inputs: the same images, in the same order, as edgex -------------------------------------------------


def images_below(folder: str) -> list[str]:
    """Image files under folder, recursively, as relative posix paths sorted like edgex.preprocess.find_images."""
    root = Path(folder)
    found = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(p.relative_to(root).as_posix() for p in found)


def expand_inputs(args: list[str]) -> list[str]:
    """Image paths as the user gave them: files as typed, folders searched recursively, quoted globs expanded
    (sorted, images only). An argument that names nothing is kept, so it gets its own error line."""
    paths: list[str] = []
    for arg in args:
        if os.path.isdir(arg):
            paths += [os.path.join(arg, rel) for rel in images_below(arg)]
        elif glob.has_magic(arg) and not os.path.exists(arg):
            matches = [m for m in sorted(glob.glob(arg, recursive=True))
                       if os.path.isdir(m) or m.lower().endswith(IMAGE_SUFFIXES)]
            paths += expand_inputs(matches) or [arg]
        else:
            paths.append(arg)
    return paths


# -- pixels -> tensor: mirrors edgex.preprocess (read_rgb, to_rgb8, Preprocess.apply) ---------------------


def read_rgb(path: str):
    """Open an image as 8-bit RGB with its EXIF orientation applied; any failure is an ImageError."""
    import struct
    import warnings

    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"too large to decode safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, TypeError, KeyError, IndexError,
            ZeroDivisionError) as exc:
        raise ImageError("cannot decode: " + (" ".join(str(exc).split()) or type(exc).__name__)) from exc
    return to_rgb8(image)


def to_rgb8(image):
    """Any Pillow image as 8-bit RGB: 16-bit scaled (not clipped), transparency over white, CMYK converted."""
    from PIL import Image

    if image.mode.startswith("I;16"):
        arr = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(arr / 257.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode in ("I", "F"):
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def preprocess(image, spec: dict) -> np.ndarray:
    """RGB image -> float32 (H, W, 3) or (3, H, W): optional center crop, resize, (x - mean) / std."""
    from PIL import Image

    height, width = int(spec["height"]), int(spec["width"])
    crop = spec.get("crop_fraction")
    if crop is not None and crop < 1.0:
        w, h = image.size
        cw, ch = round(w * crop), round(h * crop)
        left, top = (w - cw) // 2, (h - ch) // 2
        image = image.crop((left, top, left + cw, top + ch))
    resample = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                "bicubic": Image.Resampling.BICUBIC}[spec.get("interpolation", "bilinear")]
    if image.size != (width, height):
        image = image.resize((width, height), resample)
    x = np.asarray(image, dtype=np.float32)
    if spec.get("channel_order", "RGB") == "BGR":
        x = x[..., ::-1]
    mean = np.asarray(spec.get("mean", (127.5,) * 3), np.float32)
    std = np.asarray(spec.get("std", (127.5,) * 3), np.float32)
    x = (x - mean) / std
    if spec.get("layout", "NHWC") == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


# -- runtimes: float32 batch in, float32 outputs out (int8 scaling inside), as edgex/bench/runner.py -------


def quantize(x: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    """Float to the integer type of a full-int8 model (round to nearest, saturate), as runner.py does."""
    limits = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, limits.min, limits.max).astype(dtype)


def dequantize(y: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def need(*modules: str):
    """The first of `modules` that imports; ModelError (exit 69) naming them when none does."""
    import importlib

    for module in modules:
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise ModelError(f"{' or '.join(modules)} is not installed: pip install -r requirements.txt", EXIT_MISSING)


class LiteRt:
    def __init__(self, path: Path, threads: int):
        interpreter = need("ai_edge_litert.interpreter", "tflite_runtime.interpreter").Interpreter
        self.interpreter = interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0])

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.concatenate([self._run_fixed(batch[i : i + self.batch]) for i in range(0, len(batch), self.batch)])

    def _run_fixed(self, x: np.ndarray) -> np.ndarray:
        count = len(x)
        if count < self.batch:  # the graph has a fixed batch: pad with the last image
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


class OnnxRuntime:
    def __init__(self, path: Path, threads: int):
        ort = need("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.name: batch.astype(np.float32, copy=False)})[0], np.float32)


class OpenVino:
    def __init__(self, path: Path, threads: int, precision: str | None = None):
        ov = need("openvino")
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        if precision == "fp32":  # else CPUs with bf16 silently run bf16
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, batch: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: batch.astype(np.float32, copy=False)})
        return np.asarray(result[self.compiled.output(0)], dtype=np.float32)


def usable_cores() -> int:  # the CPUs this process may use, as runner.py's default
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def open_model(folder: Path, manifest: dict, threads: int | None = None):
    """The model file of the manifest in its runtime, chosen by the file's suffix."""
    name = str(manifest.get("model_file", ""))
    path = folder / name
    if not name or os.path.isabs(name) or ".." in Path(name).parts or not path.is_file():
        raise ModelError(f"model file {name!r} named by manifest.json is missing")
    threads = threads or usable_cores()
    suffix = path.suffix.lower()
    try:
        if suffix == ".tflite":
            return LiteRt(path, threads)
        if suffix == ".onnx":
            return OnnxRuntime(path, threads)
        if suffix == ".xml":
            return OpenVino(path, threads, manifest.get("precision"))
    except ModelError:
        raise
    except Exception as exc:  # runtimes raise anything on a bad file
        raise ModelError(f"cannot load {path.name}: {str(exc).strip().splitlines()[0][:300]}") from exc
    raise ModelError(f"no runtime for {path.name} (expected .tflite, .onnx or .xml)")


# -- scores and output: shared with `edgex predict` -------------------------------------------------------


def nonfinite_reason(outputs) -> str | None:
    """Why `outputs` (one image's row or a whole batch) is not a result, None when every value is finite.

    A NaN logit is not a prediction (argmax of a NaN row is class 0), so every edgex path that runs a model
    (predict, edgex.load().predict, eval, bench, the parity gate, this file) asks this one function."""
    values = np.asarray(outputs)
    if values.dtype.kind not in "fc":
        return None
    nan = int(np.count_nonzero(np.isnan(values)))
    inf = int(np.count_nonzero(np.isinf(values)))
    if not nan and not inf:
        return None
    counts = " and ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (inf, "Inf")) if n)
    return f"the model produced NaN/Inf outputs ({counts} of {values.size} values): not a prediction"


def probabilities(outputs: np.ndarray, kind: str = "logits") -> np.ndarray:
    """Per-class probabilities: softmax over logits; softmax and sigmoid outputs are probabilities already."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}; expected one of {', '.join(OUTPUT_KINDS)}")
    x = np.asarray(outputs, dtype=np.float64)
    if kind != "logits":
        return x
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def class_names(classes: list | None, count: int) -> list[str]:
    """The manifest's class names, or class_0, class_1... when it has none (or too few)."""
    classes = list(classes or [])
    return [str(classes[i]) if i < len(classes) else f"class_{i}" for i in range(count)]


def top_k(probs: np.ndarray, names: list[str], k: int) -> list[tuple[str, float]]:
    """The k most probable classes, best first (ties: the lower class index first)."""
    order = np.argsort(-np.asarray(probs), kind="stable")[: max(1, k)]
    return [(names[i], float(probs[i])) for i in order]


def format_line(row: Row) -> str:
    if row.error is not None:
        return f"{row.path}  error: {row.error}"
    return "  ".join([row.path] + [f"{label} {p:.2f}" for label, p in row.top])


def csv_fields(row: Row) -> list[str]:
    """One CSV row: path, top-1 label, its probability, top-k as label:prob joined by | (empty on error)."""
    if row.error is not None:
        return [row.path, "", "", ""]
    label, p = row.top[0]
    return [row.path, label, f"{p:.6f}", "|".join(f"{name}:{q:.6f}" for name, q in row.top)]


def write_csv(path: str, rows: list[Row]) -> None:
    """Write the CSV whole (a temporary file renamed into place): no half file is left on failure."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(CSV_HEADER)
            writer.writerows(csv_fields(row) for row in rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def classify(paths: list[str], load, run, batch: int, k: int, classes: list | None, kind: str,
             errors: tuple = (ImageError,)):
    """Yield one Row per path, in order: `load` (path -> tensor) failures in `errors` become error rows."""
    for start in range(0, len(paths), max(1, batch)):
        chunk = paths[start : start + max(1, batch)]
        tensors, failed, position = {}, {}, {}
        for i, path in enumerate(chunk):
            try:
                tensors[i] = load(path)
            except errors as exc:
                failed[i] = getattr(exc, "message", None) or str(exc)
        if tensors:
            outputs = np.asarray(run(np.stack(list(tensors.values()))), dtype=np.float32)
            outputs = outputs.reshape(len(outputs), -1)
            position = {i: j for j, i in enumerate(tensors)}
            for i, j in position.items():  # a NaN/Inf row is that image's error, never a prediction
                reason = nonfinite_reason(outputs[j])
                if reason is not None:
                    failed[i] = reason
            position = {i: j for i, j in position.items() if i not in failed}
            finite = np.where(np.isfinite(outputs), outputs, 0.0)  # scores only rows that are results
            probs = probabilities(finite, kind)
            names = class_names(classes, outputs.shape[1])
        for i, path in enumerate(chunk):
            j = position.get(i)
            yield Row(path, None, None, failed[i]) if j is None else Row(path, top_k(probs[j], names, k), outputs[j],
                                                                         None)


# -- command line: print each line as soon as it is known -------------------------------------------------


def _predict(paths: list[str], folder: Path, manifest: dict, args: argparse.Namespace) -> list[Row]:
    need("PIL")
    model = open_model(folder, manifest, args.threads)

    def run(batch: np.ndarray) -> np.ndarray:
        try:
            return model.run(batch)
        except Exception as exc:  # runtimes raise anything
            raise ModelError(f"the runtime failed: {str(exc).strip().splitlines()[0][:300]}") from exc

    spec, rows = manifest.get("preprocess"), []
    if not isinstance(spec, dict) or "height" not in spec or "width" not in spec:
        raise ModelError("manifest.json has no preprocessing (height, width)")
    kind = manifest.get("output_kind") or "logits"
    if kind not in OUTPUT_KINDS:
        raise ModelError(f"manifest.json has an unknown output_kind {kind!r}")
    for row in classify(paths, lambda p: preprocess(read_rgb(p), spec), run, args.batch, args.top_k,
                        manifest.get("classes"), kind):
        print(format_line(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="predict.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE|DIR|GLOB")
    parser.add_argument("--csv", metavar="FILE", help="also write path,label,probability,top_k rows to FILE")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image (default %(default)s)")
    parser.add_argument("--batch", type=int, default=1, help="images per inference (default %(default)s)")
    parser.add_argument("--threads", type=int, help="runtime threads (default: every usable core)")
    parser.add_argument("--model-dir", default=os.path.dirname(os.path.abspath(__file__)),
                        help="folder with manifest.json and the model (default: this file's folder)")
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--top-k, --batch and --threads must be at least 1")
    folder = Path(args.model_dir)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # missing (66) or not JSON (65)
        print(f"predict.py: error: cannot read {folder / 'manifest.json'}: {exc}", file=sys.stderr)
        return EXIT_NO_INPUT if isinstance(exc, OSError) else EXIT_MODEL
    paths = expand_inputs(args.images)
    if not any(os.path.isfile(p) for p in paths):
        print(f"predict.py: error: no images in {' '.join(args.images)}", file=sys.stderr)
        return EXIT_NO_INPUT
    try:
        rows = _predict(paths, folder, manifest, args)
    except ModelError as error:
        print(f"predict.py: error: {error}", file=sys.stderr)
        return error.code
    if args.csv:
        try:
            write_csv(args.csv, rows)
        except OSError as exc:
            print(f"predict.py: error: cannot write {args.csv}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_CANT_CREATE
    failed = sum(row.error is not None for row in rows)
    if failed:
        print(f"predict.py: {failed} of {len(rows)} images failed", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
