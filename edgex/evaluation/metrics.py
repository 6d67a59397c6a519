"""Accuracy metrics and the paired bootstrap that tells a real accuracy drop from noise."""

from __future__ import annotations

import numpy as np

from edgex.conversion.parity import compare

BOOTSTRAP_SAMPLES = 2000


def accuracy(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """top-1, top-5 (when there are more than 5 classes), per-class accuracy and the confusion matrix."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    predicted = logits.argmax(axis=1)
    correct = predicted == labels
    out = {"n": int(len(labels)), "correct": int(correct.sum()), "top1": float(correct.mean())}
    if logits.shape[1] > 5:
        top5 = np.argsort(-logits, axis=1)[:, :5]
        out["top5"] = float(np.mean(np.any(top5 == labels[:, None], axis=1)))
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    out["per_class"] = {
        name: {"n": int(confusion[i].sum()), "correct": int(confusion[i, i]),
               "accuracy": float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None}
        for i, name in enumerate(classes)
    }
    out["confusion"] = {"rows": "true class", "columns": "predicted class", "classes": list(classes),
                        "matrix": confusion.tolist()}
    return out


def top1_drop(reference_correct: np.ndarray, candidate_correct: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
              seed: int = 0) -> dict:
    """Top-1 drop (reference - candidate, percentage points) with a paired bootstrap 95% interval.

    Images are resampled with replacement and both models scored on the same resample, so the
    interval reflects the images on which they differ; if it contains 0 the drop may be noise.
    """
    ref = np.asarray(reference_correct, dtype=np.float64)
    cand = np.asarray(candidate_correct, dtype=np.float64)
    diff = ref - cand
    rng = np.random.default_rng(seed)
    drops = np.empty(samples)
    for start in range(0, samples, 250):  # chunks keep memory flat for large test sets
        count = min(250, samples - start)
        idx = rng.integers(0, len(diff), size=(count, len(diff)))
        drops[start : start + count] = diff[idx].mean(axis=1)
    low, high = np.percentile(drops, [2.5, 97.5]) * 100
    return {"drop_pp": float(diff.mean() * 100), "ci95_pp": [float(low), float(high)], "bootstrap_samples": samples,
            "significant": bool(low > 0 or high < 0), "images_only_reference_right": int(np.sum(diff > 0)),
            "images_only_candidate_right": int(np.sum(diff < 0))}


def versus_reference(reference_logits: np.ndarray, candidate_logits: np.ndarray, labels: np.ndarray) -> dict:
    """Agreement with the FP32 source on the same images and the bootstrap CI of the top-1 drop."""
    metrics = compare(reference_logits, candidate_logits)
    drop = top1_drop(reference_logits.argmax(1) == labels, candidate_logits.argmax(1) == labels)
    return {"agreement": metrics["agreement"], "agree_count": metrics["agree_count"], "cosine": metrics["cosine"],
            **drop}
