"""`edgex bench ART --remote-hosts hosts.yaml`: every device of a fleet in parallel, one merged report.

Each device gets one thread and one SSH session (edgex.remote's `RemoteDevice`: private folder, sha256-checked
copies, probe), and inside it the usual suite runs its artifacts one after another, so latency runs never
overlap on a device. Plain SSH and not Ray: a Ray node runs a raylet, a GCS client, an object store and
metrics agents; on a 4-core Pi they would take CPU and cache from the very latency being measured, and the
device would need Ray installed. A device needs Python, numpy and its runtime, as for `--remote`.

A device that cannot be reached, or that drops mid-run, becomes failed rows (kind "remote", with the
reason) for the artifacts it did not finish; rows it finished and the other devices are kept.

hosts.yaml:

    devices:
      - name: pi-kitchen
        host: pi@10.0.0.21:22          # user@host[:port]
        identity: ~/.ssh/id_ed25519    # optional (ssh's default keys otherwise)
        python: /usr/bin/python3       # optional (python3 on its PATH)
        tags: [aarch64, pi4]           # optional, copied into the report
        known_hosts: ~/.ssh/known_hosts  # optional (default: --known-hosts, else ssh's)
"""

from __future__ import annotations

import argparse
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edgex.errors import DataError, EdgexError, MissingInputError, UsageError
from edgex.progress import Reporter
from edgex.remote.target import RemoteTarget

FIELDS = {"name", "host", "identity", "python", "tags", "known_hosts"}


@dataclass
class FleetHost:
    name: str
    target: RemoteTarget
    identity: Path | None = None
    python: str | None = None
    tags: list[str] = field(default_factory=list)
    known_hosts: Path | None = None

    def describe(self) -> dict:
        return {"name": self.name, "host": str(self.target), "python": self.python, "tags": self.tags,
                "identity": str(self.identity) if self.identity else None}


def load_hosts(path: Path) -> list[FleetHost]:
    """The devices of hosts.yaml; a missing file is 66, unreadable YAML 65, a bad entry a usage error (2)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"hosts file {path} does not exist", "Pass --remote-hosts hosts.yaml (see README).")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    entries = config.get("devices") if isinstance(config, dict) else config
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{path} lists no devices", "Write `devices:` and one entry per device (name, host).")
    hosts = [_host(entry, i, path) for i, entry in enumerate(entries, 1)]
    names = [h.name for h in hosts]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise UsageError(f"device name {duplicate!r} appears twice in {path}", "Give every device its own name.")
    return hosts


def _host(entry, number: int, path: Path) -> FleetHost:
    where = f"device {number} of {path}"
    if not isinstance(entry, dict):
        raise UsageError(f"{where} is not a mapping", "Write name: ..., host: user@host[:port].")
    unknown = sorted(set(entry) - FIELDS)
    if unknown:
        raise UsageError(f"{where} has unknown key(s) {', '.join(unknown)}", f"Keys: {', '.join(sorted(FIELDS))}.")
    for key in ("name", "host"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise UsageError(f"{where} has no {key}", "Each device needs a name and host: user@host[:port].")
    try:
        target = RemoteTarget.parse(entry["host"])
    except UsageError as exc:
        raise UsageError(f"{where}: host {entry['host']!r} is not user@host[:port]", exc.hint) from exc
    tags = entry.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list):
        raise UsageError(f"{where}: tags must be a list")

    def file(key: str) -> Path | None:
        if entry.get(key) is None:
            return None
        resolved = (path.parent / Path(str(entry[key])).expanduser()).resolve()
        if not resolved.is_file():
            raise MissingInputError(f"{where}: {key} {resolved} does not exist")
        return resolved

    return FleetHost(entry["name"].strip(), target, file("identity"), entry.get("python") and str(entry["python"]),
                     [str(t) for t in tags], file("known_hosts"))


def _plain(text: str) -> str:
    """Status lines are Rich markup: a device name or reason is text, not a style."""
    return text.replace("[", "\\[")


class _Prefixed(Reporter):
    """Status lines of one device's thread, named; no progress bars (several threads share the terminal)."""

    def __init__(self, reporter: Reporter, name: str):
        self.reporter, self.lock = reporter, threading.Lock()
        self.prefix = _plain(name)

    def info(self, message: str) -> None:
        with self.lock:
            self.reporter.info(f"{self.prefix}: {message}")


