"""Checks that run on untrusted inputs before any framework touches them.

`check_model_file(path, trust_model)` sniffs a model file by its bytes, applies the safety policy
(formats that can run code need --trust-model), validates ONNX external data, TFLite headers and
OpenVINO weight offsets, then parses the file in a child process so a native crash is an error,
not a dead CLI. Every function here is cheap to import: no framework loads at import time.
"""
