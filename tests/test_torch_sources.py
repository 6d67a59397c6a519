"""PyTorch sources: safetensors + sidecar, state_dict .pt (weights_only), .pt2 only when trusted."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgex.errors import DataError, MissingInputError, RefusedError  # noqa: E402
from edgex.models.torch_xception import XceptionConfig, build_xception  # noqa: E402
from edgex.preprocess import Preprocess  # noqa: E402
from edgex.safety.contents import verify_contents  # noqa: E402
from edgex.safety.model_file import check_model_file  # noqa: E402
from edgex.sources.load import load_source  # noqa: E402
from edgex.sources.pytorch import sidecar_path, write_sidecar  # noqa: E402

SIZE = 80
CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A tiny Xception with random weights saved as safetensors + sidecar."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    config = XceptionConfig.scaled(width=0.125, middle_blocks=1, num_classes=3, input_size=(SIZE, SIZE))
    model = build_xception(config)
    path = tmp_path_factory.mktemp("torch") / "tiny.safetensors"
    save_file(model.state_dict(), str(path))
    write_sidecar(sidecar_path(path), architecture="xception", config=config.to_dict(), classes=CLASSES,
                  preprocess=Preprocess(SIZE, SIZE))
    return path, model


def batch(layout: str = "NHWC") -> np.ndarray:
    x = np.random.default_rng(1).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    return x if layout == "NHWC" else x.transpose(0, 3, 1, 2).copy()


def test_safetensors_source_predicts_like_the_module(weights):
    path, model = weights
    source = load_source(path)
    assert source.framework == "torch" and source.classes == CLASSES
    assert source.preprocess.layout == "NHWC" and source.preprocess.input_shape == (1, SIZE, SIZE, 3)
    with torch.inference_mode():
        expected = model(torch.from_numpy(batch("NCHW"))).numpy()
    np.testing.assert_allclose(source.predict(batch()), expected, rtol=0, atol=1e-5)
    nchw = source.preprocess.replace(layout="NCHW")
    source.preprocess = nchw
    np.testing.assert_allclose(source.predict(batch("NCHW")), expected, rtol=0, atol=1e-5)


def test_state_dict_pt_loads_with_its_sidecar(weights, tmp_path):
    path, model = weights
    pt = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), pt)
    shutil.copy(sidecar_path(path), sidecar_path(pt))
    np.testing.assert_array_equal(load_source(pt).predict(batch()), load_source(path).predict(batch()))


def test_pickled_module_pt_is_refused(weights, tmp_path):
    pt = tmp_path / "whole.pt"
    torch.save(weights[1], pt)  # the whole module: unpickling it would import and run code
    shutil.copy(sidecar_path(weights[0]), sidecar_path(pt))
    with pytest.raises(RefusedError) as caught:
        load_source(pt)
    assert caught.value.exit_code == 77


def test_weights_without_sidecar_are_missing_input(weights, tmp_path):
    lonely = tmp_path / "lonely.safetensors"
    shutil.copy(weights[0], lonely)
    with pytest.raises(MissingInputError, match="sidecar"):
        load_source(lonely)


def test_weights_that_do_not_fit_the_sidecar_are_bad_data(weights, tmp_path):
    path = tmp_path / "wrong.safetensors"
    shutil.copy(weights[0], path)
    config = XceptionConfig.scaled(width=0.125, middle_blocks=2, num_classes=3, input_size=(SIZE, SIZE))
    write_sidecar(sidecar_path(path), architecture="xception", config=config.to_dict(), classes=CLASSES,
                  preprocess=Preprocess(SIZE, SIZE))
    with pytest.raises(DataError, match="do not fit"):
        load_source(path)


def test_exported_program_needs_trust(weights, tmp_path):
    model = weights[1]
    program = torch.export.export(model, (torch.zeros(1, 3, SIZE, SIZE),))
    pt2 = tmp_path / "prog.pt2"
    torch.export.save(program, str(pt2))
    with pytest.raises(RefusedError) as caught:
        load_source(pt2)
    assert caught.value.exit_code == 77
    source = load_source(pt2, trust_model=True)
    assert source.preprocess.height == SIZE and source.preprocess.layout == "NHWC"
    np.testing.assert_allclose(source.predict(batch()), load_source(weights[0]).predict(batch()), atol=1e-5)


def test_a_sidecar_whose_values_have_the_wrong_type_or_size_are_bad_data(weights, tmp_path):
    """Found by benchmarks/fuzz.py: a sidecar preprocess `mean` of 5 was an internal error (exit 1), not 65."""
    import json

    path = tmp_path / "tiny.safetensors"
    shutil.copy(weights[0], path)
    sidecar = json.loads(sidecar_path(weights[0]).read_text())
    for key, value, message in (("config", 5, "config"), ("preprocess", {"height": 9, "width": 9, "mean": 5},
                                                          "invalid value")):
        sidecar_path(path).write_text(json.dumps({**sidecar, key: value}))
        with pytest.raises(DataError, match=message):
            load_source(path)
    # Found on a Zen 3 run of the campaign: a negative width was exit 1, 2**40 middle blocks a hang, a height
    # of 1e308 exit 1. Each is now one line and 65, before anything is built.
    config = sidecar["config"]
    for key, value, message in (
            ("config", {**config, "channels": [8, 8, 16, 32, 88, -128, 192, 256]}, "channels must be an integer"),
            ("config", {**config, "middle_blocks": 2**40}, "middle_blocks must be an integer from 0 to 64"),
            ("config", {**config, "num_classes": 4.0}, "num_classes must be an integer"),
            ("preprocess", {**sidecar["preprocess"], "height": 1e308}, "height is 1e[+]308, not a size"),
            # and on the next run (mutants 106..): each was exit 1 in convert or predict
            ("config", {**config, "bn_epsilon": "f16"}, "bn_epsilon must be a number above 0"),
            ("config", {**config, "dropout": float("nan")}, "dropout must be a number from 0"),
            ("classes", -1, "classes must be a list of names, got int"),
            ("classes", True, "classes must be a list of names, got bool"),
            ("preprocess", {**sidecar["preprocess"], "width": 1}, "Xception needs at least 71x71"),
            # found on 2026-12-03 (pt:1): a sidecar layout was a usage error (exit 2) though the file is at fault
            ("preprocess", {**sidecar["preprocess"], "layout": "NHW"}, "tiny.json: .*unknown layout 'NHW'"),
            ("module_layout", "NHW", "tiny.json: module_layout 'NHW' is neither NCHW nor NHWC"),
            ("preprocess", {**sidecar["preprocess"], "source": True}, "source is True, not a mapping")):
        sidecar_path(path).write_text(json.dumps({**sidecar, key: value}))
        with pytest.raises(DataError, match=message):
            load_source(path)
        # `edgex check` reads the sidecar as the load does (edgex.safety.contents), before any weight
        with pytest.raises(DataError, match=message):
            verify_contents(check_model_file(path))
