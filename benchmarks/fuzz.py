"""Fuzz campaign over every file edgex opens: seeded mutants through check, predict, convert and bench.

    nice python benchmarks/fuzz.py --mutants 500 --seed 0 [--formats onnx,tflite] [--minutes 60]
    # side by side, one per core, then one table:
    python benchmarks/fuzz.py --first 0 --mutants 250 --save a.json & python benchmarks/fuzz.py --first 250 \
        --mutants 250 --save b.json; wait; python benchmarks/fuzz.py --merge a.json b.json
    # after fixing what mutant 131 of h5 found: replay it, pass it last, its new verdicts replace the old
    python benchmarks/fuzz.py --only h5:131 --save fix.json; python benchmarks/fuzz.py --merge a.json b.json fix.json

Formats: the artifacts (onnx, openvino xml+bin, tflite; each model file mutated and the manifest re-signed:
sizes and sha256 updated, as anyone who controls the folder can do), the sources edgex opens (.keras zip,
.h5, SavedModel, .safetensors + sidecar, .pt, .pt2), manifest.json and the run YAML. Mutations: truncation,
bit flips, zeroed 64 KB blocks, 256 random bytes (weights that become NaN), and structure-aware edits
(ONNX protobuf fields, TFLite flatbuffer offsets, OpenVINO XML attributes, zip entries, JSON/YAML values).
Mutant i of a format is a pure function of (seed, format, i): a row can be replayed with --only FORMAT:I.

The harness, and why its table is what a CLI user sees. One process per mutant per command would cost
~3 s of imports each (TensorFlow, runtimes): 500 x 11 formats x 4 commands would take days on 2 cores. So a
worker child imports edgex once and runs many mutants through `edgex.cli.main(argv)` in-process: the same
function the `edgex` console script runs (parsing, error handling, the one `edgex: error:` line, the exit
code), with fds 1 and 2 redirected to per-mutant files, so what is recorded is the CLI's exact stdout,
stderr and exit status. Everything edgex itself runs in children (parse probes, bench runners, converters)
still runs in children. The parent keeps the worker at arm's length: a worker killed by a signal is a
`signal` for that mutant (edgex would have died there), one past --time-limit CPU seconds (or 10x that in
wall seconds: a starved run is slow, a sleeping one hung) is a `hang`, and either
way a fresh worker takes the next mutant; workers are also recycled every --recycle mutants so no state
carries over long. Peak RSS is the worker's VmHWM, reset before each mutant (/proc/self/clear_refs), plus
the largest new peak of its children. Tracebacks: a traceback in the output, or exit 1 (edgex's internal
error line). NaN shown as a result: a probability or accuracy printed as nan/inf.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARTIFACT_FORMATS = ("onnx", "openvino", "tflite")
SOURCE_FORMATS = ("keras", "h5", "saved_model", "safetensors", "pt", "pt2")
FORMATS = (*ARTIFACT_FORMATS, *SOURCE_FORMATS, "manifest", "yaml")
TRUSTED = {"h5", "saved_model", "pt2"}  # code-carrying formats: --trust-model, so the fuzz reaches their parsers
# a score printed as nan/inf (Python's format) or a JSON value NaN/Infinity; not the "NaN/Inf outputs" error text
NAN_SHOWN = re.compile(r"(?<![\w/.-])[-+]?(nan|inf)(?![\w/.-])|:\s*-?(NaN|Infinity)\b")


def this_machine() -> str:
    """The CPU the table was measured on, as /proc/cpuinfo and edgex's ISA class name it."""
    from edgex.isa import isa_class

    fields = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "unknown CPU")
    return (f"{name} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')}), "
            f"{len(os.sched_getaffinity(0))} cores, {isa_class()}")


