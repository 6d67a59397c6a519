"""Convert the clothing Xception (../shared) to every target in fp32 and int8 and measure each artifact.

    .venv/bin/python benchmarks/convert_clothing.py [--targets onnx,openvino,tflite] [--threads 2]

Per artifact: size, conversion wall time and peak memory (each conversion in its own process),
batch-1 latency p50 with 2 threads (all artifacts timed side by side in blocks, in turns), and
top-1 on the 372 test images with the artifact's own preprocessing (Keras FP32 reference 0.9086,
NEAREST resize). Calibration uses validation/ only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, build_clothing_model, latency_in_blocks, run_measured, shared_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="onnx,openvino,tflite")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", type=Path, default=REPO / "build")
    ap.add_argument("--calib-method", default="mean_minmax")
    ap.add_argument("--skip-convert", action="store_true", help="reuse artifacts from an earlier run")
    args = ap.parse_args()

    data = shared_dir() / "datasets" / "clothing-small"
    if not data.is_dir():
        raise SystemExit(f"clothing data not found at {data}: set EDGEX_SHARED")
    args.build.mkdir(parents=True, exist_ok=True)
    model = build_clothing_model(args.build)
    out = args.build / "bench-clothing"
    edgex = str(Path(sys.executable).with_name("edgex"))

    rows = []
    for precision in args.precisions.split(","):
        for target in args.targets.split(","):
            folder = out / model.stem / f"{target}-{precision}"
            row = {"target": target, "precision": precision, "folder": folder}
            if not args.skip_convert:
                cmd = [edgex, "convert", "--model", str(model), "--target", target, "--calib-data",
                       str(data / "validation"), "--interpolation", "nearest", "--output", str(out), "-q",
                       "--calib-method", args.calib_method]
                if precision != "fp32":
                    cmd.append(f"--{precision}")
                wall, peak, done = run_measured(cmd)
                row.update(convert_s=wall, peak_mb=peak, exit=done.returncode)
                if done.returncode != 0:
                    row["error"] = done.stderr.strip().splitlines()[-2:]
                print(f"converted {target}-{precision}: exit {done.returncode}, {wall:.0f} s, {peak:.0f} MB",
                      flush=True)
            rows.append(row)

    from edgex.artifacts.publish import read_manifest
    from edgex.evaluation.labelled import labelled_folder, predict, preprocess_all, top1
    from edgex.preprocess import Preprocess
    from edgex.runtimes import open_runtime

    runners, manifests = {}, {}
    for row in rows:
        if not (row["folder"] / "manifest.json").is_file():
            continue
        manifest = read_manifest(row["folder"])
        name = f"{row['target']}-{row['precision']}"
        runtime_name = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}[row["target"]]
        runtime = open_runtime(runtime_name, row["folder"] / manifest["model_file"], row["precision"],
                               args.threads)
        runners[name], manifests[name] = runtime, manifest
        row.update(size_mb=sum(f["bytes"] for f in manifest["files"]) / 1e6, ran=runtime.info)

    classes = json.loads(model.with_suffix(".classes.json").read_text())
    files, labels, _ = labelled_folder(data / "test", classes)
    cache: dict[str, object] = {}
    for row in rows:
        name = f"{row['target']}-{row['precision']}"
        if name not in runners:
            continue
        spec = Preprocess.from_dict(manifests[name]["preprocess"])
        key = spec.to_json()
        if key not in cache:
            cache[key] = preprocess_all(files, spec)
        row["top1"] = top1(predict(runners[name].run, cache[key]), labels)
        print(f"evaluated {name}: top-1 {row['top1']:.4f}", flush=True)

    sample = next(iter(cache.values()))[:1]
    times = latency_in_blocks({n: r.run for n, r in runners.items()}, sample)
    for row in rows:
        name = f"{row['target']}-{row['precision']}"
        if name in times:
            row["p50_ms"] = statistics.median(times[name])

    print(f"\nclothing Xception 299x299, {len(files)} test images, Keras FP32 top-1 0.9086, "
          f"batch 1, {args.threads} threads\n")
    print(f"{'artifact':16} {'size MB':>8} {'convert s':>9} {'peak MB':>8} {'p50 ms':>7} {'top-1':>7}  ran as")
    for row in rows:
        name = f"{row['target']}-{row['precision']}"
        print(f"{name:16} {row.get('size_mb', float('nan')):8.1f} {row.get('convert_s', float('nan')):9.0f} "
              f"{row.get('peak_mb', float('nan')):8.0f} {row.get('p50_ms', float('nan')):7.1f} "
              f"{row.get('top1', float('nan')):7.4f}  {row.get('ran', row.get('error', ''))}")
    for target in args.targets.split(","):
        fp32, int8 = f"{target}-fp32", f"{target}-int8"
        if fp32 in times and int8 in times:
            ratio = statistics.median(times[fp32]) / statistics.median(times[int8])
            print(f"{target}: int8 is {ratio:.2f}x faster than fp32 (p50, same run)")


if __name__ == "__main__":
    main()
