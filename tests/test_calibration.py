"""Calibration subsets reproduce, stream, and range estimation resists outliers."""

import numpy as np
import pytest
from edgex.calibration.dataset import CalibrationSet
from edgex.calibration.ranges import RangeCollector
from PIL import Image

from edgex.errors import DataError, MissingInputError, UsageError
from edgex.preprocess import Preprocess


@pytest.fixture()
def folder(tmp_path):
    for i in range(20):
        Image.new("RGB", (12, 12), (i * 10, 0, 0)).save(tmp_path / f"{i:02d}.png")
    return tmp_path


def test_subset_is_seeded_and_disjoint_from_parity(folder):
    spec = Preprocess(8, 8)
    a = CalibrationSet.from_folder(folder, spec, size=10, seed=3, parity_size=8)
    b = CalibrationSet.from_folder(folder, spec, size=10, seed=3, parity_size=8)
    c = CalibrationSet.from_folder(folder, spec, size=10, seed=4, parity_size=8)
    assert a.files == b.files and a.files != c.files
    assert len(a) == 10 and len(a.parity_files) == 8
    assert not set(a.files) & set(a.parity_files)
    assert a.files_sha256() == b.files_sha256() != c.files_sha256()


def test_small_folder_reuses_calibration_images_for_parity_and_says_so(folder):
    calib = CalibrationSet.from_folder(folder, Preprocess(8, 8), size=300)
    assert len(calib) == 20 and calib.parity_overlaps_calibration
    assert calib.describe()["parity_overlaps_calibration"] is True


def test_batches_stream_preprocessed_arrays(folder):
    calib = CalibrationSet.from_folder(folder, Preprocess(8, 8), size=7)
    shapes = [b.shape for b in calib.batches(3)]
    assert shapes == [(3, 8, 8, 3), (3, 8, 8, 3), (1, 8, 8, 3)]


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(MissingInputError, match="does not exist"):
        CalibrationSet.from_folder(tmp_path / "nope", Preprocess(8, 8))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(MissingInputError, match="no images"):
        CalibrationSet.from_folder(tmp_path, Preprocess(8, 8))


def test_mean_minmax_resists_one_outlier_where_minmax_does_not():
    robust, naive = RangeCollector("mean_minmax"), RangeCollector("minmax")
    for value in [1.0] * 99 + [30.0]:
        robust.observe("t", -0.5, value)
        naive.observe("t", -0.5, value)
    assert naive.ranges()["t"] == (-0.5, 30.0)
    lo, hi = robust.ranges()["t"]
    assert lo == pytest.approx(-0.5) and hi == pytest.approx(1.29)


def test_ranges_always_contain_zero_and_reject_nan():
    collector = RangeCollector()
    collector.observe("relu", 0.2, 3.0)
    assert collector.ranges()["relu"] == (0.0, pytest.approx(3.0))
    with pytest.raises(DataError, match="NaN"):
        collector.observe_array("x", np.array([np.nan, 1.0]))
    with pytest.raises(UsageError, match="calibration method"):
        RangeCollector("entropy")
