"""The oneDNN FFI convolution (``benchmarks/onednn_ffi``) against ``lax.conv_general_dilated``: values and both
gradients in f32 (equal up to summation order), in bf16 (within the rounding bound of bf16 inputs, and equal to the
f32 convolution of the bf16-rounded operands), inside ``jit`` / ``lax.scan``, as flax's ``conv_general_dilated``,
and on a 2-device batch-sharded mesh (a subprocess). Built with ``build.sh`` (g++ and PyPI's oneDNN 3.2 wheel);
skipped where the build is not possible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from benchmarks.onednn_ffi import conv as onednn

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks" / "onednn_ffi"
DN = ("NHWC", "HWIO", "NHWC")
U_BF16 = 2.0 ** -8  # bf16 unit roundoff (8 significand bits)


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> str:
    """``libonednn_conv.so`` built by ``build.sh`` into a temp folder (the wheels are copied from a previous build
    in ``benchmarks/onednn_ffi/build`` when there is one, else downloaded from PyPI)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: the oneDNN FFI handler cannot be built")
    build = tmp_path_factory.mktemp("onednn_build")
    for whl in (HERE / "build").glob("onednn_*cpu_gomp-2023.2.0-*.whl"):
        shutil.copy(whl, build)
    r = subprocess.run(["bash", str(HERE / "build.sh"), str(build)], capture_output=True, text=True,
                       env={**os.environ, "PYTHON": sys.executable})
    if r.returncode != 0:
        pytest.skip(f"build.sh failed (no PyPI access?): {r.stderr[-500:]}")
    path = str(build / "libonednn_conv.so")
    onednn.load(path)
    return path


def _ref(x, w, pad):
    return lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=DN, precision="highest")


def _value_and_grads(f, x, w, g):
    """y = f(x, w) and (dx, dw) of sum(y * g): the VJP of f with cotangent g."""
    y, vjp = jax.vjp(f, x, w)
    return (y, *vjp(g))


def _rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))) / np.max(np.abs(b)))


# (batch, H, W, C, O, kh, kw, ((top, bottom), (left, right))): non-square images and kernels (an H/W swap fails),
# C != O (a transposed HWIO -> OIHW mapping fails), asymmetric padding on each side (swapped top/bottom, left/right
# or (t,b)/(l,r) pads change the output shape or shift it), 1x1 .. 9x9 kernels (a wrong flip of the kernel in the
# input gradient fails every k > 1), 'VALID' and over-padding (pad >= k).
CASES = [
    (2, 7, 5, 3, 4, 1, 1, ((0, 0), (0, 0))),
    (2, 9, 6, 4, 6, 3, 3, ((1, 1), (1, 1))),
    (1, 8, 11, 5, 3, 3, 3, ((0, 2), (1, 0))),
    (2, 11, 13, 3, 5, 5, 5, ((2, 1), (0, 3))),
    (1, 12, 10, 2, 3, 9, 9, ((4, 4), (3, 5))),
    (2, 9, 7, 3, 2, 1, 3, ((0, 0), (2, 0))),
    (1, 10, 9, 4, 4, 5, 3, ((0, 0), (0, 0))),
    (1, 6, 5, 2, 3, 3, 3, ((3, 0), (0, 4))),
]
IDS = [f"k{c[5]}x{c[6]}_pad{c[7]}" for c in CASES]


