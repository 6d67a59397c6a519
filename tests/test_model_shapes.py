"""The shapes of Xception classifiers people ship: each converts to all three int8 targets and keeps its
accuracy on the generated images, or is refused with one line and a documented exit code.

Every Keras variant reuses the committed tiny weights (tests/data), so none is retrained here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import CLASSES, TINY_SIZE, build_tiny_model, run_edgex

pytestmark = pytest.mark.slow

TARGETS = ("onnx", "openvino", "tflite")


def _backbone(size=TINY_SIZE):
    """The tiny Xception up to global average pooling, at `size`, with the committed weights."""
    import keras

    from edgex.models.keras_xception import build_xception

    model = build_xception(input_size=size, classes=len(CLASSES), width=0.125, middle_blocks=2)
    model.set_weights(build_tiny_model().get_weights())
    return keras.Model(model.inputs, model.get_layer("avg_pool").output, name="xception"), model


def _head(activation=None):
    import keras

    dense = keras.layers.Dense(len(CLASSES), activation=activation, name="predictions")
    dense.build((None, build_tiny_model().get_layer("logits").input.shape[-1]))
    dense.set_weights(build_tiny_model().get_layer("logits").get_weights())
    return dense


def _raw_pixel_model(scaling, augment: bool):
    """Input(0..255) -> [augmentation] -> scaling layer -> backbone -> [Dropout] -> Dense, as Keras' guide."""
    import keras
    from keras import layers

    features, _ = _backbone()
    inputs = keras.Input((TINY_SIZE, TINY_SIZE, 3))
    x = inputs
    if augment:
        x = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)],
                             name="data_augmentation")(x)
    x = features(scaling(x), training=False)
    if augment:
        x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, _head()(x))


def _normalization():
    from keras import layers

    norm = layers.Normalization()
    norm.adapt(np.array([[[[0.0, 0.0, 0.0]]], [[[255.0, 255.0, 255.0]]]], np.float32))  # mean 127.5, std 127.5
    return norm


def _build(shape: str, folder):
    """Save the model for `shape` under `folder`; returns (path, extra convert flags)."""
    import keras
    from keras import layers

    path = folder / f"{shape}.keras"
    extra: list[str] = []
    if shape == "size-150":
        model = _backbone(150)[1]
    elif shape == "non-square-96x128":
        model = _backbone((96, 128))[1]
    elif shape == "free-size-resizing":
        features, _ = _backbone()
        inputs = keras.Input((None, None, 3))
        model = keras.Model(inputs, _head()(features(layers.Resizing(TINY_SIZE, TINY_SIZE)(inputs))))
    elif shape in ("softmax-head", "sigmoid-multilabel"):
        features, _ = _backbone()
        model = keras.Model(features.inputs, _head(shape.split("-")[0])(features.output))
    elif shape == "sequential":
        features, _ = _backbone()
        model = keras.Sequential([keras.Input((TINY_SIZE, TINY_SIZE, 3)), features, _head()])
    elif shape == "keras-guide-augmentation":
        model = _raw_pixel_model(layers.Rescaling(1 / 127.5, offset=-1), augment=True)
    elif shape == "normalization-adapted":
        model = _raw_pixel_model(_normalization(), augment=False)
    elif shape == "legacy-h5":
        path, extra = folder / "legacy.h5", ["--trust-model"]
        model = build_tiny_model()
    elif shape == "savedmodel":
        path, extra = folder / "savedmodel", ["--trust-model"]
        build_tiny_model().export(str(path), format="tf_saved_model", verbose=False)
        (path / "classes.json").write_text(json.dumps(CLASSES))
        return path, extra
    else:
        raise AssertionError(shape)
    model.save(path)
    (folder / f"{path.stem}.classes.json").write_text(json.dumps(CLASSES))
    return path, extra


SHAPES = ("size-150", "non-square-96x128", "free-size-resizing", "softmax-head", "sigmoid-multilabel", "sequential",
          "keras-guide-augmentation", "normalization-adapted", "legacy-h5", "savedmodel")


def _source_top1(model, extra, manifest, images_dir) -> float:
    from edgex.evaluation.labelled import labelled_folder
    from edgex.preprocess import Preprocess
    from edgex.sources.load import load_source

    source = load_source(model, trust_model="--trust-model" in extra)
    files, labels, _ = labelled_folder(images_dir, CLASSES)
    pre = Preprocess.from_dict(manifest["preprocess"])
    out = np.concatenate([source.predict(pre.load(f)[None]) for f in files])
    source.close()
    return float(np.mean(out.argmax(1) == labels))


