"""Every default is defined once, in edgex.options: the CLI, the YAML config and the API read it from there."""

from __future__ import annotations

import argparse

import pytest


def _parser(command: str) -> argparse.ArgumentParser:
    import importlib

    commands = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(f"edgex.commands.{command}").add_parser(commands)
    return commands.choices[command]


def test_cli_defaults_are_the_options_defaults():
    from edgex.options import BENCH, CALIBRATION, CONVERT_OUTPUT, PORT

    convert = _parser("convert").parse_args([])
    assert (convert.calib_size, convert.calib_method, convert.seed, convert.output) == (
        CALIBRATION.size, CALIBRATION.method, CALIBRATION.seed, CONVERT_OUTPUT)
    bench = _parser("bench").parse_args(["a"])
    assert (bench.min_runs, bench.min_seconds, bench.warmup, bench.batch, bench.device, bench.timeout) == (
        BENCH.min_runs, BENCH.min_seconds, BENCH.warmup, BENCH.batch, BENCH.device, BENCH.timeout_s)
    assert _parser("port").parse_args(["--output", "x"]).tolerance == PORT.tolerance


def test_yaml_bench_section_fills_bench_settings_and_keeps_the_rest_default():
    from edgex.options import BENCH, BenchSettings, from_yaml

    settings = from_yaml(BenchSettings, {"threads": 2, "timeout": 60})
    assert (settings.threads, settings.timeout_s, settings.min_runs) == (2, 60, BENCH.min_runs)


def test_yaml_schema_knows_every_option_key_and_no_internal_one():
    from edgex.options import yaml_schema

    schema = yaml_schema()
    assert set(schema["calibration"]) == {"data", "size", "method", "seed"}
    assert "timeout" in schema["bench"] and "latency" not in schema["bench"]


@pytest.mark.parametrize(("kwargs", "hint"), [
    ({"int8": True}, 'use precision="int8"'), ({"fp16": True}, 'use precision="fp16"'),
    ({"dynamic": True}, 'use precision="dynamic"'), ({"calib_size": 24}, "CalibrationOptions(size="),
    ({"min_agreement": 0.5}, "ParityOptions(min_agreement="), ({"mean": 127.5}, "PreprocessOverrides(mean="),
    ({"max_accuracy_drop": 1.0}, "BudgetOptions(max_accuracy_drop="), ({"colour": "red"}, "help(edgex.convert)"),
])
def test_old_api_keywords_are_a_type_error_that_says_what_to_write(kwargs, hint, tmp_path):
    """The booleans int8=/fp16=/dynamic= and the flat options became precision= and typed option groups."""
    import edgex
    from edgex.errors import UsageError

    with pytest.raises(TypeError, match="unexpected keyword argument") as caught:
        edgex.convert("missing.keras", "onnx", output=tmp_path, progress=False, **kwargs)
    assert isinstance(caught.value, UsageError) and hint in str(caught.value)  # what a traceback shows
    assert not any(tmp_path.iterdir())  # refused before anything is loaded or written


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"precision": "int4"}, "unknown precision"), ({"recipe": "x"}, "applies to precision"),
    ({"classes": "classes.json"}, "list of class names"), ({"layout": "CHW"}, "unknown layout"),
    ({"calib_data": "a", "calibration": "b"}, "disagree"),
])
def test_api_mistakes_are_usage_errors(kwargs, message, tmp_path):
    import edgex
    from edgex.errors import UsageError

    if "calibration" in kwargs:
        kwargs["calibration"] = edgex.CalibrationOptions(data=kwargs["calibration"])
    with pytest.raises(UsageError, match=message):
        edgex.convert("missing.keras", "onnx", output=tmp_path, progress=False, **kwargs)
