"""Parity gate: does an artifact, in its real runtime, agree with its source model?"""

from __future__ import annotations

import time

import numpy as np

from edgex.options import Thresholds
from edgex.predict.standalone import nonfinite_reason


def comparable(outputs: np.ndarray, output_kind: str = "logits") -> np.ndarray:
    """Outputs in a space where cosine means closeness. Probabilities become their square roots: the cosine
    of sqrt(p) and sqrt(q) is the Bhattacharyya coefficient, 1 only for equal distributions, where a plain
    cosine of two confident softmaxes stays near 1 whatever the other classes do."""
    outputs = np.asarray(outputs, np.float64)
    if output_kind == "softmax":
        return np.sqrt(np.clip(outputs, 0, None))
    if output_kind == "sigmoid":  # one Bernoulli per class
        p = np.clip(outputs, 0, 1)
        return np.sqrt(np.concatenate([p, 1 - p], axis=1))
    return outputs


def compare(reference: np.ndarray, candidate: np.ndarray, output_kind: str = "logits") -> dict:
    """Agreement and error statistics of candidate outputs against reference outputs."""
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    cosine_of = "logits" if output_kind == "logits" else f"sqrt {output_kind} probabilities (Bhattacharyya)"
    nonfinite = {"nonfinite": int(np.sum(~np.isfinite(candidate))),
                 "nonfinite_reference": int(np.sum(~np.isfinite(reference)))}
    if nonfinite_reason(candidate) or nonfinite_reason(reference):  # NaN/Inf is a failure, not a statistic
        return {"n": int(len(reference)), "agreement": 0.0, "agree_count": 0, "max_abs": float("inf"),
                "mean_abs": float("inf"), "cosine": 0.0, "min_cosine": 0.0, "p05_cosine": 0.0,
                "cosine_of": cosine_of, **nonfinite}
    diff = np.abs(reference - candidate)
    ref, cand = comparable(reference, output_kind), comparable(candidate, output_kind)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.sum(ref * cand, axis=1) / np.maximum(norms, 1e-12)
    return {
        "n": int(len(reference)),
        "agreement": float(np.mean(reference.argmax(1) == candidate.argmax(1))),
        "agree_count": int(np.sum(reference.argmax(1) == candidate.argmax(1))),
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "cosine": float(cosine.mean()),
        "min_cosine": float(cosine.min()),
        "p05_cosine": float(np.percentile(cosine, 5)),
        "cosine_of": cosine_of,
        **nonfinite,
    }


def failures(metrics: dict, thresholds: Thresholds) -> list[str]:
    """Why the metrics miss the thresholds, one phrase each; empty when they pass."""
    out = []
    if metrics.get("nonfinite"):
        out.append(f"the artifact produced NaN/Inf outputs ({metrics['nonfinite']} value(s)): not a prediction")
    if metrics.get("nonfinite_reference"):
        out.append(f"the source model produced NaN/Inf outputs ({metrics['nonfinite_reference']} value(s)): "
                   "no reference to compare with")
    if out:  # agreement and cosine of NaN rows mean nothing: the reason above is the whole story
        return out
    if metrics["agreement"] < thresholds.min_agreement:
        out.append(f"top-1 agreement {metrics['agreement']:.3f} ({metrics['agree_count']}/{metrics['n']}) "
                   f"< {thresholds.min_agreement}")
    if not metrics["cosine"] >= thresholds.min_cosine:
        out.append(f"logit cosine {metrics['cosine']:.4f} < {thresholds.min_cosine}")
    if not metrics["p05_cosine"] >= thresholds.min_tail_cosine:
        out.append(f"worst-5% logit cosine {metrics['p05_cosine']:.4f} < {thresholds.min_tail_cosine}")
    return out


def timed_predict(fn, images: list[np.ndarray], advance) -> tuple[np.ndarray, float]:
    """Outputs of `fn` one image at a time, and the median milliseconds per image (first call excluded)."""
    out, times = [], []
    for image in images:
        start = time.perf_counter()
        out.append(fn(image[None]))
        times.append(time.perf_counter() - start)
        advance()
    steady = times[1:] or times
    return np.concatenate(out), round(1000 * float(np.median(steady)), 3)


def break_for_test(target: str, recipe: str | None, candidate: np.ndarray) -> np.ndarray:
    """Test-only: EDGEX_TEST_BREAK_RECIPE=target/recipe makes that recipe's artifact answer like a saturated
    kernel (logits scrambled), so the recipe fallback can be tested on a machine whose kernels never saturate."""
    import os

    if recipe is None or os.environ.get("EDGEX_TEST_BREAK_RECIPE") != f"{target}/{recipe}":
        return candidate
    return np.roll(candidate, 1, axis=1) * 0.5 + np.random.default_rng(0).normal(0, 1, candidate.shape)
