"""The convert pipeline: source -> calibration -> converter -> parity gate -> manifest -> atomic publish."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from edgex import __version__
from edgex.artifacts.publish import artifact_dir, describe_files, publish, staged
from edgex.calibration.dataset import CalibrationSet
from edgex.conversion.calibration_inputs import calibration_and_parity
from edgex.conversion.chooser import adopt, publish_fastest
from edgex.conversion.parity import break_for_test, compare, failures, timed_predict
from edgex.conversion.request import ConvertRequest
from edgex.conversion.timings import StepTimer, TreeSampler
from edgex.converters import TargetInfo, check_installed, load_converter, resolve_targets, targets_for_source
from edgex.converters.base import ConvertOptions
from edgex.errors import GateError, UsageError
from edgex.options import DEFAULT_THRESHOLDS, PRECISIONS, Thresholds
from edgex.progress import Reporter
from edgex.runtimes import open_runtime
from edgex.sources.load import Source, load_source
from edgex.telemetry import disable_vendor_telemetry
from edgex.versions import tool_versions


def run_convert(request: ConvertRequest, reporter: Reporter | None = None) -> list[dict]:
    """Build, verify and publish every requested artifact; raise GateError if any fails parity."""
    reporter = reporter or Reporter()
    disable_vendor_telemetry()  # before openvino/nncf load: no network, no fork from a threaded process
    if request.precision not in PRECISIONS:
        raise UsageError(f"unknown precision {request.precision!r}", f"Use one of: {', '.join(PRECISIONS)}.")
    targets = resolve_targets(request.target)
    for info in targets:
        if request.precision not in info.precisions:
            raise UsageError(f"{info.name} has no {request.precision} precision",
                             f"{info.name} builds: {', '.join(info.precisions)}.")
        check_installed(info)

    from edgex.artifacts.lock import output_lock
    from edgex.calibration.dataset import require_images

    for folder, flag in ((request.calib_data, "--calib-data"), (request.parity_data, "--parity-data")):
        if folder is not None:
            require_images(Path(folder), flag)  # before the (slow) model load
    with output_lock(request.output, command="edgex convert"):  # a second run into this folder gets 73
        return _convert_locked(request, targets, reporter)


def _convert_locked(request: ConvertRequest, targets: list[TargetInfo], reporter: Reporter) -> list[dict]:
    """Everything after the argument checks, run while holding the output folder's lock."""
    started = time.perf_counter()
    sampler = TreeSampler().start()  # the peak of edgex's and its children's summed RSS, for --timings
    try:
        return _convert_sampled(request, targets, reporter, started, StepTimer(sampler))
    finally:
        sampler.stop()


