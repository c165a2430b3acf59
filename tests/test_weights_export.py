"""Export: jaxgen params -> official-named weight files, and forward passes -> jax.export (StableHLO) artifacts.

Truths: the live Flax module (the artifact must reproduce ``module.apply`` at sizes other than any traced one),
the golden official state dict (an exported file must read back to the same keys and arrays). The export of
flax params into the official PyTorch EDSR is checked with PyTorch by ``tools/make_weight_goldens.py
--check-export``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from flax.traverse_util import unflatten_dict

from jaxgen.models import build
from jaxgen.weights import (
    export_stablehlo,
    export_torch_weights,
    flax_to_torch,
    load_stablehlo,
    load_state_dict,
    torch_to_flax,
)
from jaxgen.weights.convert import model_param_shapes

GOLDENS = Path(__file__).parent / "goldens" / "weights"


def _random_params(arch, model, seed=0):
    rng = np.random.default_rng(seed)
    return unflatten_dict({p: (0.2 * rng.normal(size=s)).astype(d) for p, (s, d) in model_param_shapes(arch, model).items()})


@pytest.mark.parametrize("ext", [".safetensors", ".npz"])
def test_exported_weight_file_reads_back_as_the_official_state_dict(tmp_path, ext):
    official = load_state_dict(GOLDENS / "rcan.pth")
    model = build("rcan", **json.loads(str(np.load(GOLDENS / "rcan.npz")["config"])))
    params = torch_to_flax("rcan", official, model=model)
    path = tmp_path / f"rcan{ext}"
    export_torch_weights("rcan", params, str(path), model=model)
    back = load_state_dict(path)
    assert set(back) == set(official)
    for k in official:
        assert back[k].dtype == official[k].dtype, k
        np.testing.assert_allclose(back[k], official[k], rtol=1e-6, atol=1e-7, err_msg=k)  # mean shift: float64 math


@pytest.mark.parametrize(
    "arch,kwargs,sizes",
    [
        ("edsr", dict(scale=2, num_feat=4, num_blocks=1), [(1, 8, 8), (3, 12, 6)]),
        ("rrdbnet", dict(scale=2, num_feat=4, num_blocks=1, num_grow_ch=2), [(2, 8, 12)]),  # h, w multiples of 2
        ("srresnet", dict(scale=4, num_feat=4, num_blocks=1), [(1, 5, 7)]),  # bilinear skip with symbolic sizes
    ],
)
def test_stablehlo_round_trip(tmp_path, arch, kwargs, sizes):
    model = build(arch, **kwargs)
    params = _random_params(arch, model)
    path = tmp_path / f"{arch}.jaxexport"
    exported = export_stablehlo(model, params, path)
    assert "b" in str(exported.in_avals[0].shape[0]) and "h" in str(exported.in_avals[0].shape[1])
    assert set(exported.platforms) == {"cpu", "cuda"}
    fn = load_stablehlo(path)
    rng = np.random.default_rng(1)
    for b, h, w in sizes:
        x = rng.uniform(size=(b, h, w, 3)).astype(np.float32)
        expected = np.asarray(model.apply({"params": params}, x))
        out = np.asarray(fn(x))
        assert out.shape == (b, h * kwargs["scale"], w * kwargs["scale"], 3)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_stablehlo_load_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_stablehlo(tmp_path / "none.jaxexport")
    bad = tmp_path / "bad.jaxexport"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a jax.export artifact"):
        load_stablehlo(bad)


def test_flax_to_torch_to_flax_identity_via_file(tmp_path):
    """EDSR with the official rgb_range=255 constants: params -> .safetensors -> params, bit for bit."""
    model = build("edsr", scale=3, num_feat=4, num_blocks=2, img_range=255.0)
    params = _random_params("edsr", model, seed=3)
    path = tmp_path / "edsr.safetensors"
    export_torch_weights("edsr", params, str(path), model=model)
    state = load_state_dict(path)
    np.testing.assert_allclose(state["sub_mean.bias"], -255 * np.array([0.4488, 0.4371, 0.4040]), rtol=1e-6)
    back = torch_to_flax("edsr", state, model=model)  # also re-checks the mean shift against the model
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert flax_to_torch("edsr", {"params": back}, model=model).keys() == state.keys()


@pytest.mark.parametrize(
    "arch,kwargs,symbolic,shape",
    [("rcan", dict(scale=2, num_feat=4, num_groups=1, num_blocks=1, reduction=2), ("B", "H", "W", 3), (2, 12, 8, 3)),
     ("patchgan", dict(ndf=4, n_layers=2), ("B", 32, 40, 3), (2, 32, 40, 3))],  # its size check needs concrete H, W
)
def test_onnx_export_matches(tmp_path, arch, kwargs, symbolic, shape):
    """Optional: runs only where jax2onnx and onnxruntime are installed (see jaxgen.weights.onnx_export)."""
    pytest.importorskip("jax2onnx")
    ort = pytest.importorskip("onnxruntime")
    from jaxgen.weights.onnx_export import export_onnx

    model = build(arch, **kwargs)
    params = _random_params(arch, model)
    path = tmp_path / f"{arch}.onnx"
    export_onnx(model, params, path, input_shape=symbolic)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).uniform(size=shape).astype(np.float32)
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(out, np.asarray(model.apply({"params": params}, x)), rtol=0, atol=1e-5)
