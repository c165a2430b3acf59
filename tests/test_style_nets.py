"""The style networks against PyTorch re-creations of the official modules (``tools/make_style_goldens.py``):
TransformerNet (pytorch/examples; an old checkpoint's InstanceNorm running-stat keys are dropped), the AdaIN
decoder and the vgg_normalised encoder (naoto0804/pytorch-AdaIN; odd input sides), through the .pth name maps."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models import build
from jaxgen.models.adain_net import AdaINEncoder
from jaxgen.weights.convert import flax_to_torch, torch_to_flax

GOLDEN = Path(__file__).parent / "goldens" / "style" / "style_nets.npz"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN))


def _sd(golden: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in golden.items() if k.startswith(prefix)}


def test_transformer_net_matches_pytorch_examples(golden):
    sd = _sd(golden, "tn/sd/")
    assert any(k.endswith("running_mean") for k in sd)  # the old-checkpoint keys are there ...
    model = build("transformer_net", channels=8, num_res_blocks=2)
    params = torch_to_flax("transformer_net", sd, model=model)  # ... and dropped
    y = np.asarray(jax.jit(model.apply)({"params": params}, jnp.asarray(golden["tn/x"])))  # one program, not op by op
    assert y.shape == golden["tn/y"].shape == (1, 16, 20, 3)
    np.testing.assert_allclose(y, golden["tn/y"], atol=2e-4, rtol=1e-4)
    back = flax_to_torch("transformer_net", params, model=model)  # export: the current official key set
    assert set(back) == {k for k in sd if "running" not in k}
    for k, v in back.items():
        np.testing.assert_array_equal(v, sd[k])


def test_adain_decoder_matches_official_sequential(golden):
    sd = _sd(golden, "dec/sd/")
    model = build("adain_decoder", features=(16, 8, 8))
    params = torch_to_flax("adain_decoder", sd, model=model)
    y = np.asarray(jax.jit(model.apply)({"params": params}, jnp.asarray(golden["dec/t"])))
    assert y.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(y, golden["dec/y"], atol=1e-4, rtol=1e-4)
    assert set(flax_to_torch("adain_decoder", params, model=model)) == set(sd)


def _encoder_state_dict() -> dict[str, np.ndarray]:
    """vgg_normalised's keys with the weights of ``make_style_goldens.encoder_weights`` (numpy seeds), plus the
    deeper convs a released file carries (tiny stand-ins: they are dropped)."""
    shapes = {0: (3, 3, 1, 1)}
    cin, idx = 3, 2
    for block, (n, c) in enumerate(((2, 64), (2, 128), (4, 256), (1, 512))):
        for _ in range(n):
            shapes[idx] = (c, cin, 3, 3)
            cin, idx = c, idx + 3
        idx += 1
    sd = {}
    for i, shape in shapes.items():
        rng = np.random.default_rng(i)
        fan_in = shape[1] * shape[2] * shape[3]
        sd[f"{i}.weight"] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        sd[f"{i}.bias"] = rng.uniform(-0.1, 0.1, shape[0]).astype(np.float32)
    for i in (32, 35, 38, 42, 45, 48, 51):
        sd[f"{i}.weight"], sd[f"{i}.bias"] = np.zeros((1, 1, 3, 3), np.float32), np.zeros(1, np.float32)
    return sd


def test_adain_encoder_matches_vgg_normalised_with_odd_sides(golden):
    model = AdaINEncoder(input_conv=True)
    params = torch_to_flax("adain_vgg", _encoder_state_dict(), model=build("adain_vgg", input_conv=True))
    feats = jax.jit(model.apply)({"params": params}, jnp.asarray(golden["enc/x"]))
    for tap in ("relu1_1", "relu2_1", "relu3_1", "relu4_1"):
        assert feats[tap].shape == golden[f"enc/{tap}"].shape, tap
        np.testing.assert_allclose(np.asarray(feats[tap]), golden[f"enc/{tap}"], atol=2e-4, rtol=1e-4, err_msg=tap)


def test_wrong_state_dict_is_one_error_naming_keys(golden):
    sd = _sd(golden, "tn/sd/")
    sd.pop("conv1.conv2d.weight")
    with pytest.raises(ValueError, match=r"transformer_net: PyTorch state dict does not match: missing 1: \[conv1.conv2d.weight"):
        torch_to_flax("transformer_net", sd, model=build("transformer_net", channels=8, num_res_blocks=2))