def _convert_sampled(request: ConvertRequest, targets: list[TargetInfo], reporter: Reporter, started: float,
                     timer: StepTimer) -> list[dict]:
    """Load, calibrate, build every target; each step's time and memory go to `timer`."""
    reporter.info(f"loading model {request.model or '(embedded default: kitchenware Xception)'}")
    source = load_source(request.model, trust_model=request.trust_model, classes=request.classes)
    overrides = {k: v for k, v in request.preprocess_overrides.items() if v is not None}
    if overrides:
        source.preprocess = source.preprocess.replace(
            **overrides, source={**source.preprocess.source, "overridden": sorted(overrides)})
    from edgex.safety.inputs import check_input_fits, model_input_shape, require_finite

    check_input_fits(model_input_shape(source), source.preprocess, source.path)
    load_s = time.perf_counter() - started
    timer.add("load source model", load_s)
    for note in source.load_notes:
        reporter.info(note)
    layout_note = source.model.layout_note(source.preprocess.layout) if source.framework == "torch" else ""
    reporter.info(f"input: {describe_input(source.preprocess)}{layout_note}; output: {source.output_kind}")
    for fields, line in source.assumed:
        if not any(name in request.preprocess_overrides for name in fields):
            reporter.info(f"[yellow]assumed {line}[/yellow]")
    targets, skipped = targets_for_source(targets, source, named=request.target != "all")
    for info, refusal in skipped:
        reporter.info(f"[yellow]{info.name} skipped: {refusal.one_line()}[/yellow]")
    if source.removed_layers:
        reporter.info("inference graph: bypassed " + ", ".join(f"{r['name']} ({r['type']})"
                                                             for r in source.removed_layers)
                      + ", identity at inference")
    if request.precision == "int8":
        _say_int8_outlook(reporter)
    try:
        if _needs_saved_model(targets, request, source):  # exported once, up front: every target converts from it
            with timer.step("export SavedModel (shared by every target)"):
                source.saved_model()
        with timer.step("pick calibration images, decode parity images"):
            calib, parity_inputs = calibration_and_parity(request, source)
        if parity_inputs[1].get("overlaps_calibration"):
            reporter.info(f"[yellow]note: the folder has too few images to hold any back: the parity check runs on "
                          f"{parity_inputs[1]['count']} of the calibration images (pass --parity-data DIR for "
                          "held-out ones)[/yellow]")
        skipped = parity_inputs[1].get("skipped_bad_images", [])
        if skipped:
            reporter.info(f"[yellow]skipped {len(skipped)} unreadable image(s) (--skip-bad-images): "
                          f"{', '.join(Path(s['file']).name for s in skipped[:5])}[/yellow]")
        with reporter.task("source model on parity images", len(parity_inputs[0])) as advance, \
                timer.step("source model on parity images"):
            reference, _ = timed_predict(source.predict, parity_inputs[0], advance)
        require_finite(reference, f"the output of source model {source.path} on the parity images",
                       "The model itself produces NaN/Inf (broken weights?); fix it before converting.")
        ahead = _start_ahead(targets, request, source)
        built = {info.name: _build_one(info, request, source, calib, parity_inputs, reference, reporter, load_s,
                                       timer)
                 for info in sorted(targets, key=lambda info: info.name in ahead)}  # started work last: overlap
        results = [built[info.name] for info in targets]
        for result in results:
            label = f"{result['target']}-{result['precision']}"
            result["timings"] = [s for s in timer.steps if s.get("artifact") in (None, label)]
    finally:
        source.close()
    failed = [r for r in results if r["status"] != "ok"]
    if failed:
        detail = "; ".join(f"{r['target']}-{r['precision']}: {r['error']}" for r in failed)
        error = GateError(f"parity gate failed for {detail}",
                          "Check the calibration images and preprocessing, or relax --min-agreement/--min-cosine.")
        error.results = results
        raise error
    _check_budgets(results)
    return results


def _needs_saved_model(targets: list[TargetInfo], request: ConvertRequest, source: Source) -> bool:
    """Whether a target converts from a SavedModel export of the source (not when ONNX alone reuses an earlier
    run's export: converters' `needs_saved_model`)."""
    if source.framework not in ("keras", "saved_model"):
        return False
    options = ConvertOptions(precision=request.precision)
    return any(getattr(load_converter(info), "needs_saved_model", lambda _source, _options: True)(source, options)
               for info in targets)


def _start_ahead(targets: list[TargetInfo], request: ConvertRequest, source: Source) -> set[str]:
    """Let converters with a slow child-process step start it now (their `prepare`); their names."""
    ahead = set()
    for info in targets:
        converter = load_converter(info)
        if hasattr(converter, "prepare") and len(targets) > 1:  # alone, there is nothing to overlap with
            converter.prepare(source, ConvertOptions(precision=request.precision))
            ahead.add(info.name)
    return ahead


def _say_int8_outlook(reporter: Reporter) -> None:
    """Up front, on a CPU without an int8 dot product: int8 keeps its accuracy here, not its usual speed-up."""
    import platform

    from edgex.isa import cpu_flags
    from edgex.runtimes.doctor import int8_outlook

    outlook = int8_outlook(platform.machine(), sorted(cpu_flags()))
    if outlook["int8_dot_product"] is False:
        reporter.info(f"[yellow]note: this CPU has {outlook['why']} (edgex doctor)[/yellow]")


