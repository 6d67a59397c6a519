"""Parity gate: does an artifact, in its real runtime, agree with its source model?"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Thresholds:
    """Minimum top-1 agreement, mean logit cosine and worst-5% cosine an artifact must reach.

    The tail matters: a kernel that saturates on a few images barely moves the mean."""

    min_agreement: float
    min_cosine: float
    min_tail_cosine: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# Float artifacts must match almost exactly; int8 may flip a few near-tie images but must
# stay close: a broken scale or a collapsed range drops agreement and cosine far below these.
DEFAULT_THRESHOLDS = {
    "fp32": Thresholds(min_agreement=0.99, min_cosine=0.9999, min_tail_cosine=0.999),
    "fp16": Thresholds(min_agreement=0.95, min_cosine=0.999, min_tail_cosine=0.99),
    "dynamic": Thresholds(min_agreement=0.9, min_cosine=0.98, min_tail_cosine=0.9),
    "int8": Thresholds(min_agreement=0.9, min_cosine=0.95, min_tail_cosine=0.85),
}


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Agreement and error statistics of candidate logits against reference logits."""
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    diff = np.abs(reference - candidate)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosine = np.sum(reference * candidate, axis=1) / np.maximum(norms, 1e-12)
    finite = bool(np.all(np.isfinite(candidate)))
    return {
        "n": int(len(reference)),
        "agreement": float(np.mean(reference.argmax(1) == candidate.argmax(1))),
        "agree_count": int(np.sum(reference.argmax(1) == candidate.argmax(1))),
        "max_abs": float(diff.max()) if finite else float("inf"),
        "mean_abs": float(diff.mean()) if finite else float("inf"),
        "cosine": float(cosine.mean()) if finite else 0.0,
        "min_cosine": float(cosine.min()) if finite else 0.0,
        "p05_cosine": float(np.percentile(cosine, 5)) if finite else 0.0,
    }


def failures(metrics: dict, thresholds: Thresholds) -> list[str]:
    """Why the metrics miss the thresholds, one phrase each; empty when they pass."""
    out = []
    if metrics["agreement"] < thresholds.min_agreement:
        out.append(f"top-1 agreement {metrics['agreement']:.3f} ({metrics['agree_count']}/{metrics['n']}) "
                   f"< {thresholds.min_agreement}")
    if not metrics["cosine"] >= thresholds.min_cosine:
        out.append(f"logit cosine {metrics['cosine']:.4f} < {thresholds.min_cosine}")
    if not metrics["p05_cosine"] >= thresholds.min_tail_cosine:
        out.append(f"worst-5% logit cosine {metrics['p05_cosine']:.4f} < {thresholds.min_tail_cosine}")
    return out
