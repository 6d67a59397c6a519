"""Every user-facing option and its default, defined once.

argparse (`edgex convert/bench/port`), the YAML schema of `edgex run`, `edgex.api.convert` and the bench
runner's settings all read their defaults from these dataclasses, so a default changes in one place. A
field's `metadata` says how the YAML config spells it (`yaml`: another key, or None for no key) and, where
its Python type says too little, how a YAML value is checked (`check`: predicate and description).

A leaf module: standard library only, nothing from edgex, so anything may import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
RANGE_ESTIMATORS = ("mean_minmax", "minmax")
XCEPTION_INPUT_SIZE = 299  # a source whose input size is free (ONNX with dynamic H, W) gets Xception's


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return _is_int(v) or isinstance(v, float)


def _is_names(v) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))


def _is_size(v) -> bool:
    return _is_int(v) or (isinstance(v, list) and len(v) == 2 and all(map(_is_int, v)))


def _is_triple(v) -> bool:
    return _is_number(v) or (isinstance(v, list) and len(v) == 3 and all(map(_is_number, v)))


STR = (lambda v: isinstance(v, str), "a string")
BOOL = (lambda v: isinstance(v, bool), "true or false")
INT = (_is_int, "an integer")
NUMBER = (_is_number, "a number")
NAMES = (_is_names, "a name or a list of names")
STR_LIST = (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of class names")
# A field's annotation (a string under `from __future__ import annotations`) -> its YAML check.
_CHECKS = {"str": STR, "bool": BOOL, "int": INT, "float": NUMBER}


def _yaml(key: str | None = "", check: tuple | None = None) -> dict:
    """Field metadata: the YAML key ("" = the field's name, None = not in the YAML config) and its check."""
    return {"yaml": key, "check": check}


@dataclass(frozen=True)
class CalibrationOptions:
    """Calibration images for int8, and the held-back parity images drawn beside them."""

    data: str | None = None
    size: int = 300
    method: str = "mean_minmax"  # activation range estimator, one of RANGE_ESTIMATORS
    seed: int = 0
    parity_size: int = field(default=64, metadata=_yaml(None))  # 32 said 0.94 agreement on a model that lost 13.9 pp
    skip_bad_images: bool = field(default=False, metadata=_yaml(None))


@dataclass(frozen=True)
class RecipeChoice:
    """How `convert` times the int8 recipes that passed parity, to publish the fastest (edgex.conversion.chooser)."""

    blocks: int = 3  # interleaved rounds: each candidate runs one block per round
    runs_per_block: int = 10  # parity images per block (batch 1, the runtime's default options)
    max_load_per_core: float = 1.25  # 1-minute load average per usable core above which timing is not trusted
    # a recipe whose parity-check p50 is this much over the fastest's, and this many ms, is not timed: it cannot win
    max_parity_ratio: float = 1.5
    min_parity_gap_ms: float = 5.0


@dataclass(frozen=True)
class Thresholds:
    """Minimum top-1 agreement, mean logit cosine and worst-5% cosine an artifact must reach.

    The tail matters: a kernel that saturates on a few images barely moves the mean."""

    min_agreement: float
    min_cosine: float
    min_tail_cosine: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# Float artifacts must match almost exactly; int8 may flip a few near-tie images but must
# stay close: a broken scale or a collapsed range drops agreement and cosine far below these.
DEFAULT_THRESHOLDS = {
    "fp32": Thresholds(min_agreement=0.99, min_cosine=0.9999, min_tail_cosine=0.999),
    "fp16": Thresholds(min_agreement=0.95, min_cosine=0.999, min_tail_cosine=0.99),
    "dynamic": Thresholds(min_agreement=0.9, min_cosine=0.98, min_tail_cosine=0.9),
    "int8": Thresholds(min_agreement=0.9, min_cosine=0.95, min_tail_cosine=0.85),
}


@dataclass(frozen=True)
class ParityOptions:
    """The parity gate; None thresholds mean the precision's own (edgex.conversion.parity.DEFAULT_THRESHOLDS)."""

    data: str | None = None
    min_agreement: float | None = None
    min_cosine: float | None = None


@dataclass(frozen=True)
class BudgetOptions:
    """The int8 accuracy budget (edgex.conversion.budget): asked for by a drop or an agreement floor."""

    max_trials: int = 6
    eval_data: str | None = None  # held-out images to score on: labelled (a folder per class) for the drop
    max_accuracy_drop: float | None = None  # percentage points of top-1 vs the float source
    min_eval_agreement: float | None = None  # top-1 agreement floor with the float source (unlabelled images)


@dataclass(frozen=True)
class PortOptions:
    """`edgex port`: how far the PyTorch logits may stray from Keras's."""

    tolerance: float = 1e-3


@dataclass(frozen=True)
class EvaluationOptions:
    """The YAML `evaluation:` section: labelled images, and whether to compare against the FP32 source."""

    data: str | None = None
    source: bool = True


@dataclass(frozen=True)
class PreprocessOverrides:
    """Preprocessing a user overrides (None: inferred from the model)."""

    interpolation: str | None = None
    input_size: Any = field(default=None, metadata=_yaml("", (_is_size, "N or [H, W]")))
    crop_fraction: float | None = None
    mean: Any = field(default=None, metadata=_yaml("", (_is_triple, "a number or three")))
    std: Any = field(default=None, metadata=_yaml("", (_is_triple, "a number or three")))
    layout: str | None = None


@dataclass
class BenchSettings:
    """How to time: runs continue until both min_runs and min_seconds are reached, after `warmup` runs.

    `threads` None is not resolved on the host: the runner picks every usable core of the machine that runs
    the artifact (a device's own, with --remote). runner.py repeats the others as its own command-line
    defaults, since it runs alone on devices (a test keeps them equal).
    """

    threads: int | None = None
    min_runs: int = 50
    min_seconds: float = 10.0
    warmup: int = 5
    batch: int = 1
    streams: int = 1  # > 1: also images/s with that many requests in flight (runner --streams)
    floor: bool = False  # also measure the machine's floor and each row's p50 over it (edgex.bench.floor)
    device: str = "cpu"
    timeout_s: float = field(default=1800.0, metadata=_yaml("timeout"))
    latency: bool = field(default=True, metadata=_yaml(None))

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Refuse settings no run can finish with (a run YAML's or the flags'), before anything is timed:
        a value out of BENCH_LIMITS, or a min_seconds the runner's own timeout would cut short on every row."""
        from edgex.errors import UsageError

        for name, (low, high) in BENCH_LIMITS.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:  # NaN fails too
                flag = "--timeout" if name == "timeout_s" else f"--{name.replace('_', '-')}"
                raise UsageError(f"bench setting {name} ({flag}) is {value}; it must be from {low} to {high}")
        if self.latency and self.min_seconds >= self.timeout_s:
            raise UsageError(f"bench min_seconds ({self.min_seconds:g}) is not below the runner's timeout "
                             f"({self.timeout_s:g} s): every artifact would time out",
                             "Lower min_seconds (--min-seconds) or raise timeout (--timeout).")

    def runner_args(self) -> list[str]:
        if self.latency:
            timing = ["--min-runs", self.min_runs, "--min-seconds", self.min_seconds, "--warmup", self.warmup]
        else:  # accuracy only: one timed run is enough to fill the protocol's fields
            timing = ["--min-runs", 1, "--min-seconds", 0, "--warmup", 0]
        threads = ["--threads", self.threads] if self.threads else []
        streams = ["--streams", self.streams] if self.streams > 1 and self.latency else []
        return [str(a) for a in [*timing, *threads, "--batch", self.batch, *streams, "--device", self.device]]


@dataclass(frozen=True)
class CompareOptions:
    """`edgex compare` and the `compare:` step of `edgex run`: what counts as a change, and the gate's rules.

    A latency-like change is noise unless it exceeds both `min_change` and `noise_k` times the two runs'
    combined round-to-round spread (edgex.compare.verdicts says why); accuracy is worse or better only when
    McNemar's exact test on the images that flipped gives p < `alpha`."""

    baseline: str | None = None  # a report folder or report.json (the `compare:` step's stored baseline)
    fail_on: Any = field(default=(), metadata=_yaml("", NAMES))  # rules such as "top1-drop>0.5pp", "p50>+10%"
    alpha: float = 0.05
    min_change: float = 0.05  # 5%: smaller latency, throughput or memory changes are never called
    noise_k: float = 3.0
    size_change: float = 0.001  # file sizes are exact: 0.1% absorbs metadata and producer strings


@dataclass(frozen=True)
class RunOptions:
    """The top level of an `edgex run` config; `model` is its one required key."""

    model: str | None = None
    trust_model: bool = False
    classes: Any = field(default=None, metadata=_yaml("", STR_LIST))
    output: str = "edgex-out"
    report: str | None = None  # None: OUTPUT/report
    targets: Any = field(default=("all",), metadata=_yaml("", NAMES))
    precisions: Any = field(default=("fp32", "int8"), metadata=_yaml("", NAMES))


CONVERT_OUTPUT = RunOptions.output  # `edgex convert --output` and `edgex.convert(output=)`
CALIBRATION = CalibrationOptions()
RECIPE_CHOICE = RecipeChoice()
PARITY = ParityOptions()
BUDGET = BudgetOptions()
PORT = PortOptions()
# What a bench setting may be (inclusive): beyond these a run cannot end in reasonable time or memory.
BENCH_LIMITS = {"threads": (1, 1024), "min_runs": (1, 1_000_000), "warmup": (0, 1_000_000), "batch": (1, 1024),
                "streams": (1, 256), "min_seconds": (0, 86_400), "timeout_s": (1, 7 * 86_400)}
BENCH = BenchSettings()
COMPARE = CompareOptions()
TF2ONNX_ONE_CHILD_MB = 32  # a smaller SavedModel is frozen and converted in one child (converters/onnx.py)
ONNX_EXPORT_CACHE_MB = 512  # fp32 ONNX exports kept between runs (converters/tf2onnx_cache.py); Xception: 88 MB

# The sections of an `edgex run` config, each read by one options class.
RUN_SECTIONS: dict[str, type] = {"preprocess": PreprocessOverrides, "calibration": CalibrationOptions,
                                 "parity": ParityOptions, "evaluation": EvaluationOptions, "bench": BenchSettings,
                                 "compare": CompareOptions}


def yaml_keys(cls: type) -> dict[str, str]:
    """YAML key -> field name of an options class (fields with no YAML key left out)."""
    out = {}
    for f in fields(cls):
        key = f.metadata.get("yaml", "")
        if key is not None:
            out[key or f.name] = f.name
    return out


def _check(f) -> tuple:
    if f.metadata.get("check"):
        return f.metadata["check"]
    return _CHECKS[str(f.type).replace(" | None", "")]


def yaml_schema() -> dict:
    """The schema `edgex run` validates against: key -> (check, what it must be), or a nested section."""
    top = {key: _check(f) for f in fields(RunOptions) for key in [f.metadata.get("yaml", "") or f.name]}
    for section, cls in RUN_SECTIONS.items():
        by_name = {f.name: f for f in fields(cls)}
        top[section] = {key: _check(by_name[name]) for key, name in yaml_keys(cls).items()}
    return top


def from_yaml(cls: type, section: dict):
    """An options object from a validated YAML section: absent keys keep the class's defaults."""
    return cls(**{name: section[key] for key, name in yaml_keys(cls).items() if key in section})

