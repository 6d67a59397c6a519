"""Accuracy of artifacts on labelled images: data loading, metrics, and the FP32 source reference."""
