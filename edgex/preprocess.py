"""The preprocessing spec that travels with a model, and the one place pixels become tensors.

Calibration, parity checks, evaluation and deployment must all apply exactly the
same steps, so the spec is written into every artifact's manifest and metadata.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
LAYOUTS = ("NHWC", "NCHW")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# An image whose header claims more pixels is refused before decoding (a 48 MP photo still fits).
MAX_INPUT_SIDE = 8192  # the largest model input side a stored spec or config may name
MAX_IMAGE_PIXELS = 64_000_000


@dataclass(frozen=True)
class Preprocess:
    """RGB image -> float32 tensor: resize (optionally after a center crop), then (x - mean) / std.

    The Xception default, mean = std = 127.5, maps pixels to [-1, 1].
    """

    height: int
    width: int
    interpolation: str = "bilinear"
    crop_fraction: float | None = None
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    channel_order: str = "RGB"
    layout: str = "NHWC"
    source: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        from edgex.errors import UsageError

        if self.interpolation not in INTERPOLATIONS:
            raise UsageError(
                f"unknown interpolation {self.interpolation!r}", f"Use one of: {', '.join(INTERPOLATIONS)}."
            )
        if self.layout not in LAYOUTS:
            raise UsageError(f"unknown layout {self.layout!r}", f"Use one of: {', '.join(LAYOUTS)}.")
        if self.channel_order not in ("RGB", "BGR"):
            raise UsageError(f"unknown channel order {self.channel_order!r}", "Use RGB or BGR.")
        if self.crop_fraction is not None and not 0.0 < self.crop_fraction <= 1.0:
            raise UsageError(f"crop fraction {self.crop_fraction} is outside (0, 1]", "Use e.g. 0.875.")
        if self.height < 1 or self.width < 1:
            raise UsageError(f"input size {self.height}x{self.width} is not positive")
        if max(self.height, self.width) > MAX_INPUT_SIDE:
            raise UsageError(f"input size {self.height}x{self.width} is over {MAX_INPUT_SIDE} on a side")
        if any(s == 0 for s in self.std):
            raise UsageError("std must not be zero")
        _check_float32_range(self.mean, self.std)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of one preprocessed image as a batch of one."""
        if self.layout == "NHWC":
            return (1, self.height, self.width, 3)
        return (1, 3, self.height, self.width)

    def replace(self, **changes) -> Preprocess:
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        data["formula"] = "x = (resize(crop(rgb_uint8)) - mean) / std"
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Preprocess:
        """A stored spec (manifest, sidecar): values of the wrong type are bad data (65), not a crash."""
        from edgex.errors import DataError, UsageError

        if not isinstance(data, dict):
            raise DataError(f"the preprocessing spec is a {type(data).__name__}, not a mapping",
                            "Rebuild the artifact (or sidecar) with edgex.")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("height", "width"):
            value = kwargs.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INPUT_SIDE:
                raise DataError(f"the preprocessing spec's {key} is {value!r}, not a size from 1 to {MAX_INPUT_SIDE}",
                                "Rebuild the artifact (or sidecar) with edgex.")
        if kwargs.get("source") is not None and not isinstance(kwargs["source"], dict):  # fuzz pt2:24
            raise DataError(f"the preprocessing spec's source is {kwargs['source']!r}, not a mapping",
                            "Rebuild the artifact (or sidecar) with edgex.")
        try:
            for key in ("mean", "std"):
                if key in kwargs:
                    kwargs[key] = tuple(float(v) for v in kwargs[key])
            return cls(**kwargs)
        except (TypeError, ValueError, UsageError) as exc:  # a file's bad value is bad data (65), not a usage error
            reason = exc.message if isinstance(exc, UsageError) else exc
            raise DataError(f"the preprocessing spec has an invalid value: {reason}",
                            "Rebuild the artifact (or sidecar) with edgex.") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- pixels -> tensor ---------------------------------------------------------------

    def load(self, path: Path) -> np.ndarray:
        """Decode one image file into a float32 array of shape (H, W, 3) or (3, H, W)."""
        return self.apply(read_rgb(path))

    def apply(self, image) -> np.ndarray:
        """Preprocess a PIL RGB image."""
        return self.tensor(self.pixels(image))

    def pixels(self, image) -> np.ndarray:
        """The image cropped and resized to the input size, as uint8 (H, W, 3): the costly half of `apply`,
        and a quarter of the float tensor's memory, so callers that revisit images can keep it."""
        from PIL import Image

        if self.crop_fraction is not None and self.crop_fraction < 1.0:
            w, h = image.size
            cw, ch = round(w * self.crop_fraction), round(h * self.crop_fraction)
            left, top = (w - cw) // 2, (h - ch) // 2
            image = image.crop((left, top, left + cw, top + ch))
        resample = {
            "nearest": Image.Resampling.NEAREST,
            "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC,
        }[self.interpolation]
        if image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), resample)
        return np.asarray(image, dtype=np.uint8)

    def tensor(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) pixels of the input size to the model's float32 input."""
        x = pixels.astype(np.float32)
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x, dtype=np.float32)


