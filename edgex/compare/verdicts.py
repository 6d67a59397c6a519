"""One verdict per measured change of a paired row: better, within noise or worse.

Accuracy is judged on the images both runs scored (McNemar's exact test on the images that flipped), never
as a difference of two percentages: two runs that each get 98% right may disagree on a dozen images, or none.

Latency (and throughput and x floor, which follow it) is judged against the runs' own noise. bench reports the
p50 of each of its rounds; their spread says how far a p50 wanders on that machine at that time. A difference
of two independent runs wanders by the root sum of squares of their spreads, so a change is called only when
it exceeds `noise_k` (3) times that combined spread: about 3 standard deviations of what noise alone
produces (five rounds estimate a spread only roughly, hence 3 and not 2). The spread is taken per round, not
divided by the square root of the number of rounds, on purpose: it is measured within a run and cannot see
what differs between runs (another process's placement, page cache, clock policy), so it is kept
conservative. For the same reason no change under `min_change` (5%) is ever called: on a quiet machine the
rounds may agree to a fraction of a percent while two runs at different times differ by a few. Memory is
judged on the floor alone; file sizes are exact (0.1% absorbs metadata).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgex.compare.stats import combined_noise, mcnemar_exact, relative_spread
from edgex.options import CompareOptions

BETTER, NOISE, WORSE, UNKNOWN = "better", "within noise", "worse", "no verdict"


@dataclass
class Change:
    row: str
    metric: str  # "top-1", "p50", "throughput", "x floor", "peak RSS", "size", "status"
    baseline: float | str | None
    new: float | str | None
    change: float | None  # top-1: percentage points; the others: relative (0.1 = +10%)
    unit: str  # "pp" or "%" (or "" for status)
    verdict: str
    detail: str = ""
    flips: dict | None = None  # top-1: images that flipped each way, and the p-value
    threshold: float | None = None  # relative metrics: the change a verdict needs (noise band ±threshold)

    def to_dict(self) -> dict:
        return asdict(self)


def _judge(relative: float, threshold: float, higher_is_better: bool) -> str:
    if abs(relative) <= threshold:
        return NOISE
    return BETTER if (relative > 0) == higher_is_better else WORSE


def accuracy_change(row: str, old: dict, new: dict, old_labels: dict, new_labels: dict,
                    options: CompareOptions) -> Change | None:
    old_top1, new_top1 = (old.get("accuracy") or {}).get("top1"), (new.get("accuracy") or {}).get("top1")
    if old_top1 is None and new_top1 is None:
        return None
    old_pred, new_pred = old.get("predictions") or {}, new.get("predictions") or {}
    raw = (new_top1 - old_top1) * 100 if old_top1 is not None and new_top1 is not None else None
    missing = [side for side, pred, labels in (("baseline", old_pred, old_labels), ("new", new_pred, new_labels))
               if not pred or not labels]
    if missing:
        return Change(row, "top-1", old_top1, new_top1, raw, "pp", UNKNOWN,
                      f"no per-image predictions in the {' and '.join(missing)} report: rerun edgex bench "
                      "--eval-data with this edgex to pair the images")
    common = [k for k in old_pred if k in new_pred and k in old_labels and new_labels.get(k) == old_labels[k]]
    if not common:
        return Change(row, "top-1", old_top1, new_top1, raw, "pp", UNKNOWN, "the two runs share no labelled image")
    old_right = [old_pred[k] == old_labels[k] for k in common]
    new_right = [new_pred[k] == old_labels[k] for k in common]
    to_wrong = sum(o and not n for o, n in zip(old_right, new_right, strict=True))
    to_right = sum(n and not o for o, n in zip(old_right, new_right, strict=True))
    p_value = mcnemar_exact(to_wrong, to_right)
    old_acc, new_acc = sum(old_right) / len(common), sum(new_right) / len(common)
    verdict = NOISE if p_value >= options.alpha or to_wrong == to_right else (WORSE if to_wrong > to_right else BETTER)
    detail = (f"{to_wrong} of {len(common)} images flipped to wrong, {to_right} to right; "
              f"McNemar exact p={p_value:.3g} (called at p<{options.alpha:g})")
    return Change(row, "top-1", old_acc, new_acc, (new_acc - old_acc) * 100, "pp", verdict, detail,
                  {"to_wrong": to_wrong, "to_right": to_right, "images": len(common), "p_value": p_value})


def latency_threshold(old: dict, new: dict, options: CompareOptions) -> tuple[float, str]:
    """The relative change a latency-like metric must exceed to be called, and how it was set."""
    old_spread, new_spread = relative_spread(old.get("round_p50_ms")), relative_spread(new.get("round_p50_ms"))
    noise = combined_noise(old_spread, new_spread)
    if noise is None:
        which = " and ".join(s for s, v in (("baseline", old_spread), ("new", new_spread)) if v is None)
        return options.min_change, f"no rounds in the {which} report: the {options.min_change:.0%} floor alone"
    threshold = max(options.min_change, options.noise_k * noise)
    return threshold, (f"±{threshold:.1%} = max({options.min_change:.0%}, {options.noise_k:g} × {noise:.1%} "
                       f"round-to-round noise: baseline {old_spread:.1%}, new {new_spread:.1%})")


def _relative(row: str, metric: str, old: float | None, new: float | None, threshold: float, why: str,
              higher_is_better: bool = False) -> Change | None:
    if old is None or new is None or old <= 0:
        return None
    relative = new / old - 1
    return Change(row, metric, old, new, relative, "%", _judge(relative, threshold, higher_is_better), why,
                  threshold=threshold)


def _throughput(row: dict) -> float | None:
    return (row.get("streams") or {}).get("throughput_ips") or row.get("throughput_ips")


def row_changes(row: str, old: dict, new: dict, old_labels: dict, new_labels: dict,
                options: CompareOptions) -> list[Change]:
    """Every change between two runs of one artifact that both measured."""
    if old.get("status") != "ok" or new.get("status") != "ok":
        if old.get("status") == new.get("status"):
            return [Change(row, "status", old.get("status"), new.get("status"), None, "", NOISE,
                           f"failed in both: {new.get('error')}")]
        worse = new.get("status") != "ok"
        return [Change(row, "status", old.get("status"), new.get("status"), None, "", WORSE if worse else BETTER,
                       (new if worse else old).get("error") or "")]
    threshold, why = latency_threshold(old, new, options)
    changes = [
        accuracy_change(row, old, new, old_labels, new_labels, options),
        _relative(row, "p50", (old.get("latency_ms") or {}).get("p50"), (new.get("latency_ms") or {}).get("p50"),
                  threshold, why),
        _relative(row, "throughput", _throughput(old), _throughput(new), threshold, why, higher_is_better=True),
        _relative(row, "x floor", (old.get("floor") or {}).get("ratio"), (new.get("floor") or {}).get("ratio"),
                  threshold, why),
        _relative(row, "peak RSS", old.get("peak_rss_mb"), new.get("peak_rss_mb"), options.min_change,
                  f"±{options.min_change:.0%}: memory is called on the floor alone"),
        _relative(row, "size", old.get("size_bytes"), new.get("size_bytes"), options.size_change,
                  f"±{options.size_change:.1%}: file sizes are exact"),
    ]
    return [c for c in changes if c is not None]