def _check_budgets(results: list[dict]) -> None:
    """Exit 3 when an int8 artifact missed its accuracy budget (its best attempt is kept, renamed)."""
    missed = [r for r in results if r.get("budget") and not r["budget"]["met"]]
    if missed:
        detail = "; ".join(f"{r['target']}-{r['precision']}: {r['budget']['shortfall']}, best kept at {r['path']} "
                           f"with {len(r['budget']['keep_float'])} layer(s) in float" for r in missed)
        error = GateError(f"accuracy budget missed for {detail}",
                          "Use more calibration images, --calib-method mean_minmax, a larger budget or more trials.")
        error.results = results
        raise error


def describe_input(pre) -> str:
    """The inferred input contract as one line a user can check."""
    scaling = ("raw 0..255 pixels (the model scales them itself: " + ", ".join(pre.source.get("model_layers", []))
               + ")") if pre.mean == (0.0, 0.0, 0.0) and pre.std == (1.0, 1.0, 1.0) else (
        f"(x - {pre.mean[0]:g}) / {pre.std[0]:g}" if len(set(pre.mean)) == 1 and len(set(pre.std)) == 1
        else f"(x - {list(pre.mean)}) / {list(pre.std)}")
    crop = f", center crop {pre.crop_fraction:g}" if pre.crop_fraction else ""
    from edgex.preprocess import describe_origin

    origin = describe_origin(pre.source)
    return (f"{pre.channel_order} {pre.height}x{pre.width} {pre.layout}, {pre.interpolation} resize{crop}, {scaling}"
            + (f" ({origin})" if origin else ""))


def _recipes_to_try(info: TargetInfo, request: ConvertRequest, source: Source) -> list[str | None]:
    """int8: the `--recipe` name(s), else every candidate in order (fastest first); others: one build. With an
    accuracy budget, not OpenVINO's QDQ route: the layers it keeps in float are named in NNCF's graph."""
    if request.precision != "int8":
        return [None]
    from edgex.calibration.recipes import candidate_recipes, recipe_names

    qdq_first = _qdq_first(info, source)
    if request.recipe is not None:
        return recipe_names(info.name, request.recipe, qdq_first=qdq_first)
    return [r.name for r in candidate_recipes(info.name, request.calib_method, qdq_first=qdq_first)
            if request.budget is None or not r.from_onnx_qdq]


