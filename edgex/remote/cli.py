"""The `--remote` options shared by `edgex bench` and `edgex doctor` (argparse only; nothing heavy imported)."""

from __future__ import annotations

import argparse

REMOTE_HELP = """remote devices (SSH):
  The device needs only Python 3, numpy and the artifact's runtime (ai-edge-litert or tflite-runtime,
  onnxruntime, openvino); edgex copies its one-file runner and the artifacts into a private temp folder
  there, verifies their sha256, and removes the folder when the connection ends.
  Host keys are checked against known_hosts (StrictHostKeyChecking=yes); on first contact with a device
  whose fingerprint you trust, pass --accept-new-host once (StrictHostKeyChecking=accept-new).
  Exit codes: 75 unreachable / connection lost / deadline passed (retry), 77 key refused or host key
  unknown or changed, 74 a copy arrived corrupted or the device's disk is full."""


def add_remote_arguments(parser: argparse.ArgumentParser, *, device: bool = True) -> None:
    """--remote, --identity, --remote-python, --accept-new-host, --known-hosts, --remote-timeout [, --device]."""
    group = parser.add_argument_group("remote device (SSH)", description=REMOTE_HELP.split("\n", 1)[1])
    group.add_argument("--remote", metavar="USER@HOST[:PORT]",
                       help="run on this device over SSH instead of locally (e.g. pi@raspberrypi.local)")
    group.add_argument("--identity", metavar="KEY", help="private key file for the device (ssh -i)")
    group.add_argument("--remote-python", metavar="PATH",
                       help="the device's Python with numpy and the runtime (default: python3 on its PATH)")
    group.add_argument("--accept-new-host", action="store_true",
                       help="first contact: record the device's host key (StrictHostKeyChecking=accept-new); "
                       "a changed key is still refused")
    group.add_argument("--known-hosts", metavar="FILE", help="known_hosts file (default: ssh's, ~/.ssh/known_hosts)")
    group.add_argument("--remote-timeout", metavar="SECONDS", type=float, default=3600.0,
                       help="overall deadline for the whole remote session (default 3600; exit 75 when passed)")
    if device and "--device" not in parser._option_string_actions:  # the bench may define it
        parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                            help="gpu: ONNX Runtime TensorRT/CUDA providers or the OpenVINO GPU plugin; "
                            "artifacts without one are reported unavailable, with the reason")


def check_remote_arguments(args: argparse.Namespace) -> None:
    """The SSH-only flags make no sense without --remote: say so rather than ignore them."""
    from edgex.errors import UsageError

    if getattr(args, "remote", None) or getattr(args, "remote_hosts", None):  # a fleet takes them as defaults
        return
    for flag in ("identity", "remote_python", "known_hosts"):
        if getattr(args, flag, None):
            raise UsageError(f"--{flag.replace('_', '-')} needs --remote USER@HOST", "Add --remote or drop the flag.")
    if getattr(args, "accept_new_host", False):
        raise UsageError("--accept-new-host needs --remote USER@HOST", "Add --remote or drop the flag.")
