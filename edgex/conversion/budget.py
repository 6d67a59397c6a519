"""Accuracy budget: keep the fewest, most harmful layers in float until int8 meets the budget.

The int8 artifact is scored on evaluation images against the float source: top-1 drop in
percentage points when the images are labelled (folder per class), otherwise top-1 agreement
with the source. When the budget is missed, the layers are ranked by what quantizing each one
alone costs at the output (edgex.diagnose), and the converter is re-run with the top 1, 2, 4, ...
layers left in float (ONNX nodes_to_exclude, NNCF IgnoredScope, TFLite denylisted nodes) until
the budget is met or the trials run out; the best artifact reached is kept either way.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgex.errors import MissingInputError, UsageError
from edgex.options import BUDGET

RANK_SAMPLES = 4


@dataclass
class Budget:
    """`max_drop_pp`: allowed top-1 drop (labelled data); `min_agreement`: agreement floor (any data)."""

    eval_data: Path
    max_drop_pp: float | None = None
    min_agreement: float | None = None
    max_trials: int = BUDGET.max_trials
    _eval: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.max_drop_pp is None and self.min_agreement is None:
            raise UsageError("an accuracy budget needs --max-accuracy-drop PP or --min-eval-agreement F")
        if self.max_drop_pp is not None and self.max_drop_pp < 0:
            raise UsageError(f"--max-accuracy-drop must be >= 0, got {self.max_drop_pp}")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
            raise UsageError(f"--min-eval-agreement must be in [0, 1], got {self.min_agreement}")

    def prepare(self, source) -> None:
        """Load the evaluation images once and score the float source on them."""
        if self._eval:
            return
        from edgex.evaluation.labelled import labelled_folder
        from edgex.preprocess import find_images

        root = Path(self.eval_data)
        if not root.is_dir():
            raise MissingInputError(f"evaluation folder {root} does not exist", "Pass --eval-data DIR.")
        labels = None
        folders = sorted(p.name for p in root.iterdir() if p.is_dir())
        if folders and set(folders) <= set(source.classes or []):
            files, labels, _ = labelled_folder(root, source.classes)
        else:
            files = find_images(root)
        if not files:
            raise MissingInputError(f"no images under {root}", "Point --eval-data at images.")
        if self.max_drop_pp is not None and labels is None:
            raise UsageError(f"--max-accuracy-drop needs labelled images (a folder per class) in {root}",
                             "Use --min-eval-agreement for unlabelled images.")
        inputs = [source.preprocess.load(p) for p in files]
        logits = np.concatenate([source.predict(x[None]) for x in inputs])
        self._eval.update(inputs=inputs, labels=labels, reference=np.argmax(logits, axis=1))
        if labels is not None:
            self._eval["float_top1"] = float(np.mean(self._eval["reference"] == labels))

    def score(self, run) -> dict:
        """Top-1 (and its drop) and agreement of a candidate `run(batch) -> logits`."""
        predicted = np.asarray([_top1(run(x[None])) for x in self._eval["inputs"]])
        out = {"n": len(predicted), "agreement": round(float(np.mean(predicted == self._eval["reference"])), 4)}
        if self._eval["labels"] is not None:
            top1 = float(np.mean(predicted == self._eval["labels"]))
            out.update(top1=round(top1, 4), float_top1=round(self._eval["float_top1"], 4),
                       drop_pp=round(100 * (self._eval["float_top1"] - top1), 2))
        return out

    def met(self, score: dict) -> bool:
        ok = True
        if self.max_drop_pp is not None:
            ok &= score["drop_pp"] <= self.max_drop_pp + 1e-9
        if self.min_agreement is not None:
            ok &= score["agreement"] >= self.min_agreement - 1e-9
        return ok

    def shortfall(self, score: dict) -> str:
        """How far a score is from the budget, in the budget's own unit."""
        parts = []
        if self.max_drop_pp is not None and score["drop_pp"] > self.max_drop_pp:
            parts.append(f"top-1 drop {score['drop_pp']:.2f} pp > {self.max_drop_pp:g} pp "
                         f"(missed by {score['drop_pp'] - self.max_drop_pp:.2f} pp)")
        if self.min_agreement is not None and score["agreement"] < self.min_agreement:
            parts.append(f"agreement {score['agreement']:.4f} < {self.min_agreement:g} "
                         f"(missed by {self.min_agreement - score['agreement']:.4f})")
        return "; ".join(parts)

    def describe(self) -> dict:
        return {"eval_data": str(self.eval_data), "max_accuracy_drop_pp": self.max_drop_pp,
                "min_agreement": self.min_agreement, "max_trials": self.max_trials}


def _latency_ms(run, sample: np.ndarray, repeats: int = 10) -> float:
    run(sample[None])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(sample[None])
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


def _open(info, model: Path, threads: int | None):
    from edgex.runtimes import open_runtime

    return open_runtime(info.runtime, model, "int8", threads)


