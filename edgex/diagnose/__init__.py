"""Per-layer quantization diagnosis: which layers of an int8 artifact carry its error, and why.

Two references, both reported: the FP32 source (the manifest's model, checked by sha256, run as
`edgex eval` runs it, so the model-output agreement is eval's) and the artifact unquantized (its
own graph with the activation quantizers bypassed). For every quantized activation the diagnosis
measures, on calibration images, the error of the int8 tensor against both (SQNR in dB and relative
L2 error, which accumulate everything upstream), the share of its integer grid it uses, the share
of values clipped, and the error at the model output when *only* that activation is quantized.
The runtime configuration users run is compared with the one measured per layer (ONNX: ORT's
fused session node by node, optionally on an emulated CPU; TFLite: XNNPACK; OpenVINO: the precision
that really runs). Every figure passes `invariants.check`; an impossible one is a bug (exit 1).
Names are traced back to the Keras layer and to the other formats' nodes. Entry point: `run.diagnose`.
"""
