"""Calibration data and post-training quantization recipes (installed as `edgex.calibration`)."""
