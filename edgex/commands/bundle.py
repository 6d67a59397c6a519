"""`edgex bundle ARTIFACT --output app.tar.gz`: everything a device needs to run an artifact, nothing more."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgex.errors import EXIT_CODES_HELP


def add_parser(commands) -> None:
    bundle = commands.add_parser(
        "bundle", help="package an artifact for a device: model, manifest, labels, predict.py, README, requirements",
        description="Write a self-contained folder (or .tar.gz) for an edge device: the artifact's model files and "
        "manifest.json, labels.txt, a one-file predict.py that needs only Python 3, numpy, Pillow and the "
        "artifact's runtime (same preprocessing, int8 scaling and CSV as edgex predict), requirements.txt pinned "
        "for 64-bit Raspberry Pi OS (aarch64; numpy 1 or 2) and a README with the commands to run it there.",
        epilog="examples:\n  edgex bundle edgex-out/m/tflite-int8 --output app.tar.gz\n"
        "  edgex bundle edgex-out/m/onnx-int8 --output app/\n\n"
        "on the device:\n  tar xzf app.tar.gz && cd <bundle>\n  python3 -m pip install -r requirements.txt\n"
        "  python3 predict.py photos/ --csv predictions.csv\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bundle.add_argument("artifact", type=Path, metavar="ARTIFACT", help="artifact folder (with manifest.json)")
    bundle.add_argument("--output", "-o", type=Path, required=True,
                        help="a .tar.gz/.tgz file, or a folder for any other name")
    bundle.add_argument("--force", action="store_true", help="replace an existing output")
    bundle.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    bundle.add_argument("--debug", action="store_true", help="show tracebacks")
    bundle.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from edgex.predict.bundle import build_bundle

    written = build_bundle(args.artifact, args.output, force=args.force)
    if not args.quiet:
        print(f"wrote {written.path} ({written.name}: {', '.join(written.files)})")
    return 0