class _UntilDropped:
    """The device's runner; once its connection is lost, every later artifact fails at once with the reason."""

    def __init__(self, device):
        self.device = device
        self.lost: EdgexError | None = None

    def __call__(self, *args, **kwargs) -> dict:
        if self.lost is None:
            try:
                return self.device(*args, **kwargs)
            except EdgexError as exc:  # connection lost (75), deadline passed, a copy arrived corrupted (74)
                self.lost = exc
        return {"ok": False, "kind": "remote", "error": self.lost.one_line(), "hint": self.lost.hint,
                "device": self.device.section()}


def _run_device(host: FleetHost, args: argparse.Namespace, settings, reporter: Reporter) -> dict:
    """{"host", "report" (or None), "error" (or None), "device"}: one device's suite, never raising EdgexError."""
    from edgex.bench import suite
    from edgex.remote.bench import DEFAULT_PYTHON, RemoteDevice
    from edgex.remote.ssh import SshOptions

    def given(value) -> Path | None:  # --identity / --known-hosts: the default of every device
        return Path(value).expanduser() if value else None

    options = SshOptions(identity=host.identity or given(args.identity),
                         known_hosts=host.known_hosts or given(args.known_hosts), accept_new_host=args.accept_new_host)
    python = host.python or args.remote_python or DEFAULT_PYTHON
    out: dict = {"host": host, "report": None, "error": None, "device": {"remote": str(host.target)}}
    try:
        with RemoteDevice(host.target, options, python=python, deadline_s=args.remote_timeout) as device:
            info = device.info
            reporter.info(f"{info.get('cpu_model') or '?'} ({info.get('machine')}), python {info.get('python')}")
            out["device"] = device.section()
            runner = _UntilDropped(device)
            out["report"] = suite.run_suite(args.artifacts, settings, args.eval_data, None, False, reporter,
                                            runner=runner, cpu=device.info)
            if runner.lost is not None:
                out["error"] = runner.lost
    except EdgexError as exc:  # unreachable, key refused, or the cleanup after a drop could not reach it
        out["error"] = out["error"] or exc
    return out


def run_fleet(args: argparse.Namespace, settings, reporter: Reporter | None = None) -> dict:
    """All devices in parallel; the merged report has one row per device and artifact, and a `fleet` section."""
    from edgex.bench.artifacts import find_artifacts
    from edgex.report.schema import build_report

    reporter = reporter or Reporter()
    hosts = load_hosts(Path(args.remote_hosts))
    refs = find_artifacts(args.artifacts)  # a bad artifact path fails here, before any SSH session
    reporter.info(f"fleet: {len(hosts)} device(s) from {args.remote_hosts}, {len(refs)} artifact(s) each, "
                  "in parallel (one SSH session per device)")
    with ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="edgex-fleet") as pool:
        futures = [pool.submit(_run_device, h, args, settings, _Prefixed(reporter, h.name)) for h in hosts]
        done = [f.result() for f in futures]
    rows, fleet, eval_data = [], [], None
    for result in done:
        host, report, error = result["host"], result["report"], result["error"]
        if report is not None:
            eval_data = eval_data or report.get("eval_data")
            device_rows = report["results"]
        else:
            device_rows = [_failed_row(ref, error) for ref in refs]
        for row in device_rows:
            row.update(name=f"{host.name}/{row['name']}", device_name=host.name, device_tags=host.tags)
            row.setdefault("device", result["device"])
        rows += device_rows
        fleet.append({**host.describe(), "status": "failed" if error else "ok",
                      "error": error.one_line() if error else None, "device": result["device"],
                      "artifacts": [r["name"] for r in device_rows]})
        if error:
            reporter.info(f"[red]✗ {_plain(host.name)}: {_plain(error.one_line())}[/red]")
    merged = build_report(rows, settings, eval_data, [])
    merged["settings"]["remote_hosts"] = str(args.remote_hosts)
    merged["fleet"] = fleet
    return merged


def _failed_row(ref, error: EdgexError | None) -> dict:
    """The row of an artifact a device never ran (the suite's own row layout)."""
    from edgex.bench.suite import _base_row, _fail

    reason = error.one_line() if error else "the device did not run it"
    return _fail(_base_row(ref), "remote", reason, getattr(error, "hint", None))
