"""`edgex run pipeline.yaml`: one config names the model, preprocessing, calibration, targets x precisions,
evaluation data and bench settings. Validation is strict: an unknown key is an error that names it and
suggests the key that was probably meant. Relative paths are relative to the config file's folder."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from edgex.errors import DataError, MissingInputError, UsageError
from edgex.options import PRECISIONS, BenchSettings, EvaluationOptions, RunOptions, from_yaml, yaml_schema


def validate(config, schema: dict | None = None, where: str = "") -> None:
    """Raise UsageError for the first unknown key or mistyped value, naming it and suggesting a fix.

    The schema (default: edgex.options.yaml_schema()) comes from the options classes that hold the defaults.
    """
    schema = yaml_schema() if schema is None else schema
    if not isinstance(config, dict):
        raise UsageError(f"{where or 'the config'} must be a mapping of keys to values")
    for key, value in config.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1, cutoff=0.6)
            hint = f"Did you mean '{close[0]}'? " if close else ""
            raise UsageError(f"unknown key '{name}'", f"{hint}Keys here: {', '.join(schema)}.")
        spec = schema[key]
        if isinstance(spec, dict):
            validate(value, spec, name)
        elif not spec[0](value):
            raise UsageError(f"'{name}' must be {spec[1]}, not {value!r}")
    if not where and "model" not in config:
        raise UsageError("the config names no model", "Add e.g. 'model: build/clothing_xception.keras'.")


@dataclass
class PipelinePlan:
    config_path: Path
    model: Path
    model_name: str
    output: Path
    report: Path
    targets: list[str]
    precisions: list[str]
    convert: dict = field(default_factory=dict)  # keyword arguments of edgex.api.convert (paths resolved)
    eval_data: Path | None = None
    use_source: bool = True
    bench: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    compare: dict = field(default_factory=dict)  # the `compare:` step (baseline resolved), empty when none

    def steps(self) -> list[tuple[str, str]]:
        """(target, precision) pairs to build, in order."""
        from edgex.converters import TARGETS

        return [(t, p) for p in self.precisions for t in self.targets if p in TARGETS[t].precisions]

    def artifact_dir(self, target: str, precision: str) -> Path:
        return self.output / self.model_name / f"{target}-{precision}"

    def describe(self) -> dict:
        return {
            "config": str(self.config_path), "model": str(self.model), "convert_options": self.convert,
            "artifacts": [str(self.artifact_dir(t, p)) for t, p in self.steps()], "skipped": self.skipped,
            "evaluation": {"data": str(self.eval_data) if self.eval_data else None, "source": self.use_source},
            "bench": self.bench, "report": str(self.report), "compare": self.compare or None,
        }


def load_config(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"pipeline config {path} does not exist", "Pass a YAML file (see README).")
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover (pyyaml is a core dependency)
        raise UsageError("reading pipeline configs needs PyYAML", "pip install pyyaml") from exc
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:  # bytes that are not UTF-8 text are bad data too
        raise DataError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    try:
        validate(config)
    except UsageError as error:
        error.message = f"{error.message} in {path}"
        raise
    return config


def _names(value, default: list[str]) -> list[str]:
    if value is None:
        return default
    return [value] if isinstance(value, str) else list(value)


def plan_from_config(path: Path) -> PipelinePlan:
    """Resolve paths and defaults; unknown targets or precisions are usage errors."""
    from edgex.converters import TARGETS, resolve_targets

    path = Path(path).resolve()
    config = load_config(path)

    def resolve(value: str | None) -> Path | None:
        return None if value is None else (path.parent / Path(value).expanduser()).resolve()

    targets = [info.name for name in _names(config.get("targets"), list(RunOptions.targets))
               for info in resolve_targets(name)]
    precisions = _names(config.get("precisions"), list(RunOptions.precisions))
    for precision in precisions:
        if precision not in PRECISIONS:
            close = difflib.get_close_matches(precision, PRECISIONS, n=1)
            hint = f"Did you mean '{close[0]}'? " if close else ""
            raise UsageError(f"unknown precision '{precision}' in {path}",
                             f"{hint}Precisions: {', '.join(PRECISIONS)}.")
    model = resolve(config["model"])
    output = resolve(config.get("output", RunOptions.output))
    pre, cal, parity = config.get("preprocess", {}), config.get("calibration", {}), config.get("parity", {})
    convert = {  # keyword arguments of edgex.api.convert; the option groups as dicts of their YAML fields
        "calib_data": resolve(cal.get("data")),
        "trust_model": config.get("trust_model", RunOptions.trust_model), "classes": config.get("classes"),
        "calibration": {k: v for k, v in cal.items() if k != "data"},
        "preprocess": dict(pre),
        "parity": {**parity, **({"data": str(resolve(parity["data"]))} if parity.get("data") else {})},
    }
    convert = {k: (str(v) if isinstance(v, Path) else v) for k, v in convert.items() if v not in (None, {})}
    evaluation = config.get("evaluation", {})
    plan = PipelinePlan(
        config_path=path, model=model, model_name=model.stem if model.suffix else model.name, output=output,
        report=resolve(config["report"]) if "report" in config else output / "report", targets=targets,
        precisions=precisions, convert=convert, eval_data=resolve(evaluation.get("data")),
        use_source=evaluation.get("source", EvaluationOptions.source), bench=dict(config.get("bench", {})),
    )
    try:  # a bench section no run can finish with is refused before anything is converted
        from_yaml(BenchSettings, plan.bench).check()
    except UsageError as error:
        error.message = f"{error.message} in {path}"
        raise
    plan.skipped = [f"{t}-{p}: {t} has no {p} precision" for p in precisions for t in targets
                    if p not in TARGETS[t].precisions]
    plan.compare = _compare_step(config.get("compare"), resolve, path)
    return plan


def _compare_step(section: dict | None, resolve, path: Path) -> dict:
    """The `compare:` step, checked before any conversion: its baseline must exist and its rules parse."""
    if not section:
        return {}
    from edgex.compare.pairing import load_side
    from edgex.compare.rules import parse_rules

    if not section.get("baseline"):
        raise UsageError(f"the compare step in {path} names no baseline",
                         "Add e.g. 'compare: {baseline: baseline/report.json, fail_on: [top1-drop>0.5pp]}'.")
    parse_rules(section.get("fail_on"))
    baseline = resolve(section["baseline"])
    load_side(baseline)
    return {**section, "baseline": str(baseline)}

