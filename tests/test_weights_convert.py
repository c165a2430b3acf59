"""PyTorch <-> Flax name maps (jaxgen.weights.convert) against the official architectures.

Truth: tests/goldens/weights/<arch>.{pth,npz} from tools/make_weight_goldens.py -- PyTorch re-creations of the
official modules (official state-dict keys) with random weights, their input and PyTorch's output. Converted
into the jaxgen model, the output must match to 1e-4 (float32). The official realesr-animevideov3.pth (shared
data) is checked the same way on a 16x16 input.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from flax.traverse_util import unflatten_dict

from jaxgen.models import build
from jaxgen.weights import ARCHS as ALL_ARCHS
from jaxgen.weights import flax_to_torch, load_pretrained, load_state_dict, torch_to_flax
from jaxgen.weights.convert import model_param_shapes

# The style networks' maps (transformer_net, adain_*) have their own PyTorch goldens in tests/test_style_nets.py,
# waifu2x / Real-CUGAN (full-size networks, seeded weights) in tests/test_zoo_sr_vulkan.py.
STYLE_ARCHS = {"transformer_net", "adain_decoder", "adain_vgg"}
UNET_ARCHS = {"waifu2x_upconv7", "waifu2x_cunet", "realcugan"}
ARCHS = sorted(set(ALL_ARCHS) - STYLE_ARCHS - UNET_ARCHS)

GOLDENS = Path(__file__).parent / "goldens" / "weights"
ATOL = 1e-4


def _golden(arch: str):
    data = np.load(GOLDENS / f"{arch}.npz")
    return build(arch, **json.loads(str(data["config"]))), data["input"], data["output"]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_converted_official_weights_match_pytorch(arch):
    model, x, expected = _golden(arch)
    params = torch_to_flax(arch, load_state_dict(GOLDENS / f"{arch}.pth"), model=model)
    out = np.asarray(jax.jit(model.apply)({"params": params}, x))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)
    assert np.abs(expected).max() > 0.1  # a non-trivial output


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_flax_to_torch_gives_the_official_keys_and_round_trips(arch):
    """jaxgen's parameter tree -> torch names: exactly the official module's state-dict keys and shapes (the golden
    .pth); -> back to flax: identical params. Runs without PyTorch."""
    model, _, _ = _golden(arch)
    rng = np.random.default_rng(1)  # random values on the model's parameter tree (model.init is slow on CPU)
    params = unflatten_dict({path: rng.normal(size=shape).astype(dtype)
                             for path, (shape, dtype) in model_param_shapes(arch, model).items()})
    torch_state = flax_to_torch(arch, params, model=model)
    official = load_state_dict(GOLDENS / f"{arch}.pth")
    assert {k: v.shape for k, v in torch_state.items()} == {k: v.shape for k, v in official.items()}
    assert all(torch_state[k].dtype == official[k].dtype for k in official)
    back = torch_to_flax(arch, torch_state, model=model)
    assert jax.tree.structure(back) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)


def test_real_esrgan_animevideov3_matches_pytorch(shared_data):
    path = shared_data / "weights" / "realesr-animevideov3.pth"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    data = np.load(GOLDENS / "realesr_animevideov3.npz")
    model, params = load_pretrained("srvgg_compact", path, scale=4)
    assert sum(p.size for p in jax.tree.leaves(params)) == 621_424
    out = np.asarray(jax.jit(model.apply)({"params": params}, data["input"]))
    np.testing.assert_allclose(out, data["output"], rtol=0, atol=ATOL)


def test_without_model_names_are_mapped_and_layouts_converted():
    state = load_state_dict(GOLDENS / "edsr.pth")
    params = torch_to_flax("edsr", state)  # no model: no shape check, mean shifts dropped
    np.testing.assert_array_equal(params["head_0"]["kernel"], state["head.0.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(params["body_1"]["conv2"]["bias"], state["body.1.body.2.bias"])
    np.testing.assert_array_equal(params["body_2"]["kernel"][1, 2, 3, 4], state["body.2.weight"][4, 3, 1, 2])
    np.testing.assert_array_equal(params["tail_0"]["conv_1"]["kernel"], state["tail.0.2.weight"].transpose(2, 3, 1, 0))
    state = load_state_dict(GOLDENS / "patchgan.pth")  # n_layers inferred from the keys
    assert set(torch_to_flax("patchgan", state)) == {"conv0", "conv1", "conv2", "conv3", "conv_out"}


def test_vgg_linear1_follows_the_flatten_order():
    state = load_state_dict(GOLDENS / "vgg_style.pth")
    kernel = torch_to_flax("vgg_style", state)["linear1"]["kernel"]
    w = state["linear1.weight"]  # [100, C*4*4], PyTorch flattens C,H,W
    c = w.shape[1] // 16
    h, ww, ch, o = 2, 3, c - 1, 7  # jaxgen flattens H,W,C
    assert kernel[h * 4 * c + ww * c + ch, o] == w[o, ch * 16 + h * 4 + ww]


def test_mismatches_are_all_listed():
    model, _, _ = _golden("rrdbnet")
    state = load_state_dict(GOLDENS / "rrdbnet.pth")
    del state["conv_hr.weight"], state["body.1.rdb3.conv5.bias"]
    state["extra.weight"] = np.zeros((1, 1, 3, 3), np.float32)
    state["conv_last.weight"] = state["conv_last.weight"][:2]
    with pytest.raises(ValueError) as excinfo:
        torch_to_flax("rrdbnet", state, model=model)
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in ("missing 2", "conv_hr.weight", "body.1.rdb3.conv5.bias", "unexpected 1", "extra.weight",
                   "mismatched 1", "conv_last.weight"):
        assert needle in msg, needle
    # the other direction
    params = torch_to_flax("rrdbnet", load_state_dict(GOLDENS / "rrdbnet.pth"), model=model)
    params["bogus"] = {"kernel": np.zeros((3, 3, 1, 1))}
    del params["conv_body"]["bias"]
    with pytest.raises(ValueError, match=r"missing 1: \[conv_body/bias.*unexpected 1: \[bogus/kernel"):
        flax_to_torch("rrdbnet", params, model=model)
    with pytest.raises(ValueError, match=r"unexpected 1: \[bogus/kernel"):
        flax_to_torch("rrdbnet", params)


def test_mean_shift_is_checked_against_img_range():
    """The golden EDSR was built with rgb_range=255: a model built with img_range=1 must be refused, with the fix."""
    state = load_state_dict(GOLDENS / "edsr.pth")
    model = build("edsr", **{**json.loads(str(np.load(GOLDENS / "edsr.npz")["config"])), "img_range": 1.0})
    with pytest.raises(ValueError, match=r"sub_mean\.bias.*img_range=255"):
        torch_to_flax("edsr", state, model=model)
    exported = flax_to_torch("edsr", torch_to_flax("edsr", state))  # no model: class defaults (range 1)
    np.testing.assert_allclose(exported["add_mean.bias"], state["add_mean.bias"] / 255, rtol=1e-6)


def test_official_variants_without_counterpart_are_refused():
    """pix2pix's default norm='batch' PatchGAN (bias-free convs + BatchNorm) is not jaxgen's instance-norm one."""
    state = load_state_dict(GOLDENS / "patchgan.pth")
    state = {k: v for k, v in state.items() if k not in ("model.2.bias", "model.5.bias", "model.8.bias")}
    state.update({f"model.{i}.weight": np.ones(c, np.float32) for i, c in ((3, 8), (6, 16), (9, 32))})
    model = build("patchgan", ndf=4, n_layers=3, norm="instance")
    with pytest.raises(ValueError, match=r"missing 3.*unexpected 3"):
        torch_to_flax("patchgan", state, model=model)


def test_unknown_arch_and_wrong_model():
    with pytest.raises(ValueError, match="no PyTorch name map for architecture 'vdsr'"):
        torch_to_flax("vdsr", {})
    with pytest.raises(ValueError, match="not a EDSR"):
        torch_to_flax("edsr", {}, model=build("rcan", scale=2))


def test_load_pretrained_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"edsr\.pth: edsr: PyTorch state dict does not match"):
        load_pretrained("edsr", GOLDENS / "edsr.pth", scale=2, num_feat=8, num_blocks=2, img_range=255.0)
