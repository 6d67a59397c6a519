"""Per-target post-training quantization recipes: an ordered list per target, fastest first.

A recipe is plain data: the converter applies it and the manifest records it, so an artifact says
exactly how it was quantized. `convert` tries a target's recipes in order and keeps the first one
whose artifact passes the parity gate in the runtime's default configuration (see edgex.conversion.build).

`safe_isa` names the CPU classes (edgex.isa) whose int8 kernels cannot overflow on the recipe's
weights by construction. The parity gate only measures the CPU that converts; a recipe that is not
safe everywhere is verified for that CPU alone, and bench/eval warn when it runs elsewhere.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, replace

from edgex.errors import UsageError
from edgex.isa import ISA_CLASSES, X86_MACHINES
from edgex.options import CALIBRATION

_EVERYWHERE = ISA_CLASSES
_NOT_AVX2 = tuple(c for c in ISA_CLASSES if c != "x86-avx2")


@dataclass(frozen=True)
class Recipe:
    """How one target is quantized."""

    target: str
    name: str
    range_estimator: str = CALIBRATION.method
    activation_type: str = "int8"
    weight_type: str = "int8"
    weight_bits: int = 8  # 7: half the int8 range, so two u8*s8 products fit a saturating int16
    per_channel_weights: bool = True
    symmetric_weights: bool = True
    preset: str = ""  # OpenVINO: NNCF's QuantizationPreset
    safe_isa: tuple[str, ...] = _EVERYWHERE
    notes: str = ""
    graph_rewrites: tuple[str, ...] = ()  # changes made to the quantized graph for the runtime's sake
    from_onnx_qdq: bool = False  # OpenVINO: read the ONNX target's QDQ int8 graph instead of running NNCF
    fallback: bool = False  # built only when the recipes before it fail parity: its kernels are known slower

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def kernels(self) -> str:
        """What the runtime executes for this recipe. Recipes that differ only in their weights' bits (7 or 8)
        run the same kernels at the same speed: once one passes parity, the others cannot publish faster."""
        return (f"{self.target}:{self.activation_type}/{self.weight_type}/{self.per_channel_weights}/"
                f"{self.symmetric_weights}/{self.preset}/{self.from_onnx_qdq}")

    def with_rewrite(self, rewrite: str) -> Recipe:
        return replace(self, graph_rewrites=(*self.graph_rewrites, rewrite))

    def with_note(self, note: str) -> Recipe:
        """The notes with one more clause, e.g. the artifact's input/output types once it is written."""
        return replace(self, notes=f"{self.notes}; {note}" if self.notes else note)


def _onnx(machine: str) -> list[Recipe]:
    notes = "ORT quantize_static, QDQ, per-channel weights, ranges from edgex's streaming estimator"
    w7 = Recipe("onnx", "u8s8-w7", activation_type="uint8", weight_bits=7,
                notes=notes + "; 7-bit weights (reduce_range): no VPMADDUBSW saturation on AVX2-only x86")
    # MLAS's U8U8 kernels do not saturate and are slower than its U8S8 ones on every x86 ISA measured (2.4x on
    # AVX-512 VNNI, 1.3x on AVX2, docs/performance.md): u8u8 is the way out when the u8s8 recipes fail parity.
    u8u8 = Recipe("onnx", "u8u8", activation_type="uint8", weight_type="uint8", symmetric_weights=False,
                  fallback=machine in X86_MACHINES,
                  notes=notes + "; uint8 weights: ORT's U8U8 kernels do not saturate, slower than U8S8 on x86")
    full = Recipe("onnx", "u8s8", activation_type="uint8", safe_isa=_NOT_AVX2,
                  notes=notes + "; full 8-bit weights: may saturate in ORT's fused kernels on AVX2-only x86")
    if machine in X86_MACHINES:
        return [w7, u8u8, full]
    # Arm: MLAS runs S8S8 natively (sdot/smull) and widens before it adds, so 8-bit weights are safe there.
    s8s8 = Recipe("onnx", "s8s8", safe_isa=_NOT_AVX2, notes=notes + "; int8 activations (Arm's native S8S8)")
    return [s8s8, w7, u8u8]


