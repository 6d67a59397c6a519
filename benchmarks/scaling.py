"""Scale-out: wall time and images/s of the evaluation locally and on Ray with 1 and 2 workers.

    .venv/bin/python benchmarks/scaling.py ARTIFACT [--eval-data DIR] [--limit N] [--shard-size 64]

ARTIFACT is an artifact folder (e.g. build/bench-clothing/clothing_xception/onnx-int8, from
benchmarks/convert_clothing.py); --eval-data defaults to the clothing train split in ../shared (3068
images); --limit takes the first N per class in turn (a quicker, still balanced set).

The images are preprocessed once here (as `edgex eval` does; timed) and once on Ray with 2 CPUs (as
`edgex eval --ray` does: bytes out, tensors back; timed, and checked identical), then the same float32
batch is run: local (one runner child process with 1, then 2 intra-op threads) and Ray (a local instance
with 2 CPUs; 1 worker, then 2 workers of 1 thread each). Every run's top-1 is printed: they must agree.
Ray's overhead at equal cores = Ray wall / local wall - 1. Printed last:

    T(n, N) = T_start + n * t_read + n * (t_pre + t_img) / (N * c)

the projection for n images on N nodes of c cores: t_read the driver's serial part per image (reading
the file's bytes), t_pre the per-image preprocessing cost of one core (the local run), t_img the per-image
inference cost of one core (the local 1-thread run) and T_start Ray's fixed overhead (Ray with 1 worker
minus local with 1 thread: actors starting, shard round trips). The 2-over-1-worker speed-up and the load
average are printed too: on a shared machine the second core may not be free, and then no engine gets 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import shared_dir  # noqa: E402


def _balanced(files: list[Path], labels: np.ndarray, limit: int | None) -> list[int]:
    """Indices of the first `limit` images taken class by class in turn (all of them without a limit)."""
    if not limit or limit >= len(files):
        return list(range(len(files)))
    per_class = [list(np.flatnonzero(labels == c)) for c in sorted(set(labels.tolist()))]
    picked: list[int] = []
    while len(picked) < limit:
        for group in per_class:
            if group and len(picked) < limit:
                picked.append(int(group.pop(0)))
    return sorted(picked)


def _machine() -> str:
    from edgex.runtimes import probe

    info = probe(runtimes=False)
    vnni = "yes" if "avx512_vnni" in info["isa"] else "no"
    return f"{info['cpu_model']} ({platform.machine()}), {info['cores_usable']} usable cores, avx512_vnni {vnni}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--eval-data", type=Path, default=shared_dir() / "datasets" / "clothing-small" / "train")
    ap.add_argument("--limit", type=int, help="first N images, balanced over the classes (default: all)")
    ap.add_argument("--shard-size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--nodes", default="1,2,4,8,16", help="node counts for the projection")
    ap.add_argument("--cores-per-node", type=int, default=4)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()

    import ray

    from edgex.bench.artifacts import find_artifacts
    from edgex.bench.child import run_child
    from edgex.evaluation.dataset import load_labelled, preprocess_images
    from edgex.options import BenchSettings
    from edgex.preprocess import Preprocess
    from edgex.scale.ray_eval import RayPreprocessor, RayRunner

    (ref,) = find_artifacts([args.artifact])
    data = load_labelled(args.eval_data, ref.manifest.get("classes"))
    keep = _balanced(data.files, data.labels, args.limit)
    files, labels = [data.files[i] for i in keep], data.labels[keep]
    n = len(files)
    load_before = os.getloadavg()[0]
    print(f"machine: {_machine()}")
    print(f"artifact: {ref.folder} ({ref.runtime}, {ref.precision}); {n} images from {args.eval_data}")

    started = time.perf_counter()
    for path in files:
        path.read_bytes()
    t_read = (time.perf_counter() - started) / n
    preprocess = Preprocess.from_dict(ref.manifest["preprocess"])
    started = time.perf_counter()
    inputs = preprocess_images(files, preprocess)
    t_pre = (time.perf_counter() - started) / n
    print(f"reading the files (driver): {t_read * 1000:.2f} ms/image; preprocessing here (1 core): "
          f"{t_pre * 1000:.1f} ms/image, {t_pre * n:.1f} s")

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgex-scaling-") as tmp:
        batch, out = Path(tmp) / "inputs.npy", Path(tmp) / "logits.npy"
        np.save(batch, inputs)

        def timed(name: str, cores: int, runner, threads: int) -> None:
            """One evaluation of the whole batch: wall time, and top-1 (every run must agree)."""
            settings = BenchSettings(threads=threads, batch=args.batch, latency=False)
            started = time.perf_counter()
            answer = runner(ref.model_file, ref.runtime, ref.precision, settings, batch, out)
            wall = time.perf_counter() - started
            assert answer.get("ok"), answer
            rows.append({"run": name, "cores": cores, "wall_s": wall, "load_ms": answer.get("load_ms"),
                         "top1": float(np.mean(np.load(out).argmax(1) == labels))})

        for threads in (1, 2):
            timed(f"local, 1 process x {threads} thread(s)", threads, run_child, threads)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 object_store_memory=1 << 30)
        try:
            started = time.perf_counter()
            assert np.array_equal(RayPreprocessor(args.shard_size)(files, preprocess), inputs)
            pre_ray = time.perf_counter() - started
            print(f"preprocessing on Ray (2 CPUs): {pre_ray / n * 1000:.1f} ms/image, {pre_ray:.1f} s "
                  f"({t_pre * n / pre_ray:.2f}x the local one; identical tensors)")
            for workers in (1, 2):
                timed(f"Ray, {workers} worker(s) x 1 thread", workers,
                      RayRunner(workers=workers, threads=1, shard_size=args.shard_size), 1)
        finally:
            ray.shutdown()

    print("\n| run | cores | wall s | images/s | top-1 |\n|---|---|---|---|---|")
    for row in rows:
        row["images_per_s"] = n / row["wall_s"]
        print(f"| {row['run']} | {row['cores']} | {row['wall_s']:.1f} | {row['images_per_s']:.1f} | "
              f"{row['top1']:.4f} |")
    local = {r["cores"]: r["wall_s"] for r in rows if r["run"].startswith("local")}
    on_ray = {r["cores"]: r["wall_s"] for r in rows if r["run"].startswith("Ray")}
    for cores in (1, 2):
        print(f"Ray overhead at {cores} core(s): {on_ray[cores] / local[cores] - 1:+.1%} "
              f"({on_ray[cores] - local[cores]:+.1f} s)")
    print(f"2 Ray workers over 1: {on_ray[1] / on_ray[2]:.2f}x (ideal 2x on 2 free cores); load average "
          f"before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    t_img = local[1] / n  # one 1-thread process, loading included: the per-image cost of one core
    t_start = max(0.0, on_ray[1] - local[1])  # what Ray adds at one worker: actors starting, shard round trips
    print(f"\nprojection: T(n, N) = T_start + n * t_read + n * (t_pre + t_img) / (N * c), with "
          f"t_read = {t_read * 1000:.2f} ms, t_pre = {t_pre * 1000:.1f} ms, t_img = {t_img * 1000:.1f} ms, "
          f"T_start = {t_start:.1f} s, c = {args.cores_per_node}")
    for nodes in map(int, args.nodes.split(",")):
        total = t_start + 50_000 * t_read + 50_000 * (t_pre + t_img) / (nodes * args.cores_per_node)
        print(f"  50,000 images on {nodes:>2} node(s) x {args.cores_per_node} cores: {total / 60:6.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"machine": _machine(), "images": n, "t_read_s": t_read, "t_pre_s": t_pre,
                                         "ray_preprocess_s": pre_ray, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
