"""`edgex check PATH`: is this model file or artifact safe and sound to use? Nothing in it is run.

For a model file: the format sniffed from its bytes (a misnamed file is named), the trust policy,
ONNX external data, TFLite/IR structure, a parse in a child process, then every weight byte where
that parse did not read it (SavedModel variables, torch zip CRCs, safetensors NaN: edgex.safety.contents).
For an artifact folder: the manifest, every listed file's size and sha256, then its model file. Exit 0 when it passes.
"""

from __future__ import annotations

import argparse
import json

from edgex.errors import EXIT_CODES_HELP


def add_parser(commands) -> None:
    check = commands.add_parser(
        "check",
        help="check a model file or artifact folder (format, safety policy, integrity) without running it",
        description="Check a downloaded model file (ONNX, TFLite, OpenVINO IR, Keras, PyTorch ...) or an edgex "
        "artifact folder before using it: nothing in it is executed, parsers run in a child process, and the "
        "weights are read back (their checksums where the format keeps them, and no NaN: docs/reliability.md).",
        epilog="example:\n  edgex check downloads/model.onnx\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("path", help="model file, SavedModel folder, or artifact folder with a manifest.json")
    check.add_argument("--trust-model", action="store_true",
                       help="allow formats that can run code (only for files from authors you trust)")
    check.add_argument("--json", action="store_true", help="print the findings as JSON on stdout")
    check.add_argument("--debug", action="store_true", help="show tracebacks")
    check.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgex.artifacts.manifest import MANIFEST, load_manifest, verify_files
    from edgex.safety.contents import verify_contents
    from edgex.safety.model_file import check_model_file
    from edgex.safety.sniff import describe

    path = Path(args.path)
    report: dict = {"path": str(path)}
    if path.is_dir() and (path / MANIFEST).exists():
        manifest = load_manifest(path)
        verify_files(path, manifest)
        report["artifact"] = {"target": manifest["target"], "precision": manifest["precision"],
                              "files": len(manifest["files"])}
        path = path / manifest["model_file"]
    model = check_model_file(path, trust_model=args.trust_model)
    report.update(format=model.format, details={**model.details, **verify_contents(model)})
    if args.json:
        print(json.dumps({"ok": True, **report}, indent=2, default=str))
    else:
        print(f"ok: {path} is {describe(model.format)}"
              + (f" ({report['artifact']['target']}-{report['artifact']['precision']} artifact, files verified)"
                 if "artifact" in report else ""))
    return 0
