"""Types shared by every converter: what it is asked to build and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
