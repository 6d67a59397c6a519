"""Benchmarking: `runner.py` times one artifact in a clean process (also on edge devices); `suite` runs it
for every artifact, adds accuracy, and assembles the report."""