def _build_one(info: TargetInfo, request: ConvertRequest, source: Source, calib: CalibrationSet | None,
               parity_inputs, reference: np.ndarray, reporter: Reporter, load_s: float, timer: StepTimer) -> dict:
    """Build one artifact. int8: try the recipes in order; where the converter reuses its calibration across
    recipes every one is built, and of those that pass parity the fastest is published (edgex.conversion.chooser);
    elsewhere the first that passes is."""
    precision = request.precision
    destination = artifact_dir(request.output, source.name, info.name, precision)
    thresholds = request.thresholds or DEFAULT_THRESHOLDS[precision]
    result = {"target": info.name, "precision": precision, "path": str(destination),
              "skipped_bad_images": len(parity_inputs[1].get("skipped_bad_images", []))}
    recipes = _recipes_to_try(info, request, source)
    try_all = (len(recipes) > 1 and request.budget is None
               and getattr(load_converter(info), "RECIPES_SHARE_CALIBRATION", False))
    tries: list[dict] = []
    passed: list[tuple[dict, Path]] = []
    not_built: list[dict] = []
    with staged(destination) as staging:
        for recipe in recipes:
            why_not = _cannot_be_faster(info, request, source, recipe, passed) if try_all else None
            if why_not is not None:
                not_built.append({"recipe": recipe, "why": why_not})
                continue
            if tries and not passed:
                reporter.info(f"[yellow]{info.name} {precision}: recipe {tries[-1]['recipe']} failed parity "
                              f"({tries[-1]['error']}); trying {recipe}[/yellow]")
            folder = staging / f".try-{recipe}" if try_all else staging
            if try_all:
                folder.mkdir()
            elif tries:
                _empty(staging)
            built = _build_and_check(info, request, source, calib, parity_inputs, reference, reporter, load_s,
                                     folder, recipe, thresholds, timer)
            if recipe is not None:
                tries.append(built["try"])
            if built["passed"]:
                passed.append((built, folder))
                if not try_all:
                    break
            elif try_all:
                shutil.rmtree(folder)
        choice = None
        if passed:
            built, folder, choice = publish_fastest(info.name, passed, parity_inputs[0], tries, reporter, timer)
            if try_all:
                adopt(folder, staging)
        metrics, manifest, convert_s = built["metrics"], built["manifest"], built["convert_s"]
        if tries:
            manifest["quantization"] = {**(manifest["quantization"] or {}), "tries": tries,
                                        **({"not_built": not_built} if not_built else {}),
                                        **({"chosen_by": choice["chosen_by"]} if choice else {}),
                                        **verified_on()}
        if built["budget"] is not None:
            result["budget"] = built["budget"]
            if not built["budget"]["met"]:  # keep the best attempt, under a name nobody mistakes for a pass
                destination = destination.with_name(destination.name + "-budget-missed")
                result["path"] = str(destination)
        result.update(parity={k: metrics[k] for k in ("n", "agreement", "max_abs", "mean_abs", "cosine",
                                                      "p05_cosine")},
                      size_bytes=sum(f["bytes"] for f in manifest["files"]))
        if tries:
            result["recipe"], result["tries"] = built["try"]["recipe"], tries
        if not built["passed"]:
            problems = built["problems"]
            why = ", ".join(problems) if len(tries) < 2 else f"every recipe failed ({'; '.join(_tried(tries))})"
            result.update(status="failed", error=why, path=None)
            reporter.info(f"[red]✗ {info.name} {precision}: {why} (not written)[/red]")
            return result
        with timer.step("write manifest, publish", artifact=f"{info.name}-{precision}"):
            publish(staging, destination, manifest)
    result["status"] = "ok"
    recipe_note = f", recipe {built['try']['recipe']}" if tries else ""
    reporter.info(f"[green]✓[/green] {info.name} {precision}: {destination} "
                  f"(agreement {metrics['agree_count']}/{metrics['n']}, cosine {metrics['cosine']:.4f}"
                  f"{recipe_note}, {result['size_bytes'] / 1e6:.1f} MB, {convert_s:.0f} s)")
    return result


def _qdq_first(info: TargetInfo, source: Source) -> bool:
    """OpenVINO's list starts with the ONNX QDQ graph where the source's fp32 ONNX graph is made in-process."""
    from edgex.converters.onnx import cheap_float_export

    return info.name == "openvino" and cheap_float_export(source)


def _cannot_be_faster(info: TargetInfo, request: ConvertRequest, source: Source, recipe: str | None,
                      passed: list[tuple[dict, Path]]) -> str | None:
    """Why building `recipe` could not publish anything faster than the recipes that passed, or None. Only for the
    default list: recipes named with `--recipe` are all built."""
    if recipe is None or not passed or request.recipe is not None:
        return None
    from edgex.calibration.recipes import recipe_named

    qdq_first = _qdq_first(info, source)

    def named(name: str):
        return recipe_named(info.name, name, request.calib_method, qdq_first=qdq_first)

    candidate = named(recipe)
    if candidate.fallback:
        return "a fallback, built only when the recipes before it fail parity (its kernels are slower here)"
    twin = next((b["try"]["recipe"] for b, _ in passed if named(b["try"]["recipe"]).kernels == candidate.kernels), None)
    return f"runs the same kernels as {twin}, which passed parity" if twin else None


def _tried(tries: list[dict]) -> list[str]:
    return [f"{t['recipe']}: {t['error']}" for t in tries]


def _empty(folder: Path) -> None:
    """Remove what a failed recipe left in the staging folder (the folder itself stays)."""
    for child in folder.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def verified_on() -> dict:
    """The CPU class the parity gate ran on: the recipe is verified there, and safe where `safe_isa` says."""
    import platform

    from edgex.isa import isa_class

    return {"verified_isa": isa_class(), "verified_machine": platform.machine().lower()}


