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


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, "fp32"), ({"precision": "int8"}, "int8"), ({"int8": True}, "int8"),
    ({"precision": "fp16", "fp16": True}, "fp16"),
])
def test_api_precision_is_a_string_or_the_cli_flags(kwargs, expected):
    from edgex.api import _precision

    assert _precision(kwargs.pop("precision", None), **{"int8": False, "fp16": False, "dynamic": False,
                                                         **kwargs}) == expected


@pytest.mark.parametrize("kwargs", [{"precision": "int4"}, {"precision": "int8", "fp16": True}])
def test_api_precision_mistakes_are_usage_errors(kwargs):
    from edgex.api import _precision
    from edgex.errors import UsageError

    with pytest.raises(UsageError):
        _precision(kwargs.pop("precision", None), **{"int8": False, "fp16": False, "dynamic": False, **kwargs})