def code_version() -> str:
    """The commit the campaign's edgex is (with "+changes" for a modified work tree): parts run on different
    code say so in the merged table."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("+changes" if dirty else "")


def commands_for(fmt: str) -> tuple[str, ...]:
    if fmt in ARTIFACT_FORMATS or fmt == "manifest":
        return ("check", "predict", "bench")
    if fmt == "yaml":
        return ("run",)
    return ("check", "predict", "convert")


# -- the corpus: the tiny Xception (tests/helpers.py) in every format edgex opens ------------------------------


def build_corpus(root: Path) -> dict[str, Path]:
    """Base files, built once into `root` (about two minutes): what the mutants are mutations of."""
    sys.path.insert(0, str(REPO / "tests"))
    from helpers import CLASSES, build_tiny_model, make_image

    root.mkdir(parents=True, exist_ok=True)
    done = root / ".complete"
    corpus = corpus_paths(root)
    if done.exists():
        return corpus
    import numpy as np
    from PIL import Image

    images = root / "images"
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (images / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(make_image(k, rng)).save(images / name / f"{name}.png")
    model = build_tiny_model()
    src = root / "src"
    src.mkdir(exist_ok=True)
    for name in ("tiny.keras", "tiny.h5"):
        model.save(src / name)
        (src / name).with_suffix(".classes.json").write_text(json.dumps(CLASSES))
    model.export(str(src / "saved_model"), verbose=False)
    (src / "saved_model" / "classes.json").write_text(json.dumps(CLASSES))
    _edgex("convert", "--model", src / "tiny.keras", "--target", "all", "--output",
           root / "artifacts", "-q")
    _edgex("port", "--model", src / "tiny.keras", "--output", src / "tiny.safetensors", "-q")
    import torch
    from safetensors.torch import load_file

    from edgex.models.torch_xception import XceptionConfig, build_xception

    sidecar = json.loads((src / "tiny.json").read_text())
    module = build_xception(XceptionConfig.from_dict(sidecar["config"]))
    module.load_state_dict(load_file(str(src / "tiny.safetensors")))
    torch.save(module.state_dict(), src / "tiny.pt")  # its sidecar is tiny.json too (M.pt -> M.json)
    size = sidecar["preprocess"]["height"]
    program = torch.export.export(module.eval(), (torch.zeros(1, 3, size, size),))
    torch.export.save(program, str(src / "prog.pt2"))
    (src / "prog.json").write_text(json.dumps(sidecar))
    (root / "run.yaml").write_text(
        f"model: {root / 'src' / 'tiny.keras'}\ntargets: [onnx]\nprecisions: [fp32]\n"
        f"evaluation:\n  data: {images}\n  source: false\n"
        "bench:\n  threads: 1\n  min_runs: 1\n  min_seconds: 0\n  warmup: 0\n  batch: 1\n"
        f"output: {root / 'run-out'}\n")
    done.touch()
    return corpus


def corpus_paths(root: Path) -> dict[str, Path]:
    art = root / "artifacts" / "tiny"
    return {"onnx": art / "onnx-fp32", "openvino": art / "openvino-fp32", "tflite": art / "tflite-fp32",
            "keras": root / "src" / "tiny.keras", "h5": root / "src" / "tiny.h5",
            "saved_model": root / "src" / "saved_model", "safetensors": root / "src" / "tiny.safetensors",
            "pt": root / "src" / "tiny.pt", "pt2": root / "src" / "prog.pt2",
            "manifest": art / "onnx-fp32", "yaml": root / "run.yaml", "images": root / "images"}


def _edgex(*args) -> None:
    done = subprocess.run([sys.executable, "-m", "edgex", *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"building the corpus failed: edgex {' '.join(map(str, args))}\n{done.stderr[-2000:]}")


# -- mutations ---------------------------------------------------------------------------------------------


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Truncation, bit flips, a zeroed block (up to 64 KB) or 256 random bytes (weights that become NaN)."""
    if not data:
        return "random", bytes(rng.getrandbits(8) for _ in range(64))
    kind = rng.choice(("truncate", "bitflip", "zero_block", "random_block"))
    buf = bytearray(data)
    if kind == "truncate":
        return kind, bytes(buf[: rng.randrange(len(buf))])
    if kind == "bitflip":
        for _ in range(rng.choice((1, 2, 4, 16, 64))):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        return kind, bytes(buf)
    size = min(len(buf), 65536 if kind == "zero_block" else 256)
    start = rng.randrange(len(buf) - size + 1)
    buf[start : start + size] = bytes(size) if kind == "zero_block" else bytes(rng.getrandbits(8) for _ in range(size))
    return kind, bytes(buf)


ODD_INTS = (0, -1, 1, 2, 3, 7, 255, 65535, 2**31 - 1, -(2**31), 2**32 + 1, 2**62)
ODD_VALUES = (None, True, "", "x", "../../etc/passwd", "/dev/zero", 1e308, -1.5, "nan", [], {}, [1, 2], "f16",
              *ODD_INTS)


