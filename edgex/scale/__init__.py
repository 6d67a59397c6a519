"""Scale-out: evaluation sharded over a Ray cluster (`--ray`), latency on SSH device fleets (`--remote-hosts`).

Both plug into the same `run_suite` as a local run through its `runner` seam, so rows, accuracy, the FP32
reference and report.json come from one code path. Ray is an optional extra (`pip install edgex[ray]`):
nothing here imports it at module level, so `edgex --help` stays instant without it.
"""
