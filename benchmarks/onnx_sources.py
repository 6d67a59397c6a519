"""ONNX files someone else exported, as edgex sources: FP32 vs int8 top-1 per target on held-out images.

    .venv/bin/python benchmarks/onnx_sources.py [--build build] [--sources tf2onnx,torch] [--fp32]

Builds the two ONNX files a user brings, from the shared clothing Xception (never shown its test split):
- tf2onnx: the Keras model exported as a SavedModel (`model.export`), then tf2onnx's own CLI
  (`python -m tf2onnx.convert --saved-model`): NHWC input, free batch;
- torch: the model ported to PyTorch (`edgex port`), then `torch.onnx.export` of the nn.Module: NCHW input.
Each is converted with `edgex convert --target all --int8 --calib-data validation/` (tflite is skipped
for ONNX sources, see docs/models.md), then `edgex eval` on test/ compares every artifact with the source
ONNX run in ONNX Runtime (the FP32 column). --fp32 also converts and evaluates the fp32 artifacts.
One heavy step at a time: each runs in its own child process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, build_clothing_model, machine_line, shared_dir  # noqa: E402

EDGEX = [sys.executable, "-m", "edgex"]
INTERPOLATION = "nearest"  # what the clothing head was trained with (Keras load_img's default)

_SAVED_MODEL = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
keras.saving.load_model(sys.argv[1], compile=False).export(sys.argv[2], format="tf_saved_model", verbose=False)
"""

_TORCH_ONNX = """
import sys, warnings
import torch
from edgex.sources.load import load_source
warnings.simplefilter("ignore")
module = load_source(sys.argv[1]).model.module.eval()  # the ported nn.Module: NCHW, as PyTorch users export it
torch.onnx.export(module, (torch.zeros(1, 3, 299, 299),), sys.argv[2], dynamo=True, input_names=["input"],
                  output_names=["logits"], external_data=False)
"""


def run(cmd: list[str], what: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return time.perf_counter() - start


def build_tf2onnx(keras_model: Path, build: Path) -> Path:
    """NHWC ONNX from tf2onnx's CLI, as a TensorFlow user exports it."""
    out = build / "clothing_tf2onnx.onnx"
    if not out.is_file():
        saved = build / "clothing_saved_model"
        shutil.rmtree(saved, ignore_errors=True)
        run([sys.executable, "-c", _SAVED_MODEL, str(keras_model), str(saved)], "model.export")
        seconds = run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved), "--output", str(out),
                       "--opset", "17"], "tf2onnx")
        print(f"tf2onnx CLI: {seconds:.0f} s")
        shutil.rmtree(saved)
    shutil.copyfile(keras_model.with_suffix(".classes.json"), out.with_suffix(".classes.json"))
    return out


def build_torch_onnx(keras_model: Path, build: Path) -> Path:
    """NCHW ONNX from torch.onnx.export of the `edgex port`ed module, as a PyTorch user exports it."""
    out = build / "clothing_torch.onnx"
    if not out.is_file():
        ported = build / "clothing_torch.safetensors"
        if not ported.is_file():
            run([*EDGEX, "port", "--model", str(keras_model), "--output", str(ported), "-q"], "edgex port")
        seconds = run([sys.executable, "-c", _TORCH_ONNX, str(ported), str(out)], "torch.onnx.export")
        print(f"torch.onnx.export: {seconds:.0f} s")
    shutil.copyfile(keras_model.with_suffix(".classes.json"), out.with_suffix(".classes.json"))
    return out


def convert(model: Path, out: Path, precision: list[str]) -> float:
    if (out / model.stem).is_dir():
        return float("nan")
    calib = shared_dir() / "datasets" / "clothing-small" / "validation"
    return run([*EDGEX, "convert", "--model", str(model), "--target", "all", *precision, "--calib-data", str(calib),
                "--interpolation", INTERPOLATION, "--output", str(out), "-q"], f"convert {model.name}")


def evaluate(folders: list[Path], report_dir: Path) -> dict:
    test = shared_dir() / "datasets" / "clothing-small" / "test"
    run([*EDGEX, "eval", *map(str, folders), "--eval-data", str(test), "--output", str(report_dir), "-q"], "eval")
    return json.loads((report_dir / "report.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, default=REPO / "build")
    ap.add_argument("--sources", default="tf2onnx,torch")
    ap.add_argument("--fp32", action="store_true", help="also convert and evaluate the fp32 artifacts")
    args = ap.parse_args()
    if not (shared_dir() / "datasets" / "clothing-small").is_dir():
        raise SystemExit(f"clothing data not found under {shared_dir()}: set EDGEX_SHARED")
    build = args.build / "onnx-sources"
    build.mkdir(parents=True, exist_ok=True)
    keras_model = build_clothing_model(args.build)
    builders = {"tf2onnx": build_tf2onnx, "torch": build_torch_onnx}
    rows = []
    for name in args.sources.split(","):
        model = builders[name](keras_model, build)
        folders = []
        for precision in ([["--int8"], []] if args.fp32 else [["--int8"]]):
            out = build / f"artifacts-{'int8' if precision else 'fp32'}"
            seconds = convert(model, out, precision)
            print(f"convert {model.name} --target all {' '.join(precision) or '(fp32)'}: {seconds:.0f} s")
            folders.append(out / model.stem)
        report = evaluate(folders, build / f"report-{model.stem}")
        fp32 = report["references"][0]["accuracy"]["top1"]
        for result in report["results"]:
            vs = result["vs_source"]
            manifest = json.loads((Path(result["path"]) / "manifest.json").read_text())
            rows.append({"source": model.name, "artifact": result["name"], "fp32": fp32,
                         "top1": result["accuracy"]["top1"], "n": result["accuracy"]["n"], "drop_pp": vs["drop_pp"],
                         "ci95_pp": vs["ci95_pp"], "agreement": vs["agreement"],
                         "layout": manifest["inputs"][0]["layout"],
                         "recipe": (manifest.get("quantization") or {}).get("name")})
    print(machine_line())
    print("| source ONNX | artifact | layout | recipe | n | FP32 top-1 (source in ORT) | artifact top-1 | "
          "drop pp [95% CI] | agreement | within 0.5 pp |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ci = r["ci95_pp"]
        print(f"| {r['source']} | {r['artifact']} | {r['layout']} | {r['recipe'] or '–'} | {r['n']} | {r['fp32']:.4f} "
              f"| {r['top1']:.4f} | {r['drop_pp']:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] | {r['agreement']:.4f} | "
              f"{'yes' if r['drop_pp'] <= 0.5 else 'NO'} |")


if __name__ == "__main__":
    main()
