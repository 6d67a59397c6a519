"""`edgex bench --remote`: the local benchmark suite, with each runner call made on the device instead.

`RemoteDevice` opens one private folder on the device, probes it once with the runner, and then
answers exactly like `edgex.bench.child.run_child` (same arguments, same JSON answer), so accuracy,
reference comparison and report.json come from the same code as a local run. Each answer gets a
`device` section: what the device is (CPU, ISA, runtimes, governor, temperature) and how it was reached.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from edgex.errors import RemoteError
from edgex.remote.ssh import CallTimeout, Deadline, SshClient, SshOptions
from edgex.remote.target import RemoteTarget
from edgex.remote.workspace import RemoteWorkspace
from edgex.runtimes.gpu import check_gpu_answer

RUNNER_NAME = "runner.py"
DEFAULT_PYTHON = "python3"


def _runner_path() -> Path:
    from edgex.bench.child import RUNNER

    return RUNNER


def sha256_of(path: Path) -> str:
    from edgex.artifacts.hashing import sha256_file

    return sha256_file(path)


def artifact_files(model_file: Path) -> dict[str, Path]:
    """The files an artifact needs (the model, OpenVINO's .bin), by name: from its manifest when there is one."""
    model_file = Path(model_file)
    manifest = model_file.parent / "manifest.json"
    names = [model_file.name]
    if manifest.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            names = [f["name"] for f in json.loads(manifest.read_text()).get("files", [])] or names
    elif model_file.suffix == ".xml" and model_file.with_suffix(".bin").is_file():
        names.append(model_file.with_suffix(".bin").name)
    return {name: model_file.parent / name for name in names}


class RemoteDevice:
    """A benchmark device over SSH. Use as a context manager; call it like `run_child`."""

    def __init__(self, target: RemoteTarget, options: SshOptions, python: str = DEFAULT_PYTHON,
                 deadline_s: float = 3600.0):
        self.target = target
        self.client = SshClient(target, options, Deadline(deadline_s))
        self.workspace = RemoteWorkspace(self.client, python)
        self.python = python
        self.info: dict = {}
        self._uploaded: dict[Path, str] = {}  # local file -> its path in the device folder
        self._folders: list[str] = []

    def __enter__(self) -> RemoteDevice:
        self.workspace.__enter__()
        try:
            self._put(_runner_path(), RUNNER_NAME)
            self.info = self._probe()
        except BaseException:
            self.workspace.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.workspace.close()

    # -- what the device is ---------------------------------------------------------------------

    def _probe(self) -> dict:
        from edgex.bench.child import parse_answer

        code, out, err = self.workspace.python_call([RUNNER_NAME, "probe"], what="probing the device")
        answer = parse_answer(out.decode(errors="replace"), err, code)
        if not answer.get("ok"):
            hint = "The device needs Python 3 with numpy (pip install numpy) and the runtime of the artifacts"
            raise RemoteError(f"probing {self.target} with {self.python} failed: {answer.get('error')}", hint)
        answer.pop("ok", None)
        return answer

    def section(self) -> dict:
        """The `device` section of each result: where it ran and what the device is."""
        return {"remote": str(self.target), "transport": "ssh", "python_path": self.python, **self.info}

    # -- run_child's contract, on the device ------------------------------------------------------

    def __call__(self, model_file: Path, runtime: str, precision: str | None, settings,
                 inputs: Path | None = None, outputs: Path | None = None) -> dict:
        answer = self._run(Path(model_file), runtime, precision, settings, inputs, outputs)
        answer["device"] = self.section()
        return answer

    def _run(self, model_file: Path, runtime: str, precision: str | None, settings,
             inputs: Path | None, outputs: Path | None) -> dict:
        from edgex.bench.child import parse_answer

        missing = self._missing_runtime(runtime, getattr(settings, "device", "cpu"))
        if missing:
            return missing
        remote_model = self._put_artifact(model_file)
        argv = [RUNNER_NAME, "run", "--artifact", remote_model, "--runtime", runtime, *settings.runner_args()]
        if precision:
            argv += ["--precision", precision]
        fetch = inputs is not None and outputs is not None
        if fetch:
            argv += ["--inputs", self._put(Path(inputs)), "--outputs", "outputs.npy"]
        limit = getattr(settings, "timeout_s", None)
        try:
            code, out, err = self.workspace.python_call(argv, what=f"benchmarking {model_file.name}", timeout=limit)
        except CallTimeout:
            return {"ok": False, "kind": "timeout", "error": f"no result from {self.target} within {limit:.0f} s",
                    "hint": "Lower --min-runs/--min-seconds or raise --timeout."}
        answer = parse_answer(out.decode(errors="replace"), err, code)
        if answer.get("ok") and getattr(settings, "device", "cpu") == "gpu":
            answer = check_gpu_answer(answer)
        if answer.get("ok") and fetch:
            Path(outputs).write_bytes(self.workspace.fetch("outputs.npy"))
        return answer

    def _missing_runtime(self, runtime: str, device: str) -> dict | None:
        """Known from the probe: the device lacks the runtime (reported, not attempted, not a crash)."""
        found = (self.info.get("runtimes") or {}).get(runtime) or {}
        if found.get("available", True):
            return None
        from edgex.runtimes import install_hint

        return {"ok": False, "kind": "missing_runtime",
                "error": f"{runtime} is not installed on {self.target} ({self.python})",
                "hint": f"On the device: {found.get('hint') or install_hint(runtime)}"}

    def _put_artifact(self, model_file: Path) -> str:
        """Copy the artifact's files (once) into their own sub-folder, verify them on the device.

        Names are kept (an OpenVINO .xml names its .bin); returns the model's path in the device folder.
        """
        if model_file in self._uploaded:
            return self._uploaded[model_file]
        folder = f"a{len(self._folders) + 1}"
        self._folders.append(folder)
        expected = {}
        for name, path in artifact_files(model_file).items():
            remote = f"{folder}/{name}"
            self.workspace.upload(path, remote)
            expected[remote] = self._expected_sha256(model_file, name, path)
            self._uploaded[path] = remote
        self.workspace.verify(expected)
        return self._uploaded[model_file]

    def _expected_sha256(self, model_file: Path, name: str, path: Path) -> str:
        """The manifest's checksum (what convert published), else the file's own."""
        manifest = model_file.parent / "manifest.json"
        try:
            for entry in json.loads(manifest.read_text()).get("files", []):
                if entry.get("name") == name and entry.get("sha256"):
                    return entry["sha256"]
        except (OSError, ValueError, AttributeError):
            pass
        return sha256_of(path)

    def _put(self, path: Path, name: str | None = None) -> str:
        """Upload one helper file (the runner, an inputs batch) and verify it; returns its name on the device."""
        path = Path(path)
        if path in self._uploaded:
            return self._uploaded[path]
        name = name or f"inputs-{len(self._uploaded) + 1}.npy"
        self.workspace.upload(path, name)
        self.workspace.verify({name: sha256_of(path)})
        self._uploaded[path] = name
        return name


def open_device(args: argparse.Namespace) -> RemoteDevice:
    """A RemoteDevice from the `--remote ...` options added by edgex.remote.cli."""
    options = SshOptions(identity=Path(args.identity).expanduser() if args.identity else None,
                         known_hosts=Path(args.known_hosts).expanduser() if args.known_hosts else None,
                         accept_new_host=args.accept_new_host)
    return RemoteDevice(RemoteTarget.parse(args.remote), options, python=args.remote_python or DEFAULT_PYTHON,
                        deadline_s=args.remote_timeout)


def run_remote_suite(args: argparse.Namespace, settings, reporter=None) -> dict:
    """`edgex bench --remote`: the local suite (same rows, accuracy, report schema) with every runner call
    made on the device; each result gets the device's `device` section.
    """
    from edgex.bench import suite

    with open_device(args) as device:
        if reporter is not None:
            info = device.info
            threads = settings.threads or f"{info.get('cores_usable')} (all its usable cores)"
            reporter.info(f"device {device.target}: {info.get('cpu_model') or '?'} ({info.get('machine')}), "
                          f"python {info.get('python')}, numpy {info.get('numpy')}; threads {threads}")
        report = suite.run_suite(args.artifacts, settings, args.eval_data, args.source, not args.no_source,
                                 reporter, runner=device, cpu=device.info)
        section = device.section()
    for row in report["results"]:
        row["device"] = section
    report["settings"]["remote"] = str(device.target)
    return report
