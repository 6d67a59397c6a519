"""What `edgex convert` is asked to do, in one typed record shared by the CLI, the API and the pipeline steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgex.options import CALIBRATION, CONVERT_OUTPUT, Thresholds


@dataclass
class ConvertRequest:
    """Everything `edgex convert` was asked to do (CLI flags and API arguments alike)."""

    model: Path | None = None
    target: str = "all"
    precision: str = "fp32"
    calib_data: Path | None = None
    parity_data: Path | None = None
    calib_size: int = CALIBRATION.size
    seed: int = CALIBRATION.seed
    calib_method: str = CALIBRATION.method
    preprocess_overrides: dict = field(default_factory=dict)
    output: Path = Path(CONVERT_OUTPUT)
    float_io: bool = False
    trust_model: bool = False
    thresholds: Thresholds | None = None
    parity_size: int = CALIBRATION.parity_size
    threads: int | None = None
    classes: list[str] | None = None
    budget: object | None = None  # edgex.conversion.budget.Budget: accuracy budget for int8 (layers kept in float)
    skip_bad_images: bool = CALIBRATION.skip_bad_images
    recipe: str | None = None  # int8: force one recipe by name, or "A,B": those (default: the target's list)
