"""The public Python API, in NNCF's and litert-torch's style: one call, `precision` says what to build.

    artifacts = edgex.convert("m.keras", target="all", precision="int8", calib_data="images/")
    artifacts[0].path, artifacts[0].parity["agreement"], artifacts[0].predict(["photo.jpg"]).labels

Everything else is grouped in the typed options the CLI and `edgex run` use (edgex.options), so a
default is defined once: calibration=CalibrationOptions(...), preprocess=PreprocessOverrides(...),
parity=ParityOptions(...), budget=BudgetOptions(...).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from edgex.artifacts.artifact import Artifact
from edgex.conversion.build import run_convert
from edgex.conversion.request import ConvertRequest
from edgex.errors import ArgumentError, GateError, UsageError
from edgex.options import (
    CONVERT_OUTPUT,
    DEFAULT_THRESHOLDS,
    PRECISIONS,
    BudgetOptions,
    CalibrationOptions,
    ParityOptions,
    PreprocessOverrides,
    Thresholds,
)
from edgex.predict.model import load
from edgex.progress import Reporter

if TYPE_CHECKING:
    import torch

__all__ = ["Artifact", "convert", "load"]

# Keywords of the old API -> what to write now (a call that uses one gets this in its error).
_MOVED = {
    **{flag: f'use precision="{flag}"' for flag in ("int8", "fp16", "dynamic")},
    **{old: f"use calibration=edgex.CalibrationOptions({new}=...)" for old, new in
       (("calib_size", "size"), ("calib_method", "method"), ("seed", "seed"), ("skip_bad_images", "skip_bad_images"))},
    **{old: f"use parity=edgex.ParityOptions({new}=...)" for old, new in
       (("parity_data", "data"), ("min_agreement", "min_agreement"), ("min_cosine", "min_cosine"))},
    **{old: f"use preprocess=edgex.PreprocessOverrides({old}=...)" for old in
       ("interpolation", "input_size", "crop_fraction", "mean", "std")},
    **{old: f"use budget=edgex.BudgetOptions({new}=...)" for old, new in
       (("max_accuracy_drop", "max_accuracy_drop"), ("eval_data", "eval_data"),
        ("min_eval_agreement", "min_eval_agreement"), ("budget_trials", "max_trials"))},
}


def convert(
    model: str | Path | torch.nn.Module | None = None,
    target: str = "all",
    *,
    precision: str = "fp32",
    calib_data: str | Path | None = None,
    example_input: torch.Tensor | None = None,
    classes: list[str] | None = None,
    layout: str | None = None,
    output: str | Path = CONVERT_OUTPUT,
    trust_model: bool = False,
    progress: bool = True,
    calibration: CalibrationOptions | None = None,
    preprocess: PreprocessOverrides | None = None,
    parity: ParityOptions | None = None,
    budget: BudgetOptions | None = None,
    recipe: str | None = None,
    float_io: bool = False,
    reporter: Reporter | None = None,
    **removed,
) -> list[Artifact]:
    """Convert a model to verified artifacts under OUTPUT/<model>/<target>-<precision>/: one `Artifact` each.

    `model`: a Keras file or SavedModel folder, a PyTorch file (.safetensors/.pt with sidecar, .pt2 with
    trust_model), a `torch.nn.Module` with `example_input` (one (1, 3, H, W) batch), or None for the embedded
    kitchenware Xception. A module is saved as OUTPUT/<name>/<name>.pt2 (torch.export), the source its
    manifests name, so `edgex eval` can compare against it later.
    `target`: onnx, openvino, tflite or all. `precision`: fp32, fp16, dynamic or int8 (needs `calib_data`,
    a folder of a few hundred images). `classes`: names in output order, recorded in the manifests.
    `layout`: the artifacts' input layout, NHWC (default, what phone and Pi apps feed) or NCHW.
    `progress`: status lines and bars on stderr, as the CLI prints them (False: silent; `reporter` replaces them).
    int8 publishes the fastest recipe that passes parity (ONNX; the other targets the first that passes);
    `recipe` forces one.

    Raises an `edgex.errors.EdgexError` subclass on failure; `GateError.results` holds the Artifacts built.
    """
    if removed:
        name = next(iter(removed))
        raise ArgumentError(f"edgex.convert() got an unexpected keyword argument {name!r}",
                            (_MOVED[name] + " instead.") if name in _MOVED else "See help(edgex.convert).")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}", f"Use one of: {', '.join(PRECISIONS)}.")
    if recipe is not None and precision != "int8":
        raise UsageError("recipe= applies to precision='int8' only")
    calibration, parity = calibration or CalibrationOptions(), parity or ParityOptions()
    calib_data = _one_of("calib_data", calib_data, "calibration.data", calibration.data)
    overrides = _preprocess_overrides(preprocess or PreprocessOverrides(), layout)
    # A torch.nn.Module (with example_input) travels as a torch.export program edgex keeps beside the artifacts.
    from edgex.sources.module import module_as_program

    model, trust_model = module_as_program(model, example_input, trust_model, Path(output))
    request = ConvertRequest(
        model=Path(model) if model is not None else None,
        target=target,
        precision=precision,
        calib_data=Path(calib_data) if calib_data is not None else None,
        parity_data=Path(parity.data) if parity.data is not None else None,
        calib_size=calibration.size,
        seed=calibration.seed,
        calib_method=calibration.method,
        parity_size=calibration.parity_size,
        preprocess_overrides=overrides,
        output=Path(output),
        float_io=float_io,
        trust_model=trust_model,
        thresholds=_thresholds(precision, parity),
        classes=_class_names(classes),
        budget=_budget(precision, budget),
        skip_bad_images=calibration.skip_bad_images,
        recipe=recipe,
    )
    with _native_logs_silenced(reporter is None) as stderr:
        if reporter is None:
            reporter = _progress_reporter(stderr) if progress else Reporter()
        try:
            return [Artifact.from_result(result) for result in run_convert(request, reporter)]
        except GateError as error:
            error.results = [Artifact.from_result(r) for r in getattr(error, "results", [])]
            raise


@contextlib.contextmanager
def _native_logs_silenced(wanted: bool) -> Iterator[TextIO]:
    """As in the CLI: TensorFlow, litert-torch, LiteRT and NNCF log on file descriptors 1 and 2 whatever
    their log levels say, so while edgex works those go to /dev/null and edgex's own lines to a copy of
    stderr. Only where sys.stderr is that descriptor (a terminal, a file); a notebook's streams are not."""
    from edgex.commands.console import stdout_reserved

    try:
        real_fds = wanted and sys.stderr.fileno() == 2 and sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # a notebook's or a test's captured streams
        real_fds = False
    if not real_fds:
        yield sys.stderr
        return
    with stdout_reserved() as stdout:
        yield stdout.edgex_stderr


