"""Benchmark and evaluate a set of artifacts: one clean child process each, then one report dict.

Artifacts are timed one after another, each in its own block of runs (alternating models run by run
would thrash the L3 cache). Evaluation images are preprocessed once per preprocessing spec and handed
to the runner as a .npy batch; the FP32 source's logits are computed once per run.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgex.bench.artifacts import ArtifactRef, find_artifacts
from edgex.bench.child import run_child
from edgex.evaluation.dataset import LabelledImages, load_labelled, preprocess_images
from edgex.evaluation.metrics import accuracy, versus_reference
from edgex.evaluation.reference import SourceReference
from edgex.options import BenchSettings
from edgex.predict.standalone import nonfinite_reason
from edgex.preprocess import Preprocess
from edgex.progress import Reporter
from edgex.report.schema import LATENCY_FIELDS, result_row


class _EvalInputs:
    """Preprocessed evaluation batches, one per preprocessing spec, kept in memory and as .npy for the runner."""

    def __init__(self, data: LabelledImages, folder: Path, reporter: Reporter, preprocessor=preprocess_images):
        self.data, self.folder, self.reporter, self.preprocessor = data, folder, reporter, preprocessor
        self._cache: dict[str, tuple[Path, np.ndarray]] = {}

    def get(self, preprocess: Preprocess) -> tuple[str, Path, np.ndarray]:
        key = preprocess.to_json()
        if key not in self._cache:
            with self.reporter.task(f"preprocessing {len(self.data.files)} images "
                                    f"({preprocess.height}x{preprocess.width}, {preprocess.interpolation})",
                                    len(self.data.files)) as advance:
                inputs = self.preprocessor(self.data.files, preprocess, advance)
            path = self.folder / f"inputs-{len(self._cache)}.npy"
            np.save(path, inputs)
            self._cache[key] = (path, inputs)
        return (key, *self._cache[key])


def run_suite(paths: list[Path], settings: BenchSettings, eval_data: Path | None = None,
              source: Path | None = None, use_source: bool = True, reporter: Reporter | None = None,
              runner: Callable[..., dict] | None = None, cpu: dict | None = None,
              preprocessor: Callable[..., np.ndarray] = preprocess_images, trust_source: bool = False) -> dict:
    """Measure every artifact under `paths`; returns the report (see edgex.report.schema).

    `runner` has run_child's signature and answers with the runner protocol's JSON (edgex.remote passes
    one that runs runner.py on a device); default: a local child process. `cpu`: the runner probe of the
    machine that runs the artifacts (default: this one), for the int8 portability warning. `preprocessor`
    has preprocess_images' signature (edgex.scale.ray_eval passes one that preprocesses on a Ray cluster).
    `trust_source`: load the FP32 source even in a format that can run code (.pt2, .h5, SavedModel).
    """
    from edgex.isa import isa_class
    from edgex.report.schema import build_report

    reporter = reporter or Reporter()
    runner = runner or run_child
    running_on = isa_class(cpu.get("isa") or [], cpu.get("machine")) if cpu else isa_class()
    refs = _unique_names(find_artifacts(paths))
    data = None
    if eval_data is not None:
        named = next((r for r in refs if r.manifest and r.manifest.get("classes")), None)
        data = load_labelled(Path(eval_data), named.manifest["classes"] if named else None)
        data.classes_from = f"the manifest of {named.name}" if named else (
            f"{data.classes_from}: no artifact's manifest names its classes (edgex convert --classes FILE, or "
            "classes= in Python, records them)")
        reporter.info(f"evaluation data: {len(data.files)} images, {len(data.classes)} classes ({data.kind}); "
                      f"class names from {data.classes_from}")
    reference = SourceReference(source, enabled=use_source, reporter=reporter, trust_model=trust_source)
    said: set[str] = set()
    references: dict[str, dict] = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgex-bench-") as tmp:
        cache = _EvalInputs(data, Path(tmp), reporter, preprocessor) if data is not None else None
        for number, ref in enumerate(refs, 1):
            reporter.info(f"[{number}/{len(refs)}] {ref.name}: {ref.folder}")
            row = _measure(ref, settings, cache, reference, references, Path(tmp), runner, reporter)
            _warn_if_unverified(row, ref, running_on, reporter)
            if use_source and row.get("vs_source_note") and row["vs_source_note"] not in said:
                said.add(row["vs_source_note"])  # "–" in the table's vs-FP32 columns, and here why
                reporter.info(f"[yellow]! {ref.name}: no comparison with the FP32 source: "
                              f"{row['vs_source_note']}[/yellow]")
            rows.append(row)
            if row["status"] == "ok":
                top1 = (row.get("accuracy") or {}).get("top1")
                latency = (row.get("latency_ms") or {}).get("p50")
                reporter.info(f"[green]✓[/green] {ref.name}: "
                              + (f"p50 {latency:.1f} ms " if latency is not None else "")
                              + (f"top-1 {top1:.4f}" if top1 is not None else ""))
            else:
                reporter.info(f"[red]✗ {ref.name}: {row['error']}[/red]")
    report = build_report(rows, settings, data.describe() if data is not None else None, list(references.values()))
    if settings.floor:
        report["floor"] = _floor(rows, settings, reporter)
    return report


def _floor(rows: list[dict], settings: BenchSettings, reporter: Reporter) -> dict:
    """The machine's floor at the threads the rows ran with, and each row's p50 over it."""
    from edgex.bench.floor import annotate, floor_in_child
    from edgex.runtimes import usable_cores

    threads = settings.threads or usable_cores()
    with reporter.task(f"floor: Xception-shaped convolutions in f32 and int8, {threads} threads"):
        floor = floor_in_child(threads, settings.timeout_s)
    if "error" in floor:
        reporter.info(f"[yellow]no floor: {floor['error']}[/yellow]")
        return floor
    annotate(rows, floor)
    rates = ", ".join(f"{kind} {rate:.0f} GMAC/s" for kind, rate in floor["gmac_per_s"].items() if rate)
    reporter.info(f"floor on this machine ({threads} threads): {rates}")
    return floor


def _warn_if_unverified(row: dict, ref: ArtifactRef, running_on: str, reporter: Reporter) -> None:
    from edgex.isa import portability_warning

    warning = portability_warning(ref.manifest, running_on)
    if warning:
        row.setdefault("warnings", []).append(warning)
        reporter.info(f"[yellow]! {ref.name}: {warning}[/yellow]")


def _unique_names(refs: list[ArtifactRef]) -> list[ArtifactRef]:
    names = [r.name for r in refs]
    for ref in refs:
        if names.count(ref.name) > 1:
            ref.name = f"{ref.folder.parent.name}/{ref.name}"
    return refs


def _base_row(ref: ArtifactRef) -> dict:
    size = None
    with contextlib.suppress(OSError):
        size = ref.size_bytes
    return result_row(ref.name, ref.target, ref.precision, path=str(ref.folder), model_file=ref.model_file.name,
                      size_bytes=size, source=(ref.manifest or {}).get("source"))


def _fail(row: dict, kind: str, error: str, hint: str | None = None) -> dict:
    row.update(status="failed", kind=kind, error=error, hint=hint)
    return row


def reference_row(source_path: Path, manifest: dict, accuracy: dict) -> dict:
    """The FP32 source's row: its target is the source's framework (keras, saved_model or torch)."""
    source = manifest.get("source") or {}
    return {"name": "source-fp32", "target": source.get("framework") or "source", "precision": "fp32",
            "path": str(source_path), "sha256": source.get("sha256"), "accuracy": accuracy}


def _measure(ref: ArtifactRef, settings: BenchSettings, cache: _EvalInputs | None, reference: SourceReference,
             references: dict[str, dict], tmp: Path, runner: Callable[..., dict], reporter: Reporter) -> dict:
    row = _base_row(ref)
    if ref.problem:
        return _fail(row, ref.problem_kind, ref.problem)
    inputs = None
    if cache is not None:
        if not ref.manifest or not ref.manifest.get("preprocess"):
            row["accuracy_note"] = "no manifest with preprocessing: accuracy not measured"
        elif ref.manifest.get("classes") and list(ref.manifest["classes"]) != cache.data.classes:
            row["accuracy_note"] = f"classes {ref.manifest['classes']} differ from the evaluation classes"
        else:
            inputs = cache.get(Preprocess.from_dict(ref.manifest["preprocess"]))
    outputs = tmp / f"outputs-{ref.name.replace('/', '_')}.npy"
    doing = " and ".join(w for w, on in (("timing", settings.latency), ("evaluating", inputs)) if on) or "loading"
    with reporter.task(f"{ref.name}: {doing} in a child process"):
        answer = runner(ref.model_file, ref.runtime, ref.precision, settings,
                        inputs[1] if inputs else None, outputs if inputs else None)
    if getattr(settings, "device", "cpu") == "gpu":
        from edgex.runtimes.gpu import check_gpu_answer, int8_on_cuda_note

        answer = check_gpu_answer(answer)  # onnxruntime falls back to the CPU without a word
        note = int8_on_cuda_note(answer, ref.precision)
        if note:
            row.setdefault("warnings", []).append(note)
            reporter.info(f"[yellow]! {ref.name}: {note}[/yellow]")
    if not answer.get("ok"):
        return _fail(row, answer.get("kind", "crashed"), answer.get("error", "unknown error"), answer.get("hint"))
    row["runtime"] = answer["runtime"]
    if settings.latency:
        row.update({k: answer.get(k) for k in LATENCY_FIELDS})
    if inputs is not None:
        key, _, batch = inputs
        logits = np.load(outputs)
        problem = _nonfinite_images(logits, cache.data.files)
        if problem:  # no accuracy from NaN: argmax of a NaN row is class 0
            return _fail(row, "nonfinite_output", problem,
                         "The artifact's weights or arithmetic are broken: rebuild it with edgex convert.")
        labels, classes = cache.data.labels, cache.data.classes
        row["accuracy"] = accuracy(logits, labels, classes)
        row["predictions"] = dict(zip(cache.data.image_keys(), map(int, logits.argmax(axis=1)), strict=True))
        source_path, why = reference.locate(ref.manifest)
        source_logits = None
        if source_path is not None:
            source_logits, why = reference.logits_or_why(source_path, batch, key)
        if source_logits is not None and nonfinite_reason(source_logits):
            source_logits, why = None, f"the FP32 source {source_path.name}: {nonfinite_reason(source_logits)}"
        if source_logits is None:
            row["vs_source_note"] = why
        else:
            row["vs_source"] = versus_reference(source_logits, logits, labels)
            references.setdefault(str(source_path), reference_row(source_path, ref.manifest,
                                                                  accuracy(source_logits, labels, classes)))
    return row


def _nonfinite_images(logits: np.ndarray, files: list[Path]) -> str | None:
    """The failed row's reason when some evaluation images got NaN/Inf outputs (the shared nonfinite_reason)."""
    rows = np.asarray(logits).reshape(len(logits), -1)
    bad = [i for i, row in enumerate(rows) if nonfinite_reason(row) is not None]
    if not bad:
        return None
    return (f"{nonfinite_reason(rows[bad])} on {len(bad)} of {len(rows)} evaluation images "
            f"(first: {Path(files[bad[0]]).name}); no accuracy computed")