def _top1(folder, manifest, images_dir) -> float:
    from edgex.converters import TARGETS as INFO

    from edgex.evaluation.labelled import labelled_folder
    from edgex.preprocess import Preprocess
    from edgex.runtimes import open_runtime

    files, labels, _ = labelled_folder(images_dir, CLASSES)
    pre = Preprocess.from_dict(manifest["preprocess"])
    runtime = open_runtime(INFO[manifest["target"]].runtime, folder / manifest["model_file"], "int8", 2)
    out = np.concatenate([runtime.run(pre.load(f)[None]) for f in files])
    return float(np.mean(out.argmax(1) == labels))


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_converts_to_every_int8_target(shape, images_dir, tmp_path):
    model, extra = _build(shape, tmp_path)
    # Parity on all 32 generated images: with the 8 left after calibration one flipped image is 0.875 < 0.9,
    # and the size-150 variant (weights trained at 96) flips one on AMD Zen 4's XNNPACK kernels.
    # size-150 runs weights trained at 96 on 150x150 inputs: no trained model, so its int8 margin is thin on
    # every CPU. AMD Zen 3 (AVX2, no VNNI) flips 4 of 32 in OpenVINO (agreement 0.875): the gate gets 0.75
    # there, and top-1 may move by 4 images; the trained shapes keep the default gate and 2 images.
    thin = shape == "size-150"
    gate = ["--min-agreement", "0.75"] if thin else []
    done = run_edgex("convert", "--model", model, "--target", "all", "--int8", "--calib-data", images_dir,
                     "--calib-size", "24", "--parity-data", images_dir, "--output", tmp_path / "out", "--json",
                     "-q", *gate, *extra)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert sorted(r["target"] for r in results) == sorted(TARGETS)
    fp32 = None
    for result in results:
        folder = Path(result["path"])
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["parity"]["passed"], (shape, result["target"], manifest["parity"])
        fp32 = _source_top1(model, extra, manifest, images_dir) if fp32 is None else fp32
        top1 = _top1(folder, manifest, images_dir)
        assert top1 >= fp32 - (4 if thin else 2) / 32, (shape, result["target"], top1, fp32)
    if shape == "keras-guide-augmentation":
        manifest = json.loads((folder / "manifest.json").read_text())
        assert [r["type"] for r in manifest["inference_graph"]["removed"]] == ["Sequential", "Dropout"]
        assert manifest["preprocess"]["mean"] == [0.0, 0.0, 0.0]  # raw pixels: the model rescales itself
    if shape in ("softmax-head", "sigmoid-multilabel"):
        assert manifest["output_kind"] == shape.split("-")[0]
        assert "Bhattacharyya" in manifest["parity"]["cosine_of"]


def test_two_outputs_are_refused_with_one_line(images_dir, tmp_path):
    import keras

    features, _ = _backbone()
    model = keras.Model(features.inputs, [_head()(features.output), features.output])
    model.save(tmp_path / "two.keras")
    done = run_edgex("convert", "--model", tmp_path / "two.keras", "--target", "all", "--int8", "--calib-data",
                     images_dir, "--output", tmp_path / "out")
    assert done.returncode == 65, done.stderr
    assert done.stderr.count("edgex: error:") == 1 and "2 output(s)" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "two").exists()


def test_non_image_input_is_refused_with_one_line(images_dir, tmp_path):
    import keras

    inputs = keras.Input((100,))
    keras.Model(inputs, keras.layers.Dense(4)(inputs)).save(tmp_path / "tabular.keras")
    done = run_edgex("convert", "--model", tmp_path / "tabular.keras", "--target", "onnx", "--int8", "--calib-data",
                     images_dir, "--output", tmp_path / "out")
    assert done.returncode == 65, done.stderr
    assert done.stderr.count("edgex: error:") == 1 and "image" in done.stderr


def test_custom_torch_module_converts_to_every_int8_target(images_dir, tmp_path):
    """Not edgex's Xception: a small conv/BN/ReLU/depthwise/pointwise/pool/linear nn.Sequential (OpenVINO
    takes its torch.export program directly; TorchScript tracing is not needed)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("litert_torch")
    import edgex

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16), torch.nn.Conv2d(16, 32, 1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, len(CLASSES))).eval()
    _fit_head(torch, module, images_dir)
    artifacts = edgex.convert(module, example_input=torch.zeros(1, 3, 64, 64), target="all", precision="int8",
                              calib_data=images_dir, calibration=edgex.CalibrationOptions(size=24), output=tmp_path,
                              classes=CLASSES, progress=False)
    assert sorted(a.target for a in artifacts) == sorted(TARGETS)
    assert all(a.ok for a in artifacts)


def _fit_head(torch, module, images_dir) -> None:
    """Give the random module a well-conditioned head, the same on every machine.

    BatchNorm takes its statistics from the images (no dead ReLUs), and the head is a ridge regression
    solved in float64 with a penalty equal to the mean feature variance: condition number ~25, weights
    ~10, a top-1 margin ~6 logits. An unregularised least-squares fit here was rank deficient: its
    solution depended on LAPACK's rank decision, which differs between CPUs, and one CI machine got
    weights that overflowed the int8 artifacts to +-inf."""
    from edgex.evaluation.labelled import labelled_folder, preprocess_all
    from edgex.preprocess import Preprocess

    files, labels, _ = labelled_folder(images_dir, CLASSES)
    x = torch.from_numpy(preprocess_all(files, Preprocess(64, 64, layout="NCHW")))
    with torch.no_grad():
        first = module[0](x)
        module[1].running_mean.copy_(first.mean((0, 2, 3)))
        module[1].running_var.copy_(first.var((0, 2, 3)))
        features = module[:-1](x).double()
        centred = features - features.mean(0)
        targets = torch.eye(len(CLASSES), dtype=torch.float64)[labels] * 10 - 5
        gram = centred.T @ centred
        penalty = torch.trace(gram) / gram.shape[0]
        weight = torch.linalg.solve(gram + penalty * torch.eye(gram.shape[0], dtype=torch.float64),
                                    centred.T @ targets)
        bias = targets.mean(0) - features.mean(0) @ weight
        logits = features @ weight + bias
        top2 = logits.topk(2, dim=1).values
        assert bool((logits.argmax(1) == torch.tensor(labels)).all()), "the fitted head must separate the classes"
        assert float((top2[:, 0] - top2[:, 1]).min()) > 3.0, "the fitted head's top-1 margin must stay far from a tie"
        module[-1].weight.copy_(weight.T.float())
        module[-1].bias.copy_(bias.float())
