"""`edgex eval/bench --ray`: the evaluation images sharded over Ray actors, merged into the local report.

Why actors and not ray.data: a worker must load its artifact once and then run many shards, and the
driver must know exactly which shard came back (to retry the lost ones and to count every image once).
A pool of actors fed by a small queue does both in ~100 lines with nothing but core Ray; ray.data's
`map_batches` with an actor pool would load the artifact once per actor too, but it re-orders and
re-blocks rows and hides the retry accounting behind its executor, and it pulls pyarrow/pandas in.

`RayRunner` is called like `edgex.bench.child.run_child` (the seam `edgex.remote` uses too) and
`RayPreprocessor` like `preprocess_images`, so `run_suite` still preprocesses once per spec, computes the
FP32 reference and builds the same rows, per-class accuracy, confusion matrix and bootstrap CI: only
where the tensors and the logits are computed changes. Latency (`bench`) is still timed here in a clean
child process: timing on a busy cluster node means nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgex.artifacts.signals import pause_point
from edgex.errors import EdgexError, MissingDependencyError, RemoteError, UsageError

IN_FLIGHT_PER_WORKER = 2  # one running, one queued: the worker never waits, the object store stays small
SHARD_ATTEMPTS = 3  # after Ray's own retries (max_task_retries): a shard lost this often fails the artifact
LOCAL_OBJECT_STORE_BYTES = 1 << 30  # a local instance started for one run: in-flight shards only


def import_ray():
    """Ray, or the one-line usage error (2) that says which extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("--ray needs Ray, which is not installed",
                                     "pip install 'edgex[ray]'") from exc
    return ray


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """A plain TCP connect first: ray.init on a dead address retries for a minute before it gives up."""
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"--ray-address {address!r} is not HOST:PORT", "e.g. --ray-address 10.0.0.5:6379")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            pass
    except OSError as exc:
        raise RemoteError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                          "Is `ray start --head` running there, and the port open?") from exc


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[object]:
    """Join `address` (or RAY_ADDRESS), else start a local instance for this run; always leave it afterwards.

    A Ray already initialised in this process (the Python API, the tests) is used as it is and left running.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if os.environ.get("EDGEX_ALLOW_TELEMETRY") != "1":  # edgex sends nothing (edgex.telemetry); Ray's usage
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # stats are read when a local instance starts
    address = address or os.environ.get("RAY_ADDRESS") or None
    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
               "configure_logging": True}
    if address:
        if address not in ("auto", "local"):  # RAY_ADDRESS=auto: Ray looks for its running instance
            _check_reachable(address)
        options["address"] = address
    else:
        options.update(num_cpus=num_cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise RemoteError(f"cannot join {where}: {' '.join(str(exc).split())[:300]}",
                          "Check the address and that the cluster runs the same Ray and Python versions.") from exc
    try:
        yield ray
    finally:
        ray.shutdown()  # a local instance started here is stopped with it


class ShardWorker:
    """One Ray actor: the artifact loaded once (with the local runner's code), then shard after shard.

    The artifact's files come with the calls (a reference in a list: fetched, not copied per call), not
    with the constructor: an actor Ray restarts after its process died loads them again on its next call.
    """

    def __init__(self, model_name: str, runtime: str, precision: str | None, threads: int, device: str,
                 batch: int):
        self.spec = (model_name, runtime, precision, threads, device)
        self.batch, self.error, self.session, self.load_ms = batch, None, None, 0.0

    def _load(self, files: list) -> None:
        import shutil

        import ray

        from edgex.errors import EdgexError
        from edgex.runtimes import failure_row, open_runtime

        if self.session is not None or self.error is not None:
            return
        model_name, runtime, precision, threads, device = self.spec
        folder = Path(tempfile.mkdtemp(prefix="edgex-ray-"))
        started = time.perf_counter()
        try:
            for name, data in ray.get(files[0]).items():
                (folder / name).write_bytes(data)
            self.session = open_runtime(runtime, folder / model_name, precision, threads, device)
            if runtime == "litert":
                self.session.resize(self.batch)
        except EdgexError as exc:
            self.error = failure_row(exc)
        finally:  # every runtime holds the model in memory (or a mapping) once loaded
            shutil.rmtree(folder, ignore_errors=True)
        self.load_ms = (time.perf_counter() - started) * 1000.0

    def ready(self, files: list) -> dict:
        import ray

        self._load(files)
        if self.error:
            return self.error
        return {"ok": True, "runtime": self.session.info, "load_ms": self.load_ms, "pid": os.getpid(),
                "node": ray.util.get_node_ip_address()}

    def run(self, shard: int, start: int, inputs: np.ndarray, files: list) -> tuple[int, int, np.ndarray, int]:
        from edgex.errors import DataError
        from edgex.runtimes import predict

        self._load(files)
        if self.session is None:
            raise DataError(self.error["error"], self.error.get("hint"))
        return shard, start, predict(self.session, np.asarray(inputs, dtype=np.float32), self.batch), os.getpid()


@dataclass
class ShardRun:
    """How one artifact's logits were computed: in report rows as `scale`."""

    engine: str = "ray"
    workers: int = 0
    nodes: list[str] = field(default_factory=list)
    shards: int = 0
    shard_size: int = 0
    images: int = 0
    retried_shards: int = 0
    lost_workers: int = 0
    worker_pids: list[int] = field(default_factory=list)  # the processes that returned shards (restarts: new ones)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class RayRunner:
    """Answers like `run_child`, with the logits for `inputs` computed by `workers` actors on the cluster.

    `on_result(runner, shard)` is called after each shard arrives (progress; the tests kill a worker there).
    """

    def __init__(self, workers: int | None = None, threads: int | None = None, shard_size: int = 64,
                 on_result: Callable[[RayRunner, int], None] | None = None):
        self.workers, self.threads, self.shard_size = workers, threads or 1, shard_size
        self.on_result = on_result
        self.runs: dict[str, ShardRun] = {}  # by model file
        self.worker_info: list[dict] = []

    def __call__(self, model_file: Path, runtime: str, precision: str | None, settings, inputs=None,
                 outputs: Path | None = None) -> dict:
        from edgex.bench.child import run_child

        if inputs is None or outputs is None:  # nothing to shard: load (or time) it here, as locally
            return run_child(model_file, runtime, precision, settings)
        answer: dict = {}
        if settings.latency:  # timing in a clean child process on this machine, without the images
            answer = run_child(model_file, runtime, precision, settings)
            if not answer.get("ok"):
                return answer
        if isinstance(inputs, (str, Path)):  # run_suite hands over the .npy it wrote: read shard by shard
            inputs = np.load(inputs, mmap_mode="r")
        evaluated = self.evaluate(Path(model_file), runtime, precision, settings, inputs, Path(outputs))
        if not evaluated.get("ok"):
            return evaluated
        return {**evaluated, **answer} if answer else evaluated

    def evaluate(self, model_file: Path, runtime: str, precision: str | None, settings, inputs: np.ndarray,
                 outputs: Path) -> dict:
        """Logits for every row of `inputs` into `outputs` (.npy); the answer says how, or why it failed."""
        import ray

        from edgex.remote.bench import artifact_files

        started = time.perf_counter()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = self.workers or max(1, cpus // self.threads)
        if count * self.threads > cpus:  # actors beyond the cluster's CPUs would wait forever to start
            raise UsageError(f"{count} Ray workers x {self.threads} thread(s) need {count * self.threads} CPUs; "
                             f"the cluster has {cpus}", "Lower --ray-workers or --threads, or add nodes.")
        blob = ray.put({name: path.read_bytes() for name, path in artifact_files(model_file).items()})
        worker = ray.remote(num_cpus=self.threads, max_restarts=2, max_task_retries=2)(ShardWorker)
        actors = [worker.options(scheduling_strategy="SPREAD").remote(
            model_file.name, runtime, precision, self.threads, settings.device, settings.batch)
            for _ in range(count)]
        try:
            try:
                self.worker_info = ray.get([a.ready.remote([blob]) for a in actors], timeout=settings.timeout_s)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:  # e.g. no edgex on a node
                return {"ok": False, "kind": "crashed", "error": f"a Ray worker could not start: "
                        f"{' '.join(str(exc).split())[:300]}", "hint": "Install edgex[ray] and the runtimes on "
                        "every node, with the same Python and Ray versions as here."}
            failed = next((info for info in self.worker_info if not info.get("ok")), None)
            if failed:
                return failed
            run = ShardRun(workers=count, nodes=sorted({i["node"] for i in self.worker_info}),
                           shard_size=self.shard_size, images=len(inputs))
            logits = self._shards(ray, actors, inputs, [blob], run, started + settings.timeout_s)
            if isinstance(logits, dict):
                return logits
            run.seconds = time.perf_counter() - started
            self.runs[str(model_file)] = run
            np.save(outputs, logits)
        except ray.exceptions.GetTimeoutError:
            return {"ok": False, "kind": "timeout", "error": f"no result within {settings.timeout_s:.0f} s",
                    "hint": "Raise --timeout or add workers."}
        finally:
            for actor in actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)
        info = self.worker_info[0]
        return {"ok": True, "runtime": info["runtime"], "load_ms": info["load_ms"], "outputs": str(outputs),
                "outputs_shape": list(logits.shape), "scale": run.to_dict()}

    def _shards(self, ray, actors: list, inputs: np.ndarray, files: list, run: ShardRun,
                deadline: float) -> np.ndarray | dict:
        """Feed the shards to the actors; a shard whose worker died goes back to the queue."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

        n = len(inputs)
        queue = deque((i, s, min(s + self.shard_size, n)) for i, s in enumerate(range(0, n, self.shard_size)))
        run.shards = len(queue)
        pending: dict = {}
        busy = dict.fromkeys(range(len(actors)), 0)
        dead: set[int] = set()
        attempts: dict[int, int] = {}
        results: dict[int, tuple[int, np.ndarray]] = {}
        while queue or pending:
            for k, actor in enumerate(actors):
                while queue and k not in dead and busy[k] < IN_FLIGHT_PER_WORKER:
                    shard, start, stop = queue.popleft()
                    part = np.ascontiguousarray(inputs[start:stop])
                    pending[actor.run.remote(shard, start, part, files)] = (k, shard, start, stop)
                    busy[k] += 1
            if not results:
                pause_point("ray-shards")  # the Ctrl-C test interrupts here, with shards on the cluster
            if not pending:
                return {"ok": False, "kind": "crashed", "error": f"all {len(actors)} Ray workers died",
                        "hint": "See the Ray logs of the worker nodes (out of memory?)."}
            if time.perf_counter() > deadline:
                raise ray.exceptions.GetTimeoutError("deadline")
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)  # short: Ctrl-C lands between waits
            for ref in done:
                k, shard, start, stop = pending.pop(ref)
                busy[k] -= 1
                try:
                    got, got_start, logits, pid = ray.get(ref)
                except RayTaskError as exc:  # the runtime raised: the artifact fails, as locally
                    cause = " ".join(str(exc.cause if hasattr(exc, "cause") else exc).split())[:300]
                    return {"ok": False, "kind": "run_failed", "error": f"a Ray worker failed: {cause}"}
                except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
                    dead.add(k)  # Ray's restarts and retries are spent: this actor is gone for good
                    run.lost_workers += 1
                    attempts[shard] = attempts.get(shard, 0) + 1
                    if attempts[shard] >= SHARD_ATTEMPTS:
                        return {"ok": False, "kind": "crashed",
                                "error": f"shard {shard} lost {attempts[shard]} times: {type(exc).__name__}"}
                    run.retried_shards += 1
                    queue.appendleft((shard, start, stop))
                    continue
                results.setdefault(got, (got_start, logits))  # a shard counted once, however often it ran
                run.worker_pids = sorted({*run.worker_pids, pid})
                if self.on_result is not None:
                    self.on_result(self, shard)
        return _merge(results, n)


def _merge(results: dict[int, tuple[int, np.ndarray]], n: int) -> np.ndarray:
    """The shards' logits in image order; every image exactly once, or an internal error (a bug)."""
    covered = np.zeros(n, dtype=np.int64)
    first = next(iter(results.values()))[1]
    logits = np.empty((n, *first.shape[1:]), dtype=np.float32)
    for start, part in results.values():
        covered[start : start + len(part)] += 1
        logits[start : start + len(part)] = part
    if not (covered == 1).all():
        raise AssertionError(f"shards cover {int((covered == 0).sum())} images never and "
                             f"{int((covered > 1).sum())} more than once (of {n})")
    return logits


class _NamedBytes(io.BytesIO):
    """An image file's bytes that Pillow reads and that edgex's decode errors name by the file's path."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.path = name

    def __str__(self) -> str:
        return self.path


def _preprocess_shard(spec: str, images: list[tuple[str, bytes]]) -> np.ndarray:
    """A Ray task: decode and preprocess image bytes with the artifact's spec (edgex.preprocess, as locally)."""
    import json

    from edgex.preprocess import Preprocess, read_rgb

    preprocess = Preprocess.from_dict(json.loads(spec))
    return np.stack([preprocess.apply(read_rgb(_NamedBytes(data, name))) for name, data in images])


class RayPreprocessor:
    """Has preprocess_images' signature: the images are read here (bytes) and decoded on the cluster.

    Decoding and resizing is ~9 ms per 299x299 image: serial on the driver it caps the speed-up of
    many nodes (7.5 min for 50k images whatever the cluster); on the workers it divides like inference.
    """

    def __init__(self, shard_size: int = 64, in_flight: int = 8):
        self.shard_size, self.in_flight = shard_size, in_flight

    def __call__(self, files: list[Path], preprocess, advance: Callable[[], None] = lambda: None) -> np.ndarray:
        import ray

        task = ray.remote(num_cpus=1, max_retries=3)(_preprocess_shard)
        spec = preprocess.to_json()
        starts = deque(range(0, len(files), self.shard_size))
        pending: dict = {}
        out: np.ndarray | None = None
        while starts or pending:
            while starts and len(pending) < self.in_flight:
                start = starts.popleft()
                chunk = [(str(f), Path(f).read_bytes()) for f in files[start : start + self.shard_size]]
                pending[task.remote(spec, chunk)] = start
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)  # short: Ctrl-C lands between waits
            for ref in done:
                start = pending.pop(ref)
                try:
                    part = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # a corrupt image: the DataError (65) a local run raises
                    cause = getattr(exc, "cause", None)
                    raise (cause if isinstance(cause, EdgexError) else exc) from None
                if out is None:
                    out = np.empty((len(files), *part.shape[1:]), dtype=np.float32)
                out[start : start + len(part)] = part
                for _ in range(len(part)):
                    advance()
        return out


