"""Why Xception int8 broke: per-flow range use and SQNR of two TFLite int8 builds, and the outlier image.

    .venv/bin/python benchmarks/xception_int8_root_cause.py BAD_INT8_DIR GOOD_INT8_DIR [--calib-data DIR]

BAD is e.g. `edgex convert --calib-method minmax` (global min/max), GOOD the default (mean of per-image
min/max); both need a `tflite-fp32` artifact beside them. Prints, per part of the network, the median
share of the int8 grid a typical image spans and the median SQNR against FP32 (from `edgex diagnose`),
then, for the three tensors whose range is stretched most, the calibration images with the largest
values. Calibration images only (never the test set).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import shared_dir  # noqa: E402


def diagnose(artifact: Path, calib: Path, samples: int) -> dict:
    cmd = [str(Path(sys.executable).with_name("edgex")), "diagnose", str(artifact), "--calib-data", str(calib),
           "--samples", str(samples), "--no-isolated", "--json", "-q"]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def group(row: dict) -> str:
    keras = row["keras_layer"] or ""
    if row["op"] == "INPUT":
        return "input"
    if row["op"] == "ADD":
        return "residual adds"
    block = re.match(r"block(\d+)_", keras)
    if not block:
        return "other"
    n = int(block.group(1))
    return "entry flow (blocks 1-4)" if n <= 4 else "middle flow (blocks 5-12)" if n <= 12 else "exit flow (13-14)"


def outliers(fp32: Path, calib_dir: Path, preprocess: dict, names: list[str]) -> None:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from edgex.calibration.dataset import CalibrationSet

    from edgex.preprocess import Preprocess

    calib = CalibrationSet.from_folder(calib_dir, Preprocess.from_dict(preprocess), size=300, seed=0, parity_size=0)
    interpreter = Interpreter(model_path=str(fp32), experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    index = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    seen = {name: [] for name in names}
    for path, sample in zip(calib.files, calib.samples(), strict=True):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample)
        interpreter.invoke()
        for name in names:
            value = interpreter.get_tensor(index[name])
            seen[name].append((float(value.min()), float(value.max()), path.relative_to(calib.root).as_posix()))
    for name, values in seen.items():
        lo, hi = np.array([v[0] for v in values]), np.array([v[1] for v in values])
        top = np.argsort(hi)[::-1][:3]
        print(f"{name.split(';')[0][-60:]}: global [{lo.min():.1f}, {hi.max():.1f}], mean per-image "
              f"[{lo.mean():.1f}, {hi.mean():.1f}], width ratio {(hi.max() - lo.min()) / (hi.mean() - lo.mean()):.1f}x")
        print("   largest maxima: " + ", ".join(f"{hi[i]:.1f} {values[i][2]}" for i in top))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bad", type=Path)
    ap.add_argument("good", type=Path)
    ap.add_argument("--calib-data", type=Path, default=shared_dir() / "datasets" / "clothing-small" / "validation")
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()
    bad, good = diagnose(args.bad, args.calib_data, args.samples), diagnose(args.good, args.calib_data, args.samples)
    good_rows = {r["layer"]: r for r in good["layers"]}
    groups: dict[str, list[tuple[dict, dict]]] = {}
    for row in bad["layers"]:
        if row["layer"] in good_rows:
            groups.setdefault(group(row), []).append((row, good_rows[row["layer"]]))
    print(f"{'tensors':<28} {'n':>3} {'range use bad/good':>20} {'stretch':>8} {'SQNR dB bad/good':>18}")
    for name, pairs in sorted(groups.items()):
        use_b = statistics.median(b["range_use"] for b, _ in pairs)
        use_g = statistics.median(g["range_use"] for _, g in pairs)
        stretch = statistics.median(g["range_use"] / b["range_use"] for b, g in pairs if b["range_use"])
        sq_b = statistics.median(b["sqnr_db"] for b, _ in pairs)
        sq_g = statistics.median(g["sqnr_db"] for _, g in pairs)
        print(f"{name:<28} {len(pairs):>3} {use_b:>9.2f} / {use_g:<8.2f} {stretch:>7.1f}x {sq_b:>8.1f} / {sq_g:<8.1f}")
    print(f"model output SQNR: bad {bad['output']['sqnr_db']} dB, good {good['output']['sqnr_db']} dB")
    worst = sorted(bad["layers"], key=lambda r: r["range_use"] or 1)[:3]
    manifest = json.loads((args.bad / "manifest.json").read_text())
    outliers(args.bad.parent / "tflite-fp32" / "model.tflite", args.calib_data, manifest["preprocess"],
             [r["layer"] for r in worst])


if __name__ == "__main__":
    main()
