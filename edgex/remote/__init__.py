"""Benchmark artifacts on another machine (a Raspberry Pi, a small Intel box) over SSH.

Nothing of edgex is installed there: a private temp folder receives the artifacts and the one-file
runner, checksums are verified on the device, the runner measures, and the folder is removed when
the connection ends, whichever way it ends.
"""
