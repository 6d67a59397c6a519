"""Odd and hostile images: converted exactly like a reference tensor, or refused with the file named."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from edgex.calibration.dataset import CalibrationSet
from failure_checks import assert_clean_failure
from helpers import run_edgex
from PIL import Image

from edgex.errors import DataError, MissingInputError, UsageError
from edgex.preprocess import Preprocess, read_rgb

SPEC = Preprocess(24, 32, interpolation="nearest")


def _pattern(height: int = 24, width: int = 32) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _reference(rgb: np.ndarray) -> np.ndarray:
    return SPEC.apply(Image.fromarray(rgb, "RGB"))


def _png(path: Path, array: np.ndarray, bit_depth: int, colour_type: int) -> None:
    """A PNG written byte by byte, for layouts Pillow will not write (48-bit RGB)."""
    height, width = array.shape[:2]
    rows = b"".join(b"\x00" + array[y].astype(">u2" if bit_depth == 16 else "u1").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def test_grayscale_matches_reference(tmp_path):
    gray = _pattern()[..., 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(SPEC.load(tmp_path / "g.png"), _reference(np.stack([gray] * 3, -1)))


def test_rgba_is_composited_on_white_like_reference(tmp_path):
    rgb = _pattern()
    alpha = np.where(np.arange(32) < 16, 255, 0).astype(np.uint8)[None, :].repeat(24, 0)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    expected = np.where(alpha[..., None] == 255, rgb, 255).astype(np.uint8)
    np.testing.assert_array_equal(SPEC.load(tmp_path / "a.png"), _reference(expected))


def test_palette_matches_reference(tmp_path):
    palette_image = Image.fromarray(_pattern()).quantize(colors=16)
    palette_image.save(tmp_path / "p.png")
    expected = np.asarray(palette_image.convert("RGB"))
    np.testing.assert_array_equal(SPEC.load(tmp_path / "p.png"), _reference(expected))


def test_cmyk_jpeg_matches_rgb_reference(tmp_path):
    rgb = np.full((24, 32, 3), (200, 120, 40), np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    np.testing.assert_allclose(SPEC.load(tmp_path / "c.jpg"), _reference(rgb), atol=4 / 127.5)


def test_16bit_gray_png_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 24 * 32).reshape(24, 32).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    eight = np.round(values / 257.0).astype(np.uint8)
    np.testing.assert_allclose(SPEC.load(tmp_path / "g16.png"), _reference(np.stack([eight] * 3, -1)),
                               atol=1 / 127.5 + 1e-6)


def test_16bit_rgb_png_matches_reference(tmp_path):
    values = (_pattern().astype(np.uint32) * 257).astype(np.uint16)  # 8-bit x 257: exact in 16 bits
    _png(tmp_path / "rgb16.png", values, bit_depth=16, colour_type=2)
    np.testing.assert_array_equal(SPEC.load(tmp_path / "rgb16.png"), _reference(_pattern()))


def test_exif_rotated_jpeg_matches_the_rotated_reference(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    Image.fromarray(_pattern(32, 24)).save(tmp_path / "r.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "r.jpg") as raw:
        stored = np.asarray(raw.convert("RGB"))
    rotated = np.ascontiguousarray(np.rot90(stored, k=-1))  # what a viewer shows
    assert rotated.shape == (24, 32, 3)
    np.testing.assert_array_equal(SPEC.load(tmp_path / "r.jpg"), _reference(rotated))


def test_truncated_jpeg_is_a_data_error_naming_it(tmp_path):
    Image.fromarray(_pattern(200, 200)).save(tmp_path / "t.jpg", quality=90)
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="t.jpg") as caught:
        read_rgb(tmp_path / "t.jpg")
    assert caught.value.exit_code == 65


def test_decompression_bomb_png_is_refused_before_decoding(tmp_path):
    # 9000 x 9000 one-bit pixels: a 10 kB file claiming 81 megapixels (243 MB as RGB).
    Image.new("1", (9000, 9000)).save(tmp_path / "bomb.png")
    assert (tmp_path / "bomb.png").stat().st_size < 200_000
    with pytest.raises(DataError, match="bomb.png.*too large") as caught:
        read_rgb(tmp_path / "bomb.png")
    assert caught.value.exit_code == 65


def test_non_image_with_image_suffix_is_a_data_error(tmp_path):
    (tmp_path / "x.png").write_text("not a png")
    with pytest.raises(DataError, match="x.png"):
        read_rgb(tmp_path / "x.png")


def test_skip_bad_images_counts_and_replaces_them(tmp_path):
    for i in range(6):
        Image.fromarray(_pattern()).save(tmp_path / f"{i}.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DataError, match="bad.jpg.*--skip-bad-images|bad.jpg"):
        CalibrationSet.from_folder(tmp_path, SPEC, size=7, parity_size=0)
    found = CalibrationSet.from_folder(tmp_path, SPEC, size=7, parity_size=0, skip_bad_images=True)
    assert len(found.files) == 6 and [p.name for p, _ in found.skipped] == ["bad.jpg"]
    assert found.describe()["skipped_bad_images"][0]["file"] == "bad.jpg"


def test_a_std_that_would_overflow_float32_is_refused_before_any_pixel(tmp_path):
    """The cause of Inf inputs (and numpy's overflow warning) is the spec itself: refused when it is made."""
    with pytest.raises(UsageError, match="overflows float32"):
        Preprocess(24, 32, std=(1e-45, 1e-45, 1e-45))
    with pytest.raises(UsageError, match="finite"):
        Preprocess(24, 32, mean=(float("nan"), 0.0, 0.0))


def test_nan_after_preprocessing_is_a_data_error(tmp_path, monkeypatch):
    """Should anything else put NaN into a calibration tensor, calibration refuses it (65)."""
    Image.fromarray(_pattern()).save(tmp_path / "a.png")
    monkeypatch.setattr(Preprocess, "tensor", lambda self, pixels: np.full((24, 32, 3), np.nan, np.float32))
    with pytest.raises(DataError, match="NaN or Inf"):
        CalibrationSet.from_folder(tmp_path, Preprocess(24, 32), size=1)


def test_only_unreadable_images_with_skip_is_66(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"junk")
    with pytest.raises(MissingInputError, match="none of the 1 images"):
        CalibrationSet.from_folder(tmp_path, SPEC, size=1, skip_bad_images=True)


# -- through the CLI: fail before the model loads, nothing left behind -----------------------------


def test_empty_calibration_folder_is_66(tmp_path):
    (tmp_path / "calib").mkdir()
    done = run_edgex("convert", "--model", tmp_path / "m.keras", "--target", "onnx", "--int8", "--calib-data",
                     tmp_path / "calib", "--output", tmp_path / "out")
    assert_clean_failure(done, 66, "no images", "calib", output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_folder_of_non_images_is_66(tmp_path):
    (tmp_path / "calib").mkdir()
    for name in ("notes.txt", "data.csv", "model.onnx"):
        (tmp_path / "calib" / name).write_text("x")
    done = run_edgex("convert", "--model", tmp_path / "m.keras", "--target", "onnx", "--int8", "--calib-data",
                     tmp_path / "calib", "--output", tmp_path / "out")
    assert_clean_failure(done, 66, "no images", output=tmp_path / "out")


def test_truncated_jpeg_in_calibration_stops_convert_with_65(tiny_model, images_dir, tmp_path):
    import shutil

    calib = tmp_path / "calib"
    shutil.copytree(images_dir, calib)
    Image.fromarray(_pattern(200, 200)).save(calib / "broken.jpg", quality=90)
    data = (calib / "broken.jpg").read_bytes()
    (calib / "broken.jpg").write_bytes(data[: len(data) // 3])
    done = run_edgex("convert", "--model", tiny_model, "--target", "onnx", "--int8", "--calib-data", calib,
                     "--calib-size", "40", "--output", tmp_path / "out")
    assert_clean_failure(done, 65, "broken.jpg", "--skip-bad-images", output=tmp_path / "out")


def test_a_stored_spec_with_values_of_the_wrong_type_is_bad_data():
    """A damaged manifest's preprocess (found by benchmarks/fuzz.py: mean "n") is exit 65, not an internal error."""
    with pytest.raises(DataError, match="invalid value"):
        Preprocess.from_dict({"height": 24, "width": 32, "mean": "n"})
    with pytest.raises(DataError, match="not a mapping"):
        Preprocess.from_dict([24, 32])
