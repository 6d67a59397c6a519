"""edgex diagnose's invariants: impossible figures stop the report; no reference signal reads "not comparable"."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgex.diagnose.invariants import DiagnosisBug, check, consistent
from edgex.diagnose.metrics import ErrorStats, RangeUse
from edgex.diagnose.report import NOT_COMPARABLE, fmt, render
from edgex.errors import EXIT_INTERNAL


def _stats(reference, candidate) -> ErrorStats:
    stats = ErrorStats()
    stats.add(reference, candidate)
    return stats


def test_an_all_zero_or_missing_reference_is_not_comparable_never_a_number():
    zeros = _stats(np.zeros(8), np.ones(8))
    missing = ErrorStats()
    missing.add(None, np.ones(8))
    for stats in (zeros, missing, ErrorStats()):
        assert not stats.comparable
        assert stats.sqnr_db is None and stats.rel_error is None
        assert stats.summary() == {"sqnr_db": None, "rel_error": None}


def test_sqnr_is_minus_20_log10_of_the_relative_error():
    rng = np.random.default_rng(1)
    for noise in (1e-6, 1e-3, 0.1, 0.9, 3.0):
        reference = rng.normal(size=1000)
        stats = _stats(reference, reference + noise * rng.normal(size=1000))
        assert stats.sqnr_db == pytest.approx(-20 * math.log10(stats.rel_error))
        summary = stats.summary()
        consistent(summary["sqnr_db"], summary["rel_error"])  # the rounded figures still agree
    assert _stats(np.ones(4), np.ones(4)).summary() == {"sqnr_db": math.inf, "rel_error": 0.0}


def test_range_use_counts_codes_of_the_quantized_tensor_so_it_is_a_share():
    use = RangeUse()
    use.add_codes(np.array([-128, 127], np.int8), -128, 127)  # int8 arithmetic would wrap to -1
    use.add_codes(np.array([0, 51], np.uint8), 0, 255)
    assert use.mean == pytest.approx((1.0 + 0.2) / 2)
    use.add_reference(np.array([-1.0, 0.5, 2.0, 9.0]), 0.0, 2.0)
    assert use.clipped == pytest.approx(0.5)


def _result(**row) -> dict:
    base = {"layer": "t", "op": "Conv", "keras_layer": None, "sqnr_db": 20.0, "rel_error": 0.1, "range_use": 0.5,
            "clipped": 0.0, "source_sqnr_db": None, "source_rel_error": None}
    return {"target": "onnx", "artifact": "a", "samples": 2, "calib_data": "d", "reference": "r",
            "output": {"sqnr_db": 20.0, "rel_error": 0.1, "top1_agreement": 1.0},
            "references": {"source": {"path": None, "note": "none"}, "unquantized": {"what": "r"}},
            "runtime_config": None, "isolated": False, "layers": [{**base, **row}]}


@pytest.mark.parametrize("row, why", [
    ({"range_use": 9506250921.41}, "range_use"),
    ({"range_use": -0.1}, "range_use"),
    ({"clipped": 1.5}, "clipped"),
    ({"sqnr_db": 0.0, "rel_error": 1.0, "isolated_sqnr_db": 0.0, "isolated_rel_error": 0.5}, "isolated_sqnr_db"),
    ({"sqnr_db": 0.0, "rel_error": 0.5}, "sqnr_db"),
    ({"sqnr_db": math.inf, "rel_error": 0.01}, "sqnr_db"),
    ({"sqnr_db": None, "rel_error": 0.3}, "half comparable"),
    ({"isolated_agreement": 1.2}, "isolated_agreement"),
])
def test_an_impossible_figure_is_a_bug_that_stops_the_report(row, why):
    with pytest.raises(DiagnosisBug, match=why) as raised:
        check(_result(**row))
    assert raised.value.exit_code == EXIT_INTERNAL


def test_consistent_figures_pass_and_print_n_c_where_not_comparable():
    result = check(_result(sqnr_db=20.0, rel_error=0.1, isolated_sqnr_db=math.inf, isolated_rel_error=0.0,
                           isolated_agreement=1.0))
    row = result["layers"][0]
    assert fmt(row, "source_sqnr_db") == NOT_COMPARABLE == "n/c"
    assert fmt(row, "isolated_sqnr_db") == "inf"
    assert fmt({}, "isolated_sqnr_db") == "-"  # not measured is not "not comparable"
    text = render(result, 5)
    assert " n/c " in text and "not used (none)" in text
