"""Per-layer quantization diagnosis: which layers of an int8 artifact carry its error, and why.

For every quantized activation of an artifact the diagnosis measures, on calibration images,
the error of the int8 tensor against the float model (SQNR in dB and relative L2 error, which
accumulates everything upstream) and the error at the model output when *only* that activation
is quantized (what that one quantizer costs). Names are traced back to the Keras layer and to
the other formats' nodes, so one diagnosis serves every target. Entry point: `run.diagnose`.
"""
