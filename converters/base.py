"""The converter contract: what every converter is asked to build, what it hands back, what it offers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from edgex.calibration.dataset import CalibrationSet
    from edgex.calibration.recipes import Recipe

    from edgex.sources.load import Source

from edgex.options import CALIBRATION


@dataclass(frozen=True)
class ConvertOptions:
    precision: str = "fp32"
    range_estimator: str = CALIBRATION.method
    float_io: bool = False
    opset: int = 17
    recipe: str | None = None  # int8: a name from calibration.recipes (None: the target's first candidate)


@dataclass
class ArtifactFiles:
    """What a converter wrote into the staging folder.

    `model` is the file a runtime opens; `files` all files of the artifact; `io` describes
    inputs and outputs (name, shape, dtype, quantization) as the artifact stores them.
    """

    model: Path
    files: list[Path]
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    recipe: dict | None = None
    timings_s: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Converter(Protocol):
    """What `load_converter` returns for every target (each converter module implements it).

    The source's framework (Keras or PyTorch) is the converter's business: the pipeline asks the same three
    questions of every one. `keep_float` names ops the int8 quantizer leaves in float (the accuracy budget).
    Optional: `prepare(source, options)`, called before any target is built, starts a slow step in the
    background with `source.start` (ONNX: tf2onnx in child processes) so it overlaps the other targets;
    `source_refusal(source)`, a UsageError (or None) saying why this target cannot start from that kind of
    source at all (TFLite from an ONNX file): --target all skips it with that line, a named target exits 2.
    """

    def check_options(self, source: Source, options: ConvertOptions, keep_float: bool = False) -> None:
        """Refuse (UsageError) what this target cannot honour for this source, before any slow work."""

    def quantize_recipe(self, source: Source, options: ConvertOptions) -> Recipe | None:
        """The quantize hook: the recipe an int8 build applies and records (None for float builds)."""

    def convert(self, source: Source, staging: Path, options: ConvertOptions, calib: CalibrationSet | None,
                progress: Callable[[], None] | None = None, keep_float: tuple[str, ...] = ()) -> ArtifactFiles:
        """Build the artifact's files into `staging`."""

    def describe(self, path: Path) -> tuple[list[dict], list[dict]]:
        """Inputs and outputs (name, shape, dtype, quantization) as the built artifact stores them."""
