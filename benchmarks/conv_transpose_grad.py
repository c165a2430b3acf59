"""XLA:CPU's kernel gradient of a transposed convolution, and the same sum as one matrix product.

    python benchmarks/conv_transpose_grad.py [--out results.json]

``jax.grad`` of ``lax.conv_transpose`` (``nn.ConvTranspose``: CycleGAN's and pix2pix's upsamplings, FSRCNN's,
waifu2x's and Real-CUGAN's deconvolutions) computes the kernel gradient as a convolution with a dilated kernel;
XLA:CPU runs it far slower than the forward (2026-12-07, 2 cores: a 3x3/2 256->128 transposed convolution of a
64x64 map, forward 12 ms, kernel gradient 1.6-1.7 s with YNNPACK and with Eigen), and a CycleGAN train step (b1,
256 px; ``conv_backends.py --cases cyclegan_b1_256``: 42-44 s) spends about half its time there.

:func:`weight_grad` is the same sum written as ``kh * kw`` strided windows of the output gradient times the input,
one ``[C, N H W] x [N H W, kh kw O]`` product:

    dK[i, j, c, o] = sum_{n, a, b} x[n, a, b, c] * dy[n, s_h a - i + top, s_w b - j + left, o]

with ``kernel[kh-1-i, kw-1-j, o, c] = K[i, j, c, o]`` (``transpose_kernel=True``). This script times both and
measures each against a float64 reference. It is not wired into jaxgen's layers: with it, the CycleGAN training-
parity golden (``tests/test_training_parity.py``, a float32-chaotic case judged against the official code's own
float32-vs-float64 spread) diverged 14.6x beyond that spread (from step 4; XLA's gradient: 0.68x), although the
product is closer to float64 than XLA's own gradient -- see ``benchmarks/RESULTS.md``, "oneDNN for forwards,
strided convolutions and every network". With ``conv_backend`` oneDNN, ``layers.ConvTranspose`` runs oneDNN's
primitives instead (``onednn_conv.conv_transpose``), which do not have XLA's slow kernel gradient.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cpuinfo import cpu_info  # noqa: E402  (stdlib only: lscpu model and flags for every record)

DN = ("NHWC", "HWIO", "NHWC")
# (batch, side, in channels, out channels, kernel, stride, padding): CycleGAN's ResNet generator's two
# upsamplings at 256 px (PyTorch ConvTranspose2d(k=3, s=2, p=1, output_padding=1)) and pix2pix's 4x4/2 (p=1)
CASES = {
    "cyclegan_up0": (1, 64, 256, 128, 3, 2, ((1, 2), (1, 2))),
    "cyclegan_up1": (1, 128, 128, 64, 3, 2, ((1, 2), (1, 2))),
    "pix2pix_up_128": (1, 64, 256, 128, 4, 2, ((2, 2), (2, 2))),
}


def weight_grad(x, dy, kernel_hw, strides, padding):
    """The gradient of ``lax.conv_transpose(x, kernel, strides, padding, DN, transpose_kernel=True)`` with respect to
    ``kernel [kh, kw, O, C]`` for ``x [N,H,W,C]`` and the output gradient ``dy [N,OH,OW,O]`` (module doc)."""
    import jax.numpy as jnp
    from jax import lax

    (kh, kw), (sh, sw) = kernel_hw, strides
    (top, _), (left, _) = padding
    n, h, w, _ = x.shape
    _, oh, ow, o = dy.shape
    lo_h, lo_w = max(0, kh - 1 - top), max(0, kw - 1 - left)
    hi_h, hi_w = max(0, sh * (h - 1) + top + 1 - oh), max(0, sw * (w - 1) + left + 1 - ow)
    dyp = jnp.pad(dy, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
    windows = [lax.slice(dyp, (0, lo_h + top - i, lo_w + left - j, 0),
                         (n, lo_h + top - i + sh * (h - 1) + 1, lo_w + left - j + sw * (w - 1) + 1, o), (1, sh, sw, 1))
               for i in range(kh) for j in range(kw)]
    dk = jnp.einsum("nabc,nabto->tco", x, jnp.stack(windows, axis=3)).reshape(kh, kw, x.shape[3], o)
    return jnp.flip(dk, (0, 1)).transpose(0, 1, 3, 2)


def _best(fn, *args, n: int = 5) -> float:
    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(n):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return min(times)


def run_case(name: str) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    n, side, c, o, k, s, pad = CASES[name]
    r = np.random.default_rng(0)
    x = r.standard_normal((n, side, side, c)).astype(np.float32)
    kern = (r.standard_normal((k, k, o, c)) / np.sqrt(k * k * c)).astype(np.float32)

    def fwd(x, kk):
        return lax.conv_transpose(x, kk, (s, s), pad, dimension_numbers=DN, transpose_kernel=True)

    g = r.standard_normal(fwd(x, kern).shape).astype(np.float32)
    fwd_j = jax.jit(fwd)
    xla_dw = jax.jit(lambda x, kk, g: jax.vjp(lambda kk: fwd(x, kk), kk)[1](g)[0])
    dot_dw = jax.jit(lambda x, g: weight_grad(x, g, (k, k), (s, s), pad))
    with jax.enable_x64():
        truth = np.asarray(jax.vjp(lambda kk: fwd(jnp.asarray(x, jnp.float64), kk), jnp.asarray(kern, jnp.float64))[1](
            jnp.asarray(g, jnp.float64))[0])
    scale = np.abs(truth).max()
    a, b = np.asarray(xla_dw(x, kern, g)), np.asarray(dot_dw(x, g))
    return {"shape": [n, side, side, c, o, k, s], "forward_s": _best(fwd_j, x, kern),
            "xla_weight_grad_s": _best(xla_dw, x, kern, g), "dot_weight_grad_s": _best(dot_dw, x, g),
            "xla_err_vs_f64": float(np.abs(a - truth).max() / scale),
            "dot_err_vs_f64": float(np.abs(b - truth).max() / scale)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--out")
    args = ap.parse_args()
    import jax

    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **cpu_info(), "jax": jax.__version__,
              "load_at_start": os.getloadavg(), "cases": {}}
    for name in [c for c in args.cases.split(",") if c]:
        r = report["cases"][name] = run_case(name)
        print(f"{name:16s} forward {r['forward_s'] * 1e3:7.1f} ms  "
              f"XLA kernel grad {r['xla_weight_grad_s'] * 1e3:7.1f} ms "
              f"(err {r['xla_err_vs_f64']:.1e})  as one product {r['dot_weight_grad_s'] * 1e3:6.1f} ms "
              f"(err {r['dot_err_vs_f64']:.1e})", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
