"""A second labelled set and model, kept apart from the clothing test split: "clothing-b".

    .venv/bin/python benchmarks/second_dataset.py [--build build]

So that no default or threshold is tuned to one dataset: another class subset (7 of the 10
clothing classes: no t-shirt, hat or skirt), another head (softmax regression fitted here, not
the shared one), another resize (BILINEAR, not NEAREST) and other images (only the train/ split,
which the clothing benchmarks never touch). Each train image goes, by a hash of its file name, to
exactly one of: head fitting (55%), calibration (20%) or test (25%).

Writes build/clothing-b/{calibration,test/<class>}/ (symlinks), build/clothing_b_xception.keras
and its .classes.json. About 3 minutes on 2 cores (features of ~1000 images).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, shared_dir  # noqa: E402

CLASSES = ["dress", "longsleeve", "outwear", "pants", "shirt", "shoes", "shorts"]
SPLITS = (("fit", 11), ("calibration", 15), ("test", 20))  # hash % 20 below each bound


def split_of(name: str) -> str:
    bucket = int(hashlib.sha1(name.encode()).hexdigest(), 16) % 20
    return next(split for split, bound in SPLITS if bucket < bound)


def fit_softmax(features: np.ndarray, labels: np.ndarray, classes: int, steps: int = 500) -> tuple:
    """Multinomial logistic regression by full-batch gradient descent with a small L2 penalty."""
    x = np.asarray(features, np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w, b = np.zeros((x.shape[1], classes)), np.zeros(classes)
    onehot = np.eye(classes)[labels]
    for _ in range(steps):
        logits = z @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / len(z)
        w -= 0.5 * (z.T @ grad + 1e-3 * w)
        b -= 0.5 * grad.sum(0)
    # fold the standardisation into the dense layer: logits = x @ (w/std) + (b - mean/std @ w)
    return (w / std[:, None]).astype(np.float32), (b - (mean / std) @ w).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, default=REPO / "build")
    args = ap.parse_args()
    train = shared_dir() / "datasets" / "clothing-small" / "train"
    if not train.is_dir():
        raise SystemExit(f"clothing data not found under {shared_dir()}: set EDGEX_SHARED")
    root = args.build / "clothing-b"
    model_path = args.build / "clothing_b_xception.keras"
    files = {split: [] for split, _ in SPLITS}
    for k, name in enumerate(CLASSES):
        for path in sorted((train / name).iterdir()):
            files[split_of(path.name)].append((path, k))
    for split in ("calibration", "test"):
        for path, k in files[split]:
            link = root / split / (CLASSES[k] if split == "test" else "") / path.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(path)
    print(f"clothing-b: fit {len(files['fit'])}, calibration {len(files['calibration'])}, "
          f"test {len(files['test'])} images, {len(CLASSES)} classes")
    if model_path.is_file():
        print(f"{model_path} exists")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from edgex.preprocess import Preprocess

    sys.path.insert(0, str(shared_dir() / "tools"))
    from build_head_model import kitchenware_model_path

    backbone = keras.saving.load_model(kitchenware_model_path()).get_layer("xception")
    full = keras.applications.Xception(weights=None, include_top=False, input_shape=(299, 299, 3), pooling="avg")
    full.set_weights(backbone.get_weights())
    pre = Preprocess(299, 299, interpolation="bilinear")
    feats, labels = [], []
    for i in range(0, len(files["fit"]), 32):
        chunk = files["fit"][i:i + 32]
        feats.append(np.asarray(full(np.stack([pre.load(p) for p, _ in chunk]), training=False)))
        labels += [k for _, k in chunk]
    kernel, bias = fit_softmax(np.concatenate(feats), np.asarray(labels), len(CLASSES))
    head = args.build / "clothing_b_head.npz"
    np.savez(head, kernel=kernel, bias=bias, classes=np.asarray(CLASSES))
    subprocess.run([sys.executable, str(shared_dir() / "tools" / "build_head_model.py"), str(head),
                    str(model_path)], check=True)
    # the preprocessing this head was fitted with travels beside the model
    (args.build / "clothing_b_xception.preprocess.json").write_text(json.dumps({"interpolation": "bilinear"}))


if __name__ == "__main__":
    main()
