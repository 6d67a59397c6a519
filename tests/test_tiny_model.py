"""The tiny Xception keeps the real block structure and its fitted head separates the classes."""

import numpy as np
from helpers import CLASSES, TINY_SIZE


def test_structure_matches_xception_at_full_width():
    import keras

    from edgex.models.keras_xception import build_xception

    ours = build_xception(input_size=299, classes=1000, width=1.0, middle_blocks=8)
    reference = keras.applications.Xception(weights=None, include_top=True, classes=1000)
    assert ours.count_params() == reference.count_params() == 22_910_480
    convs = [layer for layer in ours.layers if type(layer).__name__ in ("Conv2D", "SeparableConv2D")]
    assert len(convs) == 36 + 4  # 36 feature convs + 4 strided 1x1 residual convs


def test_tiny_model_classifies_generated_images(tiny_model, images_dir):
    import keras

    from edgex.evaluation.labelled import labelled_folder, preprocess_all, top1
    from edgex.preprocess import Preprocess

    model = keras.saving.load_model(tiny_model)
    files, labels, _ = labelled_folder(images_dir, CLASSES)
    logits = np.asarray(model(preprocess_all(files, Preprocess(TINY_SIZE, TINY_SIZE))))
    assert top1(logits, labels) >= 0.9