def _data(case, seed=0, bf16_exact=False):
    n, h, w, c, o, kh, kw, pad = case
    r = np.random.default_rng(seed)
    oh, ow = h + sum(pad[0]) - kh + 1, w + sum(pad[1]) - kw + 1
    arrays = [r.standard_normal(s).astype(np.float32) for s in ((n, h, w, c), (kh, kw, c, o), (n, oh, ow, o))]
    if bf16_exact:  # representable in bf16: the bf16 products are then exact in f32
        arrays = [np.asarray(jnp.asarray(a, jnp.bfloat16).astype(jnp.float32)) for a in arrays]
    return [jnp.asarray(a) for a in arrays]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_f32_values_and_gradients_equal_lax(lib, case):
    x, w, g = _data(case)
    pad = case[-1]
    got = _value_and_grads(jax.jit(lambda x, w: onednn.conv2d_nhwc(x, w, pad, jnp.float32)), x, w, g)
    want = _value_and_grads(lambda x, w: _ref(x, w, pad), x, w, g)
    for name, a, b in zip(("y", "dx", "dw"), got, want):
        assert a.shape == b.shape and a.dtype == jnp.float32, name
        assert _rel(a, b) < 1e-5, (name, _rel(a, b))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bf16_within_the_rounding_bound(lib, case):
    """Each product of bf16-rounded operands is off by at most 2u(1+u) of |x w|, so |y_bf16 - y| <= 2.01 u (|x| * |w|)
    elementwise (likewise the gradients, with |g|): a bf16 *result* (error ~u |y|, no |x||w| slack on cancelling
    sums) or an f32 path that never reaches bf16 (error 0) is told apart by the next test; this one catches wrong
    values at bf16-level sizes (a dropped padding row, a shifted window) that a loose max-norm check would miss."""
    x, w, g = _data(case, seed=1)
    pad = case[-1]
    got = _value_and_grads(jax.jit(lambda x, w: onednn.conv2d_nhwc(x, w, pad, jnp.bfloat16)), x, w, g)
    want = _value_and_grads(lambda x, w: _ref(x, w, pad), x, w, g)
    bounds = _value_and_grads(lambda x, w: _ref(x, w, pad), jnp.abs(x), jnp.abs(w), jnp.abs(g))
    # the output gradient g is rounded to bf16 too (a third rounding in the gradients): 3.01 u
    for name, a, b, bound, k in zip(("y", "dx", "dw"), got, want, bounds, (2.01, 3.01, 3.01)):
        assert a.dtype == jnp.float32, name
        excess = np.abs(np.asarray(a) - np.asarray(b)) - (k * U_BF16 * np.asarray(bound) + 1e-5)
        assert excess.max() <= 0, (name, float(excess.max()))


@pytest.mark.parametrize("case", CASES[1:5], ids=IDS[1:5])
def test_bf16_of_bf16_exact_operands_equals_f32(lib, case):
    """With operands representable in bf16 the products are exact and oneDNN accumulates in f32: the result equals
    the f32 convolution up to summation order (a bf16 accumulator or bf16 result would be ~1e-3 off)."""
    x, w, g = _data(case, seed=2, bf16_exact=True)
    pad = case[-1]
    got = _value_and_grads(jax.jit(lambda x, w: onednn.conv2d_nhwc(x, w, pad, jnp.bfloat16)), x, w, g)
    want = _value_and_grads(lambda x, w: _ref(x, w, pad), x, w, g)
    for name, a, b in zip(("y", "dx", "dw"), got, want):
        assert _rel(a, b) < 1e-5, (name, _rel(a, b))


def test_inside_scan_and_a_nonlinear_loss(lib):
    """The custom calls inside a jitted ``lax.scan`` body (a while loop), two convolutions deep, reused weights."""
    case = CASES[3]
    x, w, _ = _data(case)
    w2 = jnp.asarray(np.random.default_rng(5).standard_normal((3, 3, 5, 5)).astype(np.float32) * 0.2)
    pad = case[-1]

    def loss(conv_fn):
        def f(x, w, w2):
            def body(h, _):
                y = jnp.tanh(conv_fn(h, w, pad))
                y = conv_fn(y, w2, ((1, 1), (1, 1)))
                return h * 0.5, jnp.mean(y ** 2)
            _, ys = lax.scan(body, x, None, length=3)
            return ys.sum()
        return f

    got = jax.jit(jax.value_and_grad(loss(lambda a, b, p: onednn.conv2d_nhwc(a, b, p, jnp.float32)), (0, 1, 2)))(
        x, w, w2)
    want = jax.value_and_grad(loss(_ref), (0, 1, 2))(x, w, w2)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert _rel(a, b) < 1e-5