def _progress_reporter(stream: TextIO) -> Reporter:
    """The CLI's status lines and bars, on stderr (stdout stays the caller's)."""
    from edgex.progress import RichReporter

    return RichReporter(stream)


def _one_of(name: str, value, other_name: str, other):
    if value is not None and other is not None and str(value) != str(other):
        raise UsageError(f"{name}={value!r} and {other_name}={other!r} disagree", "Pass one of them.")
    return value if value is not None else other


def _preprocess_overrides(pre: PreprocessOverrides, layout: str | None) -> dict:
    """PreprocessOverrides (as the CLI and YAML spell them: N or (H, W), a number or three) -> Preprocess fields."""
    layout = _one_of("layout", layout, "preprocess.layout", pre.layout)
    if layout is not None and layout not in ("NHWC", "NCHW"):
        raise UsageError(f"unknown layout {layout!r}", "Use NHWC or NCHW.")
    out = {"interpolation": pre.interpolation, "crop_fraction": pre.crop_fraction, "layout": layout,
           "mean": _triple("mean", pre.mean), "std": _triple("std", pre.std)}
    if pre.input_size is not None:
        size = pre.input_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        out["height"], out["width"] = int(height), int(width)
    return {k: v for k, v in out.items() if v is not None}


def _triple(name: str, value) -> tuple[float, float, float] | None:
    if value is None:
        return None
    values = (value,) * 3 if isinstance(value, (int, float)) else tuple(value)
    if len(values) != 3:
        raise UsageError(f"preprocess {name} must be a number or three, not {value!r}")
    return tuple(float(v) for v in values)


def _class_names(classes) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, (str, Path)) or not all(isinstance(c, str) for c in classes):
        raise UsageError("classes= takes a list of class names in output order",
                         "Read a JSON file first: classes=json.load(open(path)).")
    return list(classes)


def _thresholds(precision: str, parity: ParityOptions) -> Thresholds | None:
    """The parity gate's thresholds: the precision's own, with what `parity` relaxes or tightens."""
    if parity.min_agreement is None and parity.min_cosine is None:
        return None
    base = DEFAULT_THRESHOLDS[precision]
    cosine = base.min_cosine if parity.min_cosine is None else parity.min_cosine
    return Thresholds(
        min_agreement=base.min_agreement if parity.min_agreement is None else parity.min_agreement,
        min_cosine=cosine,
        min_tail_cosine=min(base.min_tail_cosine, cosine),  # a relaxed mean relaxes the tail with it
    )


def _budget(precision: str, options: BudgetOptions | None):
    """The int8 accuracy budget (edgex.conversion.budget.Budget), or None when none was asked for."""
    if options is None or (options.max_accuracy_drop is None and options.min_eval_agreement is None):
        if options is not None and options.eval_data is not None:
            raise UsageError("--eval-data needs --max-accuracy-drop PP or --min-eval-agreement F")
        return None
    if precision != "int8":
        raise UsageError("an accuracy budget applies to --int8 only")
    if options.eval_data is None:
        raise UsageError("an accuracy budget needs --eval-data DIR (held-out images, labelled for "
                         "--max-accuracy-drop)")
    from edgex.conversion.budget import Budget

    return Budget(Path(options.eval_data), max_drop_pp=options.max_accuracy_drop,
                  min_agreement=options.min_eval_agreement, max_trials=options.max_trials)