def _check_float32_range(mean, std) -> None:
    """UsageError unless (pixel - mean) / std is finite in float32 for every pixel 0..255: a tiny std (1e-45)
    would otherwise overflow to Inf in `tensor` and reach the model as Inf inputs."""
    from edgex.errors import UsageError

    limit = float(np.finfo(np.float32).max)
    for m, s in zip(mean, std, strict=True):
        if not (np.isfinite(m) and np.isfinite(s) and abs(m) < limit and abs(s) < limit):
            raise UsageError(f"mean {m} and std {s} must be finite float32 numbers")
        if max(abs(m), abs(255.0 - m)) / abs(s) >= limit:
            raise UsageError(f"std {s} is so small that (pixel - mean) / std overflows float32",
                             "Use the std the model was trained with (Xception: 127.5).")


def describe_origin(source: dict) -> str:
    """Where the preprocessing came from when not the model's graph (read, assumed, given): for the contract line."""
    given = source.get("overridden", [])
    parts = []
    if source.get("read_from"):
        parts.append("read from " + source["read_from"])
    elif source.get("note") and not {"mean", "std"} <= set(given):
        parts.append(source["note"])
    if given:
        parts.append("as given: " + ", ".join(given))
    return "; ".join(parts)


def read_rgb(path: Path):
    """Open an image as 8-bit RGB: EXIF orientation applied; gray, RGBA, palette, CMYK, 16-bit converted.

    Decoding is bounded: an image whose header claims more than MAX_IMAGE_PIXELS pixels (a
    decompression bomb) is refused before its pixels are decoded. Any decoding failure, whatever
    Pillow raises, becomes a DataError (65) that names the file.
    """
    import struct
    import warnings

    from PIL import Image, ImageOps

    from edgex.errors import DataError

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"image {path} is too large to decode safely ({exc})",
                        f"Resize it below {MAX_IMAGE_PIXELS // 1_000_000} megapixels or remove it.") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, TypeError, KeyError, IndexError,
            ZeroDivisionError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"cannot decode image {path}: {reason}", "Remove or replace the file.") from exc
    return to_rgb8(image)


def to_rgb8(image):
    """Any Pillow image as 8-bit RGB: 16-bit scaled (not clipped), transparency over white, CMYK converted."""
    from PIL import Image

    if image.mode.startswith("I;16"):
        # 16-bit gray: 0..65535 maps to 0..255 (v / 257, rounded), not clipped at 255.
        arr = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(arr / 257.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode in ("I", "F"):
        # 32-bit int or float: 16-bit data stored wide (max above 255) is scaled, 8-bit data kept.
        arr = np.asarray(image, dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def find_images(root: Path) -> list[Path]:
    """All image files below root, recursively, in a stable order."""
    files = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())
