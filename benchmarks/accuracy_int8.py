"""int8 accuracy against FP32 on two separate labelled sets, each artifact run with its runtime's defaults.

    .venv/bin/python benchmarks/accuracy_int8.py [--sets clothing,clothing-b] [--avx2-images 40]

For each set: `edgex convert --target all --int8` with default options (the recipe list decides),
then `edgex eval` on the test images (ORT with its default graph optimizations, i.e. the fused
QLinear kernels; OpenVINO CPU with its default hints; LiteRT with XNNPACK), and the paired
bootstrap 95% interval of each top-1 drop. A drop passes when it is within 0.3 pp, or its
interval includes 0 and the point drop is within 0.5 pp.

--avx2-images N also runs the ONNX and OpenVINO int8 artifacts on N test images under
qemu-x86_64 -cpu Haswell (AVX2 + FMA, no VNNI: the kernels that saturate) and prints their top-1
agreement with the same artifacts run natively. Sets: clothing (shared model, calibration on
validation/, NEAREST, test/ 372) and clothing-b (benchmarks/second_dataset.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, build_clothing_model, machine_line, shared_dir  # noqa: E402

EDGEX = [sys.executable, "-m", "edgex"]


def sets(build: Path) -> dict[str, dict]:
    clothing = shared_dir() / "datasets" / "clothing-small"
    return {
        "clothing": {"model": lambda: build_clothing_model(build), "calib": clothing / "validation",
                     "test": clothing / "test", "interpolation": "nearest"},
        "clothing-b": {"model": lambda: _second_model(build), "calib": build / "clothing-b" / "calibration",
                       "test": build / "clothing-b" / "test", "interpolation": "bilinear"},
    }


def _second_model(build: Path) -> Path:
    subprocess.run([sys.executable, str(Path(__file__).with_name("second_dataset.py")), "--build", str(build)],
                   check=True)
    return build / "clothing_b_xception.keras"


def passes(drop_pp: float, ci: list[float]) -> bool:
    return drop_pp <= 0.3 or (ci[0] <= 0 <= ci[1] and drop_pp <= 0.5)


def run_set(name: str, spec: dict, out: Path, reconvert: bool) -> list[dict]:
    model = spec["model"]()
    artifacts = out / name
    if reconvert and artifacts.exists():
        shutil.rmtree(artifacts)
    if not artifacts.exists():
        done = subprocess.run([*EDGEX, "convert", "--model", str(model), "--target", "all", "--int8", "--calib-data",
                               str(spec["calib"]), "--interpolation", spec["interpolation"], "--output",
                               str(artifacts), "--json", "-q"], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"convert {name} failed ({done.returncode}): {done.stderr.strip()}")
    folder = artifacts / model.stem
    report_dir = out / f"{name}-report"
    done = subprocess.run([*EDGEX, "eval", str(folder), "--eval-data", str(spec["test"]), "--output", str(report_dir),
                           "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"eval {name} failed ({done.returncode}): {done.stderr.strip()}")
    report = json.loads((report_dir / "report.json").read_text())
    fp32 = report["references"][0]["accuracy"]["top1"]
    rows = []
    for result in report["results"]:
        manifest = json.loads((Path(result["path"]) / "manifest.json").read_text())
        quant = manifest.get("quantization") or {}
        vs = result["vs_source"]
        rows.append({"set": name, "artifact": result["name"], "recipe": quant.get("name"),
                     "tries": len(quant.get("tries", [])), "n": result["accuracy"]["n"], "fp32": fp32,
                     "int8": result["accuracy"]["top1"], "drop_pp": vs["drop_pp"], "ci95_pp": vs["ci95_pp"],
                     "agreement": vs["agreement"], "path": result["path"],
                     "model_file": result["model_file"], "runtime": result["runtime"]["runtime"]})
    return rows


_AVX2_CHECK = r"""
import json, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from edgex.runtimes import open_runtime
from edgex.preprocess import Preprocess
art, runtime, files = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
manifest = json.load(open(art + "/manifest.json"))
pre = Preprocess.from_dict(manifest["preprocess"])
session = open_runtime(runtime, __import__("pathlib").Path(art) / manifest["model_file"], "int8", 2, "cpu")
print(json.dumps([np.asarray(session.run(pre.load(f)[None])).tolist() for f in files]))
"""


def avx2_agreement(row: dict, files: list[Path]) -> float:
    """Top-1 agreement of one artifact under an emulated AVX2-only CPU with the same artifact run natively."""
    import numpy as np

    outs = {}
    for label, prefix in (("native", []), ("avx2", ["qemu-x86_64", "-cpu", "Haswell"])):
        done = subprocess.run([*prefix, sys.executable, "-c", _AVX2_CHECK, str(REPO), row["path"], row["runtime"],
                               json.dumps([str(f) for f in files])], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{label} run of {row['path']} failed: {done.stderr.strip()[-400:]}")
        outs[label] = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))[:, 0, :]
    return float(np.mean(outs["native"].argmax(1) == outs["avx2"].argmax(1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, default=REPO / "build")
    ap.add_argument("--sets", default="clothing,clothing-b")
    ap.add_argument("--reconvert", action="store_true")
    ap.add_argument("--avx2-images", type=int, default=0, help="also check N images under qemu -cpu Haswell")
    args = ap.parse_args()

    specs = sets(args.build)
    out = args.build / "accuracy-int8"
    rows = [row for name in args.sets.split(",") for row in run_set(name, specs[name], out, args.reconvert)]
    print(machine_line())
    print("| set | artifact | recipe (tries) | n | FP32 top-1 | int8 top-1 | drop pp (FP32 − int8) [95% CI] "
          "| agreement | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ci = r["ci95_pp"]
        print(f"| {r['set']} | {r['artifact']} | {r['recipe']} ({r['tries']}) | {r['n']} | {r['fp32']:.4f} | "
              f"{r['int8']:.4f} | {r['drop_pp']:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] | {r['agreement']:.4f} | "
              f"{'pass' if passes(r['drop_pp'], ci) else 'FAIL'} |")
    if args.avx2_images and shutil.which("qemu-x86_64"):
        print(f"\nemulated AVX2-only x86 (qemu-x86_64 -cpu Haswell), top-1 agreement with the native run, "
              f"first {args.avx2_images} test images:")
        for r in rows:
            if r["runtime"] in ("onnxruntime", "openvino"):
                test = specs[r["set"]]["test"]
                files = sorted(p for p in test.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
                files = files[:: max(1, len(files) // args.avx2_images)][: args.avx2_images]
                print(f"  {r['set']} {r['artifact']} ({r['recipe']}): {avx2_agreement(r, files):.4f}")


if __name__ == "__main__":
    main()
