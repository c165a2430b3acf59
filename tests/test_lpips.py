"""LPIPS v0.1 against the official ``lpips`` package (goldens from tools/make_lpips_goldens.py: Set5 crops and
degraded copies, the package's own LPIPS class and heads, torchvision ImageNet trunks).

Acceptance: distances equal to 1e-4 (measured ~1e-7). Skipped when the weight packages are not installed
(``make test`` installs them).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.weights import pretrained
from jaxgen.metrics.lpips_metric import _safe_norm, default_lpips_params, lpips_fn, lpips_per_layer
from jaxgen.metrics import load_lpips_params, lpips
from tests.param_utils import FAST_COMPILE

GOLDEN = Path(__file__).parent / "goldens" / "lpips" / "lpips_set5.npz"
NETS = ("vgg", "alex")


@functools.lru_cache(maxsize=None)
def _grad_a(net: str):
    """``d sum(lpips_fn(p, a, b)) / da``, one jitted program per net, shared by the two gradient tests."""
    return jax.jit(jax.grad(lambda a, b, p: jnp.sum(lpips_fn(p, a, b, net=net))), compiler_options=FAST_COMPILE)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as g:
        return dict(g)


@pytest.fixture(scope="module", params=NETS)
def net(request) -> str:
    try:
        default_lpips_params(request.param)
    except pretrained.WeightsNotFoundError as e:
        pytest.skip(str(e))
    return request.param


def _f32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0


def test_distances_match_lpips_package(golden, net) -> None:
    d = np.asarray(lpips(_f32(golden["a"]), _f32(golden["b"]), net=net))
    assert d.shape == (8,) and d.dtype == np.float32
    np.testing.assert_allclose(d, golden[f"{net}/dist"], rtol=0, atol=1e-5)
    d_ns = np.asarray(lpips(_f32(golden["a_ns"]), _f32(golden["b_ns"]), net=net))  # 48x80
    np.testing.assert_allclose(d_ns, golden[f"{net}/dist_ns"], rtol=0, atol=1e-5)


def test_per_layer_terms_match_lpips_package(golden, net) -> None:
    layers = np.asarray(lpips_per_layer(default_lpips_params(net), _f32(golden["a"]), _f32(golden["b"]), net=net))
    np.testing.assert_allclose(layers, golden[f"{net}/layers"], rtol=0, atol=1e-5)


def test_gradient_matches_lpips_package(golden, net) -> None:
    """d sum(LPIPS(a, b)) / da through the pure, jitted ``lpips_fn`` equals torch autograd through ``lpips``."""
    params = default_lpips_params(net)
    grad = _grad_a(net)(golden["grad_a"], golden["grad_b"], params)
    want = golden[f"{net}/grad"]
    assert np.abs(np.asarray(grad) - want).max() <= 1e-5 * np.abs(want).max()  # measured ~2e-6


def test_metric_properties(golden, net) -> None:
    a, b = _f32(golden["a_ns"]), _f32(golden["b_ns"])  # the distance test's 48x80 pair: its program
    assert np.all(np.abs(np.asarray(lpips(a, a, net=net))) < 1e-10)  # 0 up to float32 rounding
    np.testing.assert_allclose(lpips(a, b, net=net), lpips(b, a, net=net), rtol=1e-6)
    # per-image: the batch result equals the images one at a time
    np.testing.assert_allclose(lpips(a, b, net=net), [float(lpips(a[i:i + 1], b[i:i + 1], net=net)[0])
                                                      for i in range(len(a))], rtol=1e-5)


def test_loss_gradient_is_finite_at_identity(golden, net) -> None:
    """At a == b (the minimum) the LPIPS gradient is ~0 and finite: no NaN from the channel norm's sqrt."""
    a = jnp.asarray(_f32(golden["a"][:1]))
    assert a.shape == golden["grad_a"].shape  # the gradient test's program
    g = np.asarray(_grad_a(net)(a, a, default_lpips_params(net)))
    assert np.all(np.isfinite(g)) and np.abs(g).max() < 1e-8


def test_safe_norm_zero_gradient() -> None:
    f = np.zeros((1, 2, 2, 4), np.float32)
    f[0, 0, 0] = [3.0, 4.0, 0.0, 0.0]
    np.testing.assert_allclose(jax.jit(_safe_norm)(f)[0, :, :, 0], [[5.0, 0.0], [0.0, 0.0]])  # 1 program, not op by op
    g = jax.jit(jax.grad(lambda f: jnp.sum(f / (_safe_norm(f) + 1e-10))))(f)
    assert np.all(np.isfinite(np.asarray(g)))


def test_load_lpips_params_tree(net) -> None:
    p = load_lpips_params(net)
    assert set(p) == {"net", "lin"} and sorted(p["lin"]) == [f"lin{k}" for k in range(5)]
    n_convs = {"vgg": 13, "alex": 5}[net]
    assert len(p["net"]) == n_convs and all(set(v) == {"kernel", "bias"} for v in p["net"].values())
    assert p["lin"]["lin0"].shape == (64,) and np.all(p["lin"]["lin0"] >= 0)  # v0.1 heads are non-negative


def test_bad_inputs_raise_value_errors(net) -> None:
    x = np.zeros((1, 64, 64, 3), np.float32)
    with pytest.raises(ValueError, match="net"):
        lpips(x, x, net="squeeze")
    with pytest.raises(ValueError, match="shapes differ"):
        lpips(x, x[:, :32], net=net)
    with pytest.raises(ValueError, match=r"\[B,H,W,3\]"):
        lpips(x[..., :1], x[..., :1], net=net)
    with pytest.raises(ValueError, match="at least"):
        lpips(x[:, :15, :15], x[:, :15, :15], net=net)