def mutate_json(value, rng: random.Random):
    """Replace, delete or add one value somewhere in a JSON-like tree."""
    nodes = []

    def walk(node, parent, key):
        nodes.append((node, parent, key))
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, child in items:
            walk(child, node, k)

    walk(value, None, None)
    node, parent, key = rng.choice(nodes)
    if parent is None:
        return rng.choice(ODD_VALUES)
    action = rng.random()
    if action < 0.15 and isinstance(parent, dict):
        del parent[key]
    elif action < 0.25 and isinstance(parent, dict):
        parent[rng.choice(("extra", "model_file", "files", "target", "classes"))] = rng.choice(ODD_VALUES)
    elif isinstance(node, (int, float)) and not isinstance(node, bool) and action < 0.6:
        parent[key] = rng.choice((node * 2, -node, node + 1, 0, 2**40, node / 3))
    elif isinstance(node, str) and action < 0.6:
        parent[key] = rng.choice((node[:-1], node + "x", node.upper(), "", node * 3))
    else:
        parent[key] = rng.choice(ODD_VALUES)
    return value


def mutate_onnx(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """An edit of one protobuf field of the ModelProto: dims, raw weights, op types, nodes, shapes, opsets."""
    import onnx

    model = onnx.load_from_string(data)
    graph = model.graph
    kind = rng.choice(("dims", "raw_data", "op_type", "drop_node", "input_dim", "opset", "attribute", "dtype"))
    if kind in ("dims", "raw_data", "dtype") and graph.initializer:
        tensor = rng.choice(graph.initializer)
        if kind == "dims" and tensor.dims:
            tensor.dims[rng.randrange(len(tensor.dims))] = rng.choice(ODD_INTS[:9])
        elif kind == "raw_data" and tensor.raw_data:
            raw = bytearray(tensor.raw_data)
            n = min(len(raw), 256)
            start = rng.randrange(len(raw) - n + 1)
            raw[start : start + n] = bytes(rng.getrandbits(8) for _ in range(n))
            tensor.raw_data = bytes(raw)
        else:
            tensor.data_type = rng.randrange(0, 25)
    elif kind in ("op_type", "drop_node", "attribute") and graph.node:
        node = rng.choice(graph.node)
        if kind == "op_type":
            node.op_type = rng.choice(("Conv", "Relu", "Add", "Nope", "Loop", "", rng.choice(graph.node).op_type))
        elif kind == "drop_node":
            graph.node.remove(node)
        elif node.attribute:
            attribute = rng.choice(node.attribute)
            if attribute.ints:
                attribute.ints[rng.randrange(len(attribute.ints))] = rng.choice(ODD_INTS)
            else:
                attribute.i = rng.choice(ODD_INTS[:9])
    elif kind == "input_dim" and graph.input:
        dims = graph.input[0].type.tensor_type.shape.dim
        if dims:
            dims[rng.randrange(len(dims))].dim_value = rng.choice(ODD_INTS[:9])
    else:
        if model.opset_import:
            model.opset_import[0].version = rng.choice((1, 7, 99, 0, 1000))
        model.ir_version = rng.choice((model.ir_version, 1, 99))
    return f"protobuf:{kind}", model.SerializeToString()


def mutate_tflite(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A flatbuffer uoffset/vtable edit: a 4-byte word in the tables (root offset included) set to an odd value."""
    buf = bytearray(data)
    region = min(len(buf), rng.choice((64, 4096, len(buf))))
    i = rng.randrange(0, max(1, region // 4)) * 4
    old = struct.unpack_from("<I", buf, i)[0] if i + 4 <= len(buf) else 0
    new = rng.choice((0, 1, 4, 0xFFFFFFFF, 0x7FFFFFFF, len(buf), len(buf) - 4, old + 4, max(0, old - 4), old * 2,
                      rng.getrandbits(32)))
    if i + 4 <= len(buf):
        struct.pack_into("<I", buf, i, new & 0xFFFFFFFF)
    return "flatbuffer:offset", bytes(buf)


def mutate_xml(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """An OpenVINO IR edit: one attribute of one element set to an odd value, or a layer/edge removed."""
    import xml.etree.ElementTree as ET  # our own generated IR, not an untrusted file

    root = ET.fromstring(data)
    elements = list(root.iter())
    kind = rng.choice(("attribute", "attribute", "attribute", "drop_layer", "drop_edge", "dim"))
    if kind == "drop_layer" and root.find("layers") is not None and len(root.find("layers")):
        layers = root.find("layers")
        layers.remove(rng.choice(list(layers)))
    elif kind == "drop_edge" and root.find("edges") is not None and len(root.find("edges")):
        edges = root.find("edges")
        edges.remove(rng.choice(list(edges)))
    elif kind == "dim":
        dims = [e for e in elements if e.tag == "dim"]
        if dims:
            rng.choice(dims).text = str(rng.choice(ODD_INTS[:9]))
    else:
        with_attrs = [e for e in elements if e.attrib]
        element = rng.choice(with_attrs)
        name = rng.choice(sorted(element.attrib))
        element.set(name, str(rng.choice(("-1", "0", "999999999999", "nan", "", "f16", "i64", "abc", "1,2,3",
                                          element.attrib[name] * 2))))
    return f"xml:{kind}", ET.tostring(root)


def mutate_zip(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A zip-entry edit: one entry's bytes mutated (JSON entries edited as JSON), removed, renamed or doubled."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        entries = [(info.filename, z.read(info)) for info in z.infolist()]
    i = rng.randrange(len(entries))
    name, body = entries[i]
    kind = rng.choice(("entry_bytes", "entry_bytes", "entry_json", "remove", "rename", "duplicate"))
    if kind == "entry_json" and name.endswith(".json"):
        try:
            entries[i] = (name, json.dumps(mutate_json(json.loads(body), rng)).encode())
        except ValueError:
            entries[i] = (name, mutate_bytes(body, rng)[1])
    elif kind == "remove":
        entries.pop(i)
    elif kind == "rename":
        entries[i] = (rng.choice(("../evil", name + ".bak", "", "/abs", name.upper())) or "x", body)
    elif kind == "duplicate":
        entries.append((name, mutate_bytes(body, rng)[1]))
    else:
        kind = "entry_bytes"
        entries[i] = (name, mutate_bytes(body, rng)[1])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z, warnings_off():
        for entry_name, entry_body in entries:
            z.writestr(entry_name, entry_body)
    return f"zip:{kind}", out.getvalue()


@contextlib.contextmanager
def warnings_off():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate names this fuzzer writes on purpose
        yield


def mutate_safetensors(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """An edit of the safetensors JSON header (dtype, shape, data_offsets), the size prefix kept consistent."""
    (size,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + size])
    text = json.dumps(mutate_json(header, rng)).encode()
    return "header", struct.pack("<Q", len(text)) + text + data[8 + size :]


def resign(folder: Path) -> None:
    """Update every listed file's size and sha256 in manifest.json (as anyone controlling the folder can)."""
    from edgex.artifacts.hashing import sha256_file

    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest.get("files", []):
        target = folder / entry["name"]
        if target.is_file():
            entry["bytes"], entry["sha256"] = target.stat().st_size, sha256_file(target)
    path.write_text(json.dumps(manifest, indent=2))


def make_mutant(fmt: str, base: Path, index: int, seed: int, dest: Path) -> tuple[Path, str]:
    """Mutant `index` of `fmt` written under `dest`; returns (the path to hand edgex, what was done)."""
    rng = random.Random(f"{seed}:{fmt}:{index}")
    dest.mkdir(parents=True, exist_ok=True)
    structured = rng.random() < 0.5
    if fmt in ARTIFACT_FORMATS:
        folder = dest / base.name
        shutil.copytree(base, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        target = folder / manifest["model_file"]
        if fmt == "openvino" and rng.random() < 0.5:
            target, structured = target.with_suffix(".bin"), False
        data = target.read_bytes()
        mutator = {"onnx": mutate_onnx, "openvino": mutate_xml, "tflite": mutate_tflite}[fmt]
        kind, data = mutator(data, rng) if structured else mutate_bytes(data, rng)
        target.write_bytes(data)
        resign(folder)
        return folder, f"{target.name} {kind}"
    if fmt == "manifest":
        folder = dest / base.name
        shutil.copytree(base, folder)
        path = folder / "manifest.json"
        if structured:
            path.write_text(json.dumps(mutate_json(json.loads(path.read_text()), rng)))
            return folder, "json"
        kind, data = mutate_bytes(path.read_bytes(), rng)
        path.write_bytes(data)
        return folder, kind
    if fmt == "yaml":
        import yaml

        path = dest / base.name
        if structured:
            path.write_text(yaml.safe_dump(mutate_json(yaml.safe_load(base.read_text()), rng)))
            return path, "yaml"
        kind, data = mutate_bytes(base.read_bytes(), rng)
        path.write_bytes(data)
        return path, kind
    if fmt == "saved_model":
        folder = dest / base.name
        shutil.copytree(base, folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "classes.json")
        target = rng.choice(files)
        kind, data = mutate_bytes(target.read_bytes(), rng)
        target.write_bytes(data)
        return folder, f"{target.relative_to(folder)} {kind}"
    path = dest / base.name
    for sidecar in (base.with_suffix(".json"), base.with_suffix(".classes.json")):
        if sidecar.is_file():
            shutil.copy(sidecar, dest / sidecar.name)
    data = base.read_bytes()
    sidecar = dest / base.with_suffix(".json").name
    if fmt in ("safetensors", "pt", "pt2") and sidecar.is_file() and rng.random() < 0.2:
        sidecar.write_text(json.dumps(mutate_json(json.loads(sidecar.read_text()), rng)))
        path.write_bytes(data)
        return path, "sidecar json"
    if structured and fmt in ("keras", "pt", "pt2"):
        kind, data = mutate_zip(data, rng)
    elif structured and fmt == "safetensors":
        kind, data = mutate_safetensors(data, rng)
    else:
        kind, data = mutate_bytes(data, rng)
    path.write_bytes(data)
    return path, kind


def argv_for(fmt: str, command: str, mutant: Path, corpus: dict[str, Path], out: Path) -> list[str]:
    trust = ["--trust-model"] if fmt in TRUSTED else []
    image = str(next(corpus["images"].rglob("*.png")))
    if command == "check":
        return ["check", str(mutant), *trust]
    if command == "predict":
        return ["predict", str(mutant), image, "-q", *trust]
    if command == "convert":
        return ["convert", "--model", str(mutant), "--target", "tflite", "--output", str(out), "-q", *trust]
    if command == "bench":
        return ["bench", str(mutant), "--min-runs", "1", "--min-seconds", "0", "--warmup", "0", "--threads", "1",
                "--eval-data", str(corpus["images"]), "--no-source", "--json", "-q"]
    return ["run", str(mutant), "-q"]


# -- the worker: many mutants per process, edgex.cli.main in-process ----------------------------------------


def worker_main() -> None:
    """Read one JSON job per line on stdin, answer one JSON line on the saved stdout per job."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    protocol = os.fdopen(os.dup(1), "w")
    from edgex.cli import main

    for line in sys.stdin:
        job = json.loads(line)
        out_path, err_path = Path(job["dir"]) / "stdout", Path(job["dir"]) / "stderr"
        _reset_peak()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        saved = os.dup(1), os.dup(2)
        started = time.perf_counter()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                code = main(job["argv"])
            except SystemExit as exc:  # argparse's usage errors exit 2, as the console script does
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # whatever escapes main is what a user would see as a traceback
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        peak_kb = max(_peak_kb(), children_after if children_after > children_before else 0)
        protocol.write(json.dumps({"code": code, "seconds": time.perf_counter() - started, "peak_kb": peak_kb}) + "\n")
        protocol.flush()


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_kb() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


HANG_WALL_FACTOR = 10  # a run that sleeps (a deadlock) is a hang after this many times --time-limit


class Worker:
    """The parent's handle on a worker child: send a job, wait at most `limit` seconds for its answer."""

    def __init__(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env, start_new_session=True)
        self.jobs = 0

    def run(self, argv: list[str], folder: Path, limit: float) -> dict:
        """One mutant; a hang is a run that used more than `limit` CPU seconds (the worker and its children),
        or that did not answer within HANG_WALL_FACTOR x `limit` wall seconds. A campaign runs nice'd beside
        other work: a run starved of CPU is slow, not hung (three such runs read as hangs before)."""
        self.jobs += 1
        cpu_before, started = self.cpu_seconds(), time.monotonic()
        self.proc.stdin.write(json.dumps({"argv": argv, "dir": str(folder)}) + "\n")
        self.proc.stdin.flush()
        while not select.select([self.proc.stdout], [], [], 2.0)[0]:
            cpu, wall = self.cpu_seconds() - cpu_before, time.monotonic() - started
            if cpu > limit or wall > HANG_WALL_FACTOR * limit:
                self.kill()
                return {"hang": True, "cpu_s": round(cpu, 1), "wall_s": round(wall, 1)}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            return {"signal": signal.Signals(-code).name if code < 0 else f"worker exit {code}"}
        return json.loads(line)

    def cpu_seconds(self) -> float:
        """CPU seconds of the worker's process group: each live member's own and its reaped children's."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.proc.pid:  # pgrp: the worker started a session of its own
                    ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        return ticks / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


# -- the campaign -----------------------------------------------------------------------------------------


@dataclass
class Cell:
    runs: int = 0
    codes: Counter = field(default_factory=Counter)
    signals: int = 0
    tracebacks: int = 0
    hangs: int = 0
    over_rss: int = 0
    nan_shown: int = 0
    examples: list = field(default_factory=list)
    mutants: dict = field(default_factory=dict)  # index -> its verdict, so a later replay can replace it

    def add(self, verdict: dict, index: int | None = None) -> None:
        """Count one mutant's verdict (what judge() decided); keep the first few offenders as examples."""
        self.runs += 1
        if verdict.get("hang"):
            self.hangs += 1
        elif verdict.get("signal"):
            self.signals += 1
        else:
            self.codes[verdict["code"]] += 1
            self.tracebacks += bool(verdict.get("traceback"))
            self.nan_shown += bool(verdict.get("nan"))
            self.over_rss += bool(verdict.get("over_rss"))
        if verdict.get("bad") and len(self.examples) < 3:
            self.examples.append(verdict["bad"])
        if index is not None:
            self.mutants[index] = verdict


def judge(cell: Cell, outcome: dict, folder: Path, rss_limit_mb: float, what: str, index: int | None = None) -> None:
    """Decide one mutant's verdict from its outcome and output, and add it to its cell."""
    verdict: dict = {}
    bad = None
    if outcome.get("hang"):
        verdict["hang"] = True
        bad = f"hang ({outcome.get('cpu_s', '?')} CPU s, {outcome.get('wall_s', '?')} s wall)"
    elif outcome.get("signal"):
        verdict["signal"], bad = outcome["signal"], f"signal {outcome['signal']}"
    else:
        code = verdict["code"] = outcome["code"]
        stdout = (folder / "stdout").read_text(errors="replace")
        stderr = (folder / "stderr").read_text(errors="replace")
        if "Traceback (most recent call last)" in stdout + stderr or code == 1:
            verdict["traceback"] = True
            bad = f"exit {code}: " + (stderr.strip().splitlines() or [""])[-1][:200]
        if NAN_SHOWN.search(stdout):  # a value printed as nan/inf (JSON's NaN too); not the "NaN/Inf" error text
            verdict["nan"] = True
            bad = bad or f"NaN shown: {stdout.strip()[:200]}"
        if outcome.get("peak_kb", 0) > rss_limit_mb * 1024:
            verdict["over_rss"] = True
            bad = bad or f"peak RSS {outcome['peak_kb'] // 1024} MB"
    if bad:
        verdict["bad"] = f"{what}: {bad}"
    cell.add(verdict, index)


def campaign(corpus: dict[str, Path], formats: list[str], mutants: int, seed: int, limit: float,
             rss_limit_mb: float, minutes: float | None, recycle: int, commands: list[str] | dict | None = None,
             only: tuple[str, int] | None = None, log=print, first: int = 0, checkpoint=None,
             stop=lambda: False) -> dict[tuple[str, str], Cell]:
    """Every mutant of every format through its commands (all, a list, or a dict format -> commands),
    round-robin over formats so a --minutes budget leaves every row with runs; returns the table's cells.
    `checkpoint(cells, index)` runs after each mutant index is done for every format; `stop()` true ends
    the campaign before the next index (a SIGTERM in main), so a long campaign can end early and keep its table."""
    cells: dict[tuple[str, str], Cell] = defaultdict(Cell)
    deadline = time.monotonic() + minutes * 60 if minutes else None
    worker = None
    work = Path(tempfile.mkdtemp(prefix="edgex-fuzz-"))
    try:
        indices = [only[1]] if only else range(first, first + mutants)
        for index in indices:
            if stop():
                return cells
            for fmt in [only[0]] if only else formats:
                if deadline and time.monotonic() > deadline:
                    return cells
                wanted = commands.get(fmt, ()) if isinstance(commands, dict) else commands
                for command in commands_for(fmt):
                    if wanted is not None and command not in wanted:
                        continue
                    folder = work / f"{fmt}-{index}-{command}"
                    mutant, what = make_mutant(fmt, corpus[fmt], index, seed, folder / "m")
                    argv = argv_for(fmt, command, mutant, corpus, folder / "out")
                    worker = worker or Worker()
                    outcome = worker.run(argv, folder, limit)
                    if outcome.get("hang") or outcome.get("signal"):
                        worker = None  # dead or killed: a fresh one takes the next mutant
                    elif worker.jobs >= recycle:
                        worker.close()
                        worker = None
                    judge(cells[(fmt, command)], outcome, folder, rss_limit_mb, f"{fmt}:{index} {what}", index)
                    shutil.rmtree(folder, ignore_errors=True)
            if checkpoint is not None:
                checkpoint(cells, index)
            if index % 10 == 9:
                log(f"... {index + 1} mutants per format done", file=sys.stderr)
    finally:
        if worker is not None:
            worker.close()
        shutil.rmtree(work, ignore_errors=True)
    return cells


def table(cells: dict[tuple[str, str], Cell]) -> str:
    head = (f"{'format':<12} {'command':<8} {'runs':>5}  {'exit codes':<34} {'signals':>7} {'exit 1':>6} "
            f"{'tracebacks':>10} {'hangs':>5} {'RSS>lim':>7} {'NaN':>4}")
    lines = [head, "-" * len(head)]
    for (fmt, command), cell in sorted(cells.items(), key=lambda kv: (FORMATS.index(kv[0][0]), kv[0][1])):
        codes = " ".join(f"{code}:{n}" for code, n in sorted(cell.codes.items()))
        lines.append(f"{fmt:<12} {command:<8} {cell.runs:>5}  {codes:<34} {cell.signals:>7} {cell.codes.get(1, 0):>6} "
                     f"{cell.tracebacks:>10} {cell.hangs:>5} {cell.over_rss:>7} {cell.nan_shown:>4}")
    examples = [e for cell in cells.values() for e in cell.examples]
    if examples:
        lines += ["", "offending mutants (replay with --only FORMAT:INDEX):", *("  " + e for e in examples)]
    return "\n".join(lines)


def save_cells(cells: dict[tuple[str, str], Cell], path: Path, header: str) -> None:
    """Write a campaign's cells as JSON, each with its mutants' verdicts, so campaigns run side by side (mutant
    ranges) add up in --merge, and a replay of a mutant after a fix replaces its earlier verdict."""
    rows = [{"format": fmt, "command": command, "runs": c.runs, "codes": {str(k): n for k, n in c.codes.items()},
             "signals": c.signals, "tracebacks": c.tracebacks, "hangs": c.hangs, "over_rss": c.over_rss,
             "nan_shown": c.nan_shown, "examples": c.examples,
             "mutants": {str(index): verdict for index, verdict in sorted(c.mutants.items())}}
            for (fmt, command), c in cells.items()]
    path.write_text(json.dumps({"header": header, "cells": rows}, indent=1))


def merge_cells(paths: list[Path]) -> tuple[list[str], dict[tuple[str, str], Cell], int]:
    """Add up saved campaigns cell by cell; a later file's verdict on the same mutant (format, command, index)
    replaces an earlier one: pass replays last. Returns the headers, the cells, and how many were replaced.
    Files saved before verdicts were kept (no "mutants") add their counts as they are; an offender they list
    among their examples (exit N, signal or hang: what it counted is known) is replaced all the same."""
    headers, cells, verdicts, replaced = [], defaultdict(Cell), {}, 0
    for path in paths:
        saved = json.loads(path.read_text())
        headers.append(saved["header"])
        for row in saved["cells"]:
            key = (row["format"], row["command"])
            if "mutants" in row:
                for index, verdict in row["mutants"].items():
                    replaced += (key, int(index)) in verdicts or _take_out_listed(cells[key], key[0], int(index))
                    verdicts[(key, int(index))] = verdict
                continue
            cell = cells[key]
            cell.runs += row["runs"]
            cell.codes.update({int(k): n for k, n in row["codes"].items()})
            for name in ("signals", "tracebacks", "hangs", "over_rss", "nan_shown"):
                setattr(cell, name, getattr(cell, name) + row[name])
            cell.examples += row["examples"]
    for (key, index), verdict in sorted(verdicts.items()):
        cells[key].add(verdict, index)
    return headers, cells, replaced


_LISTED = re.compile(r": (?:(?P<hang>hang(?: \([^)]*\))?)|signal \S+|exit (?P<code>-?\d+): .*)$")


def _take_out_listed(cell: Cell, fmt: str, index: int) -> bool:
    """Remove mutant `index` from a count-only cell where its examples list it with a known outcome."""
    for example in cell.examples:
        if not example.startswith(f"{fmt}:{index} "):
            continue
        found = _LISTED.search(example)
        if found is None:  # NaN shown or RSS: the run's exit code is not in the example
            return False
        cell.runs -= 1
        if found["hang"]:
            cell.hangs -= 1
        elif found["code"] is not None:
            cell.codes[int(found["code"])] -= 1
            cell.codes += Counter()  # drop zero counts
            cell.tracebacks -= 1  # what made it an example: exit 1 or a traceback shown
        else:
            cell.signals -= 1
        cell.examples.remove(example)
        return True
    return False


def passed(cells: dict[tuple[str, str], Cell]) -> bool:
    return all(not (c.signals or c.codes.get(1) or c.tracebacks or c.hangs or c.nan_shown or c.over_rss)
               for c in cells.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mutants", type=int, default=500, help="mutants per format (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="first mutant index (to continue a campaign)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of " + ",".join(FORMATS))
    parser.add_argument("--commands", help="comma-separated subset of check,predict,convert,bench,run")
    parser.add_argument("--time-limit", type=float, default=300.0,
                        help="CPU seconds a run may use before it is a hang (or 10x this in wall seconds)")
    parser.add_argument("--rss-limit-mb", type=float, default=4096.0, help="peak RSS a run may reach")
    parser.add_argument("--minutes", type=float, help="stop after this long (the table says how many ran)")
    parser.add_argument("--recycle", type=int, default=100, help="fresh worker after this many mutants")
    parser.add_argument("--corpus", type=Path, default=REPO / "build" / "fuzz-corpus")
    parser.add_argument("--only", help="FORMAT:INDEX: replay one mutant")
    parser.add_argument("--save", type=Path, help="also write the table's cells as JSON (for --merge)")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                        help="print the sum of campaigns saved with --save (mutant ranges run side by side)")
    args = parser.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    if args.merge:
        headers, cells, replaced = merge_cells(args.merge)
        print("\n".join(f"part: {h}" for h in headers))
        if replaced:
            print(f"{replaced} verdict(s) of earlier parts replaced by a later part's run of the same mutant")
        print(table(cells))
        ok = passed(cells)
        print("bar (0 signals, 0 exit 1, 0 tracebacks, 0 hangs, 0 NaN, 0 over RSS):", "met" if ok else "MISSED")
        return 0 if ok else 1
    formats = [f for f in args.formats.split(",") if f]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown formats {unknown}; choose from {', '.join(FORMATS)}")
    only = None
    if args.only:
        fmt, _, index = args.only.partition(":")
        only = (fmt, int(index))
    corpus = build_corpus(args.corpus)
    started = time.time()
    done = {"last": None}
    version = code_version()

    def describe() -> str:
        reached = "" if done["last"] is None else f"{done['last']}"
        what = (f"replay of mutant {args.only}" if only else
                f"mutants {args.first}..{reached} (up to {args.mutants} per format)")
        return (f"edgex fuzz campaign: seed {args.seed}, {what}, code {version}, "
                f"{(time.time() - started) / 60:.1f} min on {this_machine()}")

    def checkpoint(cells, index) -> None:
        done["last"] = index
        if args.save:
            save_cells(cells, args.save, describe())

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    cells = campaign(corpus, formats, args.mutants, args.seed, args.time_limit, args.rss_limit_mb, args.minutes,
                     args.recycle, args.commands.split(",") if args.commands else None, only, first=args.first,
                     checkpoint=checkpoint, stop=lambda: bool(stopping))
    header = describe()
    print(header)
    if args.save:
        save_cells(cells, args.save, header)
    print(f"limits: {args.time_limit:.0f} CPU s per run (hang; or {HANG_WALL_FACTOR}x in wall s), "
          f"{args.rss_limit_mb:.0f} MB peak RSS")
    print(table(cells))
    ok = passed(cells)
    print("bar (0 signals, 0 exit 1, 0 tracebacks, 0 hangs, 0 NaN, 0 over RSS):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
