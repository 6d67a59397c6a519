"""The public Python API: small, like NNCF's `quantize(model, dataset)`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgex.conversion.build import ConvertRequest, run_convert
from edgex.errors import UsageError
from edgex.options import BUDGET, CALIBRATION, CONVERT_OUTPUT, PRECISIONS, Thresholds
from edgex.predict.model import load
from edgex.progress import Reporter
from edgex.sources.pytorch import module_as_program

if TYPE_CHECKING:
    import torch

__all__ = ["convert", "load"]


def convert(
    model: str | Path | torch.nn.Module | None = None,
    target: str = "all",
    *,
    precision: str | None = None,
    example_input: torch.Tensor | None = None,
    int8: bool = False,
    fp16: bool = False,
    dynamic: bool = False,
    calib_data: str | Path | None = None,
    parity_data: str | Path | None = None,
    calib_size: int = CALIBRATION.size,
    calib_method: str = CALIBRATION.method,
    seed: int = CALIBRATION.seed,
    output: str | Path = CONVERT_OUTPUT,
    interpolation: str | None = None,
    input_size: tuple[int, int] | None = None,
    crop_fraction: float | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    layout: str | None = None,
    float_io: bool = False,
    trust_model: bool = False,
    min_agreement: float | None = None,
    min_cosine: float | None = None,
    classes: list[str] | None = None,
    reporter: Reporter | None = None,
    max_accuracy_drop: float | None = None,
    eval_data: str | Path | None = None,
    min_eval_agreement: float | None = None,
    budget_trials: int | None = None,
    skip_bad_images: bool = CALIBRATION.skip_bad_images,
    recipe: str | None = None,
) -> list[dict]:
    """Convert a Keras Xception (None: the embedded kitchenware model) to verified artifacts.

    `model` may also be a PyTorch file (.safetensors/.pt with sidecar, .pt2 with trust_model) or a
    `torch.nn.Module` with `example_input`, one (1, 3, H, W) batch.

    `precision` is one of fp32 (default), fp16, dynamic, int8; the flags int8=/fp16=/dynamic=True say the
    same as the CLI does.

    int8 tries each target's recipes in order (`edgex.calibration.recipes`) and keeps the first that
    passes parity; `recipe` forces one by name.

    Returns one dict per artifact (target, precision, path, parity, size_bytes). Raises an
    `edgex.errors.EdgexError` subclass on failure; `GateError` carries `.results`.
    """
    precision = _precision(precision, int8=int8, fp16=fp16, dynamic=dynamic)
    overrides = {"interpolation": interpolation, "crop_fraction": crop_fraction, "layout": layout,
                 "mean": tuple(mean) if mean else None, "std": tuple(std) if std else None}
    if input_size is not None:
        overrides["height"], overrides["width"] = input_size
    thresholds = None
    if min_agreement is not None or min_cosine is not None:
        from edgex.options import DEFAULT_THRESHOLDS

        base = DEFAULT_THRESHOLDS[precision]
        cosine = base.min_cosine if min_cosine is None else min_cosine
        thresholds = Thresholds(
            min_agreement=base.min_agreement if min_agreement is None else min_agreement,
            min_cosine=cosine,
            min_tail_cosine=min(base.min_tail_cosine, cosine),  # a relaxed mean relaxes the tail with it
        )
    # A torch.nn.Module (with example_input) travels as a torch.export program edgex writes and loads back.
    model, trust_model, _program_dir = module_as_program(model, example_input, trust_model)
    request = ConvertRequest(
        model=Path(model) if model is not None else None,
        target=target,
        precision=precision,
        calib_data=Path(calib_data) if calib_data is not None else None,
        parity_data=Path(parity_data) if parity_data is not None else None,
        calib_size=calib_size,
        seed=seed,
        calib_method=calib_method,
        preprocess_overrides={k: v for k, v in overrides.items() if v is not None},
        output=Path(output),
        float_io=float_io,
        trust_model=trust_model,
        thresholds=thresholds,
        classes=classes,
        budget=_budget(precision == "int8", max_accuracy_drop, eval_data, min_eval_agreement, budget_trials),
        skip_bad_images=skip_bad_images,
        recipe=recipe,
    )
    if recipe is not None and precision != "int8":
        raise UsageError("--recipe applies to --int8 only")
    return run_convert(request, reporter)


def _precision(precision: str | None, **flags: bool) -> str:
    """One precision from `precision="int8"` or the CLI-style flags; two different ones are a usage error."""
    chosen = list(dict.fromkeys([*([precision] if precision is not None else []),
                                 *(name for name, on in flags.items() if on)]))
    if len(chosen) > 1:
        raise UsageError(f"choose one precision, not {' and '.join(chosen)}")
    if chosen and chosen[0] not in PRECISIONS:
        raise UsageError(f"unknown precision {chosen[0]!r}", f"Use one of: {', '.join(PRECISIONS)}.")
    return chosen[0] if chosen else "fp32"


def _budget(int8: bool, max_drop: float | None, eval_data, min_agreement: float | None, trials: int | None):
    """The int8 accuracy budget (edgex.conversion.budget.Budget), or None when none was asked for."""
    if max_drop is None and min_agreement is None:
        if eval_data is not None:
            raise UsageError("--eval-data needs --max-accuracy-drop PP or --min-eval-agreement F")
        return None
    if not int8:
        raise UsageError("an accuracy budget applies to --int8 only")
    if eval_data is None:
        raise UsageError("an accuracy budget needs --eval-data DIR (held-out images, labelled for "
                         "--max-accuracy-drop)")
    from edgex.conversion.budget import Budget

    return Budget(Path(eval_data), max_drop_pp=max_drop, min_agreement=min_agreement,
                  max_trials=BUDGET.max_trials if trials is None else trials)