def _build_and_check(info: TargetInfo, request: ConvertRequest, source: Source, calib: CalibrationSet | None,
                     parity_inputs, reference: np.ndarray, reporter: Reporter, load_s: float, staging: Path,
                     recipe: str | None, thresholds: Thresholds, timer: StepTimer) -> dict:
    """Convert with one recipe into `staging`, run the parity check in the real runtime, draft the manifest."""
    precision = request.precision
    converter = load_converter(info)
    options = ConvertOptions(precision=precision, range_estimator=request.calib_method,
                             float_io=request.float_io, recipe=recipe)
    converter.check_options(source, options, keep_float=request.budget is not None)  # before the slow build
    started = time.perf_counter()
    steps = len(calib) if calib is not None else None
    label = f"{info.name} {precision}" + (f" ({recipe})" if recipe else "")
    with reporter.task(f"{label}: converting", steps) as advance:
        files = converter.convert(source, staging, options, calib, progress=advance)
    budget_report = None
    if request.budget is not None and precision == "int8":
        from edgex.conversion.budget import enforce

        files, budget_report = enforce(request.budget, info, converter, source, staging, options, calib, files,
                                       reporter, request.threads)
    convert_s = time.perf_counter() - started
    artifact = f"{info.name}-{precision}"
    ended = started  # the converter's steps ran one after another from `started` (CPU read off that window)
    for step, seconds in files.timings_s.items():
        background = "background" in step
        ended += 0 if background else seconds
        timer.add(step + (f" ({recipe})" if recipe else ""), seconds, artifact=artifact,
                  ended=ended, cpu=not background)
    if budget_report is not None:
        own = sum(v for k, v in files.timings_s.items() if "background" not in k)
        timer.add("accuracy budget trials", convert_s - own, artifact=artifact)
    started = time.perf_counter()
    with reporter.task(f"{label}: parity check", len(parity_inputs[0])) as advance, \
            timer.step("parity check" + (f" ({recipe})" if recipe else ""), artifact=artifact):
        runtime = open_runtime(info.runtime, files.model, precision, request.threads)
        candidate, latency_ms = timed_predict(runtime.run, parity_inputs[0], advance)
    candidate = break_for_test(info.name, recipe, candidate)
    metrics = compare(reference, candidate, source.output_kind)
    parity = {**metrics, "inputs": parity_inputs[1], "thresholds": thresholds.to_dict(), "runtime": runtime.info}
    problems = failures(metrics, thresholds)
    parity["passed"] = not problems
    manifest = {
        "edgex_version": __version__,
        "source": source.describe(),
        "target": info.name,
        "precision": precision,
        "model_file": files.model.name,
        "files": describe_files(files.files, staging),
        "inputs": [{**i, "layout": source.preprocess.layout} for i in files.inputs],
        "outputs": files.outputs,
        "output_kind": source.output_kind,
        "inference_graph": {"removed": source.removed_layers},
        "classes": source.classes,
        "preprocess": source.preprocess.to_dict(),
        "calibration": calib.describe() if calib is not None else None,
        "quantization": files.recipe,
        "parity": parity,
        "accuracy_budget": budget_report,
        "versions": tool_versions(),
        "timings_s": {"load_source": round(load_s, 3), **{k: round(v, 3) for k, v in files.timings_s.items()},
                      "convert_total": round(convert_s, 3),
                      "parity": round(time.perf_counter() - started, 3)},
    }
    attempt = {"recipe": recipe, "passed": not problems, "error": ", ".join(problems) or None,
               **{k: metrics[k] for k in ("n", "agreement", "cosine", "p05_cosine")},
               "latency_ms_p50": latency_ms, "convert_s": round(convert_s, 3)}
    return {"passed": not problems, "problems": problems, "metrics": metrics, "manifest": manifest,
            "convert_s": convert_s, "budget": budget_report, "try": attempt, "run": runtime.run}
