"""requirements.txt and README.md of a deploy bundle, written for 64-bit Raspberry Pi OS (aarch64).

The runtime is pinned to the version that passed the artifact's parity gate (read from its manifest):
that is the version known to give these logits. numpy stays a range (1.24 up to 2.x) because Pi OS
images ship either, and every pinned runtime supports both; Pillow only needs 10 or later.
"""

from __future__ import annotations

RUNTIME_PACKAGES = {"litert": "ai-edge-litert", "onnxruntime": "onnxruntime", "openvino": "openvino"}
NUMPY = "numpy>=1.24,<3"
PILLOW = "pillow>=10"
TFLITE_RUNTIME_FALLBACK = "tflite-runtime==2.14.0"  # the last release: Python 3.9-3.11, numpy 1 only


def runtime_requirement(runtime: str, manifest: dict) -> tuple[str, str]:
    """(requirement line, why that version) for the artifact's runtime."""
    package = RUNTIME_PACKAGES[runtime]
    verified = ((manifest.get("parity") or {}).get("runtime") or {})
    if runtime == "litert" and verified.get("package") == "tflite-runtime":
        package = "tflite-runtime"
    version = verified.get("version") if verified.get("package", package) == package else None
    version = version or (manifest.get("versions") or {}).get(package)
    if version:
        return f"{package}=={version}", f"the version that passed this artifact's parity check ({package} {version})"
    return package, "unpinned: the manifest records no runtime version"


def requirements_txt(runtime: str, manifest: dict) -> str:
    line, why = runtime_requirement(runtime, manifest)
    numpy = "numpy>=1.24,<2" if line.startswith("tflite-runtime") else NUMPY
    text = (f"# predict.py on 64-bit Raspberry Pi OS (aarch64; Python 3.11 on Pi OS 12, 3.13 on Pi OS 13), or any PC.\n"
            f"# {line.split('=')[0]}: {why}.\n{numpy}\n{PILLOW}\n{line}\n")
    if runtime == "litert" and not line.startswith("tflite-runtime"):
        text += (f"# Fallback where ai-edge-litert has no wheel (32-bit Pi OS, Python 3.9): replace the line above\n"
                 f"# with {TFLITE_RUNTIME_FALLBACK} and numpy<2; predict.py uses whichever is installed.\n")
    return text


def readme(name: str, manifest: dict, runtime: str, classes: list[str], tarball: str | None) -> str:
    """The bundle's README: what it is, the two commands to run it on the device, what it prints."""
    pre = manifest.get("preprocess") or {}
    parity = manifest.get("parity") or {}
    source = (manifest.get("source") or {}).get("name") or "its source model"
    line, _ = runtime_requirement(runtime, manifest)
    crop = f", center crop {pre['crop_fraction']}" if pre.get("crop_fraction") else ""
    scaling = f"(x - {_one(pre.get('mean'))}) / {_one(pre.get('std'))}"
    verified = ""
    if parity.get("n"):
        verified = (f"\n- verified when converted: top-1 agreement {parity.get('agreement', 0):.3f} and mean cosine "
                    f"{parity.get('cosine', 0):.4f} with {source} on {parity['n']} images")
    host = "pi@raspberrypi.local"
    copy = (f"    scp {tarball} {host}:\n    ssh {host}\n    tar xzf {tarball} && cd {name}\n" if tarball
            else f"    scp -r {name} {host}:\n    ssh {host}\n    cd {name}\n")
    return f"""# {name}

An image classifier ({manifest.get('target', '')}, {manifest.get('precision', '')}) for an edge device, made by \
edgex {manifest.get('edgex_version', '')} from {source}.

- classes: {len(classes)}, in labels.txt (output order)
- input: {pre.get('height')}x{pre.get('width')} {pre.get('channel_order', 'RGB')}, \
{pre.get('interpolation', 'bilinear')} resize{crop}, {scaling}, {pre.get('layout', 'NHWC')}{verified}

## Run it on the device

Copy it there (64-bit Raspberry Pi OS shown; any machine with Python 3.9+ works):

{copy}
Then the two commands (on Raspberry Pi OS 12 and later, first `python3 -m venv ~/venv && . ~/venv/bin/activate`:
pip installs into a virtual environment only):

    python3 -m pip install -r requirements.txt
    python3 predict.py photos/ --csv predictions.csv

predict.py takes image files, folders (searched recursively) and quoted globs, and prints one line per image:
the path, then the top-5 labels with their probabilities (`--top-k K` for more or fewer). An image that
cannot be read gets an error line and the others continue. `--csv FILE` writes `path,label,probability,top_k`
(top_k: `label:probability` joined by `|`), the same CSV as `edgex predict --csv`.

It needs only Python 3, numpy, Pillow and {line} (requirements.txt). It preprocesses images exactly
as edgex did when it verified this model (EXIF orientation, RGB conversion, the resize and scaling above, int8 input
and output scaling from the model): `edgex predict` on a PC gives the same labels and probabilities.

Exit codes: 0 all images classified; 4 some images failed; 65 the model cannot be loaded or run;
66 no images found; 69 the runtime or Pillow is not installed; 73 the CSV cannot be written.

## Files

- `{manifest.get('model_file', '')}`: the model; `manifest.json`: how edgex built and verified it
- `labels.txt`: the class names, one per line, in output order
- `predict.py`: the one-file predictor; `requirements.txt`: what it needs
"""


def _one(values) -> str:
    """mean/std as one number when the three channels agree."""
    values = list(values or [127.5])
    return f"{values[0]:g}" if len(set(values)) == 1 else "(" + ", ".join(f"{v:g}" for v in values) + ")"