def test_flax_drop_in_routes_only_stride_1(lib):
    """``nn.Conv(conv_general_dilated=flax_conv_fn())``: SAME with an even kernel (asymmetric padding) and a bias goes
    through oneDNN and equals the default conv; a strided conv falls back to lax (no custom call)."""
    x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 9, 8, 3)).astype(np.float32))
    for kw, stride, calls in ((dict(kernel_size=(4, 2)), 1, 1), (dict(kernel_size=(3, 3)), 2, 0)):
        ref = nn.Conv(5, strides=stride, **kw)
        mine = nn.Conv(5, strides=stride, conv_general_dilated=onednn.flax_conv_fn(jnp.float32), **kw)
        params = ref.init(jax.random.key(0), x)
        with jax.default_matmul_precision("highest"):
            want = ref.apply(params, x)
        got = jax.jit(mine.apply)(params, x)
        assert _rel(got, want) < 1e-5
        hlo = jax.jit(mine.apply).lower(params, x).compile().as_text()
        assert hlo.count("custom_call_target=\"onednn_conv_fwd\"") == calls


MESH_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax import lax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from benchmarks.onednn_ffi import conv as onednn
    onednn.load(sys.argv[1])
    mesh = Mesh(np.array(jax.devices()), ("data",))
    r = np.random.default_rng(0)
    x = jnp.asarray(r.standard_normal((4, 9, 8, 3)).astype(np.float32))
    w = jnp.asarray(r.standard_normal((3, 3, 3, 5)).astype(np.float32))
    pad = ((1, 1), (2, 0))
    def loss(f):
        return lambda w, x: jnp.sum(jnp.tanh(f(x, w)) ** 2)
    on = lambda x, w: onednn.conv2d_nhwc(x, w, pad, jnp.float32)
    ref = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                precision="highest")
    xs, ws = jax.device_put(x, NamedSharding(mesh, P("data"))), jax.device_put(w, NamedSharding(mesh, P()))
    step = jax.jit(jax.value_and_grad(loss(on), (0, 1)))
    got = step(ws, xs)
    want = jax.value_and_grad(loss(ref), (0, 1))(w, x)
    hlo = step.lower(ws, xs).compile().as_text()
    print(json.dumps({
        "devices": len(jax.devices()),
        "rel": [float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) for a, b in zip(jax.tree.leaves(got),
                                                                                     jax.tree.leaves(want))],
        "all_gather": "all-gather" in hlo,
        "local_fwd": "f32[2,9,8,5]{3,2,1,0} custom-call" in hlo,
        "dx_sharding": list(got[1][1].sharding.spec)}))
""")


def test_two_device_mesh_partitions_on_the_batch(lib, tmp_path):
    """On a 2-device batch-sharded mesh each device convolves its half (no all-gather; the forward custom call sees
    batch 2 of 4) and the weight gradient is summed over both halves (a missing psum halves it)."""
    script = tmp_path / "mesh.py"
    script.write_text(MESH_SCRIPT)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PYTHONPATH": str(ROOT),
           "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, str(script), lib], capture_output=True, text=True, env=env, cwd=str(ROOT),
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2
    assert max(out["rel"]) < 1e-5, out
    assert not out["all_gather"] and out["local_fwd"], out
    assert out["dx_sharding"] == ["data"], out


def test_train_step_benchmark_smoke(lib, tmp_path):
    """``benchmarks/onednn_ffi/train_step.py --smoke`` runs on compare_torch's driver and workers (a renamed or
    changed compare_torch API fails here): the oneDNN f32 step's loss equals XLA's on the same init and batch."""
    out = tmp_path / "smoke.json"
    r = subprocess.run([sys.executable, str(HERE / "train_step.py"), "--smoke", "--lib", lib, "--variants",
                        "xla_tuned,onednn_f32_2dev,onednn_bf16_2dev", "--torch-variants", "", "--out", str(out)],
                       capture_output=True, text=True, cwd=str(ROOT), timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    for case in ("edsr_b2", "style_b2"):
        by = res["cases"][case]["by"]
        xla, f32, bf16 = (by[f"jax:{v}"]["loss_after_setup"] for v in ("xla_tuned", "onednn_f32_2dev",
                                                                       "onednn_bf16_2dev"))
        assert abs(f32 - xla) <= 1e-5 * xla and 0 < abs(bf16 - xla) <= 1e-2 * xla, (case, xla, f32, bf16)
