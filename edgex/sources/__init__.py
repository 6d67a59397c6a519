"""Source models: Keras and PyTorch loaded safely into a `Source`, exported per target, ported Keras -> PyTorch."""
