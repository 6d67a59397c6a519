"""`edgex doctor`: what this machine (or, with --remote, a device) can run, and what to expect from int8."""

from __future__ import annotations

import argparse
import json

from edgex.errors import EXIT_CODES_HELP
from edgex.remote.cli import add_remote_arguments, check_remote_arguments


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "doctor",
        help="runtimes, versions, ISA features and GPU back-ends here or on a device; why int8 may not be faster",
        description="Describe what can run artifacts here (or on --remote USER@HOST): Python, numpy, LiteRT / "
        "ONNX Runtime / OpenVINO and their versions, providers and devices, CPU model, cores, ISA features "
        "(VNNI, AMX, NEON dotprod, i8mm), governor, temperature, free memory, the GPU back-ends that "
        "--device gpu would use (or why not), and whether int8 should beat fp32 on this CPU.",
        epilog="examples:\n  edgex doctor\n"
        "  edgex doctor --remote pi@raspberrypi.local --identity ~/.ssh/id_ed25519\n\n"
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_remote_arguments(parser, device=False)
    parser.add_argument("--json", action="store_true", help="print the findings as JSON on stdout")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from edgex.commands.console import stdout_reserved
    from edgex.runtimes.doctor import machine_findings, probe_local, render

    check_remote_arguments(args)
    if args.remote:
        from edgex.remote.bench import open_device

        with open_device(args) as device:
            machine, where = device.info, str(device.target)
        findings = machine_findings(machine, local=False)
    else:
        with stdout_reserved():
            machine = probe_local()
        findings, where = machine_findings(machine, local=True), "this machine"
    findings["where"] = where
    if args.json:
        print(json.dumps(findings, indent=2))
    else:
        print("\n".join(render(findings, where)))
    return 0
