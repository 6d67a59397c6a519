"""Pixels -> tensors: the one place preprocessing happens must be exact and robust to odd images."""

import numpy as np
import pytest
from PIL import Image

from edgex.errors import DataError, UsageError
from edgex.preprocess import Preprocess, find_images, read_rgb


def test_xception_scaling_maps_pixels_to_minus_one_one(tmp_path):
    Image.new("RGB", (10, 10), (0, 255, 127)).save(tmp_path / "a.png")
    x = Preprocess(10, 10).load(tmp_path / "a.png")
    assert x.shape == (10, 10, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], [-1.0, 1.0, 127 / 127.5 - 1], atol=1e-6)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic"])
def test_resize_and_layouts(tmp_path, interpolation):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    nhwc = Preprocess(20, 30, interpolation=interpolation).load(tmp_path / "a.png")
    nchw = Preprocess(20, 30, interpolation=interpolation, layout="NCHW").load(tmp_path / "a.png")
    assert nhwc.shape == (20, 30, 3) and nchw.shape == (3, 20, 30)
    np.testing.assert_array_equal(nhwc.transpose(2, 0, 1), nchw)


def test_nearest_differs_from_bilinear(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    a = Preprocess(17, 17, interpolation="nearest").load(tmp_path / "a.png")
    b = Preprocess(17, 17, interpolation="bilinear").load(tmp_path / "a.png")
    assert np.abs(a - b).max() > 0.1


def test_center_crop_takes_the_middle(tmp_path):
    image = np.zeros((100, 100, 3), np.uint8)
    image[25:75, 25:75] = 255
    Image.fromarray(image).save(tmp_path / "a.png")
    x = Preprocess(10, 10, crop_fraction=0.5, interpolation="nearest").load(tmp_path / "a.png")
    assert np.all(x == 1.0)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "a.jpg", exif=exif)
    assert read_rgb(tmp_path / "a.jpg").size == (20, 40)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_odd_modes_become_8bit_rgb(tmp_path, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    if mode == "I;16":
        image = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    else:
        image = Image.new("RGB", (8, 8), (200, 100, 50)).convert(mode)
    image.save(tmp_path / f"a{suffix}")
    rgb = read_rgb(tmp_path / f"a{suffix}")
    assert rgb.mode == "RGB" and rgb.size == (8, 8)
    if mode == "I;16":
        assert np.asarray(rgb).min() == 255


def test_transparent_pixels_become_white(tmp_path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "a.png")
    assert np.asarray(read_rgb(tmp_path / "a.png")).min() == 255


def test_corrupt_image_names_the_file(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="bad.jpg"):
        read_rgb(tmp_path / "bad.jpg")


def test_find_images_is_recursive_and_sorted(tmp_path):
    for name in ["b/x.JPG", "a/y.png", "a/z.webp", "c/readme.txt", "d.bmp", "e.jpeg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert found == ["a/y.png", "a/z.webp", "b/x.JPG", "d.bmp", "e.jpeg"]


def test_spec_round_trips_and_validates():
    spec = Preprocess(150, 150, interpolation="nearest", crop_fraction=0.875, layout="NCHW")
    assert Preprocess.from_dict(spec.to_dict()) == spec
    with pytest.raises(UsageError, match="interpolation"):
        Preprocess(10, 10, interpolation="lanczos")
    with pytest.raises(UsageError, match="crop"):
        Preprocess(10, 10, crop_fraction=1.5)
