"""`edgex diagnose`: which layers of an int8 artifact carry its quantization error."""

from __future__ import annotations

import argparse
import json

from edgex.errors import EXIT_CODES_HELP


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "diagnose",
        help="per-layer quantization error of an int8 artifact, worst layer first",
        description="Run an int8 artifact on calibration images against two references, the FP32 source "
        "(the manifest's model, when it is still the same file) and the artifact unquantized, and report: the "
        "model-output error and top-1 agreement of the artifact as users run it (the agreement edgex eval "
        "reports on the same images); the runtime configuration users run against the one measured per layer "
        "(ONNX: ORT's default fused session vs the unoptimized QDQ graph, naming the fused nodes where they "
        "part; TFLite: XNNPACK vs reference kernels; OpenVINO: the precision that really runs vs f32); and, "
        "per quantized layer, worst first, the SQNR and relative error against both references, the share "
        "of the integer grid it uses, the share of values clipped, and the model-output error when only that "
        "layer is quantized, with the Keras layer and the matching nodes of the other formats. A figure "
        "without a reference signal prints n/c; an impossible figure stops the report (exit 1).",
        epilog="examples:\n  edgex diagnose edgex-out/model/tflite-int8 --calib-data images/ --top 10\n"
        "  edgex diagnose edgex-out/model/onnx-int8 --calib-data images/ --emulate-cpu Haswell\n"
        "      (ORT's kernels as an AVX2-only x86 CPU runs them, under qemu-x86_64; the rest runs natively)\n\n"
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("artifact", help="an int8 artifact folder written by edgex convert")
    parser.add_argument("--calib-data", required=True, help="folder of images (never the test set)")
    parser.add_argument("--samples", type=int, default=8, help="images to measure on (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image subset (default 0)")
    parser.add_argument("--top", type=int, default=15, help="layers to list (default 15; --json lists all)")
    parser.add_argument("--no-isolated", action="store_true",
                        help="skip the one-layer-quantized runs (one model build per layer)")
    parser.add_argument("--reference", help="tflite: the float model (default: the sibling tflite-fp32 "
                        "artifact, else converted from the manifest's source)")
    parser.add_argument("--source", help="the FP32 source model (default: the manifest's, if its sha256 matches)")
    parser.add_argument("--no-source", action="store_true", help="skip the FP32 source reference")
    parser.add_argument("--no-runtime-config", action="store_true",
                        help="skip the comparison with the runtime configuration users run")
    parser.add_argument("--emulate-cpu", metavar="QEMU_CPU",
                        help="onnx: run ORT's optimized-vs-unoptimized comparison under qemu-x86_64 -cpu QEMU_CPU "
                        "(e.g. Haswell: AVX2 without VNNI), as users of that CPU run it")
    parser.add_argument("--json", action="store_true", help="print the whole diagnosis as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgex.commands.console import reporter_for, stdout_reserved
    from edgex.diagnose.report import render
    from edgex.diagnose.run import diagnose, int8_manifest
    from edgex.errors import UsageError

    if args.samples < 1 or args.top < 1:
        raise UsageError("--samples and --top must be at least 1")
    manifest = int8_manifest(Path(args.artifact))  # fail before any output when it is no int8 artifact
    if args.emulate_cpu:
        from edgex.diagnose.emulate import check_emulation

        if manifest.get("target") != "onnx":
            raise UsageError(f"--emulate-cpu applies to ONNX artifacts (this one is {manifest.get('target')})")
        check_emulation(args.emulate_cpu)
    with stdout_reserved(silence_native=not args.debug) as stdout:
        reporter = reporter_for(args, stdout)
        reporter.info(f"diagnosing {args.artifact} on {args.samples} images from {args.calib_data}")
        with reporter.task("diagnosing layers", None) as advance:
            result = diagnose(Path(args.artifact), Path(args.calib_data), samples=args.samples,
                              isolated=not args.no_isolated, seed=args.seed,
                              reference=Path(args.reference) if args.reference else None, progress=advance,
                              source=Path(args.source) if args.source else None, use_source=not args.no_source,
                              emulate_cpu=args.emulate_cpu, runtime_config=not args.no_runtime_config)
        if args.json:
            print(json.dumps(result, indent=2), file=stdout)
        else:
            print(render(result, args.top), file=stdout)
    return 0