def run_ray_suite(args: argparse.Namespace, settings, reporter=None, eval_data: Path | None = None) -> dict:
    """`edgex eval/bench --ray`: run_suite with the logits computed on the cluster; rows get a `scale` section."""
    from edgex.bench.suite import run_suite

    with ray_session(getattr(args, "ray_address", None)) as ray:
        resources = ray.cluster_resources()
        runner = RayRunner(getattr(args, "ray_workers", None), settings.threads, getattr(args, "shard_size", 64))
        if reporter is not None:
            nodes = len([n for n in ray.nodes() if n.get("Alive")])
            workers = runner.workers or max(1, int(resources.get("CPU", 1)) // runner.threads)
            reporter.info(f"Ray: {nodes} node(s), {int(resources.get('CPU', 0))} CPUs; {workers} worker(s) per "
                          f"artifact, {runner.threads} thread(s) each, shards of {runner.shard_size} images")
        report = run_suite(args.artifacts, settings, eval_data or args.eval_data, args.source, not args.no_source,
                           reporter, runner=runner, preprocessor=RayPreprocessor(runner.shard_size))
    for row in report["results"]:
        model_file = Path(row["path"]) / str(row.get("model_file"))
        if str(model_file) in runner.runs:
            row["scale"] = runner.runs[str(model_file)].to_dict()
    report["settings"]["scale"] = {"engine": "ray", "address": getattr(args, "ray_address", None) or "local",
                                   "shard_size": runner.shard_size, "threads_per_worker": runner.threads}
    return report
