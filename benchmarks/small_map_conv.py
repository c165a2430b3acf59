"""XLA:CPU's 3x3 convolution on small maps vs the same sum as one dot (``jaxgen.models.conv_vjp.as_dot``).

    .venv/bin/python benchmarks/small_map_conv.py [--out F.json] [--steps 10]

For each map size (H x W) and channel count (C -> C, batch 4, stride 1, padding 1): the median seconds of the
jitted forward and of the jitted gradient (input and kernel) of ``lax.conv_general_dilated`` and of
``conv_vjp.as_dot``, at XLA's default codegen. Then what jaxgen's default convolution function
(``conv_vjp.default_conv``, maps of at most ``SMALL_MAP_PIXELS`` pixels as the dot) gives a frozen VGG19 on a 32 px
batch of 4 (a perceptual loss's forward and input gradient: conv5 runs on 2x2 maps), against plain lax
convolutions. ``--dot-gradient`` adds a lever measured and not adopted: the library's forward with the dot
form's gradients (a ``jax.custom_vjp``) on 3x3-32x32 maps, both gradients and the input gradient alone (a
frozen network's), batch 4 and 16. The machine (``lscpu`` model and flags) and the load go with the numbers;
they are in ``benchmarks/RESULTS.md``, the section "Small maps".
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from benchmarks.cpuinfo import cpu_info, write_record  # noqa: E402
from benchmarks.timing import timed  # noqa: E402
from jaxgen.models import conv_vjp  # noqa: E402
from jaxgen.models.vgg import VGGFeatures  # noqa: E402

DN = ("NHWC", "HWIO", "NHWC")
PAD = ((1, 1), (1, 1))
MAPS = ((1, 1), (1, 4), (2, 2), (1, 8), (2, 4), (3, 3), (2, 8), (4, 4), (4, 8), (8, 8))
CHANNELS = (64, 256, 512)


def conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), PAD, dimension_numbers=DN)


def dot(x, w):
    return conv_vjp.as_dot(x, w, PAD)


def grad_of(f):
    return jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), argnums=(0, 1)))


@jax.custom_vjp
def conv_dot_grad(x, w):
    """The library's forward, :func:`dot`'s gradients."""
    return conv(x, w)


def _cdg_fwd(x, w):
    return conv(x, w), (x, w)


def _cdg_bwd(res, dy):
    return jax.vjp(dot, *res)[1](dy)


conv_dot_grad.defvjp(_cdg_fwd, _cdg_bwd)


def dot_gradient_table(steps: int) -> list[dict]:
    rows = []
    for c in (128, 256, 512):
        for hw in (3, 4, 8, 12, 16, 24, 32):
            for b in (4, 16) if hw <= 16 else (4,):
                x = jax.random.normal(jax.random.key(0), (b, hw, hw, c))
                k = jax.random.normal(jax.random.key(1), (3, 3, c, c)) * 0.02
                row = {"h": hw, "w": hw, "c": c, "batch": b}
                for name, fn in (("conv", conv), ("dot_grad", conv_dot_grad)):
                    both = jax.jit(jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w) ** 2), argnums=(0, 1)))
                    x_only = jax.jit(jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w) ** 2)))
                    row[f"{name}_both_grads_s"] = timed(both, x, k, steps=steps)[0]
                    row[f"{name}_input_grad_s"] = timed(x_only, x, k, steps=steps)[0]
                rows.append(row)
                print(f"{hw}x{hw} C={c:3d} B={b:2d}: both gradients {row['conv_both_grads_s'] * 1e3:7.2f} -> "
                      f"{row['dot_grad_both_grads_s'] * 1e3:7.2f} ms, input gradient "
                      f"{row['conv_input_grad_s'] * 1e3:7.2f} -> {row['dot_grad_input_grad_s'] * 1e3:7.2f} ms",
                      flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="", help="write the JSON here too")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--dot-gradient", action="store_true", help="also the library forward with dot gradients")
    args = ap.parse_args()
    record = {"benchmark": "small_map_conv", **cpu_info(), "small_map_pixels": conv_vjp.SMALL_MAP_PIXELS,
              "xla_flags": os.environ.get("XLA_FLAGS", ""), "maps": [], "vgg19_32px": {}}
    for c in CHANNELS:
        for h, w in MAPS:
            x = jax.random.normal(jax.random.key(0), (4, h, w, c))
            k = jax.random.normal(jax.random.key(1), (3, 3, c, c)) * 0.02
            row = {"h": h, "w": w, "c": c,
                   "conv_fwd_s": timed(jax.jit(conv), x, k, steps=args.steps)[0],
                   "dot_fwd_s": timed(jax.jit(dot), x, k, steps=args.steps)[0],
                   "conv_grad_s": timed(grad_of(conv), x, k, steps=args.steps)[0],
                   "dot_grad_s": timed(grad_of(dot), x, k, steps=args.steps)[0]}
            record["maps"].append(row)
            print(f"{h}x{w} C={c:3d}: forward conv {row['conv_fwd_s'] * 1e3:7.2f} ms, dot {row['dot_fwd_s'] * 1e3:6.2f}"
                  f" ms ({row['conv_fwd_s'] / row['dot_fwd_s']:5.2f}x); gradient conv "
                  f"{row['conv_grad_s'] * 1e3:7.2f} ms, dot {row['dot_grad_s'] * 1e3:6.2f} ms "
                  f"({row['conv_grad_s'] / row['dot_grad_s']:5.2f}x)", flush=True)

    vgg = VGGFeatures(vgg_type="vgg19", taps=("conv5_4",))
    x = jax.random.uniform(jax.random.key(2), (4, 32, 32, 3))
    params = jax.jit(vgg.init)(jax.random.key(3), x)

    def loss(p, x):
        return jnp.mean(jnp.abs(vgg.apply(p, x)["conv5_4"]))

    for name, fn in (("default_conv", conv_vjp.default_conv), ("lax", lax.conv_general_dilated)):
        with conv_vjp.overridden(fn):  # read when the jits below trace
            fwd = jax.jit(lambda p, x: vgg.apply(p, x))
            grad = jax.jit(jax.grad(loss, argnums=1))
            record["vgg19_32px"][name] = {"fwd_s": timed(fwd, params, x, steps=args.steps)[0],
                                          "input_grad_s": timed(grad, params, x, steps=args.steps)[0]}
        r = record["vgg19_32px"][name]
        print(f"VGG19 to conv5_4, 4 x 32 px, {name:12s}: forward {r['fwd_s'] * 1e3:6.1f} ms, input gradient "
              f"{r['input_grad_s'] * 1e3:6.1f} ms", flush=True)
    if args.dot_gradient:
        record["dot_gradient"] = dot_gradient_table(args.steps)
    write_record(record, args.out)


if __name__ == "__main__":
    main()
