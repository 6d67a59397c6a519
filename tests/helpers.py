"""Test helpers imported as a normal module (`from helpers import ...`): constants, the generated images,
the tiny model's builder, a CLI runner. Fixtures that use them live in conftest.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CLASSES = ["red_stripes", "green_bars", "blue_checks", "gray_rings"]
TINY_SIZE = 96
TINY_WEIGHTS = REPO / "tests" / "data" / "tiny_xception.weights.npz"
# What the fixtures must be on every machine (tests/test_fixtures.py); change only with make_tiny_weights.py.
TINY_WEIGHTS_SHA256 = "af91fbf46c716f911d09b1841b315aaa07d0dae66f79dc5f6ad3d5b8349ca2c3"
IMAGES_SHA256 = "8493085ee8ade2ce737c91d1c20bb95135308f1ef64b5c8d68cc748358cc2274"


def weights_sha256(model) -> str:
    import hashlib

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight, np.float32).tobytes())
    return digest.hexdigest()


def pixels_sha256(root: Path) -> str:
    """Hash of the decoded pixels of every image under `root`, in path order."""
    import hashlib

    from PIL import Image

    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        with Image.open(path) as image:
            digest.update(np.asarray(image.convert("RGB")).tobytes())
    return digest.hexdigest()


def shared_dir() -> Path:
    return Path(os.environ.get("EDGEX_SHARED", REPO.parent / "shared")).resolve()


def run_shared_dir(tmp_path_factory, name: str) -> Path:
    """A folder shared by every pytest-xdist worker of this run (their common base temp), or the session's."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def build_once(folder: Path, build) -> Path:
    """Run `build(folder)` once for all xdist workers: the first builds under a lock, the others wait and
    reuse it, so every worker sees the same files at the same paths (artifacts' manifests name them)."""
    import fcntl

    marker = folder.parent / f".{folder.name}.complete"  # beside, not inside: image folders are scanned
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            build(folder)
            marker.touch()
    return folder


def record_run(output: Path, done: subprocess.CompletedProcess) -> None:
    """Keep a shared conversion's stdout and stderr beside its output, for the tests that check them."""
    output.with_name(output.name + ".stdout").write_text(done.stdout)
    output.with_name(output.name + ".stderr").write_text(done.stderr)


def recorded_run(output: Path) -> tuple[str, str]:
    """The stdout and stderr that record_run kept for `output`."""
    return (output.with_name(output.name + ".stdout").read_text(),
            output.with_name(output.name + ".stderr").read_text())


def make_image(kind: int, rng: np.random.Generator, height: int = 90, width: int = 120) -> np.ndarray:
    """A noisy synthetic picture whose pattern (and colour) encodes its class."""
    yy, xx = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 6.28)
    period = rng.uniform(6, 14)
    if kind == 0:
        pattern, colour = np.sin(yy / period * 6.28 + phase), (200, 40, 40)
    elif kind == 1:
        pattern, colour = np.sin(xx / period * 6.28 + phase), (40, 180, 60)
    elif kind == 2:
        pattern, colour = np.sign(np.sin(xx / period * 3.14) * np.sin(yy / period * 3.14)), (40, 60, 200)
    else:
        r = np.hypot(yy - height / 2, xx - width / 2)
        pattern, colour = np.sin(r / period * 6.28 + phase), (150, 150, 150)
    base = 0.5 + 0.4 * pattern[..., None]
    image = base * np.asarray(colour) + rng.normal(0, 12, (height, width, 3)) + 30
    return np.clip(image, 0, 255).astype(np.uint8)


def write_images(root: Path) -> Path:
    """Folder per class, 8 images each, jpg and png mixed, in nested sub-folders (seeded: same pixels
    everywhere with the locked Pillow; test_fixtures checks the decoded pixels against IMAGES_SHA256)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        for i in range(8):
            folder = root / name / ("a" if i % 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            suffix = ".png" if i % 3 == 0 else ".jpg"
            Image.fromarray(make_image(k, rng)).save(folder / f"{i}{suffix}")
    return root


def build_tiny_model():
    from edgex.models.keras_xception import build_xception

    model = build_xception(input_size=TINY_SIZE, classes=len(CLASSES), width=0.125, middle_blocks=2)
    with np.load(TINY_WEIGHTS) as stored:
        model.set_weights([stored[k].astype(np.float32) for k in sorted(stored.files)])
    return model


def run_edgex(*args: str, timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, in a fresh process (`env`: variables added to this one's; tests/cli_calls.py)."""
    from cli_calls import run_cli

    return run_cli([str(a) for a in args], env or {}, timeout)


def leftovers(output: Path) -> list[Path]:
    """Staging folders or temp files an interrupted or failed run might leave behind."""
    return [p for p in output.rglob("*") if p.name.startswith(".edgex-staging-") or p.suffix == ".tmp"]