def _openvino(qdq_first: bool) -> list[Recipe]:
    """NNCF's recipes and the ONNX QDQ graph read by OpenVINO, first where the fp32 ONNX graph is made in seconds
    (PyTorch and ONNX sources, Keras Xceptions through the PyTorch port: `converters.onnx.cheap_float_export`).
    NNCF's statistics pass over the calibration set (122 s of a 310 s Keras all-int8 run on 2 AVX2 cores) is a
    second range pass; the QDQ graph reuses the run's one range pass. Elsewhere it would need tf2onnx (a 3.5 GB
    child), so it comes last, for `--recipe`. Parity decides, as always."""
    notes = "nncf.quantize with the calibration set; NNCF's own mean-of-per-sample min/max ranges"
    qdq = Recipe("openvino", "qdq-w7", activation_type="uint8", weight_bits=7, from_onnx_qdq=True,
                 notes="ONNX Runtime's QDQ int8 graph (edgex's ranges, per-channel 7-bit weights) read by OpenVINO, "
                       "no NNCF pass; 7-bit weights: no saturation on AVX2/AVX-512 without VNNI")
    nncf_recipes = [
        Recipe("openvino", "performance-w7", range_estimator="nncf_default", activation_type="uint8/int8",
               weight_bits=7, preset="performance",
               notes=notes + "; OverflowFix.ENABLE (7-bit weights): no saturation on AVX2/AVX-512 without VNNI"),
        Recipe("openvino", "mixed-w7", range_estimator="nncf_default", activation_type="uint8/int8 asymmetric",
               weight_bits=7, preset="mixed", notes=notes + "; asymmetric activations, OverflowFix.ENABLE"),
        Recipe("openvino", "performance", range_estimator="nncf_default", activation_type="uint8/int8",
               preset="performance", safe_isa=_NOT_AVX2,
               notes=notes + "; NNCF defaults (OverflowFix.FIRST_LAYER): may saturate on AVX2-only x86"),
    ]
    return [qdq, *nncf_recipes] if qdq_first else [*nncf_recipes, qdq]


def _tflite() -> list[Recipe]:
    notes = "TFLiteConverter calibrate-only, ranges replaced by edgex's estimator, then MLIR quantizer"
    return [
        # XNNPACK's QS8 kernels widen int8 to int16 before multiplying: no saturation on any ISA.
        # Layers kept in float, when int8 itself is the problem, are the accuracy budget's job.
        Recipe("tflite", "int8", notes=notes + ", full int8"),
    ]


def candidate_recipes(target: str, range_estimator: str = CALIBRATION.method,
                      machine: str | None = None, qdq_first: bool = False) -> list[Recipe]:
    """The recipes `convert` tries for `target`, in order: portable and fastest first. `qdq_first`: the source's
    fp32 ONNX graph is made in seconds (`converters.onnx.cheap_float_export`), so OpenVINO reads its QDQ graph."""
    machine = (machine or platform.machine()).lower()
    table = {"onnx": lambda: _onnx(machine), "openvino": lambda: _openvino(qdq_first), "tflite": _tflite}
    recipes = table[target]()
    if range_estimator != CALIBRATION.method:
        recipes = [replace(r, range_estimator=range_estimator) for r in recipes]
    return recipes


def recipe_names(target: str, names: str, range_estimator: str = CALIBRATION.method,
                 qdq_first: bool = False) -> list[str]:
    """`--recipe A,B`: each name checked (an unknown one is a usage error listing the others), order kept."""
    wanted = [n.strip() for n in names.split(",") if n.strip()] or [names]
    return list(dict.fromkeys(recipe_named(target, n, range_estimator, qdq_first).name for n in wanted))


def recipe_named(target: str, name: str | None, range_estimator: str = CALIBRATION.method,
                 qdq_first: bool = False) -> Recipe:
    """One recipe by name (None: the first candidate); an unknown name is a usage error listing the others."""
    recipes = candidate_recipes(target, range_estimator, qdq_first=qdq_first)
    if name is None:
        return recipes[0]
    for recipe in recipes:
        if recipe.name == name:
            return recipe
    raise UsageError(f"{target} has no recipe {name!r}",
                     f"{target} recipes here: {', '.join(r.name for r in recipes)}.")