def enforce(budget: Budget, info, converter, source, staging: Path, options, calib, files, reporter,
            threads: int | None = None):
    """Return (files, report): `files` possibly rebuilt with layers left in float, moved into `staging`."""
    budget.prepare(source)
    sample = budget._eval["inputs"][0]  # same module family
    runtime = _open(info, files.model, threads)
    base = budget.score(runtime.run)
    base_latency = _latency_ms(runtime.run, sample)
    del runtime
    report = {**budget.describe(), "int8": {**base, "latency_ms": base_latency}, "trials": [], "keep_float": [],
              "met": budget.met(base)}
    reporter.info(f"{info.name} int8 on {base['n']} eval images: " + _describe_score(base))
    if report["met"]:
        report["result"] = report["int8"]
        return files, report
    ranking = _rank(info.name, converter, source, options, files, calib)
    report["ranked_layers"] = [r["layer"] for r in ranking[:20]]
    best = (base, files, [], base_latency, [])
    failed, passed, k, trials_left = 0, None, 1, budget.max_trials
    work = Path(tempfile.mkdtemp(prefix="edgex-budget-"))
    try:
        while trials_left > 0 and ranking:
            if passed is None:
                size = min(k, len(ranking))
            elif passed - failed > 1:
                size = (failed + passed) // 2  # bisect towards the fewest layers that still meet it
            else:
                break
            trials_left -= 1
            keep = list(dict.fromkeys(n for row in ranking[:size] for n in row["keep_float"]))
            trial_dir = work / f"keep{size}"
            trial_dir.mkdir()
            reporter.info(f"{info.name} int8: re-quantizing with the {size} most harmful layer(s) in float")
            trial_files = converter.convert(source, trial_dir, options, calib, keep_float=tuple(keep))
            runtime = _open(info, trial_files.model, threads)
            score = budget.score(runtime.run)
            latency = _latency_ms(runtime.run, sample)
            del runtime
            layers = [r["layer"] for r in ranking[:size]]
            met = budget.met(score)
            report["trials"].append({"layers_in_float": size, "layers": layers, **score, "latency_ms": latency,
                                     "met": met})
            reporter.info(f"  {size} layer(s) in float: " + _describe_score(score))
            if met:
                passed = size
                best = (score, trial_files, layers, latency, keep)
            else:
                failed = size
                if passed is None and _better(score, best[0]):
                    best = (score, trial_files, layers, latency, keep)
                if passed is None and size == len(ranking):
                    break
                k = size * 2
        score, chosen, layers, latency, keep = best
        from edgex.diagnose.names import keras_layers, primary_layer

        known = keras_layers(getattr(source, "path", None))
        report.update(met=budget.met(score), keep_float=layers, keep_float_nodes=keep,
                      keep_float_keras=[primary_layer(name, known) for name in layers] if known else None,
                      result={**score, "latency_ms": latency},
                      latency_cost_ms=round(latency - base_latency, 2))
        if not report["met"]:
            report["shortfall"] = budget.shortfall(score)
        if chosen is not files:
            files = _move_into(chosen, staging)
            files.recipe = {**(files.recipe or {}), "keep_float": layers}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return files, report


def _better(a: dict, b: dict) -> bool:
    if "top1" in a and "top1" in b:
        return (a["top1"], a["agreement"]) > (b["top1"], b["agreement"])
    return a["agreement"] > b["agreement"]


def _rank(target: str, converter, source, options, files, calib) -> list[dict]:
    """Layers of the candidate int8 model, most harmful first (edgex.diagnose on calibration images)."""
    from edgex.converters.base import ConvertOptions
    from edgex.diagnose.run import analyse_model, ranked_layers

    images = []
    for sample in calib.samples():
        images.append(sample)
        if len(images) >= RANK_SAMPLES:
            break
    with tempfile.TemporaryDirectory(prefix="edgex-rank-") as tmp:
        fp32 = None
        if target == "tflite":
            fp32_options = ConvertOptions(precision="fp32", float_io=options.float_io)
            fp32 = converter.convert(source, Path(tmp), fp32_options, None).model
        raw = analyse_model(target, files.model, images, True, fp32)
    return [r for r in ranked_layers(raw) if r["keep_float"]]


def _move_into(files, staging: Path):
    """Replace the staging folder's model files by a trial's."""
    from dataclasses import replace

    moved = []
    for path in files.files:
        target = staging / path.name
        if target.exists():
            target.unlink()
        shutil.move(str(path), target)
        moved.append(target)
    return replace(files, model=staging / files.model.name, files=moved)


def _describe_score(score: dict) -> str:
    text = f"agreement with float {score['agreement']:.4f}"
    if "top1" in score:
        text = f"top-1 {score['top1']:.4f} (float {score['float_top1']:.4f}, drop {score['drop_pp']:.2f} pp), " + text
    return text


def _top1(outputs: np.ndarray) -> int:
    """The predicted class, -1 (wrong for every label) when the outputs are NaN/Inf: not a prediction."""
    from edgex.predict.standalone import nonfinite_reason

    return -1 if nonfinite_reason(outputs) is not None else int(np.argmax(outputs))
